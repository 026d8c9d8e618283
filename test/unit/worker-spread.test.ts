import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, type Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import { startTestAmphi, type TestAmphi } from '../support/helpers.ts';
import { RawClient } from '../support/raw-signaling.ts';

/** A node with two media workers places each new meeting's room on the least loaded one (by connections served). */
let node: TestAmphi;
before(async () => {
  node = await startTestAmphi({ env: { AMPHI_MEDIA_WORKERS: '2' } });
});
after(() => node.stop());

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
  // The first test's rooms close once their clients are gone.
  for (let waited = 0; node.amphi.media.workers.some((w) => w.roomCount > 0); waited += 20) {
    assert.ok(waited < 5000, 'the earlier rooms closed');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
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
