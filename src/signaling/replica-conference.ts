import type { ISdkDataMessagePayload, ISdkMeetingSessionCredentials, ISdkStreamDescriptor } from 'amazon-chime-sdk-js/build/signalingprotocol/SignalingProtocol.js';
import type { PrimaryHandle, Promotion, ReplicaView } from './primary-handle.ts';
import { Conference } from './conference.ts';
import { refuseAll, type PostedData } from './data-messages.ts';
import { FrameType, type OutgoingFrame } from './frames.ts';
import type { Publication } from './publications.ts';
import type { OpenedReplicaEnd } from '../replication/replica-link.ts';
import type { PresenceInfo, SessionRef } from './roster.ts';
import { sends, type SessionMedia } from './session-media.ts';
import type { SignalingSession } from './session.ts';

/** The first wait before linking again to a primary out of reach, and the longest. */
const RELINK_FIRST_MS = 1_000;
const RELINK_LAST_MS = 30_000;

/**
 * A replica meeting: its viewers are shown its primary's state (roster, index, volumes, bitrates, data messages),
 * relayed by the primary, and nothing of any replica attendee, their own included. A viewer can be promoted into
 * the primary as one of its attendees while its connection stays here.
 */
export class ReplicaConference extends Conference implements ReplicaView {
  /** The primary whose state this conference shows, once its pipe is open. */
  private primary: PrimaryHandle | undefined;
  /** The current attempt to link (promotions wait for it). */
  private linking: Promise<void>;
  /** The next attempt, while the primary can't be reached; the wait doubles each time. */
  private relinkTimer: NodeJS.Timeout | undefined;
  private relinkDelayMs = RELINK_FIRST_MS;
  /** Viewers promoted into the primary, and as whom. */
  private readonly promotions = new Map<SignalingSession, Promotion>();
  /** Viewers whose promotion is being checked. */
  private readonly promoting = new Set<SignalingSession>();

  constructor(...args: ConstructorParameters<typeof Conference>) {
    super(...args);
    this.linking = this.link();
  }

  /** Links to the primary, and keeps trying while it can't be reached (its node restarting, a network fault). */
  private link(): Promise<void> {
    return this.linkToPrimary().then(
      (outcome) => {
        if (outcome === 'unavailable') this.scheduleRelink();
        else this.relinkDelayMs = RELINK_FIRST_MS;
      },
      (error: unknown) => {
        this.log.warn({ err: error }, 'could not link to the primary meeting');
        this.scheduleRelink();
      },
    );
  }

  private scheduleRelink(): void {
    if (this.closed || this.relinkTimer || this.primary) return;
    this.relinkTimer = setTimeout(() => {
      this.relinkTimer = undefined;
      if (!this.closed && !this.primary) this.linking = this.link();
    }, this.relinkDelayMs);
    this.relinkTimer.unref();
    this.relinkDelayMs = Math.min(RELINK_LAST_MS, this.relinkDelayMs * 2);
  }

  private async linkToPrimary(): Promise<'linked' | 'gone' | 'unavailable'> {
    if (!(await this.context.meetings.meeting(this.meeting.PrimaryMeetingId!))) return 'gone';
    const primary = await this.context.primaryFor(this.meeting.PrimaryMeetingId!, this.meetingId);
    if (!primary) return 'unavailable';
    if (this.closed) {
      primary.detachReplica(this);
      return 'gone';
    }
    if (!(await primary.attachReplica(this))) return 'unavailable';
    if (this.closed) {
      primary.detachReplica(this);
      return 'gone';
    }
    this.primary = primary;
    for (const session of this.sessions) {
      if (session.state !== 'joined') continue;
      session.send(this.indexFor(session));
      if (this.media.has(session)) this.sendRoster(session, primary.presence());
    }
    return 'linked';
  }

  // ---- the session side (Conference) ----

  protected extraSeatsTaken(): number {
    return 0;
  }

  protected indexFor(session: SignalingSession): OutgoingFrame {
    const self = this.promotions.get(session);
    // Replica viewers can't publish; a promoted one publishes as its primary attendee, within the primary's room.
    // A viewer is not a participant of the primary it sees (until promoted).
    const mayPublish = Boolean(self && sends(self.attendee.Capabilities.Video));
    if (!this.primary) return { type: FrameType.INDEX, index: { atCapacity: true, sources: [], numParticipants: 0 } };
    return this.primary.index({ self, mayPublish, countReceiver: false });
  }

  protected liveData(now: number): ISdkDataMessagePayload[] {
    return this.primary?.liveData(now) ?? [];
  }

  protected ownParticipant(): undefined {
    return undefined;
  }

  protected override promotionOf(session: SignalingSession): Promotion | undefined {
    return this.promotions.get(session);
  }

  protected async allocatePublication(session: SignalingSession, descriptors: ISdkStreamDescriptor[]): Promise<Publication | undefined> {
    // A viewer may only publish once promoted, and then as the primary attendee.
    const promotion = this.promotions.get(session);
    if (!promotion || !this.primary || !sends(promotion.attendee.Capabilities.Video)) return undefined;
    return this.primary.allocatePromotedVideo(promotion, descriptors);
  }

  protected subscribed(session: SignalingSession, publication: Publication | undefined): void {
    const promotion = this.promotions.get(session);
    if (!promotion) {
      if (!session.rosterSent) this.sendRoster(session, this.primary?.presence() ?? []);
      return;
    }
    this.primary?.publishPromoted(this, promotion, publication);
  }

  protected groupOf(streamId: number): number | undefined {
    return this.primary?.groupOf(streamId);
  }

  protected participantMuted(session: SignalingSession, muted: boolean): void {
    const promotion = this.promotions.get(session);
    if (promotion) this.primary?.mutePromoted(promotion, muted);
  }

  protected async postData(session: SignalingSession, media: SessionMedia, messages: ISdkDataMessagePayload[], now: number): Promise<PostedData> {
    const promotion = this.promotions.get(session);
    if (promotion && this.primary) return this.primary.postPromotedData(promotion, session, messages, media.dataAllowance, now);
    // A viewer's messages reach nobody: no one may learn of replica attendees. They come back refused.
    return { delivered: [], refused: refuseAll(messages, promotion ?? session) };
  }

  protected bitrates() {
    return this.primary?.bitrates() ?? [];
  }

  protected bitrateOf(streamId: number): number {
    return this.primary ? this.primary.bitrateOf(streamId) : this.room.bitrateOf(streamId);
  }

  protected mediaPresence(): void {
    // A replica lives as long as its primary: its connections don't count for idle deletion.
  }

  protected sessionLeaving(session: SignalingSession, dropped: boolean): void {
    this.demote(session, false, dropped);
  }

  protected isIdle(): boolean {
    return this.sessions.size === 0;
  }

  override close(): void {
    if (this.closed) return;
    clearTimeout(this.relinkTimer);
    const primary = this.primary;
    this.primary = undefined;
    primary?.detachReplica(this);
    super.close();
  }

  // ---- promotion ----

  override async primaryMeetingJoin(session: SignalingSession, credentials: ISdkMeetingSessionCredentials): Promise<void> {
    const refuse = (status: number, description: string) => {
      session.log.info({ status, description }, 'promotion refused');
      this.context.metrics?.promotionAnswered(status);
      session.send({ type: FrameType.PRIMARY_MEETING_JOIN_ACK, primaryMeetingJoinAck: {}, error: { status, description } });
    };
    if (!this.media.has(session)) return refuse(403, 'only an attendee of a replica meeting can join its primary meeting');
    if (this.promotions.has(session) || this.promoting.has(session)) return refuse(409, 'already promoted to the primary meeting');
    this.promoting.add(session);
    try {
      await this.promote(session, credentials, refuse);
    } finally {
      this.promoting.delete(session);
    }
  }

  private async promote(session: SignalingSession, credentials: ISdkMeetingSessionCredentials, refuse: (status: number, description: string) => void): Promise<void> {
    const token = credentials.joinToken ?? '';
    const attendee = token ? await this.context.meetings.attendeeForJoinToken(token) : undefined;
    if (!attendee || attendee.MeetingId !== this.meeting.PrimaryMeetingId || (credentials.attendeeId && credentials.attendeeId !== attendee.AttendeeId)) {
      return refuse(403, 'the credentials are not those of an attendee of the primary meeting');
    }
    await this.linking;
    const primary = this.primary;
    if (!primary || !this.media.has(session)) return refuse(503, 'the primary meeting is not available');
    const promotion = await primary.promote(this, session, attendee);
    if ('status' in promotion) return refuse(promotion.status, promotion.description);
    if (!this.media.has(session) || this.primary !== primary) {
      // The viewer left, or the primary ended, while the primary said yes.
      primary.endPromotion(this, promotion, true);
      return;
    }
    this.promotions.set(session, promotion);
    session.log.info({ primaryAttendeeId: attendee.AttendeeId }, 'promoted to the primary meeting');
    session.send({ type: FrameType.PRIMARY_MEETING_JOIN_ACK, primaryMeetingJoinAck: {} });
    this.context.metrics?.promotionAnswered('ok');
    session.send(this.indexFor(session));
  }

  override primaryMeetingLeave(session: SignalingSession): void {
    this.demote(session, false);
  }

  /** Ends a promotion; `tellClient` when the server decides it (the client demoting itself already knows). */
  private demote(session: SignalingSession, tellClient: boolean, dropped = false): void {
    const promotion = this.promotions.get(session);
    if (!promotion) return;
    this.promotions.delete(session);
    this.primary?.endPromotion(this, promotion, dropped);
    if (tellClient) session.send({ type: FrameType.PRIMARY_MEETING_LEAVE, primaryMeetingLeave: {} });
    session.log.info({ primaryAttendeeId: promotion.attendeeId }, 'demoted from the primary meeting');
    if (this.media.has(session)) session.send(this.indexFor(session));
  }

  // ---- the primary's side (ReplicaView) ----

  async openPipeEnd(): Promise<OpenedReplicaEnd> {
    return { end: await this.room.createReplicaPipeEnd(), address: this.context.pipeAddress };
  }

  relay(frame: OutgoingFrame, except?: SessionRef): void {
    for (const session of this.sessions) if (session !== except && session.state === 'joined' && session.rosterSent) session.send(frame);
  }

  refreshIndex(): void {
    this.broadcastIndex();
  }

  revokePromotion(session: SessionRef): void {
    const own = this.ownSession(session);
    if (own) this.demote(own, true);
  }

  stopPublishing(session: SessionRef): void {
    const own = this.ownSession(session);
    if (own) this.media.get(own)?.peer.unpublish();
  }

  /** The primary names viewers by the sessions it was given: this conference's own. */
  private ownSession(session: SessionRef): SignalingSession | undefined {
    return (this.sessions as ReadonlySet<SessionRef>).has(session) ? (session as SignalingSession) : undefined;
  }

  primaryEnded(removed: PresenceInfo[]): void {
    if (!this.primary) return;
    this.primary = undefined;
    // Promotions end with the primary; their clients are told, and may ask again if it comes back.
    for (const session of this.promotions.keys()) session.send({ type: FrameType.PRIMARY_MEETING_LEAVE, primaryMeetingLeave: {} });
    this.promotions.clear();
    const removals = removed.map((p) => ({ audioStreamId: p.audioStreamId }));
    for (const session of this.sessions) {
      if (removals.length > 0) session.send({ type: FrameType.AUDIO_STREAM_ID_INFO, audioStreamIdInfo: { streams: removals } });
      session.send(this.indexFor(session));
    }
    // A primary that was deleted takes this replica with it; one out of reach (its node gone, the bridge broken)
    // is linked again once it can be, and the viewers see it come back.
    this.scheduleRelink();
  }
}
