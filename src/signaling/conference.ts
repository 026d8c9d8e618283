import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type {
  ISdkDataMessagePayload,
  ISdkMeetingSessionCredentials,
  ISdkRemoteVideoUpdateFrame,
  ISdkStreamDescriptor,
  ISdkSubscribeFrame,
} from 'amazon-chime-sdk-js/build/signalingprotocol/SignalingProtocol.js';
import type { ConnectionReporter } from '../meetings/lifecycle.ts';
import type { AttendeeRecord, MeetingRecord } from '../meetings/model.ts';
import type { MeetingService } from '../meetings/service.ts';
import { parseOffer, SdpError } from '../media/protocol/sdp.ts';
import type { NegotiationResult } from '../media/sfu/peer.ts';
import type { MediaWorkerClient } from '../media/worker/client.ts';
import type { RoomHandle } from '../media/worker/room-handle.ts';
import type { PrimaryHandle } from './primary-handle.ts';
import type { Clock } from '../util/clock.ts';
import type { PostedData } from './data-messages.ts';
import { AudioStatus, CloseCode, FrameType, SdkServerSideNetworkAdaption, SdkStreamMediaType, SdkStreamServiceType, type OutgoingFrame } from './frames.ts';
import type { Publication } from './publications.ts';
import type { Participant, PresenceInfo } from './roster.ts';
import { receives, sends, SessionMedia, VIDEO_SUBSCRIPTION_LIMIT } from './session-media.ts';
import type { SessionHost, SignalingSession } from './session.ts';
import { NO_TURN, type TurnCredentialIssuer } from './turn-credentials.ts';

/** The service's limit of content shares per meeting. */
export const MAX_CONTENT_SHARES = 2;
const BITRATES_INTERVAL_MS = 2_000;

/** What a conference needs from the node around it. */
export interface ConferenceContext {
  meetings: MeetingService;
  connections: ConnectionReporter;
  logger: Logger;
  /** Time for data-message lifetimes and allowances and INDEX pacing. */
  clock: Clock;
  /** Where this node's media workers reach each other's pipe ports. */
  pipeAddress: string;
  /** Where what signaling decides is counted for the metrics (unset: not counted). */
  metrics?: SignalingMetrics;
  /** The primary meeting of the replica `replicaMeetingId` here: its conference, created if nobody is connected to it yet, or a bridge to the node hosting it. */
  primaryFor(primaryMeetingId: string, replicaMeetingId: string): Promise<PrimaryHandle | undefined>;
  /** Signs the TURN credentials JOIN_ACK carries (absent: no TURN). */
  turn?: TurnCredentialIssuer;
}

/** What signaling reports to the node's metrics. */
export interface SignalingMetrics {
  /** A replica viewer's PRIMARY_MEETING_JOIN was answered: 'ok', or the status it was refused with. */
  promotionAnswered(result: 'ok' | number): void;
}

export interface ConferenceEvents {
  /** Nobody holds the conference any more: its owner closes it. */
  empty: [];
}

/**
 * One meeting's live sessions on this node and their media (a room on a media worker): admission, JOIN,
 * SUBSCRIBE and its answer, REMOTE_VIDEO_UPDATE, mute, pause, leaving. What the clients are shown of the meeting
 * (roster, index, volumes, data messages) is the subclass's: a primary keeps it, a replica shows its primary's.
 */
export abstract class Conference extends EventEmitter<ConferenceEvents> implements SessionHost {
  readonly sessions = new Set<SignalingSession>();
  readonly room: RoomHandle;
  protected readonly media = new Map<SignalingSession, SessionMedia>();
  protected closed = false;
  private readonly bitratesTimer: NodeJS.Timeout;
  readonly log: Logger;

  constructor(
    readonly meeting: MeetingRecord,
    protected readonly context: ConferenceContext,
    worker: MediaWorkerClient,
  ) {
    super();
    this.log = context.logger.child({ meetingId: meeting.MeetingId });
    this.room = worker.createRoom(meeting.MeetingId, meeting.PrimaryMeetingId !== undefined);
    this.bitratesTimer = setInterval(() => this.sendBitrates(), BITRATES_INTERVAL_MS);
    this.bitratesTimer.unref();
  }

  get meetingId(): string {
    return this.meeting.MeetingId;
  }

  // ---- what the subclasses decide ----

  /** Seats taken in this meeting besides its own joined sessions (a primary's promoted viewers). */
  protected abstract extraSeatsTaken(): number;
  protected abstract indexFor(session: SignalingSession): OutgoingFrame;
  /** Data messages still alive, for a client that joins now. */
  protected abstract liveData(now: number): ISdkDataMessagePayload[];
  /** The session's video allocated in the meeting it publishes in (undefined: it may not publish). */
  protected abstract allocatePublication(session: SignalingSession, descriptors: ISdkStreamDescriptor[]): Promise<Publication | undefined>;
  /** After a SUBSCRIBE_ACK: presence, roster and publication follow. */
  protected abstract subscribed(session: SignalingSession, publication: Publication | undefined, audioMuted: boolean): void;
  protected abstract groupOf(streamId: number): number | undefined;
  protected abstract participantMuted(session: SignalingSession, muted: boolean): void;
  protected abstract postData(session: SignalingSession, media: SessionMedia, messages: ISdkDataMessagePayload[], now: number): Promise<PostedData>;
  protected abstract bitrates(): { sourceStreamId: number; avgBitrateBps: number }[];
  /** Received bitrate of a published stream of the meeting this one's clients see. */
  protected abstract bitrateOf(streamId: number): number;
  /** A session's media joined (`true`) or left: counted for idle deletion where it counts. */
  protected abstract mediaPresence(session: SignalingSession, joined: boolean): void;
  /** A session leaves: what it held in the meeting goes (before its media closes). */
  protected abstract sessionLeaving(session: SignalingSession, dropped: boolean): void;
  protected abstract isIdle(): boolean;

  // ---- sessions ----

  /** A new authenticated connection; the same credentials connected elsewhere are pushed out. */
  admit(session: SignalingSession): void {
    session.once('closed', (reason, dropped) => this.detach(session, reason, dropped));
    // Added first: the connections it pushes out see their successor (see sessionLeaving).
    this.sessions.add(session);
    for (const other of this.sessions) {
      if (other !== session && other.attendeeId === session.attendeeId) {
        other.log.info('same attendee joined from another device');
        other.end(AudioStatus.JoinedFromAnotherDevice);
      }
    }
  }

  join(session: SignalingSession): void {
    const joined = [...this.sessions].filter((s) => s !== session && s.state === 'joined');
    const cap = this.context.meetings.attendeeCapOf(this.meeting.MeetingFeatures);
    const overCapacity = session.content
      ? joined.filter((s) => s.content).length >= MAX_CONTENT_SHARES
      : joined.filter((s) => !s.content).length + this.extraSeatsTaken() >= cap;
    if (overCapacity) {
      session.log.info('meeting at capacity');
      session.end(AudioStatus.CallAtCapacity);
      return;
    }
    const peer = this.room.createPeer(session.attendeeId);
    peer.on('connectionChange', (connected) => session.log.debug({ connected }, 'media transport'));
    // The service reports an attendee dropped after 10–15 s without its packets, even while its signaling stays up;
    // the session ends so (the client reconnects if it can), and its departure is reported once, as Dropped.
    peer.on('silent', () => {
      session.log.info('no media packet from the client for 10–15 s; closing as dropped');
      session.close(CloseCode.Normal, 'media silent', true);
    });
    this.media.set(session, new SessionMedia(peer, this.context.clock.now()));
    this.mediaPresence(session, true);
    this.context.meetings.activity.emit('attendeeJoined', this.meeting, session.attendee, session.content);
    session.send({
      type: FrameType.JOIN_ACK,
      joinack: {
        videoSubscriptionLimit: VIDEO_SUBSCRIPTION_LIMIT,
        wantsCompressedSdp: false,
        // Said explicitly: the client adapts video itself (left out, the field decodes as DEFAULT).
        defaultServerSideNetworkAdaption: SdkServerSideNetworkAdaption.NONE,
        // Always present: without them the SDK logs an error; with no URIs it connects directly.
        turnCredentials: (this.context.turn ?? NO_TURN).issue(session.attendeeId),
      },
    });
    session.send(this.indexFor(session));
    const late = this.liveData(this.context.clock.now());
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
    this.subscribed(session, publication, sub.audioMuted === true);
  }

  /** A SUBSCRIBE's offer parsed, its video allocated and answered by the worker. */
  private async answer(session: SignalingSession, media: SessionMedia, sub: ISdkSubscribeFrame): Promise<{ result: NegotiationResult; publication: Publication | undefined }> {
    const offer = parseOffer(sub.sdpOffer ?? '');
    const videoDescriptors = (sub.sendStreams ?? []).filter((s) => s.mediaType === SdkStreamMediaType.VIDEO);
    const wantsToPublish = (sub.duplex === SdkStreamServiceType.TX || sub.duplex === SdkStreamServiceType.DUPLEX) && videoDescriptors.length > 0;
    const publication = wantsToPublish ? await this.allocatePublication(session, videoDescriptors) : undefined;
    const subscriptions = (sub.receiveStreamIds ?? []).filter((id) => id !== 0);
    media.audioMuted = sub.audioMuted === true;
    const result = await media.serially(() => media.negotiate(session.attendee.Capabilities, offer, publication?.layers ?? [], subscriptions));
    return { result, publication };
  }

  /** REMOTE_VIDEO_UPDATE: receive m-lines moved to another layer of their source, or removed (SessionMedia.updateVideo). */
  remoteVideoUpdate(session: SignalingSession, update: ISdkRemoteVideoUpdateFrame): Promise<void> | undefined {
    const media = this.media.get(session);
    if (!media) return;
    return media.serially(async () => {
      if (!this.media.has(session)) return;
      const ignored = (mid: string, streamId: number, current: number) =>
        session.log.debug({ mid, streamId, current }, 'REMOTE_VIDEO_UPDATE outside the layers of the received source; ignored');
      await media.updateVideo(update, (streamId) => this.groupOf(streamId), ignored);
    });
  }

  setMuted(session: SignalingSession, muted: boolean): void {
    const media = this.media.get(session);
    if (media) {
      media.audioMuted = muted;
      media.peer.setMuted(muted);
    }
    this.participantMuted(session, muted);
  }

  dataMessage(session: SignalingSession, messages: ISdkDataMessagePayload[]): void {
    const media = this.media.get(session);
    if (!media) return;
    // A promoted viewer's messages are posted in a primary that may be on another node: answered later, in order.
    this.postData(session, media, messages, this.context.clock.now()).then(
      ({ refused }) => {
        if (refused.length > 0 && this.media.has(session)) session.send({ type: FrameType.DATA_MESSAGE, dataMessage: { messages: refused } });
      },
      (error: unknown) => session.log.warn({ err: error }, 'data messages could not be posted'),
    );
  }

  pauseResume(session: SignalingSession, pause: boolean, streamIds: number[]): void {
    this.media.get(session)?.peer.setPaused(streamIds, pause);
  }

  async primaryMeetingJoin(session: SignalingSession, _credentials: ISdkMeetingSessionCredentials): Promise<void> {
    session.log.info({ status: 403 }, 'promotion refused');
    const description = 'only an attendee of a replica meeting can join its primary meeting';
    session.send({ type: FrameType.PRIMARY_MEETING_JOIN_ACK, primaryMeetingJoinAck: {}, error: { status: 403, description } });
  }

  primaryMeetingLeave(_session: SignalingSession): void {}

  // ---- leaving and ending ----

  /**
   * The session closed (LEAVE, socket closed, pushed out, ended): everything it held is released. `dropped`: its
   * connection failed (no LEAVE), which the others' clients are told.
   */
  private detach(session: SignalingSession, reason: string, dropped: boolean): void {
    if (!this.sessions.delete(session)) return;
    const media = this.media.get(session);
    this.media.delete(session);
    if (media) {
      media.peer.close();
      this.mediaPresence(session, false);
    }
    this.sessionLeaving(session, dropped);
    // Once per joined session: Left, or Dropped when its connection failed (after what it published has stopped).
    if (media) this.context.meetings.activity.emit('attendeeLeft', this.meeting, session.attendee, session.content, dropped);
    session.log.info({ reason, dropped }, 'session ended');
    this.closeIfIdle();
  }

  /** Ends every session with `audioStatus`, then the conference. */
  end(audioStatus: number): void {
    this.sendFinalStatus(audioStatus);
    for (const session of [...this.sessions]) session.end(audioStatus);
    this.close();
  }

  /**
   * Tells every client its session ends, before any is closed: a client told first of the others leaving would
   * renegotiate, and its SDK holds a reconnect back until that renegotiation times out (15 s).
   */
  sendFinalStatus(audioStatus: number): void {
    for (const session of this.sessions) session.sendFinalStatus(audioStatus);
  }

  /** DeleteAttendee, or the same attendee connecting elsewhere. */
  removeAttendee(attendeeId: string, audioStatus: number): void {
    for (const session of [...this.sessions]) {
      if (session.attendee.AttendeeId === attendeeId) session.end(audioStatus);
    }
  }

  /** UpdateAttendeeCapabilities: applied to the attendee's sessions at once. */
  updateCapabilities(attendee: AttendeeRecord): void {
    for (const session of this.sessions) {
      if (session.attendee.AttendeeId !== attendee.AttendeeId) continue;
      session.attendeeUpdated(attendee);
      const media = this.media.get(session);
      if (!media) continue;
      const caps = attendee.Capabilities;
      media.peer.applyCapabilities({ sendAudio: receives(caps.Audio), receiveAudio: sends(caps.Audio), receiveVideo: receives(caps.Video) });
      if (this.capabilitiesChanged(session, attendee)) media.peer.unpublish();
      else session.send(this.indexFor(session));
    }
  }

  /** A session's attendee changed capabilities; true when its publication was withdrawn (its peer stops it). */
  protected capabilitiesChanged(_session: SignalingSession, _attendee: AttendeeRecord): boolean {
    return false;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.bitratesTimer);
    for (const media of this.media.values()) media.peer.close();
    this.media.clear();
    this.room.close();
  }

  protected closeIfIdle(): void {
    if (!this.closed && this.isIdle()) this.emit('empty');
  }

  /** The meetings of the replicas fed from this one's room (none unless this is a primary). */
  linkedReplicaIds(): string[] {
    return [];
  }

  // ---- state shared with clients ----

  /** The full roster of the meeting this session sees; presence relayed to it waits for this. */
  protected sendRoster(session: SignalingSession, presence: PresenceInfo[]): void {
    session.rosterDelivered();
    if (presence.length > 0) session.send({ type: FrameType.AUDIO_STREAM_ID_INFO, audioStreamIdInfo: { streams: presence } });
  }

  protected broadcastIndex(): void {
    for (const session of this.sessions) if (session.state === 'joined') session.send(this.indexFor(session));
  }

  private sendBitrates(): void {
    const bitrates = this.bitrates();
    if (bitrates.length === 0) return;
    for (const [session, media] of this.media) {
      if (session.state !== 'joined') continue;
      // The SDK reads this one figure in kbps (and avgBitrateBps in bps).
      const availableKbps = Math.round(media.peer.estimatedDownlinkBps() / 1000);
      session.send({ type: FrameType.BITRATES, bitrates: { bitrates, serverAvailableOutgoingBitrate: availableKbps } });
    }
  }

  /** The session's own participant in this meeting (a primary's direct attendee), for stats. */
  protected abstract ownParticipant(session: SignalingSession): Participant<unknown> | undefined;
  /** The participant a replica session is promoted as, for stats. */
  protected promotionOf(_session: SignalingSession): Participant<unknown> | undefined {
    return undefined;
  }

  /** A snapshot of the live state, for operators and tests. */
  stats() {
    return Promise.all(
      [...this.media].map(async ([session, media]) => {
        const own = this.ownParticipant(session);
        const promotion = this.promotionOf(session);
        return {
          attendeeId: session.attendeeId,
          externalUserId: session.externalUserId,
          present: own?.session === session,
          promotedAs: promotion?.attendeeId,
          muted: own?.muted ?? false,
          published: (own?.publication?.layers ?? promotion?.publication?.layers ?? []).map((layer) => ({ ...layer, bitrateBps: this.bitrateOf(layer.streamId) })),
          downlinkBps: media.peer.estimatedDownlinkBps(),
          media: await media.peer.stats(),
        };
      }),
    );
  }
}
