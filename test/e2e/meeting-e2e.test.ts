import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  CreateAttendeeCommand,
  CreateMeetingCommand,
  DeleteAttendeeCommand,
  DeleteMeetingCommand,
  UpdateAttendeeCapabilitiesCommand,
  type Attendee,
  type Meeting,
} from '@aws-sdk/client-chime-sdk-meetings';
import { openBrowserSession, waitFor, type BrowserAttendee, type BrowserSession, type RosterEntry } from './browser/harness.ts';
import { startTestAmphi, type TestAmphi } from '../support/helpers.ts';

/**
 * A real meeting in headless Chromium with the unmodified amazon-chime-sdk-js, configured only
 * from the AWS SDK client's responses: A talks at 440 Hz with a camera, B at 880 Hz, C listens.
 */
let server: TestAmphi;
let browser: BrowserSession;
let meeting: Meeting;
const attendees: Record<string, Attendee> = {};
let a: BrowserAttendee;
let b: BrowserAttendee;
let c: BrowserAttendee;

const createAttendee = async (externalUserId: string, meetingId = meeting.MeetingId) =>
  (await server.client.send(new CreateAttendeeCommand({ MeetingId: meetingId, ExternalUserId: externalUserId }))).Attendee!;
const tones = async (page: BrowserAttendee) => {
  const measurement = await page.measureTones([440, 880], 1500);
  return Object.fromEntries(measurement.tones.map((t) => [t.frequency, t.present])) as Record<number, boolean>;
};
const presentIn = (roster: RosterEntry[]) => Object.fromEntries(roster.filter((e) => e.present).map((e) => [e.externalUserId, e.attendeeId]));

before(async () => {
  server = await startTestAmphi();
  browser = await openBrowserSession();
  meeting = (await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'e2e-meeting' }))).Meeting!;
  for (const name of ['alice', 'bob', 'carol']) attendees[name] = await createAttendee(name);
  [a, b, c] = [await browser.newAttendee('A'), await browser.newAttendee('B'), await browser.newAttendee('C')];
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const step = <T>(fn: () => Promise<T>) => browser.withConsoleOnFailure(fn);

describe('a meeting of three in Chromium', () => {
  test('everyone joins from the AWS SDK responses alone', () =>
    step(async () => {
      await a.join({ meeting: { Meeting: meeting }, attendee: { Attendee: attendees.alice }, tone: { frequency: 440 }, camera: true });
      await b.join({ meeting: { Meeting: meeting }, attendee: { Attendee: attendees.bob }, tone: { frequency: 880 } });
      await c.join({ meeting: { Meeting: meeting }, attendee: { Attendee: attendees.carol } });
      assert.equal(server.amphi.lifecycle.connectedAttendees(meeting.MeetingId!), 3, 'connections reach the lifecycle rules');
    }));

  test('presence with external user ids on every page', () =>
    step(async () => {
      for (const page of [a, b, c]) {
        const present = await waitFor(async () => {
          const roster = presentIn(await page.roster());
          return Object.keys(roster).length === 3 ? roster : undefined;
        }, 10_000, { message: `${page.name} roster` });
        assert.deepEqual(present, { alice: attendees.alice!.AttendeeId, bob: attendees.bob!.AttendeeId, carol: attendees.carol!.AttendeeId });
      }
    }));

  test('server-side mixing: C hears both tones, each talker hears the other but not itself', () =>
    step(async () => {
      await waitFor(async () => {
        const heard = await tones(c);
        return heard[440] && heard[880];
      }, 15_000, { message: 'C hears 440 Hz and 880 Hz' });
      const heardByA = await waitFor(async () => {
        const heard = await tones(a);
        return heard[880] ? heard : undefined;
      }, 10_000, { message: 'A hears B' });
      assert.equal(heardByA[440], false, 'A does not hear its own voice (mix-minus)');
      const heardByB = await waitFor(async () => {
        const heard = await tones(b);
        return heard[440] ? heard : undefined;
      }, 10_000, { message: 'B hears A' });
      assert.equal(heardByB[880], false, 'B does not hear its own voice');
    }));

  test('volume indicators follow the talkers', () =>
    step(async () => {
      const volumes = await waitFor(async () => {
        const entries = await c.volumes();
        const loud = entries.filter((v) => (v.volume ?? 0) > 0.5).map((v) => v.externalUserId);
        return loud.includes('alice') && loud.includes('bob') ? entries : undefined;
      }, 10_000, { message: 'C sees alice and bob talking' });
      assert.ok((volumes.find((v) => v.externalUserId === 'carol')?.volume ?? 0) < 0.1, 'the silent listener shows no volume');
    }));

  test("the last talker's volume falls to zero when everyone goes quiet", () =>
    step(async () => {
      await a.setTone(null);
      await b.setTone(null);
      try {
        await waitFor(async () => ((await c.volumes()).every((v) => (v.volume ?? 0) < 0.1) ? true : undefined), 10_000, {
          message: 'C sees nobody talking',
        });
      } finally {
        await a.setTone(440);
        await b.setTone(880);
      }
      await waitFor(async () => {
        const loud = (await c.volumes()).filter((v) => (v.volume ?? 0) > 0.5).map((v) => v.externalUserId);
        return loud.includes('alice') && loud.includes('bob');
      }, 10_000, { message: 'C sees alice and bob talking again' });
    }));

  test("A's camera is decoded in B's and C's tiles", () =>
    step(async () => {
      for (const page of [b, c]) {
        const tile = await waitFor(async () => {
          const tiles = await page.videoTiles();
          return tiles.find((t) => t.boundAttendeeId === attendees.alice!.AttendeeId && (t.framesDecoded ?? 0) > 10);
        }, 20_000, { message: `${page.name} decodes A's video` });
        assert.equal(tile.boundExternalUserId, 'alice');
        assert.ok((tile.frameWidth ?? 0) >= 320 && (tile.frameHeight ?? 0) >= 180, `decoded size ${tile.frameWidth}x${tile.frameHeight}`);
      }
    }));

  test('a muted talker leaves the mix and shows muted in the rosters', () =>
    step(async () => {
      await b.mute();
      await waitFor(async () => (await c.roster()).find((e) => e.externalUserId === 'bob')?.muted === true, 10_000, { message: 'C sees bob muted' });
      await waitFor(async () => (await a.roster()).find((e) => e.externalUserId === 'bob')?.muted === true, 10_000, { message: 'A sees bob muted' });
      await waitFor(async () => {
        const heard = await tones(c);
        return heard[440] && !heard[880];
      }, 10_000, { message: "B's tone leaves C's mix" });
      await b.unmute();
      await waitFor(async () => (await tones(c))[880], 10_000, { message: "B's tone comes back" });
    }));

  test('UpdateAttendeeCapabilities applies to a live attendee, both ways', () =>
    step(async () => {
      const update = (Audio: 'Receive' | 'SendReceive') =>
        server.client.send(
          new UpdateAttendeeCapabilitiesCommand({
            MeetingId: meeting.MeetingId,
            AttendeeId: attendees.bob!.AttendeeId,
            Capabilities: { Audio, Video: 'SendReceive', Content: 'SendReceive' },
          }),
        );
      await update('Receive');
      await waitFor(async () => {
        const heard = await tones(c);
        return heard[440] && !heard[880];
      }, 10_000, { message: 'B may no longer talk' });
      await update('SendReceive');
      await waitFor(async () => (await tones(c))[880], 10_000, { message: 'B talks again' });
    }));

  test('a data message from A reaches B and C with its sender, and is not echoed to A', () =>
    step(async () => {
      for (const page of [a, b, c]) await page.subscribeData('chat');
      await a.sendData('chat', 'hello from alice');
      for (const page of [b, c]) {
        const message = await waitFor(async () => (await page.receivedData()).find((m) => m.text === 'hello from alice'), 10_000, {
          message: `${page.name} receives the data message`,
        });
        assert.equal(message.senderAttendeeId, attendees.alice!.AttendeeId);
        assert.equal(message.senderExternalUserId, 'alice');
        assert.equal(message.topic, 'chat');
        assert.equal(message.throttled, false);
      }
      assert.equal((await a.receivedData()).filter((m) => m.text === 'hello from alice').length, 0);
    }));

  test('leaving and rejoining updates presence', () =>
    step(async () => {
      assert.equal(await c.leave(), 'Left');
      await waitFor(async () => (await a.roster()).find((e) => e.externalUserId === 'carol')?.present === false, 10_000, { message: 'A sees carol leave' });
      await c.join({ meeting: { Meeting: meeting }, attendee: { Attendee: attendees.carol } });
      await waitFor(async () => (await a.roster()).find((e) => e.externalUserId === 'carol')?.present === true, 10_000, { message: 'A sees carol again' });
    }));

  test('the same credentials on a second device push the first one out', () =>
    step(async () => {
      const d = await browser.newAttendee('D');
      const since = await c.mark();
      await d.join({ meeting: { Meeting: meeting }, attendee: { Attendee: attendees.carol } });
      const stop = await c.waitForEvent('audioVideoDidStop', { since });
      assert.equal(stop.detail.name, 'AudioJoinedFromAnotherDevice');
      await waitFor(async () => presentIn(await a.roster()).carol === attendees.carol!.AttendeeId, 10_000, { message: 'carol present again via D' });
      assert.equal(await d.leave(), 'Left');
      await d.close();
      await c.join({ meeting: { Meeting: meeting }, attendee: { Attendee: attendees.carol } });
    }));

  test('DeleteAttendee stops B at once, and its credentials cannot rejoin', () =>
    step(async () => {
      const since = await b.mark();
      await server.client.send(new DeleteAttendeeCommand({ MeetingId: meeting.MeetingId, AttendeeId: attendees.bob!.AttendeeId }));
      const stop = await b.waitForEvent('audioVideoDidStop', { since, timeoutMs: 5_000 });
      assert.equal(stop.detail.name, 'AudioAttendeeRemoved');
      await waitFor(async () => (await a.roster()).find((e) => e.externalUserId === 'bob')?.present === false, 10_000, { message: 'A sees bob gone' });
      await assert.rejects(
        b.join({ meeting: { Meeting: meeting }, attendee: { Attendee: attendees.bob }, timeoutMs: 10_000 }),
        /AudioAttendeeRemoved/,
      );
    }));

  test('DeleteMeeting ends every page with MeetingEnded', () =>
    step(async () => {
      const pages = [a, c];
      const marks = await Promise.all(pages.map((page) => page.mark()));
      await server.client.send(new DeleteMeetingCommand({ MeetingId: meeting.MeetingId }));
      for (const [i, page] of pages.entries()) {
        const stop = await page.waitForEvent('audioVideoDidStop', { since: marks[i], timeoutMs: 5_000 });
        assert.equal(stop.detail.name, 'MeetingEnded', page.name);
      }
      assert.equal(server.amphi.signaling.sessionCount, 0);
      assert.equal(server.amphi.lifecycle.connectedAttendees(meeting.MeetingId!), 0);
    }));
});
