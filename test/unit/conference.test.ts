import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import type { WebSocket } from 'ws';
import { EmbeddedNodeDirectory } from '../../src/cluster/node-directory.ts';
import { MediaWorkerClient } from '../../src/media/worker/client.ts';
import type { ConnectionReporter } from '../../src/meetings/lifecycle.ts';
import type { AttendeeRecord, MeetingRecord } from '../../src/meetings/model.ts';
import { LocalMeetingEventBus } from '../../src/meetings/local-event-bus.ts';
import { LocalTokenRevocations } from '../../src/meetings/local-revocations.ts';
import { MeetingService } from '../../src/meetings/service.ts';
import { FileStore } from '../../src/store/file-store.ts';
import type { ConferenceContext } from '../../src/signaling/conference.ts';
import { AudioStatus, decodeFrame, encodeFrame, FrameType, type OutgoingFrame } from '../../src/signaling/frames.ts';
import { PrimaryConference } from '../../src/signaling/primary-conference.ts';
import { ReplicaConference } from '../../src/signaling/replica-conference.ts';
import { SignalingSession } from '../../src/signaling/session.ts';
import { systemClock } from '../../src/util/clock.ts';
import { tempDataDir } from '../support/helpers.ts';

/**
 * The primary conference and the replica view on their own: real sessions (over an in-memory socket), a real
 * meeting service and a real media worker, without a gateway, an HTTP server or a browser.
 */
const offer = (JSON.parse(readFileSync(path.join(import.meta.dirname, '../support/fixtures/offers/chrome-first-offer.json'), 'utf8')) as { sdpOffer: string }).sdpOffer;
const logger = pino({ level: 'silent' });
type Frame = ReturnType<typeof decodeFrame>;

/** The server's side of a client's socket: what the session sends is decoded, what the test sends arrives as the client's. */
class MemorySocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  readonly frames: Frame[] = [];
  closeCode: number | undefined;
  /** Nothing waits to be sent: every frame is taken at once. */
  readonly bufferedAmount = 0;
  /** Reading paused (by the session's limits); the test's frames still arrive, as ws's already read ones do. */
  isPaused = false;
  send(data: Buffer, sent?: () => void): void {
    this.frames.push(decodeFrame(data));
    sent?.();
  }
  pause(): void {
    this.isPaused = true;
  }
  resume(): void {
    this.isPaused = false;
  }
  close(code: number): void {
    if (this.readyState !== 1) return;
    this.readyState = 3;
    this.closeCode = code;
    this.emit('close');
  }
  terminate(): void {
    this.close(1006);
  }
  /** The client's frame. */
  deliver(frame: OutgoingFrame): void {
    this.emit('message', encodeFrame(frame, Date.now()), true);
  }
  /** The client's connection drops. */
  drop(): void {
    this.close(1006);
  }
  take(type: number): Frame[] {
    const taken = this.frames.filter((f) => f.type === type);
    this.frames.splice(0, this.frames.length, ...this.frames.filter((f) => f.type !== type));
    return taken;
  }
  async next(type: number, timeoutMs = 5000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.frames.findIndex((f) => f.type === type);
      if (index >= 0) return this.frames.splice(index, 1)[0]!;
      if (Date.now() > deadline) throw new Error(`no frame of type ${type} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

class CountingReporter implements ConnectionReporter {
  readonly connected = new Map<string, number>();
  attendeeConnected(meetingId: string, attendeeId: string): void {
    const key = `${meetingId}/${attendeeId}`;
    this.connected.set(key, (this.connected.get(key) ?? 0) + 1);
  }
  attendeeDisconnected(meetingId: string, attendeeId: string): void {
    const key = `${meetingId}/${attendeeId}`;
    this.connected.set(key, (this.connected.get(key) ?? 0) - 1);
  }
  count(meetingId: string): number {
    let total = 0;
    for (const [key, value] of this.connected) if (key.startsWith(`${meetingId}/`)) total += value;
    return total;
  }
}

let dataDir: string;
let store: FileStore;
let meetings: MeetingService;
let worker: MediaWorkerClient;
const reporter = new CountingReporter();

before(async () => {
  dataDir = tempDataDir();
  store = await FileStore.open(dataDir);
  meetings = new MeetingService(
    {
      store,
      events: new LocalMeetingEventBus(),
      revocations: new LocalTokenRevocations(systemClock),
      clock: systemClock,
      nodes: new EmbeddedNodeDirectory(() => ({ id: 'local', publicUrl: 'http://127.0.0.1', mediaAddress: '127.0.0.1', regions: '*', sessions: 0 })),
      localPublicUrl: () => 'http://127.0.0.1',
    },
    { accountId: '111122223333', maxReplicasPerPrimary: 4, maxActiveMeetings: 100 },
  );
  worker = await MediaWorkerClient.start({ listenIp: '127.0.0.1', port: 0, announcedIp: '127.0.0.1', logLevel: 'silent', name: 'conference-test' }, logger);
});
after(async () => {
  await worker.close();
  await store.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const newMeeting = async (primaryMeetingId?: string): Promise<MeetingRecord> => {
  const { Meeting } = await meetings.createMeeting({
    ClientRequestToken: crypto.randomUUID(),
    MediaRegion: 'us-east-1',
    ExternalMeetingId: 'conference-test',
    ...(primaryMeetingId ? { PrimaryMeetingId: primaryMeetingId } : {}),
  });
  return (await meetings.meeting(Meeting.MeetingId!))!;
};
const newAttendee = async (meeting: MeetingRecord, externalUserId: string): Promise<AttendeeRecord> => {
  const { Attendee } = await meetings.createAttendee(meeting.MeetingId, { ExternalUserId: externalUserId });
  return (await meetings.attendeeForJoinToken(Attendee.JoinToken!))!;
};

function contextFor(primaries: () => PrimaryConference | undefined): ConferenceContext {
  return { meetings, connections: reporter, logger, clock: systemClock, pipeAddress: '127.0.0.1', primaryFor: async () => primaries() };
}

/** A client that connected, joined and subscribed. */
async function connect(conference: PrimaryConference | ReplicaConference, attendee: AttendeeRecord, subscribe = true) {
  const socket = new MemorySocket();
  const session = new SignalingSession(socket as unknown as WebSocket, conference, attendee, false, logger, systemClock);
  conference.admit(session);
  socket.deliver({ type: FrameType.JOIN, join: { protocolVersion: 2, flags: 2 } });
  await socket.next(FrameType.JOIN_ACK);
  const index = await socket.next(FrameType.INDEX);
  if (subscribe) {
    socket.deliver({ type: FrameType.SUBSCRIBE, sub: { duplex: 1, sdpOffer: offer, receiveStreamIds: [0] } });
    await socket.next(FrameType.SUBSCRIBE_ACK);
  }
  return { socket, session, index };
}
const presence = (frames: Frame[]) => frames.flatMap((f) => f.audioStreamIdInfo?.streams ?? []);
const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

describe('PrimaryConference', () => {
  test('presence: each client gets the roster, the others the newcomer; leaving and dropping are told apart', async () => {
    const meeting = await newMeeting();
    const conference = new PrimaryConference(meeting, contextFor(() => undefined), worker);
    const alice = await connect(conference, await newAttendee(meeting, 'alice'));
    assert.equal(alice.index.index?.numParticipants, 1, 'the receiver is counted ahead of its SUBSCRIBE');
    const bob = await connect(conference, await newAttendee(meeting, 'bob'));
    assert.deepEqual(presence(bob.socket.take(FrameType.AUDIO_STREAM_ID_INFO)).map((s) => s.externalUserId).sort(), ['alice', 'bob']);
    assert.deepEqual(presence(alice.socket.take(FrameType.AUDIO_STREAM_ID_INFO)).map((s) => s.externalUserId), ['alice', 'bob']);
    assert.equal(reporter.count(meeting.MeetingId), 2, 'both connections count for idle deletion');

    bob.socket.drop();
    await settle();
    const [removal] = presence(alice.socket.take(FrameType.AUDIO_STREAM_ID_INFO));
    assert.equal(removal?.dropped, true, 'a dropped connection is told as dropped');
    let emptied = false;
    conference.once('empty', () => (emptied = true));
    alice.socket.deliver({ type: FrameType.LEAVE, leave: {} });
    await alice.socket.next(FrameType.LEAVE_ACK);
    assert.equal(emptied, true, 'the last one out empties the conference');
    assert.equal(reporter.count(meeting.MeetingId), 0);
    conference.close();
  });

  test('mute, data messages (delivered, kept for late joiners, refused) and a second device', async () => {
    const meeting = await newMeeting();
    const conference = new PrimaryConference(meeting, contextFor(() => undefined), worker);
    const carolRecord = await newAttendee(meeting, 'carol');
    const carol = await connect(conference, carolRecord);
    const dave = await connect(conference, await newAttendee(meeting, 'dave'));
    carol.socket.deliver({ type: FrameType.AUDIO_CONTROL, audioControl: { muted: true } });
    await settle();
    assert.ok(presence(dave.socket.take(FrameType.AUDIO_STREAM_ID_INFO)).some((s) => s.muted === true), 'the others see the mute');

    const data = new TextEncoder().encode('hello');
    carol.socket.deliver({ type: FrameType.DATA_MESSAGE, dataMessage: { messages: [{ topic: 'chat', data, lifetimeMs: 60_000 }, { topic: 'bad topic!', data }] } });
    const delivered = await dave.socket.next(FrameType.DATA_MESSAGE);
    assert.equal(delivered.dataMessage?.messages?.[0]?.senderAttendeeId, carolRecord.AttendeeId);
    const refused = await carol.socket.next(FrameType.DATA_MESSAGE);
    assert.equal(refused.dataMessage?.messages?.length, 1);
    assert.equal(Number(refused.dataMessage?.messages?.[0]?.ingestTimeNs ?? 0), 0, 'a refused message comes back with ingest time 0');
    const late = await connect(conference, await newAttendee(meeting, 'erin'), false);
    assert.equal((await late.socket.next(FrameType.DATA_MESSAGE)).dataMessage?.messages?.[0]?.topic, 'chat', 'a late joiner gets the live messages');

    const carolAgain = await connect(conference, carolRecord);
    assert.equal((await carol.socket.next(FrameType.AUDIO_STATUS)).audioStatus?.audioStatus, AudioStatus.JoinedFromAnotherDevice);
    assert.equal(carolAgain.session.state, 'joined');
    conference.end(AudioStatus.MeetingEnded);
    assert.equal((await dave.socket.next(FrameType.AUDIO_STATUS)).audioStatus?.audioStatus, AudioStatus.MeetingEnded);
  });
});

describe('ReplicaConference', () => {
  test('viewers see the primary and nothing of replica attendees; a promotion goes both ways; the primary ending empties the view', async () => {
    const primaryMeeting = await newMeeting();
    const replicaMeeting = await newMeeting(primaryMeeting.MeetingId);
    const primary = new PrimaryConference(primaryMeeting, contextFor(() => undefined), worker);
    const replica = new ReplicaConference(replicaMeeting, contextFor(() => primary), worker);
    const presenter = await connect(primary, await newAttendee(primaryMeeting, 'presenter'));
    const viewer = await connect(replica, await newAttendee(replicaMeeting, 'viewer'));
    const other = await connect(replica, await newAttendee(replicaMeeting, 'other viewer'));
    await settle();
    assert.deepEqual(presence(viewer.socket.take(FrameType.AUDIO_STREAM_ID_INFO)).map((s) => s.externalUserId), ['presenter']);
    assert.deepEqual(presence(presenter.socket.take(FrameType.AUDIO_STREAM_ID_INFO)).map((s) => s.externalUserId), ['presenter'], 'the primary never sees viewers');
    assert.equal(replica.linkedReplicaIds().length, 0);
    assert.deepEqual(primary.linkedReplicaIds(), [replicaMeeting.MeetingId]);
    assert.equal(viewer.index.index?.atCapacity, true, 'a viewer cannot publish');

    viewer.socket.deliver({ type: FrameType.DATA_MESSAGE, dataMessage: { messages: [{ topic: 'chat', data: new Uint8Array([1]) }] } });
    assert.equal(Number((await viewer.socket.next(FrameType.DATA_MESSAGE)).dataMessage?.messages?.[0]?.ingestTimeNs ?? 0), 0, "a viewer's message is refused");
    assert.equal(presenter.socket.take(FrameType.DATA_MESSAGE).length, 0);

    viewer.socket.deliver({ type: FrameType.PRIMARY_MEETING_JOIN, primaryMeetingJoin: { credentials: { joinToken: 'not-a-token' } } });
    assert.equal((await viewer.socket.next(FrameType.PRIMARY_MEETING_JOIN_ACK)).error?.status, 403);
    const promotedAs = await newAttendee(primaryMeeting, 'promoted');
    viewer.socket.deliver({ type: FrameType.PRIMARY_MEETING_JOIN, primaryMeetingJoin: { credentials: { joinToken: promotedAs.JoinToken, attendeeId: promotedAs.AttendeeId } } });
    assert.equal((await viewer.socket.next(FrameType.PRIMARY_MEETING_JOIN_ACK)).error ?? undefined, undefined);
    await settle();
    assert.ok(presence(presenter.socket.take(FrameType.AUDIO_STREAM_ID_INFO)).some((s) => s.attendeeId === promotedAs.AttendeeId), 'the primary sees the promoted attendee');
    assert.ok(presence(other.socket.take(FrameType.AUDIO_STREAM_ID_INFO)).some((s) => s.attendeeId === promotedAs.AttendeeId), 'and so do the viewers');
    assert.equal(reporter.count(primaryMeeting.MeetingId), 2, 'the promotion counts for the primary');
    const [stats] = (await replica.stats()).filter((s) => s.externalUserId === 'viewer');
    assert.equal(stats?.promotedAs, promotedAs.AttendeeId);

    // Deleting the primary attendee ends the promotion; the client is told.
    primary.removeAttendee(promotedAs.AttendeeId, AudioStatus.AttendeeRemoved);
    await viewer.socket.next(FrameType.PRIMARY_MEETING_LEAVE);
    assert.equal(reporter.count(primaryMeeting.MeetingId), 1);
    assert.equal(viewer.session.state, 'joined', 'the viewer stays in its replica');

    // A pipe that closes on its own (its room or worker gone) no longer holds the primary.
    const second = new ReplicaConference(await newMeeting(primaryMeeting.MeetingId), contextFor(() => primary), worker);
    await connect(second, await newAttendee(second.meeting, 'second viewer'));
    await settle();
    assert.equal(primary.linkedReplicaIds().length, 2);
    second.room.close();
    await settle();
    assert.deepEqual(primary.linkedReplicaIds(), [replicaMeeting.MeetingId]);
    second.end(AudioStatus.MeetingEnded);

    viewer.socket.take(FrameType.AUDIO_STREAM_ID_INFO);
    primary.end(AudioStatus.MeetingEnded);
    const removals = presence(viewer.socket.take(FrameType.AUDIO_STREAM_ID_INFO));
    assert.ok(removals.length > 0 && removals.every((s) => !s.attendeeId), 'the primary ending removes its roster from the view');
    replica.end(AudioStatus.MeetingEnded);
  });
});
