import type { ISdkDataMessagePayload, ISdkStreamDescriptor } from 'amazon-chime-sdk-js/build/signalingprotocol/SignalingProtocol.js';
import type { Logger } from 'pino';
import type { AttendeeRecord } from '../meetings/model.ts';
import type { ReplicaPipeEnd } from '../replication/replica-link.ts';
import type { DataAllowance, PostedData } from '../signaling/data-messages.ts';
import { FrameType, proto, type OutgoingFrame } from '../signaling/frames.ts';
import type { PrimaryHandle, Promotion, PromotionRefusal, ReplicaView } from '../signaling/primary-handle.ts';
import type { Publication } from '../signaling/publications.ts';
import { groupIn, indexFrame, publishedBitrates, type IndexRequest, type PresenceInfo, type SessionRef } from '../signaling/roster.ts';
import type { Clock } from '../util/clock.ts';
import type { BridgeChannel } from './channel.ts';
import { allocateReply, attachedReply, postDataReply, promoteReply, type ParticipantState, type ToPrimary, type ToReplica } from './messages.ts';
import { bytesFromWire, dataFromWire, dataToWire, frameFromWire } from './wire.ts';

const UNAVAILABLE: PromotionRefusal = { status: 503, description: 'the primary meeting is not available' };
/** Data messages kept for viewers who join later, as the primary keeps them. */
const MAX_LIVE_DATA = 1024;

/**
 * A primary on another node, as a replica here sees it: one bridge per replica. Queries are answered from a copy of
 * the primary's participants, bitrates and live data messages, which its node keeps up to date ahead of the frames
 * that depend on it; requests of promoted viewers go over the bridge. It also holds the replica room's pipe end,
 * which the primary's node drives from its side.
 */
export class RemotePrimary implements PrimaryHandle {
  private replica: ReplicaView | undefined;
  private participants: ParticipantState[] = [];
  private bitrateByStream = new Map<number, number>();
  private data: { payload: ISdkDataMessagePayload; expiresAt: number }[] = [];
  /** Promoted viewers by the number they have on the bridge, and back. */
  private readonly viewerNumbers = new Map<SessionRef, number>();
  private readonly viewerSessions = new Map<number, SessionRef>();
  /** This replica's promotions, by viewer number: their capabilities follow the primary's. */
  private readonly promotions = new Map<number, Promotion>();
  private nextViewer = 1;
  private readonly pipes = new Map<string, ReplicaPipeEnd>();
  private ended = false;

  constructor(
    readonly meetingId: string,
    private readonly channel: BridgeChannel<ToReplica, ToPrimary>,
    /** Where the primary's node reaches this node's media workers. */
    private readonly mediaAddress: string,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    channel.serve((message) => this.answer(message));
    channel.on('message', (message) => this.handle(message));
    channel.once('closed', (reason) => this.bridgeClosed(reason));
  }

  // ---- PrimaryHandle: the replica's side ----

  async attachReplica(replica: ReplicaView): Promise<boolean> {
    // Set first: the primary's node opens the pipe (asks for this replica's end) before it answers.
    this.replica = replica;
    let attached;
    try {
      attached = attachedReply.parse(await this.channel.request({ t: 'attach' }));
    } catch (error) {
      this.log.warn({ err: error }, 'the primary node did not attach this replica');
      this.detachReplica(replica);
      return false;
    }
    if (!attached.ok) {
      this.detachReplica(replica);
      return false;
    }
    this.participants = attached.participants;
    this.setBitrates(attached.bitrates);
    for (const wire of attached.data) this.keepData(dataFromWire(wire));
    return true;
  }

  detachReplica(_replica: ReplicaView): void {
    this.replica = undefined;
    for (const pipe of this.pipes.values()) pipe.close();
    this.pipes.clear();
    if (!this.channel.closed) {
      this.channel.send({ t: 'detach' });
      this.channel.close('detached');
    }
  }

  presence(): PresenceInfo[] {
    return this.participants.map(({ audioStreamId, attendeeId, externalUserId, muted }) => ({ audioStreamId, attendeeId, externalUserId, muted }));
  }

  index(request: IndexRequest): OutgoingFrame {
    const self = request.self ? this.participants.find((p) => p.attendeeId === request.self!.attendeeId) : undefined;
    return indexFrame(this.participants, { ...request, self }, (streamId) => this.bitrateOf(streamId));
  }

  bitrates(): { sourceStreamId: number; avgBitrateBps: number }[] {
    return publishedBitrates(this.participants, (streamId) => this.bitrateOf(streamId));
  }

  bitrateOf(streamId: number): number {
    return this.bitrateByStream.get(streamId) ?? 0;
  }

  groupOf(streamId: number): number | undefined {
    return groupIn(this.participants, streamId);
  }

  liveData(now: number): ISdkDataMessagePayload[] {
    this.data = this.data.filter((entry) => entry.expiresAt > now);
    return this.data.map((entry) => entry.payload);
  }

  async promote(replica: ReplicaView, session: SessionRef, attendee: AttendeeRecord): Promise<Promotion | PromotionRefusal> {
    if (this.ended || this.viewerNumbers.has(session)) return UNAVAILABLE;
    const number = this.nextViewer++;
    this.viewerNumbers.set(session, number);
    this.viewerSessions.set(number, session);
    let reply;
    try {
      reply = promoteReply.parse(await this.channel.request({ t: 'promote', viewer: number, viewerAttendeeId: session.attendeeId, joinToken: attendee.JoinToken }));
    } catch (error) {
      this.log.warn({ err: error }, 'promotion could not be asked of the primary node');
      reply = { refusal: UNAVAILABLE };
    }
    if ('refusal' in reply) {
      this.forgetViewer(session);
      return reply.refusal;
    }
    const promotion: Promotion = { ...reply.participant, attendee, session, via: replica };
    this.promotions.set(number, promotion);
    return promotion;
  }

  endPromotion(_replica: ReplicaView, promotion: Promotion, dropped: boolean): void {
    const number = this.viewerNumbers.get(promotion.session);
    if (number === undefined) return;
    this.forgetViewer(promotion.session);
    this.channel.send({ t: 'endPromotion', viewer: number, dropped });
  }

  async allocatePromotedVideo(promotion: Promotion, descriptors: ISdkStreamDescriptor[]): Promise<Publication | undefined> {
    const number = this.viewerNumbers.get(promotion.session);
    if (number === undefined) return undefined;
    // Plain values for the wire: enums as numbers (a decoded frame's toJSON would give their names).
    const plain = descriptors.map((descriptor) => proto.SdkStreamDescriptor.toObject(proto.SdkStreamDescriptor.fromObject(descriptor), { enums: Number, longs: Number }));
    const { publication } = allocateReply.parse(await this.channel.request({ t: 'allocateVideo', viewer: number, descriptors: plain }));
    return publication;
  }

  publishPromoted(_replica: ReplicaView, promotion: Promotion, publication: Publication | undefined): void {
    const number = this.viewerNumbers.get(promotion.session);
    promotion.publication = publication;
    if (number !== undefined) this.channel.send({ t: 'publish', viewer: number, ...(publication ? { publication } : {}) });
  }

  mutePromoted(promotion: Promotion, muted: boolean): void {
    const number = this.viewerNumbers.get(promotion.session);
    promotion.muted = muted;
    if (number !== undefined) this.channel.send({ t: 'mute', viewer: number, muted });
  }

  async postPromotedData(promotion: Promotion, _session: SessionRef, messages: ISdkDataMessagePayload[], _allowance: DataAllowance, _now: number): Promise<PostedData> {
    // The primary's node checks each message and the viewer's allowance there, as for its own clients.
    const number = this.viewerNumbers.get(promotion.session);
    if (number === undefined) return { delivered: [], refused: [] };
    const { refused } = postDataReply.parse(await this.channel.request({ t: 'postData', viewer: number, messages: messages.map(dataToWire) }));
    return { delivered: [], refused: refused.map(dataFromWire) };
  }

  // ---- what the primary's node asks and tells ----

  private async answer(message: ToReplica): Promise<unknown> {
    switch (message.t) {
      case 'openPipe': {
        if (!this.replica) throw new Error('no replica is attached');
        const { end } = await this.replica.openPipeEnd();
        const pipe = crypto.randomUUID();
        this.pipes.set(pipe, end);
        end.on('demand', (streamIds) => this.channel.send({ t: 'pipeDemand', pipe, streamIds }));
        end.once('closed', () => {
          if (this.pipes.delete(pipe)) this.channel.send({ t: 'pipeClosed', pipe });
        });
        return { pipe, port: end.port, address: this.mediaAddress };
      }
      case 'pipeConnect': {
        const end = this.pipe(message.pipe);
        const key = (k: { key: string; salt: string }) => ({ key: bytesFromWire(k.key), salt: bytesFromWire(k.salt) });
        await end.connect(message.remote, { send: key(message.keys.send), receive: key(message.keys.receive) });
        return {};
      }
      case 'pipeStats':
        return (await this.pipes.get(message.pipe)?.stats()) ?? null;
      default:
        throw new Error(`${message.t} is not a request`);
    }
  }

  private handle(message: ToReplica): void {
    const replica = this.replica;
    switch (message.t) {
      case 'state':
        this.participants = message.participants;
        this.setBitrates(message.bitrates);
        for (const participant of message.participants) {
          const promotion = participant.viewer === undefined ? undefined : this.promotions.get(participant.viewer);
          // UpdateAttendeeCapabilities on the primary attendee: what this viewer may do follows.
          if (promotion && participant.capabilities) promotion.attendee = { ...promotion.attendee, Capabilities: participant.capabilities };
        }
        return;
      case 'bitrates':
        this.setBitrates(message.bitrates);
        return;
      case 'relay': {
        let frame: OutgoingFrame;
        try {
          frame = frameFromWire(message.frame);
        } catch (error) {
          this.log.warn({ err: error }, 'unreadable frame from the primary node; dropped');
          return;
        }
        if (frame.type === FrameType.DATA_MESSAGE) for (const payload of frame.dataMessage?.messages ?? []) this.keepData(payload);
        replica?.relay(frame, message.except === undefined ? undefined : this.viewerSessions.get(message.except));
        return;
      }
      case 'refreshIndex':
        replica?.refreshIndex();
        return;
      case 'revoke': {
        const session = this.viewerSessions.get(message.viewer);
        if (session) replica?.revokePromotion(session);
        return;
      }
      case 'stopPublishing': {
        const session = this.viewerSessions.get(message.viewer);
        if (session) replica?.stopPublishing(session);
        return;
      }
      case 'primaryEnded':
        this.end(message.removed);
        return;
      case 'pipeStreams':
        this.pipes.get(message.pipe)?.setStreams(message.streams);
        return;
      case 'pipeSend':
        this.pipes.get(message.pipe)?.sendStreams(message.streamIds);
        return;
      case 'pipePromote':
        this.pipes.get(message.pipe)?.promote(message.slot, message.attendeeId);
        return;
      case 'pipeDemote':
        this.pipes.get(message.pipe)?.demote(message.attendeeId);
        return;
      case 'pipeClose': {
        const end = this.pipes.get(message.pipe);
        this.pipes.delete(message.pipe);
        end?.close();
        return;
      }
      default:
        this.log.warn({ type: message.t }, 'a request came as a message; ignored');
    }
  }

  private pipe(id: string): ReplicaPipeEnd {
    const end = this.pipes.get(id);
    if (!end) throw new Error(`no pipe end ${id}`);
    return end;
  }

  private setBitrates(bitrates: [number, number][]): void {
    this.bitrateByStream = new Map(bitrates);
  }

  private keepData(payload: ISdkDataMessagePayload): void {
    const lifetimeMs = Number(payload.lifetimeMs ?? 0);
    if (lifetimeMs <= 0) return;
    // Expiry as the primary counts it: from the message's ingest time.
    const ingestMs = Number(payload.ingestTimeNs ?? 0) / 1e6 || this.clock.now();
    if (this.data.length >= MAX_LIVE_DATA) this.data.shift();
    this.data.push({ payload, expiresAt: ingestMs + lifetimeMs });
  }

  private forgetViewer(session: SessionRef): void {
    const number = this.viewerNumbers.get(session);
    this.viewerNumbers.delete(session);
    if (number === undefined) return;
    this.viewerSessions.delete(number);
    this.promotions.delete(number);
  }

  /** The primary ended, or its node can no longer be reached: the viewers see an empty meeting. */
  private end(removed: PresenceInfo[]): void {
    if (this.ended) return;
    this.ended = true;
    const replica = this.replica;
    this.replica = undefined;
    for (const pipe of this.pipes.values()) pipe.close();
    this.pipes.clear();
    this.viewerNumbers.clear();
    this.viewerSessions.clear();
    this.promotions.clear();
    this.participants = [];
    replica?.primaryEnded(removed);
    this.channel.close('the primary meeting ended');
  }

  private bridgeClosed(reason: string): void {
    if (this.ended) return;
    this.log.warn({ primaryMeetingId: this.meetingId, reason }, 'bridge to the primary node closed');
    this.end(this.presence());
  }
}
