import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ChimeSDKMeetingsClient, CreateAttendeeCommand, CreateMeetingCommand, DeleteMeetingCommand, type Attendee, type Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import { openBrowserSession, waitFor, type BrowserAttendee, type BrowserSession } from './browser/harness.ts';
import { startTestCluster, type TestCluster } from '../support/cluster.ts';

/**
 * A primary on node A (us-east-1) and its replica on node B (us-west-2), two Amphi processes sharing one
 * redis-server, with the official SDK in Chromium: presenter P on A (440 Hz and a camera), viewers V (880 Hz) and
 * W on B. What crosses between the nodes: hearing, video, roster, data, a promotion and a demotion on V's
 * connection to B, and the cascade of DeleteMeeting called on B.
 */
let cluster: TestCluster;
let browser: BrowserSession;
let onA: ChimeSDKMeetingsClient;
let onB: ChimeSDKMeetingsClient;
let primary: Meeting;
let replica: Meeting;
const who: Record<string, Attendee> = {};
let p: BrowserAttendee;
let v: BrowserAttendee;
let w: BrowserAttendee;

const step = <T>(fn: () => Promise<T>) => browser.withConsoleOnFailure(fn);
const tones = async (page: BrowserAttendee) => {
  const measurement = await page.measureTones([440, 880], 1500);
  return Object.fromEntries(measurement.tones.map((t) => [t.frequency, t.present])) as Record<number, boolean>;
};
const decodes = (page: BrowserAttendee, attendeeId: string) =>
  waitFor(async () => (await page.videoTiles()).find((t) => t.boundAttendeeId === attendeeId && (t.framesDecoded ?? 0) > 10), 20_000, {
    message: `${page.name} decodes ${attendeeId}`,
  });
const attendee = async (client: ChimeSDKMeetingsClient, meeting: Meeting, externalUserId: string) =>
  (await client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: externalUserId }))).Attendee!;

before(async () => {
  cluster = await startTestCluster([
    { id: 'node-a', regions: ['us-east-1'] },
    { id: 'node-b', regions: ['us-west-2'] },
  ]);
  [onA, onB] = [cluster.node('node-a').client, cluster.node('node-b').client];
  browser = await openBrowserSession();
  primary = (await onA.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'cluster-primary' }))).Meeting!;
  // Created through A: the replica still goes to the node that names its region.
  replica = (await onA.send(new CreateMeetingCommand({ MediaRegion: 'us-west-2', ExternalMeetingId: 'cluster-replica', PrimaryMeetingId: primary.MeetingId }))).Meeting!;
  who.presenter = await attendee(onA, primary, 'presenter');
  who.stage = await attendee(onB, primary, 'stage-guest');
  who.v = await attendee(onB, replica, 'viewer-v');
  who.w = await attendee(onA, replica, 'viewer-w');
  [p, v, w] = [await browser.newAttendee('P'), await browser.newAttendee('V'), await browser.newAttendee('W')];
});

after(async () => {
  await browser?.close();
  await cluster?.stop();
});

describe('a replica on another node than its primary, in Chromium', () => {
  test('each meeting is placed on the node of its region', () => {
    assert.equal(new URL(primary.MediaPlacement!.SignalingUrl!).port, new URL(cluster.node('node-a').url).port);
    assert.equal(new URL(replica.MediaPlacement!.SignalingUrl!).port, new URL(cluster.node('node-b').url).port);
  });

  test("the viewers on B hear the primary's mix and decode its video from A", () =>
    step(async () => {
      await p.join({ meeting: { Meeting: primary }, attendee: { Attendee: who.presenter }, tone: { frequency: 440 }, camera: true });
      await v.join({ meeting: { Meeting: replica }, attendee: { Attendee: who.v }, tone: { frequency: 880 } });
      await w.join({ meeting: { Meeting: replica }, attendee: { Attendee: who.w } });
      for (const page of [v, w]) {
        await waitFor(async () => (await tones(page))[440], 15_000, { message: `${page.name} hears P` });
        await decodes(page, who.presenter!.AttendeeId!);
        const roster = await waitFor(async () => {
          const present = (await page.roster()).filter((e) => e.present);
          return present.length === 1 ? present : undefined;
        }, 10_000, { message: `${page.name} sees P alone` });
        assert.equal(roster[0]!.externalUserId, 'presenter');
      }
      assert.equal((await tones(p))[880], false, "P does not hear a viewer's microphone");
      assert.deepEqual((await p.roster()).filter((e) => e.present).map((e) => e.externalUserId), ['presenter']);
    }));

  test("the presenter's data messages reach the viewers on B", () =>
    step(async () => {
      for (const page of [p, v, w]) await page.subscribeData('chat');
      await p.sendData('chat', 'hello from A');
      for (const page of [v, w]) {
        const message = await waitFor(async () => (await page.receivedData()).find((m) => m.text === 'hello from A'), 10_000, { message: `${page.name} gets it` });
        assert.equal(message.senderAttendeeId, who.presenter!.AttendeeId);
      }
    }));

  test("V is promoted on its connection to B: P and W hear it, and its camera reaches A", () =>
    step(async () => {
      const sockets = (await v.webSockets()).length;
      assert.equal(await v.promote({ Attendee: who.stage }), 'OK');
      await waitFor(async () => (await tones(p))[880], 15_000, { message: 'P hears V' });
      await waitFor(async () => {
        const t = await tones(w);
        return t[440] && t[880];
      }, 15_000, { message: 'W hears P and V' });
      await waitFor(async () => (await p.roster()).some((e) => e.present && e.attendeeId === who.stage!.AttendeeId), 10_000, { message: 'P sees the stage guest' });
      assert.equal((await v.webSockets()).length, sockets, 'no new WebSocket');
      await waitFor(async () => (await v.status()).canStartLocalVideo === true, 10_000, { message: 'V may start video' });
      await v.startCamera();
      await decodes(p, who.stage!.AttendeeId!);
      await decodes(w, who.stage!.AttendeeId!);
    }));

  test("demotion: V's voice leaves every mix, and V stays in its replica", () =>
    step(async () => {
      await v.stopCamera();
      await v.demote();
      await waitFor(async () => !(await tones(p))[880], 15_000, { message: "V leaves P's mix" });
      await waitFor(async () => !(await p.roster()).some((e) => e.present && e.attendeeId === who.stage!.AttendeeId), 10_000, { message: 'gone from the roster' });
      assert.equal((await v.status()).state, 'started');
      await waitFor(async () => (await tones(v))[440], 10_000, { message: 'V still hears P' });
    }));

  test('DeleteMeeting of the primary, called on B, ends the primary on A and the replica on B', () =>
    step(async () => {
      const pages = [p, v, w];
      const marks = await Promise.all(pages.map((page) => page.mark()));
      await onB.send(new DeleteMeetingCommand({ MeetingId: primary.MeetingId }));
      for (const [i, page] of pages.entries()) {
        const stop = await page.waitForEvent('audioVideoDidStop', { since: marks[i], timeoutMs: 10_000 });
        assert.equal(stop.detail.name, 'MeetingEnded', page.name);
      }
    }));
});
