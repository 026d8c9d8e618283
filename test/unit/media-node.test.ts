import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  CreateAttendeeCommand,
  CreateMeetingCommand,
  DeleteAttendeeCommand,
  DeleteMeetingCommand,
  GetMeetingCommand,
  UpdateAttendeeCapabilitiesCommand,
  type Meeting,
} from '@aws-sdk/client-chime-sdk-meetings';
import { Redis } from 'ioredis';
import pino from 'pino';
import { EmbeddedNodeDirectory, NodesUnavailableError, RedisNodeDirectory } from '../../src/cluster/node-directory.ts';
import { RedisNodeRegistry } from '../../src/cluster/node-registry.ts';
import { FrameType } from '../../src/signaling/frames.ts';
import { RawClient } from '../support/raw-signaling.ts';
import { clientFor, errorOf, startTestAmphi, type TestAmphi } from '../support/helpers.ts';
import { startTestRedis, type TestRedis } from '../support/redis-server.ts';

const MINUTE = 60_000;
const local = (sessions = 0) => ({ id: 'me', publicUrl: 'http://me.example', mediaAddress: '127.0.0.2', regions: ['us-east-1'], sessions });

let redis: TestRedis;
const connections: Redis[] = [];
before(async () => {
  redis = await startTestRedis();
});
after(async () => {
  for (const connection of connections) connection.disconnect();
  await redis.stop();
});
const registry = (prefix: string) => {
  const connection = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  connections.push(connection);
  return new RedisNodeRegistry(connection, pino({ level: 'silent' }), { prefix });
};

describe('EmbeddedNodeDirectory', () => {
  test('the one node hosts every region, under the id of the embedded node', async () => {
    let sessions = 0;
    const nodes = new EmbeddedNodeDirectory(() => local(sessions));
    assert.equal(nodes.localNodeId, 'local');
    assert.ok(nodes.isLocal('local'));
    assert.equal(nodes.isLocal('me'), false, 'a configured node id means nothing without a cluster');
    sessions = 3;
    const placed = await nodes.placeMeeting('eu-west-1');
    assert.deepEqual([placed.id, placed.publicUrl, placed.regions, placed.sessions], ['local', 'http://me.example', '*', 3]);
    assert.equal((await nodes.node('local'))?.sessions, 3);
    assert.equal(await nodes.node('elsewhere'), undefined);
  });
});

describe('RedisNodeDirectory', () => {
  test('places by region over the live nodes, sees itself with its current load, and forgets a node that left', async () => {
    const other = registry('dir1:');
    await other.join(() => ({ id: 'west', publicUrl: 'http://west.example', mediaAddress: '127.0.0.3', regions: ['us-west-2'], sessions: 5 }));
    let sessions = 1;
    const mine = registry('dir1:');
    const nodes = new RedisNodeDirectory(mine, () => local(sessions), { cacheMs: 0 });
    await mine.join(() => local(sessions));
    assert.equal(nodes.localNodeId, 'me');
    assert.ok(nodes.isLocal('me') && !nodes.isLocal('west'));
    assert.equal((await nodes.placeMeeting('us-west-2')).publicUrl, 'http://west.example', 'the node naming the region');
    assert.equal((await nodes.placeMeeting('us-east-1')).id, 'me');
    assert.equal((await nodes.placeMeeting('eu-west-1')).id, 'me', 'no node names it: the least loaded of all');
    sessions = 9;
    assert.equal((await nodes.node('me'))?.sessions, 9, 'this node as it is now, not as its last heartbeat said');
    assert.equal((await nodes.placeMeeting('eu-west-1')).id, 'west');
    await other.leave('west');
    assert.equal(await nodes.node('west'), undefined);
    await mine.leave('me');
    assert.equal((await nodes.node('me'))?.id, 'me', 'this node always answers');
  });

  test('placement reuses the live list within its cache time; a lookup of a node it lacks reads the registry again', async () => {
    const mine = registry('dir2:');
    const nodes = new RedisNodeDirectory(mine, () => local(), { cacheMs: 60_000 });
    assert.deepEqual((await nodes.liveNodes()).map((node) => node.id), ['me']);
    const other = registry('dir2:');
    await other.join(() => ({ id: 'late', publicUrl: 'http://late.example', mediaAddress: '127.0.0.3', regions: ['eu-west-1'], sessions: 0 }));
    assert.equal((await nodes.placeMeeting('eu-west-1')).id, 'me', 'read before it joined, and still within the cache time');
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal((await nodes.node('late'))?.publicUrl, 'http://late.example', 'a miss reads the registry again');
    assert.equal((await nodes.placeMeeting('eu-west-1')).id, 'late', 'and placement uses that read');
    await other.leave('late');
  });

  test('a node found unreachable is dead to this process until its entry is written again', async () => {
    const other = registry('dir4:');
    const describeOther = () => ({ id: 'refusing', publicUrl: 'http://refusing.example', mediaAddress: '127.0.0.3', regions: ['us-east-1'], sessions: 0 });
    await other.join(describeOther);
    const nodes = new RedisNodeDirectory(registry('dir4:'), () => local(5), { cacheMs: 60_000 });
    assert.equal((await nodes.placeMeeting('us-east-1')).id, 'refusing');
    nodes.markUnreachable('refusing');
    nodes.markUnreachable('me'); // this node is never unreachable to itself
    assert.equal(await nodes.node('refusing'), undefined, 'dead at once, though its entry has not expired');
    assert.equal((await nodes.placeMeeting('us-east-1')).id, 'me', 'and placement passes it over');
    assert.equal((await nodes.node('me'))?.id, 'me');
    other.stopHeartbeat();
    await other.join(describeOther); // a heartbeat written since (or the node restarted under its id)
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal((await nodes.node('refusing'))?.id, 'refusing', 'alive again');
    await other.leave('refusing');
  });

  test('a node marked unreachable is forgotten once it has left the registry', async () => {
    const nodes = new RedisNodeDirectory(registry('dir5:'), () => local(0), { cacheMs: 0 });
    nodes.markUnreachable('gone-for-good');
    await nodes.placeMeeting('us-east-1'); // reads the registry, where no such node is
    assert.equal((nodes as unknown as { unreachable: Map<string, number> }).unreachable.size, 0, 'the mark is not kept forever');
  });

  test('an unreadable registry is a NodesUnavailableError (the API answers 503)', async () => {
    // Never connected, and told not to queue: every call fails at once, as while Redis is unreachable.
    const connection = new Redis(redis.url, { lazyConnect: true, enableOfflineQueue: false });
    const nodes = new RedisNodeDirectory(new RedisNodeRegistry(connection, pino({ level: 'silent' }), { prefix: 'dir3:' }), () => local(), { cacheMs: 0 });
    const error = await errorOf(nodes.placeMeeting('us-east-1'));
    assert.ok(error instanceof NodesUnavailableError, String(error));
    connection.disconnect();
  });
});

describe('two nodes in one process, on one Redis', () => {
  let east: TestAmphi;
  let west: TestAmphi;
  const nodeEnv = (id: string, regions: string) => ({ AMPHI_REDIS_URL: redis.url, AMPHI_NODE_ID: id, AMPHI_REGIONS: regions, AMPHI_MEDIA_WORKERS: '1' });
  before(async () => {
    await redis.client.flushall();
    // A short heartbeat keeps each node's cached view of the other fresh within a test.
    const start = { nodeRegistry: { heartbeatMs: 200, deadAfterMs: 1_000 } };
    east = await startTestAmphi({ env: nodeEnv('east', 'us-east-1'), start });
    west = await startTestAmphi({ env: nodeEnv('west', 'us-west-2'), start });
  });
  after(async () => {
    await west?.stop();
    await east?.stop();
  });

  const meetingIn = async (server: TestAmphi, MediaRegion: string): Promise<Meeting> =>
    (await server.client.send(new CreateMeetingCommand({ MediaRegion, ExternalMeetingId: `node-${MediaRegion}` }))).Meeting!;
  const attendeeOf = async (meeting: Meeting, ExternalUserId: string) =>
    (await east.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId }))).Attendee!;
  const signalingAt = (server: TestAmphi, meeting: Meeting) => `${server.amphi.publicUrl.replace(/^http/, 'ws')}/control/${meeting.MeetingId}`;

  test("MediaPlacement points at the hosting node's public URL, whichever node is asked", async () => {
    const meeting = await meetingIn(east, 'us-west-2');
    assert.equal(meeting.MediaPlacement!.SignalingUrl, signalingAt(west, meeting));
    const { Meeting: read } = await east.client.send(new GetMeetingCommand({ MeetingId: meeting.MeetingId }));
    assert.deepEqual(read, meeting);
    assert.equal(east.amphi.nodes.localNodeId, 'east');
    assert.equal(east.amphi.clusterSecret, west.amphi.clusterSecret, 'both nodes hold the same secret');
  });

  test('a connection for a meeting placed on another node is relayed to that node', async () => {
    const meeting = await meetingIn(west, 'us-east-1');
    assert.equal(meeting.MediaPlacement!.SignalingUrl, signalingAt(east, meeting));
    const token = (await attendeeOf(meeting, 'traveller')).JoinToken!;
    const relayed = await RawClient.connect(signalingAt(west, meeting), token);
    await relayed.join();
    assert.equal(west.amphi.signaling.conference(meeting.MeetingId!), undefined, 'no conference was started for it on west');
    assert.equal(east.amphi.signaling.conference(meeting.MeetingId!)?.sessions.size, 1, 'east hosts the relayed session');
    relayed.ws.close();
  });

  test("DeleteAttendee, UpdateAttendeeCapabilities and DeleteMeeting on one node reach the hosting node's conference", async () => {
    const meeting = await meetingIn(west, 'us-east-1');
    const stayer = await attendeeOf(meeting, 'stayer');
    const removed = await attendeeOf(meeting, 'removed');
    const stayerClient = await RawClient.connect(signalingAt(east, meeting), stayer.JoinToken!);
    await stayerClient.join();
    const removedClient = await RawClient.connect(signalingAt(east, meeting), removed.JoinToken!);
    await removedClient.join();

    await west.client.send(new DeleteAttendeeCommand({ MeetingId: meeting.MeetingId, AttendeeId: removed.AttendeeId }));
    assert.equal((await removedClient.next(FrameType.AUDIO_STATUS)).audioStatus?.audioStatus, 411);

    const conference = east.amphi.signaling.conference(meeting.MeetingId!)!;
    const session = [...conference.sessions].find((s) => s.attendee.AttendeeId === stayer.AttendeeId)!;
    await west.client.send(
      new UpdateAttendeeCapabilitiesCommand({
        MeetingId: meeting.MeetingId,
        AttendeeId: stayer.AttendeeId,
        Capabilities: { Audio: 'Receive', Video: 'None', Content: 'None' },
      }),
    );
    const deadline = Date.now() + 5_000;
    while (session.attendee.Capabilities.Audio !== 'Receive' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(session.attendee.Capabilities, { Audio: 'Receive', Video: 'None', Content: 'None' });

    await west.client.send(new DeleteMeetingCommand({ MeetingId: meeting.MeetingId }));
    assert.equal((await stayerClient.next(FrameType.AUDIO_STATUS)).audioStatus?.audioStatus, 410);
    assert.equal(await stayerClient.closed(), 4410);
  });

  test('each node judges idleness of the meetings it hosts, and of those of a dead node', async () => {
    const hostedEast = (await meetingIn(west, 'us-east-1')).MeetingId!;
    const hostedWest = (await meetingIn(east, 'us-west-2')).MeetingId!;
    const gone = async (meetingId: string) => {
      try {
        await east.client.send(new GetMeetingCommand({ MeetingId: meetingId }));
        return false;
      } catch (error) {
        assert.equal((error as Error).name, 'NotFoundException');
        return true;
      }
    };
    east.clock.advance(10 * MINUTE);
    await east.amphi.lifecycle.sweep();
    assert.equal(await gone(hostedEast), true, 'its own idle meeting');
    assert.equal(await gone(hostedWest), false, "a live node's meeting is that node's to judge");

    await west.stop();
    assert.equal(await redis.client.exists('amphi:node:west'), 0, 'a node that stops leaves the registry at once');
    const deadline = Date.now() + 5_000;
    while ((await east.amphi.nodes.node('west')) !== undefined) {
      assert.ok(Date.now() < deadline, 'east still sees west alive after 5 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await east.amphi.lifecycle.sweep();
    assert.equal(await gone(hostedWest), false, "a dead node's meeting gets the idle time from when it was seen orphaned");
    east.clock.advance(5 * MINUTE);
    await east.amphi.lifecycle.sweep();
    assert.equal(await gone(hostedWest), true);
  });
});

describe('a cluster without configured keys', () => {
  test('the first node generates a development key pair in Redis and the others use it', async () => {
    await redis.client.flushall();
    const env = (id: string) => ({ AMPHI_REDIS_URL: redis.url, AMPHI_NODE_ID: id, AMPHI_MEDIA_WORKERS: '1', AMPHI_ACCESS_KEY_ID: '', AMPHI_SECRET_ACCESS_KEY: '' });
    const first = await startTestAmphi({ env: env('first') });
    const second = await startTestAmphi({ env: env('second') });
    try {
      assert.ok(first.amphi.generatedKeys && second.amphi.generatedKeys);
      assert.deepEqual(second.amphi.accessKeys, first.amphi.accessKeys);
      assert.deepEqual(JSON.parse((await redis.client.get('amphi:dev-credentials'))!), first.amphi.accessKeys[0]);
      assert.equal(first.amphi.clusterSecret, first.amphi.accessKeys[0]!.secretAccessKey);
      const created = await clientFor(first.amphi.url, first.amphi.accessKeys[0]).send(
        new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'dev-keys' }),
      );
      const read = await clientFor(second.amphi.url, second.amphi.accessKeys[0]).send(new GetMeetingCommand({ MeetingId: created.Meeting!.MeetingId }));
      assert.deepEqual(read.Meeting, created.Meeting);
      assert.equal(first.amphi.listenAddress, '127.0.0.1', 'development keys keep a node on this machine');
    } finally {
      await second.stop();
      await first.stop();
    }
  });
});
