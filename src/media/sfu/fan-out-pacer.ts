/**
 * Paces the video fan-out of one worker thread. A key frame to a full replica is ~40 packets × 250 viewers:
 * sent in one go, 10,000 protect-and-send steps hold the thread for over 100 ms, and every other room of the
 * worker (its audio, its NACKs, its timers) waits. The pacer lets one event-loop turn hand out at most
 * `sendsPerTurn` packets; what is left waits for the next turns (setImmediate, so the I/O and timers of the
 * turn in between run first), served round robin between the layers that have a backlog.
 *
 * Order per receiver holds: a layer with a backlog queues every new packet behind it, and a receiver takes
 * packets of one layer at a time (one that switched layers meanwhile is skipped by the old layer's backlog).
 * Below the budget nothing is queued or allocated: the fan-out runs inline as it did before.
 */

/** The part of a subscriber the pacer needs: the layer it now takes packets of, and the forwarding step. */
export interface FanOutSubscriber<Layer> {
  readonly layer: Layer | undefined;
  forward(packet: Buffer, headerLength: number, payloadEnd: number, keyFrame: boolean, seq: number): void;
}

/** The part of a layer the pacer needs: its subscribers now. */
export interface FanOutSource<Layer> {
  readonly subscribers: ReadonlySet<FanOutSubscriber<Layer>>;
}

/** One packet still to be handed to the rest of the subscribers it had when it arrived. */
interface PendingPacket<Layer> {
  packet: Buffer;
  headerLength: number;
  payloadEnd: number;
  keyFrame: boolean;
  seq: number;
  subscribers: FanOutSubscriber<Layer>[];
  next: number;
  /** performance.now() when it was queued. */
  queuedAt: number;
}

/**
 * ~256 sends at 10–20 µs each: a turn of 3–5 ms at most, against one audio frame every 20 ms. A 250-viewer
 * packet takes one turn and a bit; a key frame to them spreads over ~40 turns.
 */
export const DEFAULT_SENDS_PER_TURN = 256;
/**
 * A packet that waited this long is dropped for the receivers it has not reached (they NACK it or ask for a key
 * frame), as a full socket buffer would drop it: a thread that cannot keep up must not build a queue of seconds.
 * A key frame to 250 viewers takes ~100–150 ms on a core of its own.
 */
export const MAX_QUEUE_MS = 500;

export class FanOutPacer<Layer extends FanOutSource<Layer>> {
  private sentThisTurn = 0;
  private turnEnding = false;
  /** Layers with a backlog, in the order they are served next; each with its packets, oldest first. */
  private readonly backlog = new Map<Layer, PendingPacket<Layer>[]>();
  private readonly endTurn = (): void => {
    this.turnEnding = false;
    this.sentThisTurn = 0;
    if (this.backlog.size > 0) this.serve();
  };
  /** Packets that waited for a later turn, since the pacer started (a measure of how often it paces). */
  deferredPackets = 0;
  /** Packets dropped after waiting longer than `maxQueueMs`, for the receivers they had not reached yet. */
  droppedPackets = 0;

  constructor(
    readonly sendsPerTurn = DEFAULT_SENDS_PER_TURN,
    readonly maxQueueMs = MAX_QUEUE_MS,
  ) {
    if (!Number.isInteger(sendsPerTurn) || sendsPerTurn < 1) throw new Error(`sendsPerTurn must be a positive integer, not ${sendsPerTurn}`);
  }

  /** Hands one packet of `layer` to each of its subscribers: now, or in later turns if this turn's budget is spent. */
  fanOut(layer: Layer, packet: Buffer, headerLength: number, payloadEnd: number, keyFrame: boolean, seq: number): void {
    const subscribers = layer.subscribers;
    if (subscribers.size === 0) return;
    if (!this.backlog.has(layer) && this.sentThisTurn + subscribers.size <= this.sendsPerTurn) {
      this.spend(subscribers.size);
      for (const subscriber of subscribers) subscriber.forward(packet, headerLength, payloadEnd, keyFrame, seq);
      return;
    }
    const pending: PendingPacket<Layer> = { packet, headerLength, payloadEnd, keyFrame, seq, subscribers: [...subscribers], next: 0, queuedAt: performance.now() };
    const queue = this.backlog.get(layer);
    if (queue) queue.push(pending);
    else this.backlog.set(layer, [pending]);
    this.deferredPackets++;
    this.serve();
  }

  /** Forgets what a closing layer still had to send. */
  forget(layer: Layer): void {
    this.backlog.delete(layer);
  }

  /** Packets waiting for a later turn. */
  get backlogPackets(): number {
    let packets = 0;
    for (const queue of this.backlog.values()) packets += queue.length;
    return packets;
  }

  /** Serves the backlog round robin, one packet's worth of a layer at a time, until the turn's budget is spent. */
  private serve(): void {
    const tooOld = performance.now() - this.maxQueueMs;
    while (this.backlog.size > 0 && this.sentThisTurn < this.sendsPerTurn) {
      const [layer, queue] = this.backlog.entries().next().value as [Layer, PendingPacket<Layer>[]];
      const pending = queue[0]!;
      if (pending.queuedAt < tooOld) {
        queue.shift();
        this.droppedPackets++;
        if (queue.length === 0) this.backlog.delete(layer);
        continue;
      }
      const end = Math.min(pending.subscribers.length, pending.next + this.sendsPerTurn - this.sentThisTurn);
      this.spend(end - pending.next);
      for (let i = pending.next; i < end; i++) {
        const subscriber = pending.subscribers[i]!;
        // One that left the layer (or switched to another) since the packet came takes nothing more of it.
        if (subscriber.layer === layer) subscriber.forward(pending.packet, pending.headerLength, pending.payloadEnd, pending.keyFrame, pending.seq);
      }
      pending.next = end;
      // The layer goes to the back of the line, done with this packet or not.
      this.backlog.delete(layer);
      if (pending.next === pending.subscribers.length) queue.shift();
      if (queue.length > 0) this.backlog.set(layer, queue);
    }
  }

  private spend(sends: number): void {
    this.sentThisTurn += sends;
    if (!this.turnEnding) {
      this.turnEnding = true;
      setImmediate(this.endTurn);
    }
  }
}
