import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, type Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import { FrameType } from '../../src/signaling/frames.ts';
import { startTestAmphi, type TestAmphi } from '../support/helpers.ts';
import { RawClient } from '../support/raw-signaling.ts';

/**
 * What a replica's viewers and the primary's attendees learn of each other, frame by frame,
 * with raw protocol clients: nothing, in either direction.
 */
const offer = (JSON.parse(readFileSync(path.join(import.meta.dirname, '../support/fixtures/offers/chrome-first-offer.json'), 'utf8')) as { sdpOffer: string }).sdpOffer;
let server: TestAmphi;
let primary: Meeting;
let replica: Meeting;

const connect = async (meeting: Meeting, externalUserId: string) => {
  const attendee = (await server.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: externalUserId }))).Attendee!;
  const client = await RawClient.connect(meeting.MediaPlacement!.SignalingUrl!, attendee.JoinToken!);
  const index = await client.join();
  client.send({ type: FrameType.SUBSCRIBE, sub: { duplex: 1, sdpOffer: offer, receiveStreamIds: [0] } });
  await client.next(FrameType.SUBSCRIBE_ACK);
  return { client, attendee, index };
};
const attendeeIdsIn = (frames: RawClient['frames']) =>
  frames.flatMap((f) => (f.type === FrameType.AUDIO_STREAM_ID_INFO ? (f.audioStreamIdInfo?.streams ?? []).map((s) => s.attendeeId).filter(Boolean) : []));

before(async () => {
  server = await startTestAmphi();
  primary = (await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'iso-primary' }))).Meeting!;
  replica = (await server.client.send(new CreateMeetingCommand({ MediaRegion: 'eu-west-1', ExternalMeetingId: 'iso-replica', PrimaryMeetingId: primary.MeetingId }))).Meeting!;
});
after(() => server.stop());

describe('isolation between a primary and its replicas', () => {
  test('rosters, INDEX, metadata and data messages carry only primary attendees', async () => {
    const presenter = await connect(primary, 'presenter');
    const viewer = await connect(replica, 'viewer');
    const other = await connect(replica, 'other-viewer');
    await new Promise((resolve) => setTimeout(resolve, 500));

    // The viewers see the presenter, and only the presenter.
    for (const { client } of [viewer, other]) {
      assert.deepEqual([...new Set(attendeeIdsIn(client.frames))], [presenter.attendee.AttendeeId]);
    }
    // The presenter never hears of the viewers.
    assert.deepEqual([...new Set(attendeeIdsIn(presenter.client.frames))], [presenter.attendee.AttendeeId]);

    // INDEX: the primary's participant count and sources; a viewer can't publish.
    const late = await connect(replica, 'late-viewer');
    assert.equal(late.index.index?.numParticipants, 1, 'num_participants counts the primary only');
    assert.equal(late.index.index?.atCapacity, true, 'a viewer cannot publish');
    assert.equal(presenter.index.index?.atCapacity, false, 'a primary attendee can');

    // AUDIO_METADATA names only primary audio streams.
    const streamIds = new Set(
      viewer.client.frames.flatMap((f) => (f.type === FrameType.AUDIO_STREAM_ID_INFO ? (f.audioStreamIdInfo?.streams ?? []).map((s) => s.audioStreamId) : [])),
    );
    for (const frame of viewer.client.frames.filter((f) => f.type === FrameType.AUDIO_METADATA)) {
      for (const state of frame.audioMetadata?.attendeeStates ?? []) assert.ok(streamIds.has(state.audioStreamId), 'metadata of a primary stream');
    }
    assert.ok(viewer.client.frames.some((f) => f.type === FrameType.AUDIO_METADATA), 'the primary metadata reaches the viewer');

    // A viewer's data message is refused; the presenter's reaches every viewer.
    other.client.send({ type: FrameType.DATA_MESSAGE, dataMessage: { messages: [{ topic: 'chat', data: Buffer.from('psst') }] } });
    const refused = await other.client.next(FrameType.DATA_MESSAGE);
    assert.equal(Number(refused.dataMessage?.messages?.[0]?.ingestTimeNs), 0);
    presenter.client.send({ type: FrameType.DATA_MESSAGE, dataMessage: { messages: [{ topic: 'chat', data: Buffer.from('hello') }] } });
    for (const { client } of [viewer, other, late]) {
      const message = await client.next(FrameType.DATA_MESSAGE);
      assert.equal(Buffer.from(message.dataMessage!.messages![0]!.data!).toString(), 'hello');
      assert.equal(message.dataMessage!.messages![0]!.senderAttendeeId, presenter.attendee.AttendeeId);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (const { client } of [presenter, viewer]) {
      assert.ok(!client.frames.some((f) => f.type === FrameType.DATA_MESSAGE && Buffer.from(f.dataMessage?.messages?.[0]?.data ?? []).toString() === 'psst'));
    }
    for (const { client } of [presenter, viewer, other, late]) client.ws.close();
  });

  test('viewers that leave while their replica is linking to the primary leave nothing behind', async () => {
    const quick = (await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'quick-primary' }))).Meeting!;
    const quickReplica = (await server.client.send(
      new CreateMeetingCommand({ MediaRegion: 'ap-south-1', ExternalMeetingId: 'quick-replica', PrimaryMeetingId: quick.MeetingId }),
    )).Meeting!;
    for (let i = 0; i < 10; i++) {
      const attendee = (await server.client.send(new CreateAttendeeCommand({ MeetingId: quickReplica.MeetingId, ExternalUserId: `hasty-${i}` }))).Attendee!;
      const client = await RawClient.connect(quickReplica.MediaPlacement!.SignalingUrl!, attendee.JoinToken!);
      client.ws.close();
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    const signaling = server.amphi.signaling;
    assert.equal(signaling.conference(quickReplica.MeetingId!), undefined, 'the replica conference is gone');
    assert.equal(signaling.conference(quick.MeetingId!), undefined, 'and the primary conference made for it too');
    const viewer = await connect(quickReplica, 'patient');
    assert.equal(viewer.index.index?.atCapacity, true, 'a later viewer still gets served');
    viewer.client.ws.close();
  });

  test('two promotion requests at once: one succeeds, the other is refused', async () => {
    const stage = await Promise.all(
      ['stage-a', 'stage-b'].map(async (name) => (await server.client.send(new CreateAttendeeCommand({ MeetingId: primary.MeetingId, ExternalUserId: name }))).Attendee!),
    );
    const presenter = await connect(primary, 'watcher');
    const viewer = await connect(replica, 'eager');
    for (const attendee of stage) {
      viewer.client.send({ type: FrameType.PRIMARY_MEETING_JOIN, primaryMeetingJoin: { credentials: { attendeeId: attendee.AttendeeId, joinToken: attendee.JoinToken } } });
    }
    const acks = [await viewer.client.next(FrameType.PRIMARY_MEETING_JOIN_ACK), await viewer.client.next(FrameType.PRIMARY_MEETING_JOIN_ACK)];
    assert.deepEqual(acks.map((ack) => ack.error?.status ?? 200).sort(), [200, 409]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const promotedIds = attendeeIdsIn(presenter.client.frames).filter((id) => id === stage[0]!.AttendeeId || id === stage[1]!.AttendeeId);
    assert.equal(new Set(promotedIds).size, 1, 'exactly one of them is in the primary');
    viewer.client.ws.close();
    presenter.client.ws.close();
  });
});
