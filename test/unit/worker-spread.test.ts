import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, type Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import { startTestAmphi, type TestAmphi } from '../support/helpers.ts';
import { RawClient } from '../support/raw-signaling.ts';
import { Publisher } from '../support/replayed-presenter.ts';

/**
 * A node's media workers: each new meeting's room goes to the least loaded one, by the packets it moves (as the
 * worker measures them) and the connections and rooms it serves.
 */
let node: TestAmphi;
before(async () => {
  node = await startTestAmphi({ env: { AMPHI_MEDIA_WORKERS: '2' } });
});
after(() => node.stop());

/** Waits until every room of the node's workers has closed (the clients of a test left). */
async function allRoomsClosed(amphi: TestAmphi): Promise<void> {
  for (let waited = 0; amphi.amphi.media.workers.some((w) => w.roomCount > 0); waited += 20) {
    assert.ok(waited < 5000, 'the earlier rooms closed');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const join = async (meeting: Meeting, externalUserId = 'someone') => {
  const attendee = (await node.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: externalUserId }))).Attendee!;
  const client = await RawClient.connect(meeting.MediaPlacement!.SignalingUrl!, attendee.JoinToken!);
  await client.join();
  return client;
};

test('one primary and four replicas spread over both workers', async () => {
  const create = async (region: string, primary?: Meeting) =>
    (await node.client.send(new CreateMeetingCommand({ MediaRegion: region, ExternalMeetingId: 'spread', ...(primary ? { PrimaryMeetingId: primary.MeetingId } : {}) }))).Meeting!;
  const primary = await create('us-east-1');
  const replicas = [];
  for (const region of ['us-east-1', 'us-east-1', 'eu-west-1', 'eu-west-1']) replicas.push(await create(region, primary));
  const clients = [await join(primary)];
  for (const replica of replicas) clients.push(await join(replica));

  const workerOf = (meeting: Meeting) => node.amphi.signaling.conference(meeting.MeetingId!)!.room.worker.name;
  const [first, second] = node.amphi.media.workers.map((w) => w.name);
  assert.deepEqual(node.amphi.media.workers.map((w) => w.roomCount).sort(), [2, 3], 'five rooms over two workers');
  const replicaWorkers = replicas.map(workerOf);
  assert.ok(replicaWorkers.includes(first!) && replicaWorkers.includes(second!), `replicas on both workers: ${replicaWorkers}`);
  assert.notEqual(replicaWorkers[0], workerOf(primary), "the first replica's pipe ends are on two workers");
  for (const client of clients) client.ws.close();
});

test('a worker serving many viewers is avoided even with fewer rooms', async () => {
  await allRoomsClosed(node);
  const create = async (name: string) => (await node.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: name }))).Meeting!;
  const busy = await create('busy');
  const clients = [];
  for (let i = 0; i < 6; i++) clients.push(await join(busy, `viewer-${i}`));
  const workerOf = (meeting: Meeting) => node.amphi.signaling.conference(meeting.MeetingId!)!.room.worker;
  const busyWorker = workerOf(busy);
  const small = [];
  for (const name of ['small-1', 'small-2']) {
    const meeting = await create(name);
    clients.push(await join(meeting));
    small.push(meeting);
  }
  for (const meeting of small) assert.notEqual(workerOf(meeting), busyWorker, 'the small meetings go to the other worker, though it then has more rooms');
  for (const client of clients) client.ws.close();
});

test('a worker moving packets is avoided though it serves no more connections or rooms', async () => {
  await allRoomsClosed(node);
  const create = async (name: string) => (await node.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: name }))).Meeting!;
  const workerOf = (meeting: Meeting) => node.amphi.signaling.conference(meeting.MeetingId!)!.room.worker;
  // One meeting with a presenter sending camera and microphone (~210 packets/s), one with an attendee who sends nothing.
  const busy = await create('presenting');
  const presenter = await Publisher.join(node.client, busy);
  const clients: RawClient[] = [];
  try {
    presenter.start();
    const quiet = await create('quiet');
    const listener = await join(quiet, 'listener');
    clients.push(listener);
    const busyWorker = node.amphi.media.workers.find((w) => w === workerOf(busy))!;
    assert.notEqual(workerOf(quiet), busyWorker, 'the two meetings are on two workers');
    // One room and one connection each: by those alone the workers tie. The presenter's worker reports its packets each second.
    for (let waited = 0; busyWorker.packetsPerSecond < 150; waited += 50) {
      assert.ok(waited < 10_000, `the presenter's worker measured its packets (${busyWorker.packetsPerSecond}/s)`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const next = await create('next');
    clients.push(await join(next, 'newcomer'));
    assert.notEqual(workerOf(next), busyWorker, 'the new meeting goes to the worker that moves no packets');
  } finally {
    presenter.close();
    for (const client of clients) client.ws.close();
  }
});

describe('three workers', () => {
  let wide: TestAmphi;
  before(async () => {
    wide = await startTestAmphi({ env: { AMPHI_MEDIA_WORKERS: '3', AMPHI_MAX_SOCKETS_PER_ADDRESS: '0' } });
  });
  after(() => wide.stop());
  const create = async (name: string, primary?: Meeting) =>
    (await wide.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: name, ...(primary ? { PrimaryMeetingId: primary.MeetingId } : {}) }))).Meeting!;
  const joinWide = async (meeting: Meeting, externalUserId: string) => {
    const attendee = (await wide.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: externalUserId }))).Attendee!;
    const client = await RawClient.connect(meeting.MediaPlacement!.SignalingUrl!, attendee.JoinToken!);
    await client.join();
    return client;
  };
  const workerOf = (meeting: Meeting) => wide.amphi.signaling.conference(meeting.MeetingId!)!.room.worker;

  test("six sessions (two primaries with two replicas each) land on all three workers, each primary's replicas on two", async () => {
    const clients = [];
    const meetings: { primary: Meeting; replicas: Meeting[] }[] = [];
    for (const name of ['first', 'second']) {
      const primary = await create(name);
      const replicas = [await create(`${name}-replica-a`, primary), await create(`${name}-replica-b`, primary)];
      meetings.push({ primary, replicas });
      for (const meeting of [primary, ...replicas]) clients.push(await joinWide(meeting, 'someone'));
    }
    assert.deepEqual(wide.amphi.media.workers.map((w) => w.roomCount), [2, 2, 2], 'two rooms on each worker');
    for (const { primary, replicas } of meetings) {
      const [a, b] = replicas.map(workerOf);
      assert.notEqual(a, b, "a primary's two replicas are on two workers");
      assert.notEqual(a, workerOf(primary), 'the first replica is apart from its primary');
    }
    for (const client of clients) client.ws.close();
  });

  test('a replica of 250 viewers stays whole on one worker, and the next meetings go to the others', async () => {
    await allRoomsClosed(wide);
    const primary = await create('town-hall');
    const replica = await create('town-hall-replica', primary);
    const clients = [await joinWide(primary, 'presenter')];
    for (let batch = 0; batch < 25; batch++) clients.push(...(await Promise.all(Array.from({ length: 10 }, (_, i) => joinWide(replica, `viewer-${batch * 10 + i}`)))));
    const replicaWorker = wide.amphi.media.workers.find((w) => w === workerOf(replica))!;
    const conference = wide.amphi.signaling.conference(replica.MeetingId!)!;
    assert.equal(conference.room.connectionCount, 251, "all 250 viewers are in the replica's one room, with its pipe end");
    assert.equal(replicaWorker.roomCount, 1, 'that worker serves the replica alone');
    const later = [await create('later-1'), await create('later-2')];
    for (const meeting of later) clients.push(await joinWide(meeting, 'someone'));
    for (const meeting of later) assert.notEqual(workerOf(meeting), replicaWorker, 'a later meeting avoids the full replica’s worker');
    for (const client of clients) client.ws.close();
  });
});
