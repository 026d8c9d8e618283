import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, type Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import WebSocket from 'ws';
import { NODE_AUTH_HEADER, signNodeCall } from '../../src/bridge/node-auth.ts';
import { FrameType } from '../../src/signaling/frames.ts';
import { startTestAmphi, TEST_KEY, type TestAmphi } from '../support/helpers.ts';
import { RawClient } from '../support/raw-signaling.ts';
import { startTestRedis, type TestRedis } from '../support/redis-server.ts';

/**
 * A primary on node A feeds a replica on node B over a bridge: two nodes sharing a real redis-server, each with its
 * own API, signaling and media workers. Raw protocol clients check what crosses (roster, INDEX, data, promotion).
 */
const offer = (JSON.parse(readFileSync(path.join(import.meta.dirname, '../support/fixtures/offers/chrome-first-offer.json'), 'utf8')) as { sdpOffer: string }).sdpOffer;
let redis: TestRedis;
let nodeA: TestAmphi;
let nodeB: TestAmphi;

const connect = async (node: TestAmphi, meeting: Meeting, externalUserId: string) => {
  const attendee = (await node.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: externalUserId }))).Attendee!;
  const client = await RawClient.connect(meeting.MediaPlacement!.SignalingUrl!, attendee.JoinToken!);
  const index = await client.join();
  client.send({ type: FrameType.SUBSCRIBE, sub: { duplex: 1, sdpOffer: offer, receiveStreamIds: [0] } });
  await client.next(FrameType.SUBSCRIBE_ACK);
  return { client, attendee, index };
};
const presentIds = (frames: RawClient['frames']) => {
  const present = new Map<number, string>();
  for (const frame of frames) {
    if (frame.type !== FrameType.AUDIO_STREAM_ID_INFO) continue;
    for (const stream of frame.audioStreamIdInfo?.streams ?? []) {
      if (stream.attendeeId) present.set(stream.audioStreamId!, stream.attendeeId);
      else present.delete(stream.audioStreamId!);
    }
  }
  return [...present.values()];
};
const waitFor = async <T>(check: () => T | undefined | false, what: string, timeoutMs = 5000): Promise<T> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
};

const start = (id: string, region: string, port = 0) =>
  startTestAmphi({ env: { AMPHI_REDIS_URL: redis.url, AMPHI_NODE_ID: id, AMPHI_REGIONS: region, AMPHI_MEDIA_WORKERS: '1', AMPHI_PORT: String(port) } });

before(async () => {
  redis = await startTestRedis();
  nodeA = await start('a', 'us-east-1');
  nodeB = await start('b', 'eu-west-1');
});
after(async () => {
  await nodeB?.stop();
  await nodeA?.stop();
  await redis?.stop();
});

describe('a replica on another node than its primary', () => {
  test('viewers on B see the primary on A; a viewer is promoted and demoted across the bridge', async () => {
    const primary = (await nodeA.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'bridge-primary' }))).Meeting!;
    const replica = (await nodeB.client.send(new CreateMeetingCommand({ MediaRegion: 'eu-west-1', ExternalMeetingId: 'bridge-replica', PrimaryMeetingId: primary.MeetingId }))).Meeting!;
    assert.match(primary.MediaPlacement!.SignalingUrl!, new RegExp(`^ws://127.0.0.1:${new URL(nodeA.amphi.url).port}/`));
    assert.match(replica.MediaPlacement!.SignalingUrl!, new RegExp(`^ws://127.0.0.1:${new URL(nodeB.amphi.url).port}/`));

    const presenter = await connect(nodeA, primary, 'presenter');
    const viewer = await connect(nodeB, replica, 'viewer');
    const other = await connect(nodeB, replica, 'other-viewer');
    await waitFor(() => presentIds(viewer.client.frames).includes(presenter.attendee.AttendeeId!), 'the viewer sees the presenter');
    assert.deepEqual(presentIds(other.client.frames), [presenter.attendee.AttendeeId], 'only primary attendees');
    assert.deepEqual(presentIds(presenter.client.frames), [presenter.attendee.AttendeeId], 'the presenter never hears of the viewers');
    const links = nodeA.amphi.signaling.primaryConference(primary.MeetingId!)!.replicaLinks();
    assert.equal(links.length, 1, 'one pipe from A to B');
    const stats = await links[0]!.stats();
    assert.ok(stats.primary && stats.replica, 'both ends of the pipe are open, on two nodes');

    // Data messages of the presenter reach the viewers on B; a late viewer gets those still alive.
    presenter.client.send({ type: FrameType.DATA_MESSAGE, dataMessage: { messages: [{ topic: 'chat', data: Buffer.from('hello B'), lifetimeMs: 60_000 }] } });
    for (const { client } of [viewer, other]) {
      const message = await client.next(FrameType.DATA_MESSAGE);
      assert.equal(Buffer.from(message.dataMessage!.messages![0]!.data!).toString(), 'hello B');
      assert.equal(message.dataMessage!.messages![0]!.senderAttendeeId, presenter.attendee.AttendeeId);
    }
    const late = await connect(nodeB, replica, 'late-viewer');
    const kept = await late.client.next(FrameType.DATA_MESSAGE);
    assert.equal(Buffer.from(kept.dataMessage!.messages![0]!.data!).toString(), 'hello B', 'live data reaches a late viewer');
    assert.equal(late.index.index?.numParticipants, 1, "the replica's INDEX counts the primary's participants");

    // Promotion: the viewer joins the primary as a primary attendee on its connection to B.
    const stage = (await nodeA.client.send(new CreateAttendeeCommand({ MeetingId: primary.MeetingId, ExternalUserId: 'stage-guest' }))).Attendee!;
    viewer.client.send({ type: FrameType.PRIMARY_MEETING_JOIN, primaryMeetingJoin: { credentials: { attendeeId: stage.AttendeeId, joinToken: stage.JoinToken } } });
    const ack = await viewer.client.next(FrameType.PRIMARY_MEETING_JOIN_ACK);
    assert.equal(ack.error?.status ?? 200, 200);
    await waitFor(() => presentIds(presenter.client.frames).includes(stage.AttendeeId!), 'the presenter sees the promoted attendee');
    await waitFor(() => presentIds(other.client.frames).includes(stage.AttendeeId!), 'the other viewers see it too');
    const replicaStats = await nodeB.amphi.signaling.conference(replica.MeetingId!)!.stats();
    assert.equal(replicaStats.find((s) => s.externalUserId === 'viewer')?.promotedAs, stage.AttendeeId);

    // A promoted viewer's data message reaches the primary's attendees and the other viewers, not itself.
    viewer.client.send({ type: FrameType.DATA_MESSAGE, dataMessage: { messages: [{ topic: 'chat', data: Buffer.from('from the stage') }] } });
    const heard = await presenter.client.next(FrameType.DATA_MESSAGE);
    assert.equal(heard.dataMessage!.messages![0]!.senderAttendeeId, stage.AttendeeId);
    await waitFor(() => other.client.frames.some((f) => f.type === FrameType.DATA_MESSAGE && Buffer.from(f.dataMessage?.messages?.[0]?.data ?? []).toString() === 'from the stage'), 'a viewer gets it');

    // Demotion: the viewer leaves the primary, everyone sees it go, and it stays in its replica.
    viewer.client.send({ type: FrameType.PRIMARY_MEETING_LEAVE, primaryMeetingLeave: {} });
    await waitFor(() => !presentIds(presenter.client.frames).includes(stage.AttendeeId!), 'the presenter sees the promoted attendee leave');
    await waitFor(() => !presentIds(other.client.frames).includes(stage.AttendeeId!), 'so do the viewers');
    assert.ok(!viewer.client.frames.some((f) => f.type === FrameType.DATA_MESSAGE && Buffer.from(f.dataMessage?.messages?.[0]?.data ?? []).toString() === 'from the stage'), 'the sender does not get its own message');

    // Capacity and refusals are the primary's: a token of another meeting is refused at A.
    viewer.client.send({ type: FrameType.PRIMARY_MEETING_JOIN, primaryMeetingJoin: { credentials: { joinToken: late.attendee.JoinToken } } });
    assert.equal((await viewer.client.next(FrameType.PRIMARY_MEETING_JOIN_ACK)).error?.status, 403);

    for (const { client } of [presenter, viewer, other, late]) client.ws.close();
  });

  test('a client whose connection lands on the other node is relayed to the meeting\'s node', async () => {
    const primary = (await nodeA.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'relayed' }))).Meeting!;
    const presenter = await connect(nodeA, primary, 'presenter');
    const viaB = { ...primary, MediaPlacement: { ...primary.MediaPlacement, SignalingUrl: `${nodeB.amphi.url.replace(/^http/, 'ws')}/control/${primary.MeetingId}` } };
    const guest = await connect(nodeB, viaB, 'guest');
    await waitFor(() => presentIds(guest.client.frames).length === 2, 'the guest sees both attendees');
    assert.equal(nodeB.amphi.signaling.relayCount, 1, 'B relays the connection');
    assert.equal(nodeB.amphi.signaling.conference(primary.MeetingId!), undefined, 'B hosts nothing of the meeting');
    assert.equal(nodeA.amphi.signaling.conference(primary.MeetingId!)!.sessions.size, 2, 'A hosts both');
    assert.ok(await guest.client.ping(7), 'PING/PONG crosses the relay');
    guest.client.ws.close();
    await waitFor(() => nodeB.amphi.signaling.relayCount === 0, 'the relay closed');
    presenter.client.ws.close();
  });

  test("the replica's last viewer leaving closes the bridge and the pipe on both nodes", async () => {
    const primary = (await nodeA.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'bridge-close' }))).Meeting!;
    const replica = (await nodeB.client.send(new CreateMeetingCommand({ MediaRegion: 'eu-west-1', ExternalMeetingId: 'bridge-close-r', PrimaryMeetingId: primary.MeetingId }))).Meeting!;
    const presenter = await connect(nodeA, primary, 'presenter');
    const viewer = await connect(nodeB, replica, 'viewer');
    const conference = nodeA.amphi.signaling.primaryConference(primary.MeetingId!)!;
    await waitFor(() => conference.replicaLinks().length === 1, 'the pipe to B');
    viewer.client.ws.close();
    await waitFor(() => conference.replicaLinks().length === 0, 'the pipe closed on A');
    await waitFor(() => !nodeB.amphi.signaling.conference(replica.MeetingId!), "the replica's conference closed on B");
    presenter.client.ws.close();
  });

  test('a bridge without the cluster secret is refused', async () => {
    const path = `/_amphi/bridge/${crypto.randomUUID()}/${crypto.randomUUID()}`;
    const statusOf = (headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(nodeA.amphi.url.replace('http', 'ws') + path, { headers });
        ws.once('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
        ws.once('open', () => reject(new Error('the bridge opened')));
        ws.once('error', () => undefined);
      });
    assert.equal(await statusOf({}), 401);
    assert.equal(await statusOf({ [NODE_AUTH_HEADER]: signNodeCall('not the secret', 'intruder', path) }), 401);
    assert.equal(await statusOf({ [NODE_AUTH_HEADER]: signNodeCall(TEST_KEY.secretAccessKey, 'b', path, Date.now() - 3_600_000) }), 401, 'too old');
  });

  test("the primary's node going away leaves the replica's viewers an empty meeting until it is back", async () => {
    const primary = (await nodeA.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'bridge-loss' }))).Meeting!;
    const replica = (await nodeB.client.send(new CreateMeetingCommand({ MediaRegion: 'eu-west-1', ExternalMeetingId: 'bridge-loss-r', PrimaryMeetingId: primary.MeetingId }))).Meeting!;
    const presenter = await connect(nodeA, primary, 'presenter');
    const viewer = await connect(nodeB, replica, 'viewer');
    await waitFor(() => presentIds(viewer.client.frames).includes(presenter.attendee.AttendeeId!), 'the viewer sees the presenter');
    await nodeA.stop();
    await waitFor(() => presentIds(viewer.client.frames).length === 0, 'the presenter is gone from the roster', 15_000);
    await waitFor(() => (viewer.client.frames.filter((f) => f.type === FrameType.INDEX).at(-1)?.index?.numParticipants ?? 0) === 0, 'an INDEX of nobody');
    assert.equal(viewer.client.ws.readyState, WebSocket.OPEN, 'the viewer stays connected to B');

    // The node comes back (same id and address): B links the replica again, and the viewer sees the presenter return.
    nodeA = await start('a', 'us-east-1', Number(new URL(primary.MediaPlacement!.SignalingUrl!).port));
    const back = await connect(nodeA, primary, 'presenter-again');
    await waitFor(() => presentIds(viewer.client.frames).includes(back.attendee.AttendeeId!), 'the viewer sees the presenter again', 30_000);
    back.client.ws.close();
    viewer.client.ws.close();
  });
});
