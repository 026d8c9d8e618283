import { EventEmitter } from 'node:events';
import type { CloseCause } from './handle-close.ts';
import type { PipeKeysWire, PipeStats, StreamRef, WorkerChannel } from './protocol.ts';

export interface PipeEndHandleEvents {
  closed: [cause: CloseCause];
}

export interface ReplicaPipeEndHandleEvents extends PipeEndHandleEvents {
  /** The primary's streams this replica's viewers subscribe to now (all of them, each time). */
  demand: [streamIds: number[]];
}

/**
 * What both kinds of pipe-end handle share: the transport's part, stats and closing. Each kind
 * emits its own `closed` (an emitter generic in its events can't name one of them here).
 */
abstract class PipeEndHandleBase<Events extends Record<keyof Events, unknown[]> & PipeEndHandleEvents> extends EventEmitter<Events> {
  private closeCause: CloseCause | undefined;

  constructor(
    protected readonly worker: WorkerChannel,
    readonly id: string,
    /** The UDP port this end receives on. */
    readonly port: number,
  ) {
    super();
  }

  get closed(): boolean {
    return this.closeCause !== undefined;
  }

  /** The other end's address and the pipe's keys; answered once the worker has them. */
  connect(remote: { address: string; port: number }, keys: PipeKeysWire): Promise<void> {
    if (this.closeCause) return Promise.reject(new Error(`pipe end ${this.id} is closed (${this.closeCause})`));
    return this.worker.call('connectPipe', this.id, remote, keys);
  }

  /** Undefined once closed. */
  stats(): Promise<PipeStats | undefined> {
    if (this.closeCause) return Promise.resolve(undefined);
    return this.worker.call('pipeStats', this.id);
  }

  close(): void {
    if (this.closeCause) return;
    this.worker.fire('closePipe', this.id);
    this.markClosed('closed');
  }

  /** For its RoomHandle: the room closed, or the worker died; the worker closes its side itself. */
  closeWith(cause: Exclude<CloseCause, 'closed'>): void {
    if (!this.closeCause) this.markClosed(cause);
  }

  /** Whether calls still go to the worker. */
  protected get open(): boolean {
    return this.closeCause === undefined;
  }

  protected abstract markClosed(cause: CloseCause): void;

  protected setClosed(cause: CloseCause): void {
    this.closeCause = cause;
  }
}

/**
 * The main thread's handle on the primary's end of a pipe: the shared mix and wanted video go
 * down, promoted attendees' voices and video come up into the primary's room.
 */
export class PrimaryPipeEndHandle extends PipeEndHandleBase<PipeEndHandleEvents> {
  /** The primary's streams the replica's viewers want now. */
  sendStreams(streamIds: number[]): void {
    if (this.open) this.worker.fire('primaryPipeSendStreams', this.id, streamIds);
  }

  /** The streams promoted attendees publish through the replica, as layers of the primary's room. */
  receiveStreams(streams: StreamRef[]): void {
    if (this.open) this.worker.fire('primaryPipeReceiveStreams', this.id, streams);
  }

  /** The slot's voice becomes a source of the primary's mixer and its mix-minus goes down; answered once it has. */
  promote(slot: number, primaryAttendeeId: string): Promise<void> {
    if (!this.open) return Promise.reject(new Error(`pipe end ${this.id} is closed`));
    return this.worker.call('primaryPipePromote', this.id, slot, primaryAttendeeId);
  }

  demote(slot: number): void {
    if (this.open) this.worker.fire('primaryPipeDemote', this.id, slot);
  }

  protected markClosed(cause: CloseCause): void {
    this.setClosed(cause);
    this.emit('closed', cause);
  }
}

/**
 * The main thread's handle on a replica's end of a pipe: the primary's streams become the
 * replica room's layers, its viewers' demand comes back as `demand`, and promoted attendees'
 * voices and video go up.
 */
export class ReplicaPipeEndHandle extends PipeEndHandleBase<ReplicaPipeEndHandleEvents> {
  /** The primary's published streams (not those a promoted attendee of this replica sends up). */
  setStreams(streams: StreamRef[]): void {
    if (this.open) this.worker.fire('replicaPipeSetStreams', this.id, streams);
  }

  /** Promoted attendees' published streams, sent up to the primary. */
  sendStreams(streamIds: number[]): void {
    if (this.open) this.worker.fire('replicaPipeSendStreams', this.id, streamIds);
  }

  /** The attendee's voice goes up in the slot (its last frames at once) and it hears the slot's mix. */
  promote(slot: number, attendeeId: string): void {
    if (this.open) this.worker.fire('replicaPipePromote', this.id, slot, attendeeId);
  }

  demote(attendeeId: string): void {
    if (this.open) this.worker.fire('replicaPipeDemote', this.id, attendeeId);
  }

  /** For its RoomHandle: the worker reported the viewers' demand. */
  demandChanged(streamIds: number[]): void {
    if (this.open) this.emit('demand', streamIds);
  }

  protected markClosed(cause: CloseCause): void {
    this.setClosed(cause);
    this.emit('closed', cause);
  }
}
