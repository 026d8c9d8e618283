import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { CloseCause } from './handle-close.ts';
import { PeerHandle } from './peer-handle.ts';
import { PrimaryPipeEndHandle, ReplicaPipeEndHandle } from './pipe-end-handles.ts';
import type { WorkerChannel } from './protocol.ts';

export interface RoomHandleEvents {
  /** The room closed: by `close()`, or with its worker thread. Its peers and pipe ends closed first. */
  closed: [cause: CloseCause];
}

/**
 * The main thread's handle on one meeting's MediaRoom in a worker, made by MediaWorkerClient.
 * It makes the room's peers and pipe ends and closes them with it; it keeps what the worker
 * reports periodically (levels, bitrates) for signaling's frames, which never wait on a worker.
 */
export class RoomHandle extends EventEmitter<RoomHandleEvents> {
  private readonly peers = new Map<string, PeerHandle>();
  /** A mixing room has primary ends only, a replica's room replica ends only. */
  private readonly primaryEnds = new Map<string, PrimaryPipeEndHandle>();
  private readonly replicaEnds = new Map<string, ReplicaPipeEndHandle>();
  private levels = new Map<string, number>();
  private bitrates = new Map<number, number>();
  private closeCause: CloseCause | undefined;

  constructor(
    readonly worker: WorkerChannel,
    readonly id: string,
    /** A replica's room relays its primary's mix (from a pipe) instead of mixing its own. */
    readonly replica: boolean,
  ) {
    super();
  }

  /** Open peers and pipe ends: what the room's worker sends to, packet by packet. */
  get connectionCount(): number {
    return this.peers.size + this.primaryEnds.size + this.replicaEnds.size;
  }

  get closed(): boolean {
    return this.closeCause !== undefined;
  }

  /** An attendee's media in this room. On a closed room the handle is closed from the start. */
  createPeer(attendeeId: string): PeerHandle {
    const peer = new PeerHandle(this.worker, randomUUID(), attendeeId);
    if (this.closeCause) {
      peer.closeWith('parentClosed');
      return peer;
    }
    this.peers.set(peer.id, peer);
    peer.once('closed', () => this.peers.delete(peer.id));
    this.worker.fire('createPeer', this.id, peer.id, attendeeId);
    return peer;
  }

  /** Opens the primary's end of a pipe in this (mixing) room; resolves once its port is bound. */
  createPrimaryPipeEnd(): Promise<PrimaryPipeEndHandle> {
    if (this.replica) return Promise.reject(new Error(`room ${this.id} is a replica's: it has no primary pipe end`));
    return this.openPipeEnd('openPrimaryPipe', this.primaryEnds, (id, port) => new PrimaryPipeEndHandle(this.worker, id, port));
  }

  /** Opens the replica's end of a pipe in this (replica) room; resolves once its port is bound. */
  createReplicaPipeEnd(): Promise<ReplicaPipeEndHandle> {
    if (!this.replica) return Promise.reject(new Error(`room ${this.id} mixes its own audio: it has no replica pipe end`));
    return this.openPipeEnd('openReplicaPipe', this.replicaEnds, (id, port) => new ReplicaPipeEndHandle(this.worker, id, port));
  }

  private async openPipeEnd<End extends PrimaryPipeEndHandle | ReplicaPipeEndHandle>(
    method: 'openPrimaryPipe' | 'openReplicaPipe',
    ends: Map<string, End>,
    build: (id: string, port: number) => End,
  ): Promise<End> {
    if (this.closeCause) throw new Error(`room ${this.id} is closed (${this.closeCause})`);
    const id = randomUUID();
    const port = await this.worker.call(method, this.id, id);
    const end = build(id, port);
    if (this.closeCause) {
      // Closed while the port was bound: the worker closed the end with the room (or died with it).
      end.closeWith('parentClosed');
      return end;
    }
    ends.set(id, end);
    end.once('closed', () => ends.delete(id));
    return end;
  }

  /** Audio level (-dBov) of each attendee talking, as of the worker's last report (every 200 ms). */
  audioLevels(): Map<string, number> {
    return this.levels;
  }

  /** Received bitrate of a published stream, as of the worker's last report (every second). */
  bitrateOf(streamId: number): number {
    return this.bitrates.get(streamId) ?? 0;
  }

  /** Closes the room in its worker, and with it every peer and pipe end. */
  close(): void {
    if (this.closeCause) return;
    this.worker.fire('closeRoom', this.id);
    this.markClosed('closed');
  }

  /** For MediaWorkerClient: the thread died with this room. */
  workerExited(): void {
    if (!this.closeCause) this.markClosed('workerExited');
  }

  /** For MediaWorkerClient: a peer's connection changed. */
  peerConnectionChanged(peerId: string, connected: boolean): void {
    this.peers.get(peerId)?.connectionChanged(connected);
  }

  /** For MediaWorkerClient: a peer's client stopped sending. */
  peerFellSilent(peerId: string): void {
    this.peers.get(peerId)?.fellSilent();
  }

  /** For MediaWorkerClient: the viewers' demand on a replica pipe end. */
  pipeDemandChanged(pipeId: string, streamIds: number[]): void {
    this.replicaEnds.get(pipeId)?.demandChanged(streamIds);
  }

  /** For MediaWorkerClient: the periodic levels report. */
  levelsMeasured(levels: [string, number][]): void {
    this.levels = new Map(levels);
  }

  /** For MediaWorkerClient: the periodic rates report (published streams, and each peer's downlink). */
  ratesMeasured(bitrates: [number, number][], downlinks: [string, number][]): void {
    this.bitrates = new Map(bitrates);
    for (const [peerId, bps] of downlinks) this.peers.get(peerId)?.downlinkMeasured(bps);
  }

  private markClosed(cause: CloseCause): void {
    this.closeCause = cause;
    const childCause = cause === 'workerExited' ? cause : 'parentClosed';
    for (const peer of [...this.peers.values()]) peer.closeWith(childCause);
    for (const end of [...this.primaryEnds.values(), ...this.replicaEnds.values()]) end.closeWith(childCause);
    this.emit('closed', cause);
  }
}
