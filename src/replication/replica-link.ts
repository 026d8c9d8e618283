import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { PrimaryPipeEndHandle, ReplicaPipeEndHandleEvents } from '../media/worker/pipe-end-handles.ts';
import type { PipeKeysWire, PipeStats, StreamRef } from '../media/worker/protocol.ts';
import type { RoomHandle } from '../media/worker/room-handle.ts';

const masterKey = () => ({ key: randomBytes(16), salt: randomBytes(12) });

/**
 * The replica's end of a pipe as the link drives it: the handle on a replica room of this node's workers, or its
 * stand-in for a replica room on another node. `port`: where the primary's end sends to.
 */
export interface ReplicaPipeEnd {
  readonly port: number;
  readonly closed: boolean;
  connect(remote: { address: string; port: number }, keys: PipeKeysWire): Promise<void>;
  setStreams(streams: StreamRef[]): void;
  sendStreams(streamIds: number[]): void;
  promote(slot: number, attendeeId: string): void;
  demote(attendeeId: string): void;
  stats(): Promise<PipeStats | undefined>;
  close(): void;
  on<E extends keyof ReplicaPipeEndHandleEvents>(event: E, listener: (...args: ReplicaPipeEndHandleEvents[E]) => void): unknown;
  once<E extends keyof ReplicaPipeEndHandleEvents>(event: E, listener: (...args: ReplicaPipeEndHandleEvents[E]) => void): unknown;
}

export interface OpenedReplicaEnd {
  end: ReplicaPipeEnd;
  /** The address of the node whose worker holds it. */
  address: string;
}

export interface ReplicaLinkEvents {
  /** The link closed: by `close()`, or because one of its ends closed (its room closed, its worker died). */
  closed: [];
}

/**
 * One primary → replica pipe, as the primary's node orchestrates it: both ends live in media
 * workers (possibly the same one, possibly another node's); this object opens the primary's end,
 * takes the replica's, hands them each other's address and fresh SRTP keys, and carries the control
 * that goes with the media: the replica's viewers' demand (from the replica end's `demand`
 * events to the primary end), and the slots of promoted attendees.
 */
export class ReplicaLink extends EventEmitter<ReplicaLinkEvents> {
  private nextSlot = 1;
  /** Each promoted attendee's slot in the pipe, by its replica attendee id: the link's one record of promotions. */
  private readonly slots = new Map<string, number>();
  private closed = false;

  private constructor(
    private readonly primaryEnd: PrimaryPipeEndHandle,
    private readonly replicaEnd: ReplicaPipeEnd,
  ) {
    super();
    replicaEnd.on('demand', (streamIds) => primaryEnd.sendStreams(streamIds));
    primaryEnd.once('closed', () => this.close());
    replicaEnd.once('closed', () => this.close());
  }

  /**
   * `primaryAddress`: where the replica's end reaches this node's workers; `openReplicaEnd` makes the far end and
   * says where it is reached.
   */
  static async open(primaryRoom: RoomHandle, primaryAddress: string, openReplicaEnd: () => Promise<OpenedReplicaEnd>): Promise<ReplicaLink> {
    const [primaryOpened, replicaOpened] = await Promise.allSettled([primaryRoom.createPrimaryPipeEnd(), openReplicaEnd()]);
    const primaryEnd = primaryOpened.status === 'fulfilled' ? primaryOpened.value : undefined;
    const replicaEnd = replicaOpened.status === 'fulfilled' ? replicaOpened.value.end : undefined;
    const replicaAddress = replicaOpened.status === 'fulfilled' ? replicaOpened.value.address : '';
    if (!primaryEnd || !replicaEnd || primaryEnd.closed || replicaEnd.closed) {
      primaryEnd?.close();
      replicaEnd?.close();
      throw new Error('a room closed while its pipe was being opened');
    }
    const down = masterKey();
    const up = masterKey();
    const link = new ReplicaLink(primaryEnd, replicaEnd);
    try {
      await Promise.all([
        primaryEnd.connect({ address: replicaAddress, port: replicaEnd.port }, { send: down, receive: up }),
        replicaEnd.connect({ address: primaryAddress, port: primaryEnd.port }, { send: up, receive: down }),
      ]);
    } catch (error) {
      // A room went away while the pipe opened: close whatever end was made.
      link.close();
      throw error;
    }
    return link;
  }

  /** The primary's published streams, minus those a promoted attendee of this replica publishes from here. */
  setPrimaryStreams(streams: StreamRef[]): void {
    if (!this.closed) this.replicaEnd.setStreams(streams);
  }

  promote(localAttendeeId: string, primaryAttendeeId: string): void {
    if (this.closed) return;
    const slot = this.nextSlot++;
    this.slots.set(localAttendeeId, slot);
    // The replica end sends the attendee's last frames at once: the primary end must know the slot first.
    this.primaryEnd
      .promote(slot, primaryAttendeeId)
      .then(() => {
        if (!this.closed && this.slots.get(localAttendeeId) === slot) this.replicaEnd.promote(slot, localAttendeeId);
      })
      .catch(() => undefined); // the primary's room is gone: the link closes with it
  }

  demote(localAttendeeId: string): void {
    const slot = this.slots.get(localAttendeeId);
    if (slot === undefined || this.closed) return;
    this.slots.delete(localAttendeeId);
    this.primaryEnd.demote(slot);
    this.replicaEnd.demote(localAttendeeId);
  }

  /** Streams promoted attendees publish through this replica, sent up into the primary. */
  publishUp(streams: StreamRef[]): void {
    if (this.closed) return;
    this.replicaEnd.sendStreams(streams.map((s) => s.streamId));
    this.primaryEnd.receiveStreams(streams);
  }

  async stats(): Promise<{ primary: PipeStats | undefined; replica: PipeStats | undefined }> {
    const [primary, replica] = await Promise.all([this.primaryEnd.stats(), this.replicaEnd.stats()]);
    return { primary, replica };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.slots.clear();
    this.primaryEnd.close();
    this.replicaEnd.close();
    this.emit('closed');
  }
}
