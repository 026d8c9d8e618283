import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, DeleteAttendeeCommand, DeleteMeetingCommand, type Attendee, type Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import { openBrowserSession, waitFor, type BrowserAttendee, type BrowserSession, type RosterEntry } from './browser/harness.ts';
import { startTestAmphi, type TestAmphi } from '../support/helpers.ts';

/**
 * Replicated meetings with the official SDK in Chromium: presenter P in the primary (440 Hz and a
 * camera), viewers V1 and X in replica R1, viewer V2 in replica R2 of another region; V1 (880 Hz)
 * is promoted into the primary on the connection it has, and demoted again.
 */
let server: TestAmphi;
let browser: BrowserSession;
let primary: Meeting;
let r1: Meeting;
let r2: Meeting;
const who: Record<string, Attendee> = {};
let p: BrowserAttendee;
let v1: BrowserAttendee;
let x: BrowserAttendee;
let v2: BrowserAttendee;

const createMeeting = async (input: { MediaRegion: string; ExternalMeetingId: string; PrimaryMeetingId?: string }) =>
  (await server.client.send(new CreateMeetingCommand(input))).Meeting!;
const createAttendee = async (meeting: Meeting, externalUserId: string) =>
  (await server.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: externalUserId }))).Attendee!;
const tones = async (page: BrowserAttendee) => {
  const measurement = await page.measureTones([440, 880], 1500);
  return Object.fromEntries(measurement.tones.map((t) => [t.frequency, t.present])) as Record<number, boolean>;
};
const present = (roster: RosterEntry[]) => roster.filter((e) => e.present).map((e) => e.externalUserId).sort();
const step = <T>(fn: () => Promise<T>) => browser.withConsoleOnFailure(fn);
const decodes = (page: BrowserAttendee, attendeeId: string) =>
  waitFor(async () => (await page.videoTiles()).find((t) => t.boundAttendeeId === attendeeId && (t.framesDecoded ?? 0) > 10), 20_000, {
    message: `${page.name} decodes ${attendeeId}`,
  });

before(async () => {
  server = await startTestAmphi();
  browser = await openBrowserSession();
  primary = await createMeeting({ MediaRegion: 'us-east-1', ExternalMeetingId: 'town-hall' });
  r1 = await createMeeting({ MediaRegion: 'us-east-1', ExternalMeetingId: 'town-hall-r1', PrimaryMeetingId: primary.MeetingId });
  r2 = await createMeeting({ MediaRegion: 'eu-west-1', ExternalMeetingId: 'town-hall-r2', PrimaryMeetingId: primary.MeetingId });
  who.presenter = await createAttendee(primary, 'presenter');
  who.stage = await createAttendee(primary, 'stage-guest'); // the primary identity V1 is promoted as
  who.v1 = await createAttendee(r1, 'viewer-1');
  who.x = await createAttendee(r1, 'viewer-x');
  who.v2 = await createAttendee(r2, 'viewer-2');
  [p, v1, x, v2] = [await browser.newAttendee('P'), await browser.newAttendee('V1'), await browser.newAttendee('X'), await browser.newAttendee('V2')];
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

describe('replicated meetings in Chromium', () => {
  test('the presenter joins the primary, viewers join their replicas', () =>
    step(async () => {
      await p.join({ meeting: { Meeting: primary }, attendee: { Attendee: who.presenter }, tone: { frequency: 440 }, camera: true });
      await v1.join({ meeting: { Meeting: r1 }, attendee: { Attendee: who.v1 }, tone: { frequency: 880 } });
      await x.join({ meeting: { Meeting: r1 }, attendee: { Attendee: who.x } });
      await v2.join({ meeting: { Meeting: r2 }, attendee: { Attendee: who.v2 } });
      const signaling = server.amphi.signaling;
      // Rooms go to the least-loaded worker: the first replica's to the idle one (the rule is tested in worker-spread).
      assert.notEqual(signaling.conference(primary.MeetingId!)!.room.worker, signaling.conference(r1.MeetingId!)!.room.worker, 'the first replica on the other worker');
    }));

  test("replica viewers hear the primary's mix and decode its video", () =>
    step(async () => {
      for (const page of [v1, v2]) {
        await waitFor(async () => (await tones(page))[440], 15_000, { message: `${page.name} hears the presenter` });
        await decodes(page, who.presenter!.AttendeeId!);
      }
      assert.equal((await tones(p))[880], false, "a replica viewer's microphone goes nowhere");
    }));

  test('nobody sees anyone but the primary attendees', () =>
    step(async () => {
      for (const page of [p, v1, x, v2]) {
        await waitFor(async () => JSON.stringify(present(await page.roster())) === JSON.stringify(['presenter']), 10_000, { message: `${page.name} roster` });
      }
      for (const page of [v1, x, v2]) {
        const status = await page.status();
        assert.equal(status.canStartLocalVideo, false, `${page.name} cannot publish`);
      }
    }));

  test("the primary's data messages reach the replicas; a viewer's reach nobody", () =>
    step(async () => {
      for (const page of [p, v1, x, v2]) await page.subscribeData('chat');
      await p.sendData('chat', 'welcome');
      for (const page of [v1, v2]) {
        const message = await waitFor(async () => (await page.receivedData()).find((m) => m.text === 'welcome'), 10_000, { message: `${page.name} gets the message` });
        assert.equal(message.senderExternalUserId, 'presenter');
      }
      await x.sendData('chat', 'from a viewer');
      const echo = await waitFor(async () => (await x.receivedData()).find((m) => m.text === 'from a viewer'), 10_000, { message: 'X is told its message was refused' });
      assert.equal(echo.throttled, true);
      await new Promise((resolve) => setTimeout(resolve, 500));
      for (const page of [p, v1, v2]) assert.equal((await page.receivedData()).some((m) => m.text === 'from a viewer'), false, page.name);
    }));

  test('one pipe per replica: its traffic does not grow with its viewers', () =>
    step(async () => {
      const links = server.amphi.signaling.primaryConference(primary.MeetingId!)!.replicaLinks();
      assert.equal(links.length, 2);
      const before = await Promise.all(links.map((link) => link.stats()));
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const afterwards = await Promise.all(links.map((link) => link.stats()));
      const sent = afterwards.map((s, i) => s.primary!.rtpOut - before[i]!.primary!.rtpOut);
      // R1 has two viewers and R2 one; both pipes carry the same: one mix, one video stream.
      assert.ok(sent[0]! > 50 && sent[1]! > 50, `pipes carry media: ${sent}`);
      assert.ok(Math.max(...sent) / Math.min(...sent) < 1.5, `same traffic whatever the viewers: ${sent}`);
    }));

  test('V1 is promoted on its connection: everyone hears it, sees it as the primary attendee, it hears everyone but itself', () =>
    step(async () => {
      const sockets = (await v1.webSockets()).length;
      assert.equal(await v1.promote({ Attendee: who.stage }), 'OK');
      for (const page of [p, v2]) {
        await waitFor(async () => (await tones(page))[880], 15_000, { message: `${page.name} hears V1` });
      }
      const heard = await waitFor(async () => {
        const t = await tones(v1);
        return t[440] ? t : undefined;
      }, 10_000, { message: 'V1 hears P' });
      assert.equal(heard[880], false, 'V1 does not hear itself');
      for (const page of [p, v2, x]) {
        await waitFor(async () => {
          const roster = await page.roster();
          return roster.some((e) => e.present && e.attendeeId === who.stage!.AttendeeId && e.externalUserId === 'stage-guest');
        }, 10_000, { message: `${page.name} sees the promoted attendee` });
        assert.ok(!(await page.roster()).some((e) => e.present && e.externalUserId === 'viewer-1'), 'never under its replica identity');
      }
      assert.equal((await v1.webSockets()).length, sockets, 'no new WebSocket');
      await v1.sendData('chat', 'from the stage');
      for (const page of [p, v2]) {
        const message = await waitFor(async () => (await page.receivedData()).find((m) => m.text === 'from the stage'), 10_000, { message: `${page.name} gets V1's message` });
        assert.equal(message.senderAttendeeId, who.stage!.AttendeeId, 'sent as the primary attendee');
        assert.equal(message.senderExternalUserId, 'stage-guest');
      }
      assert.equal(server.amphi.lifecycle.connectedAttendees(primary.MeetingId!), 2, 'the promoted attendee counts for the primary');
    }));

  test("the promoted attendee's camera reaches the primary and the other replica", () =>
    step(async () => {
      await waitFor(async () => (await v1.status()).canStartLocalVideo === true, 10_000, { message: 'V1 may start video' });
      await v1.startCamera();
      await decodes(p, who.stage!.AttendeeId!);
      await decodes(v2, who.stage!.AttendeeId!);
    }));

  test("demotion: V1's voice leaves every mix", () =>
    step(async () => {
      await v1.stopCamera();
      await v1.demote();
      // P hears no one now (its own voice is left out of its mix); V2 still hears P.
      await waitFor(async () => !(await tones(p))[880], 15_000, { message: "V1 leaves P's mix" });
      await waitFor(async () => {
        const t = await tones(v2);
        return t[440] && !t[880];
      }, 15_000, { message: "V1 leaves V2's mix" });
      await waitFor(async () => !(await p.roster()).some((e) => e.present && e.attendeeId === who.stage!.AttendeeId), 10_000, { message: 'gone from the roster' });
    }));

  test('DeleteAttendee of the primary attendee demotes V1, and the client is told', () =>
    step(async () => {
      assert.equal(await v1.promote({ Attendee: who.stage }), 'OK');
      await waitFor(async () => (await tones(p))[880], 15_000, { message: 'P hears V1 again' });
      const since = await v1.mark();
      await server.client.send(new DeleteAttendeeCommand({ MeetingId: primary.MeetingId, AttendeeId: who.stage!.AttendeeId }));
      const event = await v1.waitForEvent('audioVideoWasDemotedFromPrimaryMeeting', { since });
      assert.equal(event.detail.name, 'AudioVideoWasRemovedFromPrimaryMeeting');
      await waitFor(async () => !(await tones(p))[880], 15_000, { message: "V1's voice is gone" });
      assert.equal((await v1.status()).state, 'started', 'V1 stays in its replica');
    }));

  test('promotion failures', () =>
    step(async () => {
      const other = await createMeeting({ MediaRegion: 'us-east-1', ExternalMeetingId: 'elsewhere' });
      const stranger = await createAttendee(other, 'stranger');
      assert.equal(await x.promote({ Attendee: { ...stranger, AttendeeId: stranger.AttendeeId } }), 'AudioAuthenticationRejected', 'a token of another meeting');
      const guest = await createAttendee(primary, 'guest');
      assert.equal(await x.promote({ Attendee: { ...guest, JoinToken: `${guest.JoinToken}x` } }), 'AudioAuthenticationRejected', 'a bad token');
      assert.equal(await p.promote({ Attendee: guest }), 'AudioAuthenticationRejected', 'a presenter of the primary cannot be promoted');

      const full = (await server.client.send(
        new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'full', MeetingFeatures: { Attendee: { MaxCount: 1 } } }),
      )).Meeting!;
      const fullReplica = await createMeeting({ MediaRegion: 'us-east-1', ExternalMeetingId: 'full-r', PrimaryMeetingId: full.MeetingId });
      const seat = await createAttendee(full, 'only-seat');
      const holder = await browser.newAttendee('holder');
      await holder.join({ meeting: { Meeting: full }, attendee: { Attendee: seat } });
      const hopeful = await browser.newAttendee('hopeful');
      await hopeful.join({ meeting: { Meeting: fullReplica }, attendee: { Attendee: await createAttendee(fullReplica, 'hopeful') } });
      assert.equal(await hopeful.promote({ Attendee: seat }), 'AudioCallAtCapacity', 'the primary is full');
      await holder.leave();
      await hopeful.leave();
    }));

  test('a promoted attendee whose connection ends is demoted; its reconnection starts unpromoted', () =>
    step(async () => {
      const guest = await createAttendee(primary, 'guest-2');
      assert.equal(await x.promote({ Attendee: guest }), 'OK');
      await waitFor(async () => (await p.roster()).some((e) => e.present && e.externalUserId === 'guest-2'), 10_000, { message: 'P sees guest-2' });
      assert.equal(server.amphi.lifecycle.connectedAttendees(primary.MeetingId!), 2);
      await x.leave();
      await waitFor(async () => !(await p.roster()).some((e) => e.present && e.externalUserId === 'guest-2'), 10_000, { message: 'guest-2 leaves with X' });
      assert.equal(server.amphi.lifecycle.connectedAttendees(primary.MeetingId!), 1);
      await x.join({ meeting: { Meeting: r1 }, attendee: { Attendee: who.x } });
      assert.equal((await x.status()).canStartLocalVideo, false);
      assert.ok(!(await p.roster()).some((e) => e.present && e.externalUserId === 'guest-2'));
    }));

  test('deleting the primary ends the primary and every replica', () =>
    step(async () => {
      const pages = [p, v1, x, v2];
      const marks = await Promise.all(pages.map((page) => page.mark()));
      await server.client.send(new DeleteMeetingCommand({ MeetingId: primary.MeetingId }));
      for (const [i, page] of pages.entries()) {
        const stop = await page.waitForEvent('audioVideoDidStop', { since: marks[i], timeoutMs: 8_000 });
        assert.equal(stop.detail.name, 'MeetingEnded', page.name);
      }
    }));
});
