import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  CreateAttendeeCommand,
  CreateMeetingCommand,
  DeleteMeetingCommand,
  GetAttendeeCommand,
  GetMeetingCommand,
  ListAttendeesCommand,
  ListTagsForResourceCommand,
  type ChimeSDKMeetingsClient,
  type Meeting,
} from '@aws-sdk/client-chime-sdk-meetings';
import { clientFor, errorOf } from '../support/helpers.ts';
import { startTestCluster, type TestCluster, type TestNode } from '../support/cluster.ts';

/**
 * Three `amphi serve` processes on one redis-server, called through the official AWS SDK: east hosts us-east-1,
 * west hosts us-west-2, catch-all hosts every region.
 */
const MAX_MEETINGS = 40;
let cluster: TestCluster;
let east: TestNode;
let west: TestNode;
let catchAll: TestNode;

before(async () => {
  cluster = await startTestCluster(
    [
      { id: 'east', regions: ['us-east-1'] },
      { id: 'west', regions: ['us-west-2'] },
      { id: 'catch-all' },
    ],
    { env: { AMPHI_MAX_MEETINGS: String(MAX_MEETINGS) } },
  );
  [east, west, catchAll] = [cluster.node('east'), cluster.node('west'), cluster.node('catch-all')];
});
after(() => cluster?.stop());

const create = async (node: TestNode, MediaRegion: string, extra: { PrimaryMeetingId?: string } = {}): Promise<Meeting> =>
  (await node.client.send(new CreateMeetingCommand({ MediaRegion, ExternalMeetingId: `cluster-${MediaRegion}`, ...extra }))).Meeting!;
const signalingOf = (node: TestNode, meeting: Meeting) => `${node.publicUrl.replace(/^http/, 'ws')}/control/${meeting.MeetingId}`;
/** Runs every call at once; returns how many succeeded and the names of the errors of the others. */
const race = async (calls: (() => Promise<unknown>)[]) => {
  const results = await Promise.allSettled(calls.map((call) => call()));
  const errors = results.filter((result) => result.status === 'rejected').map((result) => (result.reason as Error).name);
  return { succeeded: results.length - errors.length, errors: [...new Set(errors)] };
};

describe('any node answers for any meeting', () => {
  test('created on east, read, listed, joined and deleted on west identically', async () => {
    const meeting = (
      await east.client.send(
        new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'shared', Tags: [{ Key: 'team', Value: 'blue' }] }),
      )
    ).Meeting!;
    assert.deepEqual((await west.client.send(new GetMeetingCommand({ MeetingId: meeting.MeetingId }))).Meeting, meeting);
    const { Attendee } = await west.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: 'joiner' }));
    await east.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: 'second' }));
    const listedEast = (await east.client.send(new ListAttendeesCommand({ MeetingId: meeting.MeetingId }))).Attendees;
    const listedWest = (await west.client.send(new ListAttendeesCommand({ MeetingId: meeting.MeetingId }))).Attendees;
    assert.deepEqual(listedWest, listedEast);
    assert.deepEqual(listedEast!.map((attendee) => attendee.ExternalUserId).sort(), ['joiner', 'second']);
    assert.deepEqual((await catchAll.client.send(new GetAttendeeCommand({ MeetingId: meeting.MeetingId, AttendeeId: Attendee!.AttendeeId }))).Attendee, Attendee);
    const tags = await west.client.send(new ListTagsForResourceCommand({ ResourceARN: meeting.MeetingArn }));
    assert.deepEqual(tags.Tags, [{ Key: 'team', Value: 'blue' }]);

    await west.client.send(new DeleteMeetingCommand({ MeetingId: meeting.MeetingId }));
    for (const node of [east, west, catchAll]) {
      assert.equal((await errorOf(node.client.send(new GetMeetingCommand({ MeetingId: meeting.MeetingId })))).name, 'NotFoundException', node.id);
    }
  });
});

describe('placement', () => {
  test("a meeting goes to the node naming its region, and MediaPlacement points at that node's public URL", async () => {
    const inWest = await create(east, 'us-west-2');
    assert.equal(inWest.MediaPlacement!.SignalingUrl, signalingOf(west, inWest));
    assert.equal(inWest.MediaPlacement!.EventIngestionUrl, `${west.publicUrl}/v1/client-events`);
    const inEast = await create(catchAll, 'us-east-1');
    assert.equal(inEast.MediaPlacement!.SignalingUrl, signalingOf(east, inEast));
    const elsewhere = await create(west, 'eu-west-1');
    assert.equal(elsewhere.MediaPlacement!.SignalingUrl, signalingOf(catchAll, elsewhere), 'a region no node names goes to the catch-all node');
  });
});

describe('limits hold under concurrent calls to different nodes', () => {
  const clients = (count: number): ChimeSDKMeetingsClient[] =>
    Array.from({ length: count }, (_, i) => clientFor([east, west, catchAll][i % 3]!.url));

  test('8 clients on 3 nodes race 300 CreateAttendee on one meeting: exactly 250 succeed', async () => {
    const meeting = await create(east, 'us-east-1');
    const racers = clients(8);
    const calls = Array.from({ length: 300 }, (_, i) => () =>
      racers[i % racers.length]!.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: `racer-${i}` })),
    );
    const { succeeded, errors } = await race(calls);
    assert.equal(succeeded, 250);
    assert.deepEqual(errors, ['LimitExceededException']);
    let listed = 0;
    let NextToken: string | undefined;
    do {
      const page = await west.client.send(new ListAttendeesCommand({ MeetingId: meeting.MeetingId, NextToken }));
      listed += page.Attendees!.length;
      NextToken = page.NextToken;
    } while (NextToken);
    assert.equal(listed, 250);
  });

  test('9 replicas raced on 3 nodes for one primary: exactly 4 are created', async () => {
    const primary = await create(east, 'us-east-1');
    const racers = clients(9);
    const regions = ['us-east-1', 'us-west-2', 'eu-west-1'];
    const { succeeded, errors } = await race(
      racers.map((client, i) => () =>
        client.send(new CreateMeetingCommand({ MediaRegion: regions[i % 3], ExternalMeetingId: `replica-${i}`, PrimaryMeetingId: primary.MeetingId })),
      ),
    );
    assert.equal(succeeded, 4);
    assert.deepEqual(errors, ['LimitExceededException']);
  });

  test('the active-meetings quota counts the meetings of every node', async () => {
    const active = await cluster.redis.client.hlen('amphi:meetings');
    const free = MAX_MEETINGS - active;
    const racers = clients(6);
    const { succeeded, errors } = await race(
      Array.from({ length: free + 6 }, (_, i) => () =>
        racers[i % racers.length]!.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: `quota-${i}` })),
      ),
    );
    assert.equal(succeeded, free);
    assert.deepEqual(errors, ['LimitExceededException']);
    assert.equal(await cluster.redis.client.hlen('amphi:meetings'), MAX_MEETINGS);
  });
});

describe('node loss', () => {
  test('a killed node: the API keeps working on the others, its meetings stay readable, new ones go to live nodes', async () => {
    // Make room under the quota the previous test filled (replicas go with their primary).
    for (const meetingId of await cluster.redis.client.hkeys('amphi:meetings')) {
      await east.client.send(new DeleteMeetingCommand({ MeetingId: meetingId })).catch((error: Error) => assert.equal(error.name, 'NotFoundException'));
    }
    const orphan = await create(east, 'eu-west-1');
    assert.equal(orphan.MediaPlacement!.SignalingUrl, signalingOf(catchAll, orphan));
    await catchAll.stop('SIGKILL');

    assert.deepEqual((await west.client.send(new GetMeetingCommand({ MeetingId: orphan.MeetingId }))).Meeting, orphan, 'readable as it was');
    await east.client.send(new CreateAttendeeCommand({ MeetingId: orphan.MeetingId, ExternalUserId: 'after-the-crash' }));
    assert.equal((await create(west, 'us-west-2')).MediaPlacement!.SignalingUrl!.startsWith(west.publicUrl.replace(/^http/, 'ws')), true);

    // Once its registry entry has expired (10 s without a heartbeat), the others stop placing meetings on it.
    const deadline = Date.now() + 20_000;
    while ((await cluster.redis.client.exists('amphi:node:catch-all')) === 1) {
      assert.ok(Date.now() < deadline, 'the killed node is still registered after 20 s');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    // Each node reuses its read of the live nodes for a heartbeat (2 s): until then, it may still choose the dead one.
    let placed = await create(east, 'eu-west-1');
    while (placed.MediaPlacement!.SignalingUrl === signalingOf(catchAll, placed)) {
      assert.ok(Date.now() < deadline, 'meetings still go to the killed node 20 s after the crash');
      await east.client.send(new DeleteMeetingCommand({ MeetingId: placed.MeetingId }));
      await new Promise((resolve) => setTimeout(resolve, 200));
      placed = await create(east, 'eu-west-1');
    }
    assert.equal(placed.MediaPlacement!.SignalingUrl, signalingOf(east, placed), 'no node names eu-west-1 and the catch-all node is dead: the least loaded (ties: lowest id)');
    await west.client.send(new DeleteMeetingCommand({ MeetingId: orphan.MeetingId }));
  });
});
