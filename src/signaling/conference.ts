import type { Logger } from 'pino';
import type {
  ISdkDataMessagePayload,
  ISdkMeetingSessionCredentials,
  ISdkRemoteVideoUpdateFrame,
  ISdkStreamDescriptor,
  ISdkSubscribeFrame,
} from 'amazon-chime-sdk-js/build/signalingprotocol/SignalingProtocol.js';
import type { ConnectionReporter } from '../meetings/lifecycle.ts';
import type { AttendeeRecord, Capability, MeetingRecord } from '../meetings/model.ts';
import type { MeetingService } from '../meetings/service.ts';
import { parseOffer, SdpError, type Offer } from '../media/protocol/sdp.ts';
import type { NegotiationResult, PublishedLayer } from '../media/sfu/peer.ts';
import type { MediaWorkerClient } from '../media/worker/client.ts';
import type { PeerHandle } from '../media/worker/peer-handle.ts';
import type { RoomHandle } from '../media/worker/room-handle.ts';
import type { ReplicaLink } from '../replication/replica-link.ts';
import {
  AudioStatus,
  FrameType,
  SdkServerSideNetworkAdaption,
  SdkStreamMediaType,
  SdkStreamServiceType,
  type OutgoingFrame,
} from './frames.ts';
import type { SessionHost, SignalingSession } from './session.ts';

/** The service's limits: video sources per meeting, content shares, data messages. */
export const MAX_VIDEO_SOURCES = 25;
export const MAX_CONTENT_SHARES = 2;
export const VIDEO_SUBSCRIPTION_LIMIT = 25;
const DATA_TOPIC = /^[a-zA-Z0-9_-]{1,36}$/;
const DATA_MAX_BYTES = 2048;
const DATA_MAX_LIFETIME_MS = 5 * 60_000;
const DATA_BUFFERED_MAX = 1024;
/** Per attendee: sustained data messages per second, and burst. */
const DATA_RATE = 10;
const DATA_BURST = 20;
const METADATA_INTERVAL_MS = 200;
/** AUDIO_METADATA volume (-dBov) of silence. */
const SILENT_VOLUME = 127;
/** AUDIO_METADATA signal strength: full, 2 on the client's scale of 2 (Amphi does not measure it). */
const SIGNAL_STRENGTH = 2;
/** INDEX goes out again for a change of num_participants at most this often, however many come and go. */
const PARTICIPANTS_INDEX_INTERVAL_MS = 1_000;
/** How long a connection replaced by another of the same attendee stays present while the new one subscribes. */
const SUCCESSOR_WAIT_MS = 10_000;
const BITRATES_INTERVAL_MS = 2_000;

const sends = (c: Capability) => c === 'SendReceive' || c === 'Send';
const receives = (c: Capability) => c === 'SendReceive' || c === 'Receive';

interface Publication {
  groupId: number;
  layers: PublishedLayer[];
}

/**
 * Someone present in a meeting: a direct session, or a replica attendee promoted into this
 * (primary) meeting as one of its attendees.
 */
interface Participant {
  audioStreamId: number;
  attendeeId: string;
  externalUserId: string;
  muted: boolean;
  /** Whose capabilities apply: the session's own attendee, or the primary attendee it was promoted as. */
  attendee: AttendeeRecord;
  session: SignalingSession;
  publication?: Publication;
  /** Set for a promoted replica attendee: the replica it sits in. */
  via?: Conference;
  /** Its connection was replaced by a new one of the same attendee, which takes over once present (or after a while). */
  successorWait?: NodeJS.Timeout;
}

interface SessionMedia {
  peer: PeerHandle;
  dataTokens: number;
  dataRefilledAt: number;
  /** In a replica: the participant this session is promoted as, in the primary. */
  promotedAs?: Participant;
  /** The client's microphone is muted, as its last SUBSCRIBE or AUDIO_CONTROL said. */
  audioMuted: boolean;
  /** The last offer answered: its receive m-lines' mids and the stream given to each (0: none), in order. */
  negotiated?: { offer: Offer; mids: string[]; subscriptions: number[] };
  /** The receive m-lines (mid → stream id) the last answer sends a stream on. */
  receiving: Map<string, number>;
  /** This session's negotiations, chained: each starts from the state the one before left. */
  negotiations: Promise<unknown>;
}

/** What a Conference needs from the node around it. */
export interface ConferenceContext {
  meetings: MeetingService;
  connections: ConnectionReporter;
  /** Opens the pipe from a primary's room to a replica's. */
  linkReplica(primary: Conference, replica: Conference): Promise<ReplicaLink>;
  /** The primary's live conference, created if nobody is connected to it yet. */
  primaryConference(primaryMeetingId: string): Promise<Conference | undefined>;
  logger: Logger;
}

/**
 * One meeting's live state on this node: who is connected and present, which video streams
 * are published, the buffered data messages; it answers each session's requests and keeps
 * every client's roster, index and media in step. Media lives in a MediaRoom on a worker.
 *
 * A replica's conference shows its viewers the primary's state (roster, index, volumes, data)
 * and nothing of its own attendees; the primary never shows them either. Promotion moves a
 * replica session's identity into the primary while its connection stays in the replica.
 */
export class Conference implements SessionHost {
  readonly sessions = new Set<SignalingSession>();
  readonly room: RoomHandle;
  private readonly media = new Map<SignalingSession, SessionMedia>();
  private readonly participants = new Map<string, Participant>();
  private readonly bufferedData: { payload: ISdkDataMessagePayload; expiresAt: number }[] = [];
  /** Primary side: linked replicas and their pipes. */
  private readonly replicas = new Map<Conference, ReplicaLink>();
  /** Replica side: the primary whose state this conference shows. */
  private primary: Conference | undefined;
  private linking: Promise<void> | undefined;
  /** Primary side: replicas whose pipe is being opened. */
  private pendingReplicas = 0;
  /** Replica side: sessions whose promotion is being checked. */
  private readonly promoting = new Set<SignalingSession>();
  /** Who the last AUDIO_METADATA listed as talking. */
  private listedTalkers = new Set<Participant>();
  private nextAudioStreamId = 1;
  private nextStreamId = 1;
  private nextGroupId = 1;
  private readonly timers: NodeJS.Timeout[] = [];
  /** A coming INDEX for a change of num_participants; when INDEX last went to everyone, and with what count. */
  private indexTimer: NodeJS.Timeout | undefined;
  private indexSentAt = 0;
  private indexedParticipants = 0;
  private closed = false;
  onEmpty: () => void = () => undefined;
  readonly log: Logger;

  constructor(
    readonly meeting: MeetingRecord,
    private readonly context: ConferenceContext,
    private readonly worker: MediaWorkerClient,
  ) {
    this.log = context.logger.child({ meetingId: meeting.MeetingId });
    this.room = worker.createRoom(meeting.MeetingId, this.isReplica);
    this.timers.push(setInterval(() => this.sendAudioMetadata(), METADATA_INTERVAL_MS));
    this.timers.push(setInterval(() => this.sendBitrates(), BITRATES_INTERVAL_MS));
    for (const timer of this.timers) timer.unref();
    if (this.isReplica) {
      this.linking = this.linkToPrimary().catch((error: unknown) => this.log.warn({ err: error }, 'could not link to the primary meeting'));
    }
  }

  get isReplica(): boolean {
    return this.meeting.PrimaryMeetingId !== undefined;
  }

  /** The conference whose roster and streams this one's clients see. */
  private get view(): Conference | undefined {
    return this.isReplica ? this.primary : this;
  }

  // ---- sessions ----

  /** A new authenticated connection; the same credentials connected elsewhere are pushed out. */
  admit(session: SignalingSession): void {
    // Added first: the connections it pushes out see their successor (see detach).
    this.sessions.add(session);
    for (const other of this.sessions) {
      if (other !== session && other.attendeeId === session.attendeeId) {
        other.log.info('same attendee joined from another device');
        other.end(AudioStatus.JoinedFromAnotherDevice);
      }
    }
    // The same primary attendee promoted from a replica is another device too: it is demoted.
    const promoted = this.participants.get(session.attendeeId);
    if (promoted?.via) promoted.via.demote(promoted.session, true);
  }

  join(session: SignalingSession): void {
    const joined = [...this.sessions].filter((s) => s !== session && s.state === 'joined');
    const cap = this.context.meetings.attendeeCapOf(this.meeting.MeetingFeatures);
    const overCapacity = session.content
      ? joined.filter((s) => s.content).length >= MAX_CONTENT_SHARES
      : joined.filter((s) => !s.content).length + (this.isReplica ? 0 : this.promotedCount()) >= cap;
    if (overCapacity) {
      session.log.info('meeting at capacity');
      session.end(AudioStatus.CallAtCapacity);
      return;
    }
    const peer = this.room.createPeer(session.attendeeId);
    peer.on('connectionChange', (connected) => session.log.debug({ connected }, 'media transport'));
    this.media.set(session, { peer, dataTokens: DATA_BURST, dataRefilledAt: Date.now(), audioMuted: false, receiving: new Map(), negotiations: Promise.resolve() });
    // Idle deletion counts the primary's connections only; a replica lives as long as its primary.
    if (!this.isReplica) this.context.connections.attendeeConnected(this.meeting.MeetingId, session.attendeeId);
    session.send({
      type: FrameType.JOIN_ACK,
      joinack: {
        videoSubscriptionLimit: VIDEO_SUBSCRIPTION_LIMIT,
        wantsCompressedSdp: false,
        // Said explicitly: the client adapts video itself (left out, the field decodes as DEFAULT).
        defaultServerSideNetworkAdaption: SdkServerSideNetworkAdaption.NONE,
      },
    });
    session.send(this.indexFor(session));
    const now = Date.now();
    const late = (this.view?.bufferedData ?? []).filter((entry) => entry.expiresAt > now).map((entry) => entry.payload);
    if (late.length > 0) session.send({ type: FrameType.DATA_MESSAGE, dataMessage: { messages: late } });
  }

  async subscribe(session: SignalingSession, sub: ISdkSubscribeFrame): Promise<void> {
    const media = this.media.get(session);
    if (!media) return;
    session.log.trace({ sdpOffer: sub.sdpOffer, receiveStreamIds: sub.receiveStreamIds, sendStreams: sub.sendStreams }, 'SUBSCRIBE');
    let answered;
    try {
      answered = await this.answer(session, media, sub);
    } catch (error) {
      if (!this.media.has(session)) return;
      // Every SUBSCRIBE gets a SUBSCRIBE_ACK with a suback (the client reads it before it looks at the status).
      // A bad offer is the client's fault, and 400 ends its session; a fault here is 500, and the client reconnects.
      const badOffer = error instanceof SdpError;
      session.log.warn({ err: error }, badOffer ? 'unusable SDP offer' : 'SUBSCRIBE could not be answered');
      const description = badOffer ? error.message : 'the media server could not answer the offer';
      session.send({ type: FrameType.SUBSCRIBE_ACK, suback: { duplex: sub.duplex }, error: { status: badOffer ? 400 : 500, description } });
      return;
    }
    const { result, publication } = answered;
    if (!this.media.has(session)) return; // gone while the worker answered
    session.log.trace({ sdpAnswer: result.answer, tracks: result.tracks }, 'SUBSCRIBE_ACK');
    session.send({
      type: FrameType.SUBSCRIBE_ACK,
      suback: {
        duplex: sub.duplex,
        sdpAnswer: result.answer,
        allocations: (publication?.layers ?? []).map((layer) => ({ trackLabel: layer.trackLabel, streamId: layer.streamId, groupId: layer.groupId })),
        tracks: result.tracks,
      },
    });
    if (!this.isReplica && !this.presenceOf(session)) this.markPresent(session, session.attendee, sub.audioMuted === true);
    if (this.isReplica && !media.promotedAs && !session.rosterSent) this.sendRoster(session);
    const participant = this.isReplica ? media.promotedAs : this.presenceOf(session);
    if (participant && !samePublication(participant.publication, publication)) {
      participant.publication = publication;
      if (this.isReplica) this.primary?.replicas.get(this)?.publishUp(this.promotedStreams());
      (this.view ?? this).publicationsChanged();
    }
  }

  /** A SUBSCRIBE's offer parsed, its video allocated and answered by the worker. */
  private async answer(session: SignalingSession, media: SessionMedia, sub: ISdkSubscribeFrame): Promise<{ result: NegotiationResult; publication: Publication | undefined }> {
    const offer = parseOffer(sub.sdpOffer ?? '');
    // A replica viewer may only publish once promoted, and then as the primary attendee.
    const publisher = this.isReplica ? media.promotedAs : this.presenceOf(session);
    const publishing = this.isReplica ? media.promotedAs?.via === this && this.primary : this;
    const caps = (publisher?.attendee ?? session.attendee).Capabilities;
    const videoDescriptors = (sub.sendStreams ?? []).filter((s) => s.mediaType === SdkStreamMediaType.VIDEO);
    const wantsToPublish = (sub.duplex === SdkStreamServiceType.TX || sub.duplex === SdkStreamServiceType.DUPLEX) && videoDescriptors.length > 0;
    let publication: Publication | undefined;
    if (publishing && wantsToPublish && sends(caps.Video) && (!this.isReplica || publisher)) {
      const previous = publisher?.publication;
      if (previous || publishing.publishingCount() < MAX_VIDEO_SOURCES) publication = publishing.allocate(previous, videoDescriptors);
    }

    const subscriptions = (sub.receiveStreamIds ?? []).filter((id) => id !== 0);
    media.audioMuted = sub.audioMuted === true;
    const result = await this.serially(media, () => this.negotiate(session, media, offer, publication?.layers ?? [], subscriptions));
    return { result, publication };
  }

  /**
   * REMOTE_VIDEO_UPDATE. With client-side adaptation the client moves a receive m-line to another simulcast layer
   * of the same source this way, and sends no SUBSCRIBE: the m-line keeps its SSRC and track and continues with the
   * new layer at its next key frame. Removed m-lines stop. The worker takes it as the last negotiation replayed
   * with the new subscriptions; its answer stays here (the client expects none).
   */
  remoteVideoUpdate(session: SignalingSession, update: ISdkRemoteVideoUpdateFrame): Promise<void> | undefined {
    const media = this.media.get(session);
    if (!media) return;
    return this.serially(media, async () => {
      const negotiated = media.negotiated;
      if (!negotiated || !this.media.has(session)) return;
      const subscriptions = [...negotiated.subscriptions];
      let changed = false;
      for (const { mid, streamId } of update.addedOrUpdatedVideoSubscriptions ?? []) {
        const current = media.receiving.get(mid ?? '');
        if (current === undefined || !streamId || streamId === current) continue;
        const group = this.groupOf(streamId);
        if (group === undefined || group !== this.groupOf(current)) {
          // Another source on this m-line would be a new track to the client, which takes a SUBSCRIBE.
          session.log.debug({ mid, streamId, current }, 'REMOTE_VIDEO_UPDATE outside the layers of the received source; ignored');
          continue;
        }
        subscriptions[negotiated.mids.indexOf(mid!)] = streamId;
        changed = true;
      }
      for (const mid of update.removedVideoSubscriptionMids ?? []) {
        if (!media.receiving.has(mid)) continue;
        subscriptions[negotiated.mids.indexOf(mid)] = 0;
        changed = true;
      }
      if (!changed) return;
      const publisher = this.isReplica ? media.promotedAs : this.presenceOf(session);
      await this.negotiate(session, media, negotiated.offer, publisher?.publication?.layers ?? [], subscriptions);
    });
  }

  setMuted(session: SignalingSession, muted: boolean): void {
    const media = this.media.get(session);
    if (media) media.audioMuted = muted;
    media?.peer.setMuted(muted);
    const participant = this.isReplica ? this.media.get(session)?.promotedAs : this.presenceOf(session);
    if (!participant || participant.muted === muted) return;
    participant.muted = muted;
    (this.view ?? this).broadcast({ type: FrameType.AUDIO_STREAM_ID_INFO, audioStreamIdInfo: { streams: [{ audioStreamId: participant.audioStreamId, muted }] } });
  }

  dataMessage(session: SignalingSession, messages: ISdkDataMessagePayload[]): void {
    const media = this.media.get(session);
    if (!media) return;
    const now = Date.now();
    media.dataTokens = Math.min(DATA_BURST, media.dataTokens + ((now - media.dataRefilledAt) / 1000) * DATA_RATE);
    media.dataRefilledAt = now;
    // A replica viewer's messages reach nobody: no one may learn of replica attendees.
    const sender = this.isReplica ? media.promotedAs : this.participants.get(session.attendeeId) ?? undefined;
    const target = this.isReplica ? this.primary : this;
    const delivered: ISdkDataMessagePayload[] = [];
    const refused: ISdkDataMessagePayload[] = [];
    for (const message of messages.slice(0, DATA_BURST)) {
      const topic = message.topic ?? '';
      const data = message.data ?? new Uint8Array();
      const lifetimeMs = Math.max(0, Math.min(Number(message.lifetimeMs ?? 0), DATA_MAX_LIFETIME_MS));
      const stamped = {
        topic,
        data,
        lifetimeMs,
        senderAttendeeId: sender?.attendeeId ?? session.attendeeId,
        senderExternalUserId: sender?.externalUserId ?? session.externalUserId,
      };
      if (!target || (this.isReplica && !sender) || !DATA_TOPIC.test(topic) || data.length > DATA_MAX_BYTES || media.dataTokens < 1) {
        // The client reports a message that comes back with ingest time 0 as throttled or rejected.
        refused.push({ ...stamped, ingestTimeNs: 0 });
        continue;
      }
      media.dataTokens -= 1;
      const payload = { ...stamped, ingestTimeNs: epochNanos(now) };
      delivered.push(payload);
      if (lifetimeMs > 0) {
        if (target.bufferedData.length >= DATA_BUFFERED_MAX) target.bufferedData.shift();
        target.bufferedData.push({ payload, expiresAt: now + lifetimeMs });
      }
    }
    if (refused.length > 0) session.send({ type: FrameType.DATA_MESSAGE, dataMessage: { messages: refused } });
    if (delivered.length > 0 && target) target.broadcast({ type: FrameType.DATA_MESSAGE, dataMessage: { messages: delivered } }, session);
  }

  pauseResume(session: SignalingSession, pause: boolean, streamIds: number[]): void {
    this.media.get(session)?.peer.setPaused(streamIds, pause);
  }

  // ---- promotion ----

  async primaryMeetingJoin(session: SignalingSession, credentials: ISdkMeetingSessionCredentials): Promise<void> {
    const refuse = (status: number, description: string) => {
      session.log.info({ status, description }, 'promotion refused');
      session.send({ type: FrameType.PRIMARY_MEETING_JOIN_ACK, primaryMeetingJoinAck: {}, error: { status, description } });
    };
    const media = this.media.get(session);
    if (!this.isReplica || !media) return refuse(403, 'only an attendee of a replica meeting can join its primary meeting');
    if (media.promotedAs || this.promoting.has(session)) return refuse(409, 'already promoted to the primary meeting');
    this.promoting.add(session);
    try {
      await this.promote(session, media, credentials, refuse);
    } finally {
      this.promoting.delete(session);
    }
  }

  private async promote(
    session: SignalingSession,
    media: SessionMedia,
    credentials: ISdkMeetingSessionCredentials,
    refuse: (status: number, description: string) => void,
  ): Promise<void> {
    const primaryId = this.meeting.PrimaryMeetingId!;
    const token = credentials.joinToken ?? '';
    const attendee = token ? await this.context.meetings.store.findAttendeeByJoinToken(token) : undefined;
    if (!attendee || attendee.MeetingId !== primaryId || (credentials.attendeeId && credentials.attendeeId !== attendee.AttendeeId)) {
      return refuse(403, 'the credentials are not those of an attendee of the primary meeting');
    }
    await this.linking;
    const primary = this.primary;
    if (!primary || !this.media.has(session)) return refuse(503, 'the primary meeting is not available');
    const cap = this.context.meetings.attendeeCapOf(primary.meeting.MeetingFeatures);
    const taken = [...primary.participants.values()].filter((p) => !p.session.content).length;
    if (taken >= cap) return refuse(409, 'the primary meeting is at capacity');
    // The same primary attendee connected elsewhere is pushed out, as a second device would be.
    primary.removeAttendee(attendee.AttendeeId, AudioStatus.JoinedFromAnotherDevice);
    const participant = primary.markPresent(session, attendee, false, this);
    media.promotedAs = participant;
    primary.replicas.get(this)?.promote(session.attendeeId, attendee.AttendeeId);
    this.context.connections.attendeeConnected(primaryId, attendee.AttendeeId);
    session.log.info({ primaryAttendeeId: attendee.AttendeeId }, 'promoted to the primary meeting');
    session.send({ type: FrameType.PRIMARY_MEETING_JOIN_ACK, primaryMeetingJoinAck: {} });
    session.send(this.indexFor(session));
  }

  primaryMeetingLeave(session: SignalingSession): void {
    this.demote(session, false);
  }

  /** Ends a promotion; `tellClient` when the server decides it (the client demoting itself already knows). */
  private demote(session: SignalingSession, tellClient: boolean, dropped = false): void {
    const media = this.media.get(session);
    const participant = media?.promotedAs;
    const primary = this.primary;
    if (!media || !participant) return;
    media.promotedAs = undefined;
    if (primary) {
      primary.replicas.get(this)?.demote(session.attendeeId);
      primary.removeParticipant(participant, dropped);
      if (participant.publication) primary.replicas.get(this)?.publishUp(this.promotedStreams());
      this.context.connections.attendeeDisconnected(primary.meeting.MeetingId, participant.attendeeId);
    }
    if (tellClient) session.send({ type: FrameType.PRIMARY_MEETING_LEAVE, primaryMeetingLeave: {} });
    session.log.info({ primaryAttendeeId: participant.attendeeId }, 'demoted from the primary meeting');
    if (this.media.has(session)) session.send(this.indexFor(session));
  }

  // ---- leaving and ending ----

  /**
   * The session is gone (LEAVE, socket closed, pushed out): everything it held is released. `dropped`: its
   * connection failed (no LEAVE), which the others' clients are told.
   */
  detach(session: SignalingSession, reason: string, dropped = false): void {
    if (!this.sessions.delete(session)) return;
    const media = this.media.get(session);
    if (media?.promotedAs) this.demote(session, false, dropped);
    this.media.delete(session);
    if (media) {
      media.peer.close();
      if (!this.isReplica) this.context.connections.attendeeDisconnected(this.meeting.MeetingId, session.attendeeId);
    }
    const participant = this.participants.get(session.attendeeId);
    if (participant && !participant.via && !this.sessions.has(participant.session)) {
      // Pushed out by a new connection of the same attendee, it stays present until that one is: clients learn of
      // the new audio stream before the old one's removal, and show no leave and join. Otherwise it goes now.
      if ([...this.sessions].some((other) => other.attendeeId === session.attendeeId)) this.awaitSuccessor(participant);
      else this.removeParticipant(participant, dropped);
    }
    session.log.info({ reason, dropped }, 'session ended');
    session.close();
    this.closeIfIdle();
  }

  end(audioStatus: number): void {
    for (const session of [...this.sessions]) session.end(audioStatus);
    this.close();
  }

  /** DeleteAttendee, or the same attendee connecting elsewhere. */
  removeAttendee(attendeeId: string, audioStatus: number): void {
    for (const session of [...this.sessions]) {
      if (session.attendee.AttendeeId === attendeeId) session.end(audioStatus);
    }
    for (const participant of [...this.participants.values()]) {
      if (participant.via && participant.attendee.AttendeeId === attendeeId) {
        const replica = participant.via;
        // A deleted primary attendee's promotion ends: the client is told it was demoted.
        replica.demote(participant.session, true);
      }
    }
  }

  updateCapabilities(attendee: AttendeeRecord): void {
    const promoted = this.participants.get(attendee.AttendeeId);
    if (promoted?.via) {
      promoted.attendee = attendee;
      if (promoted.publication && !sends(attendee.Capabilities.Video)) {
        promoted.publication = undefined;
        const replica = promoted.via;
        replica.media.get(promoted.session)?.peer.unpublish();
        this.replicas.get(replica)?.publishUp(replica.promotedStreams());
        this.publicationsChanged();
      }
    }
    for (const session of this.sessions) {
      if (session.attendee.AttendeeId !== attendee.AttendeeId) continue;
      session.attendee = attendee;
      const media = this.media.get(session);
      if (!media) continue;
      const caps = attendee.Capabilities;
      media.peer.applyCapabilities({ sendAudio: receives(caps.Audio), receiveAudio: sends(caps.Audio), receiveVideo: receives(caps.Video) });
      const participant = this.participants.get(session.attendeeId);
      if (participant) participant.attendee = attendee;
      if (participant?.publication && !sends(caps.Video)) {
        participant.publication = undefined;
        media.peer.unpublish();
        this.publicationsChanged();
      } else {
        session.send(this.indexFor(session));
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    clearTimeout(this.indexTimer);
    for (const participant of this.participants.values()) clearTimeout(participant.successorWait);
    for (const media of this.media.values()) media.peer.close();
    this.media.clear();
    for (const [replica, link] of this.replicas) {
      link.close();
      replica.unlinkPrimary();
    }
    this.replicas.clear();
    if (this.primary) {
      this.primary.replicas.get(this)?.close();
      this.primary.replicas.delete(this);
      this.primary.closeIfIdle();
      this.primary = undefined;
    }
    this.room.close();
  }

  /** Primary side: the replica conferences fed from this one's room. */
  linkedReplicas(): Conference[] {
    return [...this.replicas.keys()];
  }

  /** A primary is kept while anyone is in it or a replica hangs on it. */
  private closeIfIdle(): void {
    if (this.closed) return;
    if (this.sessions.size === 0 && this.promotedCount() === 0 && this.replicas.size === 0 && this.pendingReplicas === 0) this.onEmpty();
  }

  // ---- negotiation ----

  /** A session's negotiations run one at a time, each from the state the one before left. */
  private serially<T>(media: SessionMedia, task: () => Promise<T>): Promise<T> {
    const run = media.negotiations.then(task);
    media.negotiations = run.catch(() => undefined);
    return run;
  }

  /** Has the worker answer `offer` from the session's state, and keeps what REMOTE_VIDEO_UPDATE changes later. */
  private async negotiate(session: SignalingSession, media: SessionMedia, offer: Offer, publish: PublishedLayer[], subscriptions: number[]): Promise<NegotiationResult> {
    const caps = session.attendee.Capabilities;
    const wanted = receives(caps.Video) ? subscriptions.slice(0, VIDEO_SUBSCRIPTION_LIMIT) : [];
    const result = await media.peer.negotiate({
      offer,
      sendAudio: receives(caps.Audio),
      receiveAudio: sends(caps.Audio),
      publish,
      subscriptions: wanted,
      audioMuted: media.audioMuted,
    });
    const mids = subscriptionMids(offer);
    media.negotiated = { offer, mids, subscriptions: wanted };
    media.receiving = new Map();
    wanted.forEach((streamId, index) => {
      const mid = mids[index];
      if (mid !== undefined && result.tracks.some((track) => track.streamId === streamId)) media.receiving.set(mid, streamId);
    });
    return result;
  }

  /** The group (source) of a published stream this meeting's clients see. */
  private groupOf(streamId: number): number | undefined {
    for (const participant of this.view?.participants.values() ?? []) {
      const layer = participant.publication?.layers.find((l) => l.streamId === streamId);
      if (layer) return layer.groupId;
    }
    return undefined;
  }

  // ---- replication ----

  private async linkToPrimary(): Promise<void> {
    const primary = await this.context.primaryConference(this.meeting.PrimaryMeetingId!);
    if (!primary || this.closed) return primary?.closeIfIdle();
    // Counted while the pipe opens, so the primary isn't closed under a replica about to hang on it.
    primary.pendingReplicas++;
    let link: ReplicaLink;
    try {
      link = await this.context.linkReplica(primary, this);
    } catch (error) {
      primary.pendingReplicas--;
      primary.closeIfIdle();
      throw error;
    }
    primary.pendingReplicas--;
    if (this.closed || primary.closed) {
      link.close();
      return primary.closeIfIdle();
    }
    primary.replicas.set(this, link);
    this.primary = primary;
    link.setPrimaryStreams(primary.streamsFor(this));
    for (const session of this.sessions) {
      if (session.state !== 'joined') continue;
      session.send(this.indexFor(session));
      if (this.media.has(session)) this.sendRoster(session);
    }
  }

  /** The primary went away (it ended): this replica's viewers see an empty meeting until it ends too. */
  private unlinkPrimary(): void {
    const primary = this.primary;
    this.primary = undefined;
    if (!primary) return;
    const removals = [...primary.participants.values()].map((p) => ({ audioStreamId: p.audioStreamId }));
    for (const session of this.sessions) {
      if (removals.length > 0) session.send({ type: FrameType.AUDIO_STREAM_ID_INFO, audioStreamIdInfo: { streams: removals } });
      session.send(this.indexFor(session));
    }
  }

  /** The primary's published streams a replica fetches through its pipe (not those it sends up itself). */
  private streamsFor(replica: Conference): { streamId: number; groupId: number }[] {
    const streams = [];
    for (const participant of this.participants.values()) {
      if (participant.via === replica) continue;
      for (const layer of participant.publication?.layers ?? []) streams.push({ streamId: layer.streamId, groupId: layer.groupId });
    }
    return streams;
  }

  private promotedStreams(): { streamId: number; groupId: number }[] {
    const streams = [];
    for (const media of this.media.values()) {
      for (const layer of media.promotedAs?.publication?.layers ?? []) streams.push({ streamId: layer.streamId, groupId: layer.groupId });
    }
    return streams;
  }

  private promotedCount(): number {
    let count = 0;
    for (const participant of this.participants.values()) if (participant.via) count++;
    return count;
  }

  // ---- state shared with clients ----

  private markPresent(session: SignalingSession, attendee: AttendeeRecord, muted: boolean, via?: Conference): Participant {
    const participant: Participant = {
      audioStreamId: this.nextAudioStreamId++,
      attendeeId: via ? attendee.AttendeeId : session.attendeeId,
      externalUserId: attendee.ExternalUserId,
      muted,
      attendee,
      session,
      ...(via ? { via } : {}),
    };
    const replaced = this.participants.get(participant.attendeeId);
    this.participants.set(participant.attendeeId, participant);
    if (!via) this.sendRoster(session);
    this.broadcast({ type: FrameType.AUDIO_STREAM_ID_INFO, audioStreamIdInfo: { streams: [presenceInfo(participant)] } }, via ? undefined : session);
    // A replaced connection's stream goes after the new one is announced (its roster never had it).
    if (replaced) this.announceRemoval(replaced, false, session);
    this.presenceChanged();
    return participant;
  }

  /** The participant a direct session is present as; not the one of a connection it replaced. */
  private presenceOf(session: SignalingSession): Participant | undefined {
    const participant = this.participants.get(session.attendeeId);
    return participant?.session === session ? participant : undefined;
  }

  /** A connection pushed out by a new one of the same attendee: present (without video) until that one is. */
  private awaitSuccessor(participant: Participant): void {
    if (participant.successorWait) return;
    participant.successorWait = setTimeout(() => this.removeParticipant(participant), SUCCESSOR_WAIT_MS);
    participant.successorWait.unref();
    if (participant.publication) {
      participant.publication = undefined;
      this.publicationsChanged();
    }
  }

  private removeParticipant(participant: Participant, dropped = false): void {
    if (this.participants.get(participant.attendeeId) !== participant) return;
    this.participants.delete(participant.attendeeId);
    this.announceRemoval(participant, dropped);
    this.presenceChanged();
  }

  private announceRemoval(participant: Participant, dropped: boolean, except?: SignalingSession): void {
    clearTimeout(participant.successorWait);
    // A removal is an entry with only the stream id; `dropped` tells clients the connection failed (no LEAVE).
    const removal = { audioStreamId: participant.audioStreamId, ...(dropped ? { dropped } : {}) };
    this.broadcast({ type: FrameType.AUDIO_STREAM_ID_INFO, audioStreamIdInfo: { streams: [removal] } }, except);
    if (participant.publication) this.publicationsChanged();
  }

  /** The full roster of the meeting this session sees. */
  private sendRoster(session: SignalingSession): void {
    const view = this.view;
    session.rosterSent = true;
    if (!view || view.participants.size === 0) return;
    session.send({ type: FrameType.AUDIO_STREAM_ID_INFO, audioStreamIdInfo: { streams: [...view.participants.values()].map(presenceInfo) } });
  }

  private allocate(previous: Publication | undefined, descriptors: ISdkStreamDescriptor[]): Publication {
    const groupId = previous?.groupId ?? this.nextGroupId++;
    const layers = descriptors.map((descriptor, index): PublishedLayer => {
      const kept = previous?.layers[index];
      return {
        streamId: kept?.streamId ?? this.nextStreamId++,
        groupId,
        trackLabel: descriptor.trackLabel || kept?.trackLabel || `amphi-video-${groupId}`,
        maxBitrateKbps: descriptor.maxBitrateKbps ?? 0,
        width: descriptor.width ?? 0,
        height: descriptor.height ?? 0,
        framerate: descriptor.framerate ?? 0,
        layerIndex: index,
        layerCount: descriptors.length,
      };
    });
    return { groupId, layers };
  }

  private publishingCount(): number {
    let count = 0;
    for (const participant of this.participants.values()) if (participant.publication) count++;
    return count;
  }

  /** Publications changed here (a primary): every client's index, and every replica's pipe, follow. */
  private publicationsChanged(): void {
    for (const [replica, link] of this.replicas) link.setPrimaryStreams(this.streamsFor(replica));
    this.indexChanged();
  }

  /**
   * Someone became present or left (here, a primary): INDEX follows with the new num_participants, by which clients
   * turn simulcast on or off; changes within a second go out together.
   */
  private presenceChanged(): void {
    if (this.indexTimer || this.closed) return;
    const wait = Math.max(0, this.indexSentAt + PARTICIPANTS_INDEX_INTERVAL_MS - Date.now());
    this.indexTimer = setTimeout(() => {
      this.indexTimer = undefined;
      if (this.participants.size !== this.indexedParticipants) this.indexChanged();
    }, wait);
    this.indexTimer.unref();
  }

  /** Every client's INDEX, here and in every replica. */
  private indexChanged(): void {
    clearTimeout(this.indexTimer);
    this.indexTimer = undefined;
    this.indexSentAt = Date.now();
    this.indexedParticipants = this.participants.size;
    this.broadcastIndex();
    for (const replica of this.replicas.keys()) replica.broadcastIndex();
  }

  private indexFor(session: SignalingSession): OutgoingFrame {
    const view = this.view;
    const media = this.media.get(session);
    const self = this.isReplica ? media?.promotedAs : view?.participants.get(session.attendeeId);
    const sources: ISdkStreamDescriptor[] = [];
    for (const participant of view?.participants.values() ?? []) {
      if (participant === self || !participant.publication) continue;
      const simulcast = participant.publication.layers.length > 1;
      for (const layer of participant.publication.layers) {
        if (simulcast && layer.maxBitrateKbps === 0) continue; // a paused simulcast layer
        sources.push({
          streamId: layer.streamId,
          groupId: layer.groupId,
          attendeeId: participant.attendeeId,
          externalUserId: participant.externalUserId,
          mediaType: SdkStreamMediaType.VIDEO,
          trackLabel: layer.trackLabel,
          maxBitrateKbps: layer.maxBitrateKbps,
          avgBitrateBps: view!.room.bitrateOf(layer.streamId),
          ...(layer.width ? { width: layer.width, height: layer.height } : {}),
          ...(layer.framerate ? { framerate: layer.framerate } : {}),
        });
      }
    }
    // Replica viewers can't publish; a promoted one publishes as its primary attendee, within the primary's room.
    const mayPublish = this.isReplica ? Boolean(self && sends(self.attendee.Capabilities.Video)) : sends(session.attendee.Capabilities.Video);
    const atCapacity = !mayPublish || !view || (!self?.publication && view.publishingCount() >= MAX_VIDEO_SOURCES);
    // Everyone present, the receiver included: counted ahead until its first SUBSCRIBE makes it present. A replica
    // viewer is not a participant of the primary it sees (until promoted).
    const numParticipants = (view?.participants.size ?? 0) + (!this.isReplica && !view?.participants.has(session.attendeeId) ? 1 : 0);
    return {
      type: FrameType.INDEX,
      index: { atCapacity, sources, numParticipants },
    };
  }

  private broadcastIndex(): void {
    for (const session of this.sessions) if (session.state === 'joined') session.send(this.indexFor(session));
  }

  /** To this meeting's clients and, for a primary, to every replica's viewers. */
  private broadcast(frame: OutgoingFrame, except?: SignalingSession): void {
    // Presence and volumes wait for the session's full roster: a reconnected client takes its first
    // AUDIO_STREAM_ID_INFO as the whole roster (and drops everyone else).
    const needsRoster = frame.type === FrameType.AUDIO_STREAM_ID_INFO || frame.type === FrameType.AUDIO_METADATA;
    for (const session of this.sessions) {
      if (session !== except && session.state === 'joined' && (session.rosterSent || !needsRoster)) session.send(frame);
    }
    for (const replica of this.replicas.keys()) replica.relay(frame, except);
  }

  private relay(frame: OutgoingFrame, except?: SignalingSession): void {
    for (const session of this.sessions) if (session !== except && session.state === 'joined' && session.rosterSent) session.send(frame);
  }

  private sendAudioMetadata(): void {
    if (this.isReplica || this.participants.size === 0) return;
    const levels = this.room.audioLevels();
    const attendeeStates = [];
    const talkers = new Set<Participant>();
    for (const participant of this.participants.values()) {
      const level = levels.get(participant.attendeeId);
      if (level === undefined || participant.muted) continue;
      attendeeStates.push({ audioStreamId: participant.audioStreamId, volume: level, signalStrength: SIGNAL_STRENGTH });
      talkers.add(participant);
    }
    // The client changes volumes only when a frame lists someone, and then takes everyone unlisted as silent. Who
    // stopped talking is listed once as silent, or the last talker's volume would stay; the frame stays small.
    for (const participant of this.listedTalkers) {
      if (talkers.has(participant) || participant.muted || this.participants.get(participant.attendeeId) !== participant) continue;
      attendeeStates.push({ audioStreamId: participant.audioStreamId, volume: SILENT_VOLUME, signalStrength: SIGNAL_STRENGTH });
    }
    this.listedTalkers = talkers;
    this.broadcast({ type: FrameType.AUDIO_METADATA, audioMetadata: { attendeeStates } });
  }

  private sendBitrates(): void {
    const view = this.view;
    if (!view) return;
    const bitrates = [];
    for (const participant of view.participants.values()) {
      for (const layer of participant.publication?.layers ?? []) bitrates.push({ sourceStreamId: layer.streamId, avgBitrateBps: view.room.bitrateOf(layer.streamId) });
    }
    if (bitrates.length === 0) return;
    for (const [session, media] of this.media) {
      if (session.state !== 'joined') continue;
      // The SDK reads this one figure in kbps (and avgBitrateBps in bps).
      const availableKbps = Math.round(media.peer.estimatedDownlinkBps() / 1000);
      session.send({ type: FrameType.BITRATES, bitrates: { bitrates, serverAvailableOutgoingBitrate: availableKbps } });
    }
  }

  /** A snapshot of the live state, for operators and tests. */
  stats() {
    return Promise.all(
      [...this.media].map(async ([session, media]) => ({
        attendeeId: session.attendeeId,
        externalUserId: session.externalUserId,
        present: this.participants.get(session.attendeeId)?.session === session,
        promotedAs: media.promotedAs?.attendeeId,
        muted: this.participants.get(session.attendeeId)?.muted ?? false,
        published: (this.participants.get(session.attendeeId)?.publication?.layers ?? media.promotedAs?.publication?.layers ?? []).map((layer) => ({
          ...layer,
          bitrateBps: (this.view ?? this).room.bitrateOf(layer.streamId),
        })),
        downlinkBps: media.peer.estimatedDownlinkBps(),
        media: await media.peer.stats(),
      })),
    );
  }

  replicaLinks(): ReplicaLink[] {
    return [...this.replicas.values()];
  }
}

/** The mids of an offer's receive m-lines, in the order MediaPeer.negotiate hands them the subscriptions. */
function subscriptionMids(offer: Offer): string[] {
  const mids: string[] = [];
  let sawAudio = false;
  let sawCamera = false;
  for (const media of offer.media) {
    if (media.kind === 'application' || media.port === 0) continue;
    if (media.kind === 'audio') sawAudio = true;
    else if (!sawCamera) sawCamera = true;
    else if (media.direction === 'recvonly' || media.direction === 'sendrecv') mids.push(media.mid);
  }
  return mids;
}

/** The bits of a protobuf int64, which the SDK's encoder (built without long.js) writes exactly. */
type Int64Bits = Extract<NonNullable<ISdkDataMessagePayload['ingestTimeNs']>, object>;

/** Milliseconds since the epoch in nanoseconds, exact: ms × 10⁶ is past a double's integers. */
function epochNanos(ms: number): Int64Bits {
  const nanos = BigInt(ms) * 1_000_000n;
  const bits = { low: Number(BigInt.asIntN(32, nanos)), high: Number(BigInt.asIntN(32, nanos >> 32n)), unsigned: false };
  return bits as unknown as Int64Bits;
}

function presenceInfo(participant: Participant) {
  return { audioStreamId: participant.audioStreamId, attendeeId: participant.attendeeId, externalUserId: participant.externalUserId, muted: participant.muted };
}

function samePublication(a: Publication | undefined, b: Publication | undefined): boolean {
  if (!a || !b) return a === b;
  return (
    a.layers.length === b.layers.length &&
    a.layers.every((layer, i) => layer.streamId === b.layers[i]!.streamId && layer.maxBitrateKbps === b.layers[i]!.maxBitrateKbps)
  );
}
