import { EventEmitter } from 'node:events';
import type { MidSubscription, NegotiationInput, NegotiationResult, SubscriptionUpdate } from '../sfu/peer.ts';
import type { CloseCause } from './handle-close.ts';
import type { PeerStats, WorkerChannel } from './protocol.ts';

export interface PeerHandleEvents {
  /** The attendee's WebRTC transport connected (ICE and DTLS done) or lost its connection. */
  connectionChange: [connected: boolean];
  /** The attendee's client sent nothing for 10–15 s after it had sent something: it is gone. */
  silent: [];
  closed: [cause: CloseCause];
}

export interface PeerCapabilities {
  sendAudio: boolean;
  receiveAudio: boolean;
  receiveVideo: boolean;
}

/**
 * The main thread's handle on one attendee's MediaPeer in a worker, made by its RoomHandle.
 * Calls go to the worker in order; the connection state and downlink estimate come back on
 * their own. Once closed, calls that answer fail and the others do nothing.
 */
export class PeerHandle extends EventEmitter<PeerHandleEvents> {
  private isConnected = false;
  private downlinkBps = 0;
  private closeCause: CloseCause | undefined;

  constructor(
    private readonly worker: WorkerChannel,
    readonly id: string,
    readonly attendeeId: string,
  ) {
    super();
  }

  get connected(): boolean {
    return this.isConnected;
  }

  get closed(): boolean {
    return this.closeCause !== undefined;
  }

  negotiate(input: NegotiationInput): Promise<NegotiationResult> {
    if (this.closeCause) return Promise.reject(this.closedError());
    return this.worker.call('negotiate', this.id, input);
  }

  /**
   * REMOTE_VIDEO_UPDATE without replaying an offer: each `set` entry moves a receive m-line (by
   * mid) to another stream of the source it carries, continuing at that stream's next key frame
   * with the same SSRC and unbroken numbering; each `remove` mid stops. Sets apply before
   * removals. Ignored: mids that carry nothing now (a new m-line takes a SUBSCRIBE) and streams
   * the room doesn't have or of another source. Answers what every receive m-line carries now.
   */
  updateSubscriptions(update: SubscriptionUpdate): Promise<MidSubscription[]> {
    if (this.closeCause) return Promise.reject(this.closedError());
    return this.worker.call('updateSubscriptions', this.id, update);
  }

  setMuted(muted: boolean): void {
    if (!this.closeCause) this.worker.fire('setMuted', this.id, muted);
  }

  setPaused(streamIds: number[], paused: boolean): void {
    if (!this.closeCause) this.worker.fire('setPaused', this.id, streamIds, paused);
  }

  applyCapabilities(capabilities: PeerCapabilities): void {
    if (!this.closeCause) this.worker.fire('applyCapabilities', this.id, capabilities);
  }

  unpublish(): void {
    if (!this.closeCause) this.worker.fire('unpublish', this.id);
  }

  /** The receiver's latest REMB, as the worker last reported it (kept here for BITRATES, which never waits). */
  estimatedDownlinkBps(): number {
    return this.downlinkBps;
  }

  /** Undefined once closed. */
  stats(): Promise<PeerStats | undefined> {
    if (this.closeCause) return Promise.resolve(undefined);
    return this.worker.call('peerStats', this.id);
  }

  close(): void {
    if (this.closeCause) return;
    this.worker.fire('closePeer', this.id);
    this.markClosed('closed');
  }

  /** For its RoomHandle: the worker reported a connection change. */
  connectionChanged(connected: boolean): void {
    if (this.closeCause) return;
    this.isConnected = connected;
    this.emit('connectionChange', connected);
  }

  /** For its RoomHandle: the worker saw the client stop sending. */
  fellSilent(): void {
    if (!this.closeCause) this.emit('silent');
  }

  /** For its RoomHandle: the worker's latest downlink estimate. */
  downlinkMeasured(bps: number): void {
    this.downlinkBps = bps;
  }

  /** For its RoomHandle: the room closed, or the worker died; the worker closes its side itself. */
  closeWith(cause: Exclude<CloseCause, 'closed'>): void {
    if (!this.closeCause) this.markClosed(cause);
  }

  private markClosed(cause: CloseCause): void {
    this.closeCause = cause;
    this.isConnected = false;
    this.emit('closed', cause);
  }

  private closedError(): Error {
    return new Error(`media peer ${this.id} is closed (${this.closeCause})`);
  }
}
