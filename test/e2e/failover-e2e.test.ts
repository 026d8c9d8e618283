import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  CreateAttendeeCommand,
  CreateMeetingCommand,
  GetMeetingCommand,
  ListAttendeesCommand,
  type Attendee,
  type ChimeSDKMeetingsClient,
  type Meeting,
} from '@aws-sdk/client-chime-sdk-meetings';
import { openBrowserSession, waitFor, type BrowserAttendee, type BrowserSession } from './browser/harness.ts';
import { startTestCluster, type TestCluster } from '../support/cluster.ts';
import { FrontProxy } from '../support/front-proxy.ts';
import { clientFor } from '../support/helpers.ts';

/**
 * Nodes SIGKILLed under their meetings, with the official SDK in Chromium. Three `amphi serve` processes on one
 * redis-server, behind a front per region (a TCP proxy that passes each connection to the first of its nodes that
 * accepts it, as a load balancer with health checks would; the nodes have their front as `--public-url`, so
 * MediaPlacement names the front): A and C host us-east-1 behind the east front; B hosts us-west-2 behind the west
 * front, with C as the standby there (no other node names us-west-2: any node will do). A hosts the primary with
 * presenters P1 (440 Hz) and P2 (880 Hz); B hosts its replica with viewer V.
 * - A is killed: P1 and P2 reconnect to the east front, which passes them to C, which re-homes the meeting (A
 *   refuses connections) and hosts it; V's replica on B links again, to the primary on C.
 * - Then B is killed: V reconnects to the west front, which passes it to C; C re-homes the replica, which links to
 *   its primary on the same node.
 */
let cluster: TestCluster;
let east: FrontProxy;
let west: FrontProxy;
let browser: BrowserSession;
let api: ChimeSDKMeetingsClient;
let primary: Meeting;
let replica: Meeting;
const who: Record<string, Attendee> = {};
let p1: BrowserAttendee;
let p2: BrowserAttendee;
let v: BrowserAttendee;

const step = <T>(fn: () => Promise<T>) => browser.withConsoleOnFailure(fn);
const hears = async (page: BrowserAttendee, frequencies: number[]) => {
  const measurement = await page.measureTones(frequencies, 1000);
  return measurement.tones.every((tone) => tone.present);
};
const mediaNodeOf = async (meeting: Meeting) => {
  const json = await cluster.redis.client.hget('amphi:meetings', meeting.MeetingId!);
  return (JSON.parse(json!) as { MediaNodeId: string }).MediaNodeId;
};
/** The measurements must come well within this; the goal (15 s) is printed, not asserted. */
const GENEROUS_MS = 60_000;

before(async () => {
  [east, west] = [await FrontProxy.start(), await FrontProxy.start()];
  cluster = await startTestCluster([
    { id: 'node-a', regions: ['us-east-1'], env: { AMPHI_PUBLIC_URL: east.url } },
    { id: 'node-b', regions: ['us-west-2'], env: { AMPHI_PUBLIC_URL: west.url } },
    { id: 'node-c', regions: ['us-east-1'], env: { AMPHI_PUBLIC_URL: east.url } },
  ]);
  east.setBackends([cluster.node('node-a').url, cluster.node('node-c').url]);
  west.setBackends([cluster.node('node-b').url, cluster.node('node-c').url]);
  // The API through a front too, as an application in the region would call it.
  api = clientFor(east.url);
  browser = await openBrowserSession();
  primary = (await api.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'failover-primary' }))).Meeting!;
  replica = (await api.send(new CreateMeetingCommand({ MediaRegion: 'us-west-2', ExternalMeetingId: 'failover-replica', PrimaryMeetingId: primary.MeetingId }))).Meeting!;
  for (const [name, meeting] of [['p1', primary], ['p2', primary], ['v', replica]] as const) {
    who[name] = (await api.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: `failover-${name}` }))).Attendee!;
  }
  [p1, p2, v] = [await browser.newAttendee('P1'), await browser.newAttendee('P2'), await browser.newAttendee('V')];
});

after(async () => {
  await browser?.close();
  await cluster?.stop();
  await east?.close();
  await west?.close();
});

describe('a node killed under its meetings', () => {
  test('the primary is on A, the replica on B, each behind its front', async () => {
    assert.equal(await mediaNodeOf(primary), 'node-a', 'placement: least loaded of the region, ties to the lowest id');
    assert.equal(await mediaNodeOf(replica), 'node-b');
    assert.equal(primary.MediaPlacement!.SignalingUrl, `${east.url.replace(/^http/, 'ws')}/control/${primary.MeetingId}`);
    assert.equal(replica.MediaPlacement!.SignalingUrl, `${west.url.replace(/^http/, 'ws')}/control/${replica.MeetingId}`);
  });

  test('everyone hears the presenters', () =>
    step(async () => {
      await p1.join({ meeting: { Meeting: primary }, attendee: { Attendee: who.p1 }, tone: { frequency: 440 } });
      await p2.join({ meeting: { Meeting: primary }, attendee: { Attendee: who.p2 }, tone: { frequency: 880 } });
      await v.join({ meeting: { Meeting: replica }, attendee: { Attendee: who.v } });
      await waitFor(() => hears(p1, [880]), 15_000, { message: 'P1 hears P2' });
      await waitFor(() => hears(p2, [440]), 15_000, { message: 'P2 hears P1' });
      await waitFor(() => hears(v, [440, 880]), 15_000, { message: 'V hears P1 and P2' });
    }));

  test('SIGKILL of A: the presenters hear each other again through C, and the viewer hears them again', () =>
    step(async () => {
      const pages = [p1, p2, v];
      const marks = await Promise.all(pages.map((page) => page.mark()));
      const sockets = await Promise.all(pages.map(async (page) => (await page.webSockets()).length));
      const killedAt = Date.now();
      await cluster.node('node-a').stop('SIGKILL');

      const since = (from: number) => ((Date.now() - from) / 1000).toFixed(1);
      const times: Record<string, string> = {};
      await Promise.all([
        (async () => {
          await waitFor(async () => (await hears(p1, [880])) && (await hears(p2, [440])), GENEROUS_MS, { message: 'P1 and P2 hear each other again' });
          times['P1 and P2 hear each other again'] = since(killedAt);
        })(),
        (async () => {
          await waitFor(() => hears(v, [440, 880]), GENEROUS_MS, { message: 'V hears the presenters again' });
          times['V hears the presenters again'] = since(killedAt);
        })(),
      ]);
      console.log(`failover after SIGKILL of the hosting node (s): ${JSON.stringify(times)}`);

      assert.equal(await mediaNodeOf(primary), 'node-c', 're-homed on the live node of its region');
      for (const [i, page] of [p1, p2].entries()) {
        const reconnecting = await page.waitForEvent('audioVideoDidStartConnecting', { since: marks[i], timeoutMs: 1_000, where: (e) => (e.detail as { reconnecting: boolean }).reconnecting });
        assert.ok(reconnecting, `${page.name} reconnected by the SDK`);
        assert.ok((await page.webSockets()).length > sockets[i]!, `${page.name} opened a new WebSocket`);
        assert.equal((await page.status()).state, 'started');
      }
      assert.equal((await v.webSockets()).length, sockets[2], "V's connection to B never dropped");
      assert.ok((east.stats.refused.get(new URL(cluster.node('node-a').url).origin) ?? 0) > 0, 'the front passed over the dead node');
    }));

  test('the meetings are intact: same ids, placement URLs, attendees and join tokens', async () => {
    const survivor = cluster.node('node-c').client;
    const { Meeting: read } = await survivor.send(new GetMeetingCommand({ MeetingId: primary.MeetingId }));
    assert.deepEqual(read, primary, 'GetMeeting answers as before the crash (the front URL survived the node)');
    const { Attendees } = await survivor.send(new ListAttendeesCommand({ MeetingId: primary.MeetingId }));
    const byId = (attendees: Attendee[]) => [...attendees].sort((x, y) => x.AttendeeId!.localeCompare(y.AttendeeId!));
    assert.deepEqual(byId(Attendees!), byId([who.p1!, who.p2!]));
    const { Meeting: replicaRead } = await cluster.node('node-b').client.send(new GetMeetingCommand({ MeetingId: replica.MeetingId }));
    assert.deepEqual(replicaRead, replica);
  });

  test('the roster on each side shows the presenters', () =>
    step(async () => {
      for (const page of [p1, p2, v]) {
        await waitFor(async () => {
          const present = (await page.roster()).filter((entry) => entry.present).map((entry) => entry.externalUserId).sort();
          return present.join() === 'failover-p1,failover-p2';
        }, 15_000, { message: `${page.name} sees P1 and P2 present` });
      }
    }));

  test("SIGKILL of B, the replica's node: the viewer is back in its replica on C, hearing the presenters; they never notice", () =>
    step(async () => {
      const marks = await Promise.all([p1, p2, v].map((page) => page.mark()));
      const sockets = (await v.webSockets()).length;
      const killedAt = Date.now();
      await cluster.node('node-b').stop('SIGKILL');

      await waitFor(() => hears(v, [440, 880]), GENEROUS_MS, { message: 'V hears the presenters again' });
      console.log(`failover of a replica after SIGKILL of its node (s): {"V hears the presenters again":"${((Date.now() - killedAt) / 1000).toFixed(1)}"}`);
      assert.equal(await mediaNodeOf(replica), 'node-c', 're-homed on a live node (none names us-west-2)');
      assert.ok((await v.webSockets()).length > sockets, 'V opened a new WebSocket');
      const present = (await v.roster()).filter((entry) => entry.present).map((entry) => entry.externalUserId).sort();
      assert.deepEqual(present, ['failover-p1', 'failover-p2'], 'still a viewer of its replica: the primary\'s roster, without itself');
      for (const [i, page] of [p1, p2].entries()) {
        const events = await page.events(marks[i]);
        assert.ok(!events.some((e) => e.name === 'audioVideoDidStartConnecting' || e.name === 'audioVideoDidStop'), `${page.name} never reconnected`);
      }
      assert.equal(await hears(p1, [880]), true, 'P1 still hears P2');
      const { Meeting: read } = await cluster.node('node-c').client.send(new GetMeetingCommand({ MeetingId: replica.MeetingId }));
      assert.deepEqual(read, replica, 'the replica as before: the west front URL survived its node');
    }));
});
