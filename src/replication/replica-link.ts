import { randomBytes, randomUUID } from 'node:crypto';
import type { MediaWorkerClient, RemoteRoom } from '../media/worker/client.ts';

const linksByReplicaEnd = new Map<string, ReplicaLink>();
const routedWorkers = new WeakSet<MediaWorkerClient>();

const masterKey = () => ({ key: randomBytes(16), salt: randomBytes(12) });

/**
 * One primary → replica pipe, as the main thread orchestrates it: both ends live in media
 * workers (possibly the same one, possibly other machines later); this object opens them,
 * hands them each other's address and fresh SRTP keys, and carries the control that goes
 * with the media: which streams the replica's viewers want, which attendees are promoted.
 */
export class ReplicaLink {
  private nextSlot = 1;
  private readonly slots = new Map<string, number>();
  private closed = false;

  private constructor(
    readonly primaryRoom: RemoteRoom,
    readonly replicaRoom: RemoteRoom,
    private readonly primaryEnd: string,
    private readonly replicaEnd: string,
  ) {}

  static async open(primaryRoom: RemoteRoom, replicaRoom: RemoteRoom, announcedIp: string): Promise<ReplicaLink> {
    const id = randomUUID();
    const primaryEnd = `${id}:primary`;
    const replicaEnd = `${id}:replica`;
    const opened = await Promise.allSettled([
      primaryRoom.worker.call('createPipe', primaryEnd, primaryRoom.id),
      replicaRoom.worker.call('createPipe', replicaEnd, replicaRoom.id),
    ]);
    const [primaryPort, replicaPort] = opened.map((result) => (result.status === 'fulfilled' ? result.value : undefined));
    if (primaryPort === undefined || replicaPort === undefined) {
      if (primaryPort !== undefined) primaryRoom.worker.fire('closePipe', primaryEnd);
      if (replicaPort !== undefined) replicaRoom.worker.fire('closePipe', replicaEnd);
      throw new Error('a room closed while its pipe was being opened');
    }
    const down = masterKey();
    const up = masterKey();
    const link = new ReplicaLink(primaryRoom, replicaRoom, primaryEnd, replicaEnd);
    linksByReplicaEnd.set(replicaEnd, link);
    const worker = replicaRoom.worker;
    if (!routedWorkers.has(worker)) {
      routedWorkers.add(worker);
      worker.onPipeDemand = (pipeId, streamIds) => linksByReplicaEnd.get(pipeId)?.demand(streamIds);
    }
    try {
      await Promise.all([
        primaryRoom.worker.call('connectPipe', primaryEnd, { address: announcedIp, port: replicaPort }, { send: down, receive: up }),
        replicaRoom.worker.call('connectPipe', replicaEnd, { address: announcedIp, port: primaryPort }, { send: up, receive: down }),
      ]);
    } catch (error) {
      // A room went away while the pipe opened: close whatever end was made.
      link.close();
      throw error;
    }
    return link;
  }

  /** The replica's viewers subscribe to these of the primary's streams now. */
  private demand(streamIds: number[]): void {
    if (!this.closed) this.primaryRoom.worker.fire('pipeSendStreams', this.primaryEnd, streamIds);
  }

  /** The primary's published streams, minus those a promoted attendee of this replica publishes from here. */
  setPrimaryStreams(streams: { streamId: number; groupId: number }[]): void {
    if (!this.closed) this.replicaRoom.worker.fire('pipeSetStreams', this.replicaEnd, streams);
  }

  promote(localAttendeeId: string, primaryAttendeeId: string): void {
    const slot = this.nextSlot++;
    this.slots.set(localAttendeeId, slot);
    // The replica end sends the attendee's last frames at once: the primary end must know the slot first.
    this.primaryRoom.worker
      .call('pipePromote', this.primaryEnd, slot, primaryAttendeeId)
      .then(() => {
        if (!this.closed && this.slots.get(localAttendeeId) === slot) this.replicaRoom.worker.fire('pipePromote', this.replicaEnd, slot, localAttendeeId);
      })
      .catch(() => undefined); // the primary's room is gone: the link closes with it
  }

  demote(localAttendeeId: string, primaryAttendeeId: string): void {
    const slot = this.slots.get(localAttendeeId);
    if (slot === undefined || this.closed) return;
    this.slots.delete(localAttendeeId);
    this.primaryRoom.worker.fire('pipeDemote', this.primaryEnd, slot, primaryAttendeeId);
    this.replicaRoom.worker.fire('pipeDemote', this.replicaEnd, slot, localAttendeeId);
  }

  /** Streams promoted attendees publish through this replica, sent up into the primary. */
  publishUp(streams: { streamId: number; groupId: number }[]): void {
    if (this.closed) return;
    this.replicaRoom.worker.fire('pipeSendStreams', this.replicaEnd, streams.map((s) => s.streamId));
    this.primaryRoom.worker.fire('pipeSetStreams', this.primaryEnd, streams);
  }

  stats() {
    return Promise.all([this.primaryRoom.worker.call('pipeStats', this.primaryEnd), this.replicaRoom.worker.call('pipeStats', this.replicaEnd)]).then(
      ([primary, replica]) => ({ primary, replica }),
    );
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    linksByReplicaEnd.delete(this.replicaEnd);
    this.primaryRoom.worker.fire('closePipe', this.primaryEnd);
    this.replicaRoom.worker.fire('closePipe', this.replicaEnd);
  }
}
