import type { ISdkDataMessagePayload, ISdkStreamDescriptor } from 'amazon-chime-sdk-js/build/signalingprotocol/SignalingProtocol.js';
import type { AttendeeRecord } from '../meetings/model.ts';
import type { LocalPrimary, Promotion, PromotionRefusal, ReplicaView } from './primary-handle.ts';
import { ReplicaLink } from '../replication/replica-link.ts';
import { Conference } from './conference.ts';
import { DataMessageBoard, type DataAllowance, type DataSender, type PostedData } from './data-messages.ts';
import { AudioStatus, FrameType, type OutgoingFrame } from './frames.ts';
import { MAX_VIDEO_SOURCES, samePublication, StreamAllocator, type Publication } from './publications.ts';
import { presenceInfo, Roster, type IndexRequest, type Participant, type PresenceInfo, type SessionRef } from './roster.ts';
import { sends, type SessionMedia } from './session-media.ts';
import type { SignalingSession } from './session.ts';

const METADATA_INTERVAL_MS = 200;
/** AUDIO_METADATA volume (-dBov) of silence. */
const SILENT_VOLUME = 127;
/** AUDIO_METADATA signal strength: full, 2 on the client's scale of 2 (Amphi does not measure it). */
const SIGNAL_STRENGTH = 2;
/** INDEX goes out again for a change of num_participants at most this often, however many come and go. */
const PARTICIPANTS_INDEX_INTERVAL_MS = 1_000;
/** How long a connection replaced by another of the same attendee stays present while the new one subscribes. */
const SUCCESSOR_WAIT_MS = 10_000;

type PrimaryParticipant = Participant<ReplicaView>;

/**
 * A meeting that holds its own presenters: who is present (the roster, with replica viewers promoted into it),
 * the published video, data messages, volumes and INDEX, kept in step on every client here and relayed to the
 * viewers of every replica it feeds through a pipe from its room.
 */
export class PrimaryConference extends Conference implements LocalPrimary {
  private readonly roster = new Roster<ReplicaView>();
  private readonly streams = new StreamAllocator();
  private readonly data = new DataMessageBoard();
  /** The replicas fed from this meeting, each through its pipe. */
  private readonly replicas = new Map<ReplicaView, ReplicaLink>();
  /** Replicas whose pipe is being opened: they hold the conference open meanwhile. */
  private pendingReplicas = 0;
  /** Who the last AUDIO_METADATA listed as talking. */
  private listedTalkers = new Set<PrimaryParticipant>();
  private readonly metadataTimer: NodeJS.Timeout;
  /** A coming INDEX for a change of num_participants; when INDEX last went to everyone, and with what count. */
  private indexTimer: NodeJS.Timeout | undefined;
  private indexSentAt = 0;
  private indexedParticipants = 0;
  /** Who the meeting lifecycle events last said publishes video, by attendee id (`#content` for a share). */
  private reportedPublishers = new Map<string, PrimaryParticipant>();

  constructor(...args: ConstructorParameters<typeof Conference>) {
    super(...args);
    this.metadataTimer = setInterval(() => this.sendAudioMetadata(), METADATA_INTERVAL_MS);
    this.metadataTimer.unref();
  }

  override admit(session: SignalingSession): void {
    super.admit(session);
    // The same primary attendee promoted from a replica is another device too: its promotion ends.
    const promoted = this.roster.get(session.attendeeId);
    if (promoted?.via) promoted.via.revokePromotion(promoted.session);
  }

  // ---- the session side (Conference) ----

  protected extraSeatsTaken(): number {
    return this.roster.promotedCount();
  }

  protected indexFor(session: SignalingSession): OutgoingFrame {
    const self = this.roster.get(session.attendeeId);
    return this.index({ self, mayPublish: sends(session.attendee.Capabilities.Video), countReceiver: !self });
  }

  liveData(now: number): ISdkDataMessagePayload[] {
    return this.data.live(now);
  }

  protected ownParticipant(session: SignalingSession): PrimaryParticipant | undefined {
    return this.roster.get(session.attendeeId);
  }

  protected async allocatePublication(session: SignalingSession, descriptors: ISdkStreamDescriptor[]): Promise<Publication | undefined> {
    const publisher = this.presenceOf(session);
    if (!sends((publisher?.attendee ?? session.attendee).Capabilities.Video)) return undefined;
    return this.allocateFor(publisher, descriptors);
  }

  protected subscribed(session: SignalingSession, publication: Publication | undefined, audioMuted: boolean): void {
    const participant = this.presenceOf(session) ?? this.markPresent(session, session.attendee, audioMuted);
    if (!samePublication(participant.publication, publication)) {
      participant.publication = publication;
      this.publicationsChanged();
    }
  }

  groupOf(streamId: number): number | undefined {
    return this.roster.groupOf(streamId);
  }

  protected participantMuted(session: SignalingSession, muted: boolean): void {
    const participant = this.presenceOf(session);
    if (participant) this.setParticipantMuted(participant, muted);
  }

  protected async postData(session: SignalingSession, media: SessionMedia, messages: ISdkDataMessagePayload[], now: number): Promise<PostedData> {
    const sender = this.roster.get(session.attendeeId) ?? { attendeeId: session.attendeeId, externalUserId: session.externalUserId };
    return this.post(sender, session, messages, media.dataAllowance, now);
  }

  bitrates() {
    return this.roster.bitrates((streamId) => this.room.bitrateOf(streamId));
  }

  bitrateOf(streamId: number): number {
    return this.room.bitrateOf(streamId);
  }

  protected mediaPresence(session: SignalingSession, joined: boolean): void {
    // Idle deletion counts the primary's connections and promotions.
    if (joined) this.context.connections.attendeeConnected(this.meetingId, session.attendeeId);
    else this.context.connections.attendeeDisconnected(this.meetingId, session.attendeeId);
  }

  protected sessionLeaving(session: SignalingSession, dropped: boolean): void {
    const participant = this.roster.get(session.attendeeId);
    if (!participant || participant.via || this.hasSession(participant.session)) return;
    // Pushed out by a new connection of the same attendee, it stays present until that one is: clients learn of
    // the new audio stream before the old one's removal, and show no leave and join. Otherwise it goes now.
    if ([...this.sessions].some((other) => other.attendeeId === session.attendeeId)) this.awaitSuccessor(participant);
    else this.removeParticipant(participant, dropped);
  }

  protected isIdle(): boolean {
    return this.sessions.size === 0 && this.roster.promotedCount() === 0 && this.replicas.size === 0 && this.pendingReplicas === 0;
  }

  override removeAttendee(attendeeId: string, audioStatus: number): void {
    super.removeAttendee(attendeeId, audioStatus);
    for (const participant of [...this.roster.all()]) {
      // A deleted primary attendee's promotion ends: the client is told it was demoted.
      if (participant.via && participant.attendee.AttendeeId === attendeeId) participant.via.revokePromotion(participant.session);
    }
  }

  override updateCapabilities(attendee: AttendeeRecord): void {
    const promoted = this.roster.get(attendee.AttendeeId);
    if (promoted?.via) {
      promoted.attendee = attendee;
      if (promoted.publication && !sends(attendee.Capabilities.Video)) {
        promoted.publication = undefined;
        promoted.via.stopPublishing(promoted.session);
        this.replicas.get(promoted.via)?.publishUp(this.roster.streamsVia(promoted.via));
        this.publicationsChanged();
      }
    }
    super.updateCapabilities(attendee);
  }

  protected override capabilitiesChanged(session: SignalingSession, attendee: AttendeeRecord): boolean {
    const participant = this.roster.get(session.attendeeId);
    if (!participant) return false;
    participant.attendee = attendee;
    if (!participant.publication || sends(attendee.Capabilities.Video)) return false;
    participant.publication = undefined;
    this.publicationsChanged();
    return true;
  }

  override close(): void {
    if (this.closed) return;
    clearInterval(this.metadataTimer);
    clearTimeout(this.indexTimer);
    for (const participant of this.roster.all()) clearTimeout(participant.successorWait);
    const presence = this.roster.presence();
    const links = [...this.replicas];
    this.replicas.clear(); // first: a closing link's event then finds nothing to remove
    for (const [replica, link] of links) {
      link.close();
      replica.primaryEnded(presence);
    }
    super.close();
  }

  override linkedReplicaIds(): string[] {
    return [...this.replicas.keys()].map((replica) => replica.meetingId);
  }

  replicaLinks(): ReplicaLink[] {
    return [...this.replicas.values()];
  }

  // ---- the replicas' side (PrimaryHandle) ----

  async attachReplica(replica: ReplicaView): Promise<boolean> {
    if (this.closed) return false;
    // Counted while the pipe opens, so this conference isn't closed under a replica about to hang on it.
    this.pendingReplicas++;
    let link: ReplicaLink;
    try {
      link = await ReplicaLink.open(this.room, this.context.pipeAddress, () => replica.openPipeEnd());
    } catch (error) {
      this.pendingReplicas--;
      this.closeIfIdle();
      throw error;
    }
    this.pendingReplicas--;
    if (this.closed) {
      link.close();
      return false;
    }
    this.replicas.set(replica, link);
    // A link closes on its own when a room at either end closes or its worker dies: the replica no longer holds
    // this conference (it ends too, or links again when its clients reconnect).
    link.once('closed', () => {
      if (this.replicas.get(replica) !== link) return;
      this.replicas.delete(replica);
      this.closeIfIdle();
    });
    link.setPrimaryStreams(this.roster.streams(replica));
    return true;
  }

  detachReplica(replica: ReplicaView): void {
    const link = this.replicas.get(replica);
    this.replicas.delete(replica);
    link?.close();
    this.closeIfIdle();
  }

  presence(): PresenceInfo[] {
    return this.roster.presence();
  }

  participants(): PrimaryParticipant[] {
    return [...this.roster.all()];
  }

  index(request: IndexRequest): OutgoingFrame {
    return this.roster.index(request, (streamId) => this.room.bitrateOf(streamId));
  }

  async promote(replica: ReplicaView, session: SessionRef, attendee: AttendeeRecord): Promise<Promotion | PromotionRefusal> {
    if (this.closed) return { status: 503, description: 'the primary meeting is not available' };
    const cap = this.context.meetings.attendeeCapOf(this.meeting.MeetingFeatures);
    if (this.roster.seatsTaken() >= cap) return { status: 409, description: 'the primary meeting is at capacity' };
    // The same primary attendee connected elsewhere is pushed out, as a second device would be.
    this.removeAttendee(attendee.AttendeeId, AudioStatus.JoinedFromAnotherDevice);
    const participant = this.markPresent(session, attendee, false, replica);
    this.replicas.get(replica)?.promote(session.attendeeId, attendee.AttendeeId);
    this.context.connections.attendeeConnected(this.meetingId, attendee.AttendeeId);
    this.context.meetings.activity.emit('attendeeJoined', this.meeting, attendee, false);
    return participant;
  }

  endPromotion(replica: ReplicaView, promotion: Promotion, dropped: boolean): void {
    const wasPresent = this.roster.get(promotion.attendeeId) === promotion;
    const link = this.replicas.get(replica);
    link?.demote(promotion.session.attendeeId);
    this.removeParticipant(promotion, dropped);
    if (promotion.publication) link?.publishUp(this.roster.streamsVia(replica));
    this.context.connections.attendeeDisconnected(this.meetingId, promotion.attendeeId);
    if (wasPresent) this.context.meetings.activity.emit('attendeeLeft', this.meeting, promotion.attendee, false, dropped);
  }

  async allocatePromotedVideo(promotion: Promotion, descriptors: ISdkStreamDescriptor[]): Promise<Publication | undefined> {
    return this.allocateFor(promotion, descriptors);
  }

  publishPromoted(replica: ReplicaView, promotion: Promotion, publication: Publication | undefined): void {
    if (samePublication(promotion.publication, publication)) return;
    promotion.publication = publication;
    this.replicas.get(replica)?.publishUp(this.roster.streamsVia(replica));
    this.publicationsChanged();
  }

  mutePromoted(promotion: Promotion, muted: boolean): void {
    this.setParticipantMuted(promotion, muted);
  }

  async postPromotedData(promotion: Promotion, session: SessionRef, messages: ISdkDataMessagePayload[], allowance: DataAllowance, now: number): Promise<PostedData> {
    return this.post(promotion, session, messages, allowance, now);
  }

  // ---- the roster ----

  /** Whether `session` is one of this meeting's own connections (not a promoted viewer). */
  private hasSession(session: SessionRef): boolean {
    return (this.sessions as ReadonlySet<SessionRef>).has(session);
  }

  /** The participant a direct session is present as; not the one of a connection it replaced. */
  private presenceOf(session: SignalingSession): PrimaryParticipant | undefined {
    const participant = this.roster.get(session.attendeeId);
    return participant?.session === session ? participant : undefined;
  }

  private markPresent(session: SessionRef, attendee: AttendeeRecord, muted: boolean, via?: ReplicaView): PrimaryParticipant {
    const { participant, replaced } = this.roster.add(session, attendee, muted, via);
    if (!via) this.sendRoster(session as SignalingSession, this.roster.presence());
    this.broadcast({ type: FrameType.AUDIO_STREAM_ID_INFO, audioStreamIdInfo: { streams: [presenceInfo(participant)] } }, via ? undefined : session);
    // A replaced connection's stream goes after the new one is announced (its roster never had it).
    if (replaced) this.announceRemoval(replaced, false, session);
    this.presenceChanged();
    return participant;
  }

  /** A connection pushed out by a new one of the same attendee: present (without video) until that one is. */
  private awaitSuccessor(participant: PrimaryParticipant): void {
    if (participant.successorWait) return;
    participant.successorWait = setTimeout(() => this.removeParticipant(participant), SUCCESSOR_WAIT_MS);
    participant.successorWait.unref();
    if (participant.publication) {
      participant.publication = undefined;
      this.publicationsChanged();
    }
  }

  private removeParticipant(participant: PrimaryParticipant, dropped = false): void {
    if (!this.roster.remove(participant)) return;
    this.announceRemoval(participant, dropped);
    this.presenceChanged();
  }

  private announceRemoval(participant: PrimaryParticipant, dropped: boolean, except?: SessionRef): void {
    clearTimeout(participant.successorWait);
    // A removal is an entry with only the stream id; `dropped` tells clients the connection failed (no LEAVE).
    const removal = { audioStreamId: participant.audioStreamId, ...(dropped ? { dropped } : {}) };
    this.broadcast({ type: FrameType.AUDIO_STREAM_ID_INFO, audioStreamIdInfo: { streams: [removal] } }, except);
    if (participant.publication) this.publicationsChanged();
  }

  private setParticipantMuted(participant: PrimaryParticipant, muted: boolean): void {
    if (participant.muted === muted) return;
    participant.muted = muted;
    this.broadcast({ type: FrameType.AUDIO_STREAM_ID_INFO, audioStreamIdInfo: { streams: [{ audioStreamId: participant.audioStreamId, muted }] } });
  }

  // ---- publications and data ----

  private allocateFor(publisher: PrimaryParticipant | undefined, descriptors: ISdkStreamDescriptor[]): Publication | undefined {
    const previous = publisher?.publication;
    if (!previous && this.roster.publishingCount() >= MAX_VIDEO_SOURCES) return undefined;
    return this.streams.allocate(previous, descriptors);
  }

  /** Publications changed: every client's index, and every replica's pipe, follow. */
  private publicationsChanged(): void {
    for (const [replica, link] of this.replicas) link.setPrimaryStreams(this.roster.streams(replica));
    this.indexChanged();
    this.reportPublishers();
  }

  /** Video started and stopped, as the meeting lifecycle events say it: who publishes now against who did. */
  private reportPublishers(): void {
    const activity = this.context.meetings.activity;
    const publishing = new Map<string, PrimaryParticipant>();
    for (const participant of this.roster.all()) if (participant.publication) publishing.set(participant.attendeeId, participant);
    for (const [attendeeId, participant] of this.reportedPublishers) {
      if (!publishing.has(attendeeId)) activity.emit('videoStopped', this.meeting, participant.attendee, participant.session.content);
    }
    for (const [attendeeId, participant] of publishing) {
      if (!this.reportedPublishers.has(attendeeId)) activity.emit('videoStarted', this.meeting, participant.attendee, participant.session.content);
    }
    this.reportedPublishers = publishing;
  }

  private post(sender: DataSender, session: SessionRef, messages: ISdkDataMessagePayload[], allowance: DataAllowance, now: number): PostedData {
    const posted = this.data.post(messages, sender, allowance, now);
    if (posted.delivered.length > 0) this.broadcast({ type: FrameType.DATA_MESSAGE, dataMessage: { messages: posted.delivered } }, session);
    return posted;
  }

  // ---- what clients are sent ----

  /**
   * Someone became present or left: INDEX follows with the new num_participants, by which clients turn simulcast
   * on or off; changes within a second go out together.
   */
  private presenceChanged(): void {
    if (this.indexTimer || this.closed) return;
    const wait = Math.max(0, this.indexSentAt + PARTICIPANTS_INDEX_INTERVAL_MS - this.context.clock.now());
    this.indexTimer = setTimeout(() => {
      this.indexTimer = undefined;
      if (this.roster.size !== this.indexedParticipants) this.indexChanged();
    }, wait);
    this.indexTimer.unref();
  }

  /** Every client's INDEX, here and in every replica. */
  private indexChanged(): void {
    clearTimeout(this.indexTimer);
    this.indexTimer = undefined;
    this.indexSentAt = this.context.clock.now();
    this.indexedParticipants = this.roster.size;
    this.broadcastIndex();
    for (const replica of this.replicas.keys()) replica.refreshIndex();
  }

  /** To this meeting's clients and every replica's viewers. */
  private broadcast(frame: OutgoingFrame, except?: SessionRef): void {
    // Presence and volumes wait for the session's full roster: a reconnected client takes its first
    // AUDIO_STREAM_ID_INFO as the whole roster (and drops everyone else).
    const needsRoster = frame.type === FrameType.AUDIO_STREAM_ID_INFO || frame.type === FrameType.AUDIO_METADATA;
    for (const session of this.sessions) {
      if (session !== except && session.state === 'joined' && (session.rosterSent || !needsRoster)) session.send(frame);
    }
    for (const replica of this.replicas.keys()) replica.relay(frame, except);
  }

  private sendAudioMetadata(): void {
    if (this.roster.size === 0) return;
    const levels = this.room.audioLevels();
    const attendeeStates = [];
    const talkers = new Set<PrimaryParticipant>();
    for (const participant of this.roster.all()) {
      const level = levels.get(participant.attendeeId);
      if (level === undefined || participant.muted) continue;
      attendeeStates.push({ audioStreamId: participant.audioStreamId, volume: level, signalStrength: SIGNAL_STRENGTH });
      talkers.add(participant);
    }
    // The client changes volumes only when a frame lists someone, and then takes everyone unlisted as silent. Who
    // stopped talking is listed once as silent, or the last talker's volume would stay; the frame stays small.
    for (const participant of this.listedTalkers) {
      if (talkers.has(participant) || participant.muted || this.roster.get(participant.attendeeId) !== participant) continue;
      attendeeStates.push({ audioStreamId: participant.audioStreamId, volume: SILENT_VOLUME, signalStrength: SIGNAL_STRENGTH });
    }
    this.listedTalkers = talkers;
    this.broadcast({ type: FrameType.AUDIO_METADATA, audioMetadata: { attendeeStates } });
  }
}
