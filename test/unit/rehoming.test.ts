import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, GetMeetingCommand, type Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import { Redis } from 'ioredis';
import pino from 'pino';
import { RedisNodeRegistry } from '../../src/cluster/node-registry.ts';
import type { MeetingRecord } from '../../src/meetings/model.ts';
import { FrameType } from '../../src/signaling/frames.ts';
import { RawClient } from '../support/raw-signaling.ts';
import { startTestAmphi, type TestAmphi } from '../support/helpers.ts';
import { startTestRedis, type TestRedis } from '../support/redis-server.ts';

/**
 * A dead node's meetings re-homed on live nodes, with in-process nodes on one redis-server: `a` and `b` host
 * us-east-1, `w` us-west-2. A dead node is either a node that stopped (its registry entry gone) or a "ghost": an
 * entry still heartbeating whose address refuses connections, as a SIGKILLed process's does until it expires.
 */
let redis: TestRedis;
let a: TestAmphi;
let b: TestAmphi;
let w: TestAmphi;
let ghostRegistry: RedisNodeRegistry;
const connections: Redis[] = [];
const clients: RawClient[] = [];
const nodeEnv = (id: string, regions: string) => ({ AMPHI_REDIS_URL: redis.url, AMPHI_NODE_ID: id, AMPHI_REGIONS: regions, AMPHI_MEDIA_WORKERS: '1' });
const start = { nodeRegistry: { heartbeatMs: 200, deadAfterMs: 1_000 } };

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

before(async () => {
  redis = await startTestRedis();
  a = await startTestAmphi({ env: nodeEnv('a', 'us-east-1'), start });
  b = await startTestAmphi({ env: nodeEnv('b', 'us-east-1'), start });
  w = await startTestAmphi({ env: nodeEnv('w', 'us-west-2'), start });
  const connection = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  connections.push(connection);
  ghostRegistry = new RedisNodeRegistry(connection, pino({ level: 'silent' }), { heartbeatMs: 200, deadAfterMs: 1_000 });
  const ghostUrl = `http://127.0.0.1:${await closedPort()}`;
  await ghostRegistry.join(() => ({ id: 'ghost', publicUrl: ghostUrl, internalUrl: ghostUrl, mediaAddress: '127.0.0.1', regions: ['ap-south-1'], sessions: 0 }));
});

after(async () => {
  for (const client of clients) client.ws.terminate();
  ghostRegistry?.stopHeartbeat();
  for (const connection of connections) connection.disconnect();
  await Promise.all([a, b, w].map((node) => node?.stop()));
  await redis?.stop();
});

const record = async (meetingId: string): Promise<MeetingRecord> => JSON.parse((await redis.client.hget('amphi:meetings', meetingId))!) as MeetingRecord;
const meetingIn = async (MediaRegion: string, PrimaryMeetingId?: string): Promise<Meeting> =>
  (await a.client.send(new CreateMeetingCommand({ MediaRegion, ExternalMeetingId: `rehome-${MediaRegion}`, PrimaryMeetingId }))).Meeting!;
const tokenFor = async (meeting: Meeting, ExternalUserId: string) =>
  (await a.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId }))).Attendee!.JoinToken!;
const signalingAt = (node: TestAmphi, meeting: Meeting) => `${node.amphi.publicUrl.replace(/^http/, 'ws')}/control/${meeting.MeetingId}`;
const connect = async (url: string, token: string) => {
  const client = await RawClient.connect(url, token);
  clients.push(client);
  return client;
};
const eventually = async <T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    assert.ok(Date.now() < deadline, `${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
};

describe("a dead node's meetings", () => {
  test('nodes racing to re-home one meeting: exactly one wins, and every caller gets its record', async () => {
    const doomed = await startTestAmphi({ env: nodeEnv('doomed', 'eu-west-1'), start });
    const meeting = (await doomed.client.send(new CreateMeetingCommand({ MediaRegion: 'eu-west-1', ExternalMeetingId: 'doomed' }))).Meeting!;
    assert.equal((await record(meeting.MeetingId!)).MediaNodeId, 'doomed');
    await doomed.stop();
    const orphan = await record(meeting.MeetingId!);
    const moves: string[] = [];
    for (const node of [a, b]) node.amphi.service.events.subscribe('meetingMoved', (moved, from) => moves.push(`${moved.MediaNodeId} from ${from}`));

    const results = await Promise.all([a, b, a, b, a, b, a, b].map((node) => node.amphi.service.liveHome(orphan, 'here')));
    const winner = results[0]!.MediaNodeId;
    assert.ok(winner === 'a' || winner === 'b', winner);
    for (const result of results) assert.deepEqual(result, results[0], 'every caller gets the one record');
    const stored = await record(meeting.MeetingId!);
    assert.deepEqual(stored, results[0]);
    assert.deepEqual({ ...stored, MediaNodeId: orphan.MediaNodeId }, orphan, 'nothing else changed, its URL included');
    // Each node hears its own moves at once, the other's through Redis: one move, seen on both nodes.
    await eventually('the move reaches both nodes', () => moves.length >= 2);
    assert.deepEqual(moves, [`${winner} from doomed`, `${winner} from doomed`]);
  });

  test("clients of a dead node's meeting connecting to two nodes at once end up in one conference", async () => {
    const doomed = await startTestAmphi({ env: nodeEnv('doomed-2', 'eu-west-1'), start });
    const meeting = (await doomed.client.send(new CreateMeetingCommand({ MediaRegion: 'eu-west-1', ExternalMeetingId: 'doomed-2' }))).Meeting!;
    const tokens = await Promise.all(['xa', 'yb', 'zc', 'vd'].map((name) => tokenFor(meeting, name)));
    await doomed.stop();

    const joined = await Promise.all(tokens.map((token, i) => connect(signalingAt(i % 2 === 0 ? a : b, meeting), token)));
    await Promise.all(joined.map((client) => client.join()));
    const host = (await record(meeting.MeetingId!)).MediaNodeId;
    const [hosting, other] = host === 'a' ? [a, b] : [b, a];
    assert.equal(hosting.amphi.signaling.conference(meeting.MeetingId!)?.sessions.size, 4, 'all four sessions on the winner');
    assert.equal(other.amphi.signaling.conference(meeting.MeetingId!), undefined, 'no conference on the other node');
    assert.equal(other.amphi.signaling.relayCount, 2, "the other node relays its two clients to the winner");
    // Same meeting, same MediaPlacement (the dead node's URL here; in production, the region's front it shared).
    for (const node of [a, b, w]) {
      const { Meeting: read } = await node.client.send(new GetMeetingCommand({ MeetingId: meeting.MeetingId }));
      assert.deepEqual(read, meeting, `as created, read on ${node.amphi.nodes.localNodeId}`);
    }
    for (const client of joined) client.ws.close();
  });

  test('a hosting node that refuses the relay counts as dead at once: the meeting is re-homed on the relaying node', async () => {
    const meeting = await meetingIn('ap-south-1');
    assert.equal((await record(meeting.MeetingId!)).MediaNodeId, 'ghost', 'placed on the only node naming its region');
    const client = await connect(signalingAt(b, meeting), await tokenFor(meeting, 'first-back'));
    await client.join();
    assert.equal((await record(meeting.MeetingId!)).MediaNodeId, 'b');
    assert.equal(b.amphi.signaling.conference(meeting.MeetingId!)?.sessions.size, 1);
    assert.ok((await ghostRegistry.liveNodes()).some((node) => node.id === 'ghost'), 'while its registry entry is still alive');
    client.ws.close();
  });

  test('a replica whose primary is on a dead node re-homes the primary on a live node and links to it there', async () => {
    const primary = await meetingIn('ap-south-1');
    const replica = await meetingIn('us-west-2', primary.MeetingId);
    assert.equal((await record(primary.MeetingId!)).MediaNodeId, 'ghost');
    assert.equal((await record(replica.MeetingId!)).MediaNodeId, 'w');
    const viewer = await connect(signalingAt(w, replica), await tokenFor(replica, 'viewer'));
    await viewer.join();
    // The first link is refused by the ghost; the next (after 1 s) places the primary on a live node.
    const host = await eventually('the primary re-homed', async () => {
      const nodeId = (await record(primary.MeetingId!)).MediaNodeId;
      return nodeId === 'ghost' ? undefined : nodeId;
    });
    const hosting = { a, b, w }[host as 'a' | 'b' | 'w'];
    assert.ok(hosting, `re-homed on a live node, not ${host}`);
    await eventually('the replica linked on the new host', () => hosting.amphi.signaling.primaryConference(primary.MeetingId!)?.linkedReplicaIds().includes(replica.MeetingId!));
    // And the primary's own attendee reaches it through any node.
    const presenter = await connect(signalingAt(a, primary), await tokenFor(primary, 'presenter'));
    await presenter.join();
    assert.equal(hosting.amphi.signaling.primaryConference(primary.MeetingId!)?.sessions.size, 1);
    viewer.ws.close();
    presenter.ws.close();
  });

  test("a replica on a dead node: its viewer's connection re-homes it, and it links to its primary from there", async () => {
    const primary = await meetingIn('us-east-1');
    const replica = await meetingIn('ap-south-1', primary.MeetingId);
    assert.equal((await record(replica.MeetingId!)).MediaNodeId, 'ghost');
    const primaryHost = { a, b }[(await record(primary.MeetingId!)).MediaNodeId as 'a' | 'b'];
    const presenter = await connect(signalingAt(primaryHost, primary), await tokenFor(primary, 'presenter'));
    await presenter.join();
    const viewer = await connect(signalingAt(w, replica), await tokenFor(replica, 'viewer'));
    await viewer.join();
    assert.equal((await record(replica.MeetingId!)).MediaNodeId, 'w');
    assert.equal(w.amphi.signaling.conference(replica.MeetingId!)?.sessions.size, 1);
    await eventually('the replica linked to its primary', () => primaryHost.amphi.signaling.primaryConference(primary.MeetingId!)?.linkedReplicaIds().includes(replica.MeetingId!));
    viewer.ws.close();
    presenter.ws.close();
  });

  test("a node that was only cut off ends its sessions of a meeting re-homed elsewhere", async () => {
    const meeting = await meetingIn('us-east-1');
    const hostId = (await record(meeting.MeetingId!)).MediaNodeId;
    const [host, other] = hostId === 'a' ? [a, b] : [b, a];
    const client = await connect(signalingAt(host, meeting), await tokenFor(meeting, 'cut-off'));
    await client.join();
    // The other node finds the host unreachable (as after a partition) and re-homes the meeting.
    other.amphi.nodes.markUnreachable(hostId);
    const moved = await other.amphi.service.liveHome(await record(meeting.MeetingId!), 'here');
    assert.equal(moved?.MediaNodeId, other.amphi.nodes.localNodeId);
    assert.equal((await client.next(FrameType.AUDIO_STATUS)).audioStatus?.audioStatus, 503, 'its session ends: the SDK reconnects, to the new host');
    await client.closed();
    assert.equal(host.amphi.signaling.conference(meeting.MeetingId!), undefined);
  });

  test('a node taken for dead while cut off from Redis ends, once back, its sessions of meetings re-homed meanwhile', async () => {
    const meeting = await meetingIn('us-east-1');
    const hostId = (await record(meeting.MeetingId!)).MediaNodeId;
    const [host, otherId] = hostId === 'a' ? [a, 'b'] : [b, 'a'];
    const client = await connect(signalingAt(host, meeting), await tokenFor(meeting, 'was-cut-off'));
    await client.join();
    // What the others did while it was away: its entry expired and the meeting was re-homed; the move's event, sent
    // while it was away, never reached it.
    await redis.client.hset('amphi:meetings', meeting.MeetingId!, JSON.stringify({ ...(await record(meeting.MeetingId!)), MediaNodeId: otherId }));
    await redis.client.del(`amphi:node:${hostId}`);
    assert.equal((await client.next(FrameType.AUDIO_STATUS)).audioStatus?.audioStatus, 503, 'its next heartbeat finds it was dead: the session ends');
    assert.equal(host.amphi.signaling.conference(meeting.MeetingId!), undefined);
    assert.ok(await redis.client.exists(`amphi:node:${hostId}`), 'and the node is back in the registry');
  });

  test("a meeting re-homed here is idle from when it was seen orphaned or re-homed, not from its creation", async () => {
    const doomed = await startTestAmphi({ env: nodeEnv('doomed-3', 'eu-west-1'), start });
    const meeting = (await doomed.client.send(new CreateMeetingCommand({ MediaRegion: 'eu-west-1', ExternalMeetingId: 'doomed-3' }))).Meeting!;
    const gone = async () => (await redis.client.hexists('amphi:meetings', meeting.MeetingId!)) === 0;
    await a.amphi.lifecycle.sweep(); // a sees it on its live node
    await doomed.stop();
    await eventually('a sees the node gone', async () => (await a.amphi.nodes.node('doomed-3')) === undefined);
    a.clock.advance(10 * 60_000); // to a, the meeting is 10 minutes old
    const moved = await a.amphi.service.liveHome(await record(meeting.MeetingId!), 'here');
    assert.equal(moved?.MediaNodeId, 'a');
    await a.amphi.lifecycle.sweep();
    assert.equal(await gone(), false, 'created 10 minutes ago, never joined, but re-homed here just now');
    a.clock.advance(5 * 60_000);
    await a.amphi.lifecycle.sweep();
    assert.equal(await gone(), true, 'idle for 5 minutes since');
  });

  test('a draining node: a new connection through another node moves its meeting there, and its sessions follow', async () => {
    const drainer = await startTestAmphi({ env: nodeEnv('drainer', 'sa-east-1'), start });
    const meeting = (await drainer.client.send(new CreateMeetingCommand({ MediaRegion: 'sa-east-1', ExternalMeetingId: 'drained' }))).Meeting!;
    const early = await connect(signalingAt(drainer, meeting), await tokenFor(meeting, 'early'));
    await early.join();
    drainer.amphi.drain(); // SIGTERM's first step: 503 to new connections, and out of the registry at once
    await eventually('b sees the draining node gone', async () => (await b.amphi.nodes.node('drainer')) === undefined);
    const late = await connect(signalingAt(b, meeting), await tokenFor(meeting, 'late'));
    await late.join();
    assert.equal((await record(meeting.MeetingId!)).MediaNodeId, 'b');
    assert.equal((await early.next(FrameType.AUDIO_STATUS)).audioStatus?.audioStatus, 503, 'the early session ends: the SDK reconnects, to b');
    assert.equal(drainer.amphi.signaling.conference(meeting.MeetingId!), undefined);
    late.ws.close();
    await drainer.stop();
  });
});
