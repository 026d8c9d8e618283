import { EventEmitter } from 'node:events';
import type { ISdkStreamDescriptor } from 'amazon-chime-sdk-js/build/signalingprotocol/SignalingProtocol.js';
import type { Logger } from 'pino';
import type { MeetingService } from '../meetings/service.ts';
import type { ReplicaPipeEndHandleEvents } from '../media/worker/pipe-end-handles.ts';
import type { CloseCause } from '../media/worker/handle-close.ts';
import type { PipeKeysWire, PipeStats, StreamRef } from '../media/worker/protocol.ts';
import type { OpenedReplicaEnd, ReplicaPipeEnd } from '../replication/replica-link.ts';
import { DataAllowance } from '../signaling/data-messages.ts';
import { FrameType, type OutgoingFrame } from '../signaling/frames.ts';
import type { LocalPrimary, Promotion, ReplicaView } from '../signaling/primary-handle.ts';
import { presenceInfo, type PresenceInfo, type SessionRef } from '../signaling/roster.ts';
import type { Clock } from '../util/clock.ts';
import type { BridgeChannel } from './channel.ts';
import { openPipeReply, pipeStatsReply, type ParticipantState, type ToPrimary, type ToReplica } from './messages.ts';
import { bytesToWire, dataFromWire, dataToWire, frameToWire } from './wire.ts';

/** How often the primary's bitrates go to a replica on another node (its clients get BITRATES every 2 s). */
const BITRATES_INTERVAL_MS = 2_000;

/** What the primary's side of a bridge needs of its node. */
export interface PrimaryNode {
  meetings: MeetingService;
  clock: Clock;
  /** This node's conference of the primary meeting, created if nobody is connected to it yet. */
  openPrimary(meetingId: string): Promise<LocalPrimary | undefined>;
}

/** A promoted viewer of the replica, as the primary knows it: by the number its node gave it. */
interface Viewer extends SessionRef {
  readonly number: number;
  readonly allowance: DataAllowance;
  promotion: Promotion;
}

/**
 * A replica on another node, as its primary sees it (the ReplicaView of one bridge): it answers the replica
 * node's requests against the local primary, and sends it what the primary relays, with the primary's state
 * ahead of every frame that depends on it.
 */
export class RemoteReplica implements ReplicaView {
  private primary: LocalPrimary | undefined;
  private readonly viewers = new Map<number, Viewer>();
  /** The primary names promoted viewers by the stand-ins it was given; each maps back to its number. */
  private readonly standIns = new Map<SessionRef, number>();
  private readonly pipes = new Map<string, RemoteReplicaPipeEnd>();
  private readonly bitratesTimer: NodeJS.Timeout;
  private ended = false;

  constructor(
    readonly meetingId: string,
    private readonly primaryMeetingId: string,
    private readonly channel: BridgeChannel<ToPrimary, ToReplica>,
    private readonly node: PrimaryNode,
    private readonly log: Logger,
  ) {
    channel.serve((message) => this.answer(message));
    channel.on('message', (message) => this.handle(message));
    channel.once('closed', (reason) => this.bridgeClosed(reason));
    this.bitratesTimer = setInterval(() => this.sendBitrates(), BITRATES_INTERVAL_MS);
    this.bitratesTimer.unref();
  }

  // ---- the replica node's requests ----

  private async answer(message: ToPrimary): Promise<unknown> {
    switch (message.t) {
      case 'attach':
        return this.attach();
      case 'promote':
        return this.promote(message.viewer, message.viewerAttendeeId, message.joinToken);
      case 'allocateVideo': {
        const viewer = this.viewers.get(message.viewer);
        if (!viewer || !this.primary) return { publication: undefined };
        return { publication: await this.primary.allocatePromotedVideo(viewer.promotion, message.descriptors as ISdkStreamDescriptor[]) };
      }
      case 'postData':
        return this.postData(message.viewer, message.messages);
      default:
        throw new Error(`${message.t} is not a request`);
    }
  }

  private async attach(): Promise<unknown> {
    const primary = await this.node.openPrimary(this.primaryMeetingId);
    const refused = { ok: false, participants: [], bitrates: [], data: [] };
    if (!primary || this.ended || !(await primary.attachReplica(this))) return refused;
    if (this.ended) {
      primary.detachReplica(this);
      return refused;
    }
    this.primary = primary;
    return { ok: true, participants: this.participantStates(), bitrates: this.bitrates(), data: primary.liveData(this.node.clock.now()).map(dataToWire) };
  }

  private async promote(number: number, viewerAttendeeId: string, joinToken: string): Promise<unknown> {
    // The primary's node checks the credentials itself: the replica's node only vouches for its viewer.
    const attendee = await this.node.meetings.attendeeForJoinToken(joinToken);
    if (!attendee || attendee.MeetingId !== this.primaryMeetingId) {
      return { refusal: { status: 403, description: 'the credentials are not those of an attendee of the primary meeting' } };
    }
    const primary = this.primary;
    if (!primary || this.viewers.has(number)) return { refusal: { status: primary ? 409 : 503, description: primary ? 'already promoted to the primary meeting' : 'the primary meeting is not available' } };
    const standIn = { attendeeId: viewerAttendeeId, content: false };
    const promotion = await primary.promote(this, standIn, attendee);
    if ('status' in promotion) return { refusal: promotion };
    this.viewers.set(number, { ...standIn, number, allowance: new DataAllowance(this.node.clock.now()), promotion });
    this.standIns.set(promotion.session, number);
    return { participant: presenceInfo(promotion) };
  }

  private async postData(number: number, messages: string[]): Promise<unknown> {
    const viewer = this.viewers.get(number);
    if (!viewer || !this.primary) return { refused: messages };
    const payloads = messages.map(dataFromWire);
    const posted = await this.primary.postPromotedData(viewer.promotion, viewer.promotion.session, payloads, viewer.allowance, this.node.clock.now());
    return { refused: posted.refused.map(dataToWire) };
  }

  private handle(message: ToPrimary): void {
    const primary = this.primary;
    switch (message.t) {
      case 'detach':
        this.channel.close('detached');
        return;
      case 'endPromotion': {
        const viewer = this.viewers.get(message.viewer);
        if (!viewer) return;
        this.forget(viewer);
        primary?.endPromotion(this, viewer.promotion, message.dropped);
        return;
      }
      case 'publish': {
        const viewer = this.viewers.get(message.viewer);
        if (viewer && primary) primary.publishPromoted(this, viewer.promotion, message.publication);
        return;
      }
      case 'mute': {
        const viewer = this.viewers.get(message.viewer);
        if (viewer && primary) primary.mutePromoted(viewer.promotion, message.muted);
        return;
      }
      case 'pipeDemand':
        this.pipes.get(message.pipe)?.demandChanged(message.streamIds);
        return;
      case 'pipeClosed':
        this.pipes.get(message.pipe)?.closedByReplica();
        return;
      default:
        this.log.warn({ type: message.t }, 'a request came as a message; ignored');
    }
  }

  // ---- ReplicaView: what the primary asks of this replica ----

  async openPipeEnd(): Promise<OpenedReplicaEnd> {
    const { pipe, port, address } = openPipeReply.parse(await this.channel.request({ t: 'openPipe' }));
    const end = new RemoteReplicaPipeEnd(this.channel, pipe, port);
    this.pipes.set(pipe, end);
    end.once('closed', () => this.pipes.delete(pipe));
    return { end, address };
  }

  relay(frame: OutgoingFrame, except?: SessionRef): void {
    // Presence changes: the viewers who join next get their roster from the state sent first.
    if (frame.type === FrameType.AUDIO_STREAM_ID_INFO) this.sendState();
    const viewer = except ? this.standIns.get(except) : undefined;
    this.channel.send({ t: 'relay', frame: frameToWire(frame), ...(viewer !== undefined ? { except: viewer } : {}) });
  }

  refreshIndex(): void {
    this.sendState();
    this.channel.send({ t: 'refreshIndex' });
  }

  revokePromotion(session: SessionRef): void {
    const number = this.standIns.get(session);
    if (number !== undefined) this.channel.send({ t: 'revoke', viewer: number });
  }

  stopPublishing(session: SessionRef): void {
    const number = this.standIns.get(session);
    if (number !== undefined) this.channel.send({ t: 'stopPublishing', viewer: number });
  }

  primaryEnded(removed: PresenceInfo[]): void {
    this.primary = undefined;
    this.channel.send({ t: 'primaryEnded', removed });
    this.channel.close('the primary meeting ended');
  }

  // ---- state ----

  private participantStates(): ParticipantState[] {
    return (this.primary?.participants() ?? []).map((participant) => {
      const viewer = participant.via === this ? this.standIns.get(participant.session) : undefined;
      return {
        ...presenceInfo(participant),
        ...(participant.publication ? { publication: { groupId: participant.publication.groupId, layers: participant.publication.layers.map((layer) => ({ ...layer })) } } : {}),
        ...(viewer !== undefined ? { viewer, capabilities: { ...participant.attendee.Capabilities } } : {}),
      };
    });
  }

  private bitrates(): [number, number][] {
    const primary = this.primary;
    if (!primary) return [];
    return primary.bitrates().map(({ sourceStreamId, avgBitrateBps }) => [sourceStreamId, Math.max(0, Math.round(avgBitrateBps))]);
  }

  private sendState(): void {
    if (this.primary) this.channel.send({ t: 'state', participants: this.participantStates(), bitrates: this.bitrates() });
  }

  private sendBitrates(): void {
    const bitrates = this.bitrates();
    if (bitrates.length > 0) this.channel.send({ t: 'bitrates', bitrates });
  }

  private forget(viewer: Viewer): void {
    this.viewers.delete(viewer.number);
    this.standIns.delete(viewer.promotion.session);
  }

  /** The bridge closed (detached, the replica's node gone, or the primary ended): everything it held goes. */
  private bridgeClosed(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.bitratesTimer);
    const primary = this.primary;
    this.primary = undefined;
    this.log.info({ replicaMeetingId: this.meetingId, reason }, 'replica bridge closed');
    for (const viewer of [...this.viewers.values()]) {
      this.forget(viewer);
      primary?.endPromotion(this, viewer.promotion, true);
    }
    for (const pipe of [...this.pipes.values()]) pipe.closedByReplica();
    primary?.detachReplica(this);
  }
}

/**
 * The replica's end of a pipe when the replica's room is on another node: what the link asks of it goes over the
 * bridge to the real handle there, and its demand and closing come back.
 */
export class RemoteReplicaPipeEnd extends EventEmitter<ReplicaPipeEndHandleEvents> implements ReplicaPipeEnd {
  private closeCause: CloseCause | undefined;

  constructor(
    private readonly channel: BridgeChannel<ToPrimary, ToReplica>,
    readonly id: string,
    readonly port: number,
  ) {
    super();
  }

  get closed(): boolean {
    return this.closeCause !== undefined || this.channel.closed;
  }

  async connect(remote: { address: string; port: number }, keys: PipeKeysWire): Promise<void> {
    if (this.closed) throw new Error(`pipe end ${this.id} is closed`);
    const key = (k: { key: Uint8Array; salt: Uint8Array }) => ({ key: bytesToWire(k.key), salt: bytesToWire(k.salt) });
    await this.channel.request({ t: 'pipeConnect', pipe: this.id, remote, keys: { send: key(keys.send), receive: key(keys.receive) } });
  }

  setStreams(streams: StreamRef[]): void {
    if (!this.closed) this.channel.send({ t: 'pipeStreams', pipe: this.id, streams });
  }

  sendStreams(streamIds: number[]): void {
    if (!this.closed) this.channel.send({ t: 'pipeSend', pipe: this.id, streamIds });
  }

  promote(slot: number, attendeeId: string): void {
    if (!this.closed) this.channel.send({ t: 'pipePromote', pipe: this.id, slot, attendeeId });
  }

  demote(attendeeId: string): void {
    if (!this.closed) this.channel.send({ t: 'pipeDemote', pipe: this.id, attendeeId });
  }

  async stats(): Promise<PipeStats | undefined> {
    if (this.closed) return undefined;
    return (pipeStatsReply.parse(await this.channel.request({ t: 'pipeStats', pipe: this.id })) ?? undefined) as PipeStats | undefined;
  }

  close(): void {
    if (this.closeCause) return;
    if (!this.channel.closed) this.channel.send({ t: 'pipeClose', pipe: this.id });
    this.markClosed('closed');
  }

  demandChanged(streamIds: number[]): void {
    if (!this.closed) this.emit('demand', streamIds);
  }

  /** The far end closed (its room closed), or the bridge did. */
  closedByReplica(): void {
    this.markClosed('parentClosed');
  }

  private markClosed(cause: CloseCause): void {
    if (this.closeCause) return;
    this.closeCause = cause;
    this.emit('closed', cause);
  }
}
