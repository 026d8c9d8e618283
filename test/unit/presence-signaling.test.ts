import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, type Attendee, type Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import { FrameType, SdkStreamServiceType } from '../../src/signaling/frames.ts';
import { startTestAmphi, type TestAmphi } from '../support/helpers.ts';
import { RawClient } from '../support/raw-signaling.ts';

/** Presence (AUDIO_STREAM_ID_INFO) and what follows from it, frame by frame, with raw protocol clients. */
const offer = (JSON.parse(readFileSync(path.join(import.meta.dirname, '../support/fixtures/offers/chrome-first-offer.json'), 'utf8')) as { sdpOffer: string }).sdpOffer;
let server: TestAmphi;

const newMeeting = async (name: string) =>
  (await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: name }))).Meeting!;
const newAttendee = async (meeting: Meeting, externalUserId: string) =>
  (await server.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: externalUserId }))).Attendee!;
/** Connects and sends JOIN; `present` also sends SUBSCRIBE (an attendee is present from its first SUBSCRIBE). */
const connect = async (meeting: Meeting, attendee: Attendee, present = true) => {
  const client = await RawClient.connect(meeting.MediaPlacement!.SignalingUrl!, attendee.JoinToken!);
  const index = await client.join();
  if (present) await subscribe(client);
  return { client, index };
};
const subscribe = async (client: RawClient) => {
  client.send({ type: FrameType.SUBSCRIBE, sub: { duplex: SdkStreamServiceType.RX, sdpOffer: offer, receiveStreamIds: [0] } });
  await client.next(FrameType.SUBSCRIBE_ACK);
};
const presenceFrames = (client: RawClient) => client.frames.filter((f) => f.type === FrameType.AUDIO_STREAM_ID_INFO).map((f) => f.audioStreamIdInfo!.streams!);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Waits until `check` finds what it looks for in the frames received so far. */
const waitFor = async <T>(check: () => T | undefined, what: string, timeoutMs = 5000): Promise<T> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = check();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
};

before(async () => {
  server = await startTestAmphi();
});
after(() => server.stop());

describe('leaving', () => {
  test('a removal says dropped when the connection ended without LEAVE, and not after LEAVE', async () => {
    const meeting = await newMeeting('dropped');
    const { client: watcher } = await connect(meeting, await newAttendee(meeting, 'watcher'));
    const leaver = await connect(meeting, await newAttendee(meeting, 'leaver'));
    const dropper = await connect(meeting, await newAttendee(meeting, 'dropper'));
    const streamOf = (attendee: string) =>
      waitFor(() => presenceFrames(watcher).flat().find((s) => s.externalUserId === attendee)?.audioStreamId, `${attendee} present`);
    const [leaverStream, dropperStream] = [await streamOf('leaver'), await streamOf('dropper')];
    const removalOf = (streamId: number | null) => () => presenceFrames(watcher).flat().find((s) => s.audioStreamId === streamId && !s.attendeeId);

    leaver.client.send({ type: FrameType.LEAVE, leave: {} });
    await leaver.client.next(FrameType.LEAVE_ACK);
    leaver.client.ws.close();
    assert.equal((await waitFor(removalOf(leaverStream), 'the leaver removed')).dropped, false);

    dropper.client.ws.terminate(); // no LEAVE, no close handshake: as a lost network
    assert.equal((await waitFor(removalOf(dropperStream), 'the dropper removed')).dropped, true);
    watcher.ws.close();
  });
});

describe('reconnecting', () => {
  test("the same attendee's new connection is announced before the old one's removal", async () => {
    const meeting = await newMeeting('reconnect-order');
    const { client: watcher } = await connect(meeting, await newAttendee(meeting, 'watcher'));
    const traveller = await newAttendee(meeting, 'traveller');
    const first = await connect(meeting, traveller);
    const streamsOf = () => presenceFrames(watcher).flat().filter((s) => s.attendeeId === traveller.AttendeeId).map((s) => s.audioStreamId);
    const [oldStream] = await waitFor(() => (streamsOf().length === 1 ? streamsOf() : undefined), 'the first connection present');
    // A second connection with the same credentials (the client reconnecting before the old socket is gone).
    const second = await connect(meeting, traveller, false);
    assert.equal((await first.client.next(FrameType.AUDIO_STATUS)).audioStatus?.audioStatus, 301);
    await sleep(200);
    assert.ok(!presenceFrames(watcher).flat().some((s) => s.audioStreamId === oldStream && !s.attendeeId), 'still present while the new one connects');
    await subscribe(second.client);
    const frames = await waitFor(() => {
      const all = presenceFrames(watcher);
      const added = all.findIndex((streams) => streams.some((s) => s.attendeeId === traveller.AttendeeId && s.audioStreamId !== oldStream));
      const removed = all.findIndex((streams) => streams.some((s) => s.audioStreamId === oldStream && !s.attendeeId));
      return added >= 0 && removed >= 0 ? { added, removed } : undefined;
    }, 'the new stream and the old removal');
    assert.ok(frames.added < frames.removed, `the new stream (frame ${frames.added}) comes before the old removal (frame ${frames.removed})`);
    second.client.ws.close();
    watcher.ws.close();
  });

  test('a connection gets no presence deltas before its full roster, which is its first AUDIO_STREAM_ID_INFO', async () => {
    const meeting = await newMeeting('roster-first');
    const { client: early } = await connect(meeting, await newAttendee(meeting, 'early'));
    const { client: late } = await connect(meeting, await newAttendee(meeting, 'late'), false);
    const { client: other } = await connect(meeting, await newAttendee(meeting, 'other'));
    other.send({ type: FrameType.AUDIO_CONTROL, audioControl: { muted: true } });
    await waitFor(() => presenceFrames(early).flat().find((s) => s.muted === true && !s.attendeeId), 'the mute delta');
    assert.deepEqual(presenceFrames(late), [], 'no deltas before the roster');
    await subscribe(late);
    const roster = await waitFor(() => presenceFrames(late)[0], 'the roster');
    assert.deepEqual(roster.map((s) => s.externalUserId).sort(), ['early', 'late', 'other']);
    for (const client of [early, late, other]) client.ws.close();
  });
});

describe('INDEX num_participants', () => {
  const counts = (client: RawClient) => client.frames.filter((f) => f.type === FrameType.INDEX).map((f) => f.index!.numParticipants);

  test('counts everyone present, the receiver included, and follows arrivals and departures', async () => {
    const meeting = await newMeeting('participant-count');
    const first = await connect(meeting, await newAttendee(meeting, 'first'), false);
    assert.equal(first.index.index?.numParticipants, 1, 'alone: the receiver counts itself');
    await subscribe(first.client);
    const second = await connect(meeting, await newAttendee(meeting, 'second'));
    assert.equal(second.index.index?.numParticipants, 2, 'the joining receiver is counted ahead of its SUBSCRIBE');
    await waitFor(() => (counts(first.client).at(-1) === 2 ? true : undefined), 'the first client told of two');
    second.client.send({ type: FrameType.LEAVE, leave: {} });
    await waitFor(() => (counts(first.client).at(-1) === 1 ? true : undefined), 'the first client told of one again');
    first.client.ws.close();
  });

  test('arrivals close together send one INDEX, not one each', async () => {
    const meeting = await newMeeting('participant-burst');
    const { client: watcher } = await connect(meeting, await newAttendee(meeting, 'watcher'));
    await sleep(1100); // past the watcher's own arrival
    watcher.frames.length = 0;
    const attendees = await Promise.all(Array.from({ length: 8 }, (_, i) => newAttendee(meeting, `crowd-${i}`)));
    const crowd = await Promise.all(attendees.map((attendee) => connect(meeting, attendee)));
    await waitFor(() => (counts(watcher).at(-1) === 9 ? true : undefined), 'the watcher told of nine');
    await sleep(1100);
    assert.ok(counts(watcher).length <= 3, `INDEX frames for 8 arrivals: ${JSON.stringify(counts(watcher))}`);
    assert.equal(counts(watcher).at(-1), 9);
    for (const { client } of [...crowd, { client: watcher }]) client.ws.close();
  });
});
