import { FRAME_MS, type MixerSink } from '../media/audio/audio-mixer.ts';
import type { AudioHub } from '../media/audio/audio-hub.ts';

/**
 * Each microphone's last frames are kept while its attendee is not promoted and sent up the
 * moment it is, so that the primary's mixer can start the new talker at once (it needs two
 * frames, and keeps its own attendees' last ones for that) instead of waiting for fresh ones.
 * Frames older than this are not sent.
 */
const KEPT_FRAMES = 2;
const KEPT_MAX_AGE_MS = 3 * FRAME_MS;
/** Larger opus payloads are not kept (browsers send well under this). */
const MAX_KEPT_PAYLOAD = 1500;

/** One kept frame; its buffer is reused for every frame the slot holds, so keeping allocates nothing. */
interface KeptFrame {
  data: Buffer;
  length: number;
  level: number;
  at: number;
}

/**
 * Where a relay sends promoted attendees' voices: the replica's pipe end, which alone knows who
 * is promoted (the relay asks it, and keeps no list of its own).
 */
export interface RelayUplink {
  /** Whether `id` is promoted: its voice goes up, and it hears its own mix instead of the shared one. */
  carries(id: string): boolean;
  send(id: string, payload: Buffer, level: number): void;
}

/**
 * A replica room's audio: nothing is mixed here. Every listener gets the primary's shared mix
 * from the pipe; a promoted attendee gets its own mix-minus instead, and only its voice goes up
 * the pipe. Everyone else's microphone goes nowhere.
 */
export class AudioRelay implements AudioHub {
  private readonly sinks = new Map<MixerSink, string | undefined>();
  private readonly sources = new Set<string>();
  /** Per microphone, a ring of KEPT_FRAMES slots; `next` is the slot the next frame goes in. */
  private readonly kept = new Map<string, { slots: KeptFrame[]; next: number }>();
  private uplink: RelayUplink | undefined;

  /** The pipe end that carries promoted voices up, while it is open. */
  attachUplink(uplink: RelayUplink): void {
    this.uplink = uplink;
  }
  detachUplink(uplink: RelayUplink): void {
    if (this.uplink === uplink) this.uplink = undefined;
  }

  addSource(id: string): void {
    this.sources.add(id);
  }
  removeSource(id: string): void {
    this.sources.delete(id);
    this.kept.delete(id);
  }
  push(id: string, payload: Buffer, level: number): void {
    if (!this.sources.has(id)) return;
    if (this.uplink?.carries(id)) return this.uplink.send(id, payload, level);
    if (payload.length > MAX_KEPT_PAYLOAD) return;
    let kept = this.kept.get(id);
    if (!kept) {
      const slots = Array.from({ length: KEPT_FRAMES }, () => ({ data: Buffer.allocUnsafe(MAX_KEPT_PAYLOAD), length: 0, level: 127, at: -Infinity }));
      this.kept.set(id, (kept = { slots, next: 0 }));
    }
    const slot = kept.slots[kept.next]!;
    payload.copy(slot.data);
    slot.length = payload.length;
    slot.level = level;
    slot.at = performance.now();
    kept.next = (kept.next + 1) % KEPT_FRAMES;
  }
  addSink(sink: MixerSink, ownSourceId?: string): void {
    this.sinks.set(sink, ownSourceId);
  }
  removeSink(sink: MixerSink): void {
    this.sinks.delete(sink);
  }
  /** `id` was just promoted: its recent frames go up at once, oldest first; from now on its voice goes up as it comes. */
  sendKeptFrames(id: string): void {
    const uplink = this.uplink;
    const kept = this.kept.get(id);
    this.kept.delete(id);
    if (!uplink || !kept) return;
    const now = performance.now();
    for (let i = 0; i < KEPT_FRAMES; i++) {
      const frame = kept.slots[(kept.next + i) % KEPT_FRAMES]!; // oldest first
      if (now - frame.at <= KEPT_MAX_AGE_MS) uplink.send(id, frame.data.subarray(0, frame.length), frame.level);
    }
  }

  /** The primary's shared mix, for everyone without a personal one. */
  deliverShared(payload: Buffer, level: number, timestamp: number): void {
    const uplink = this.uplink;
    for (const [sink, own] of this.sinks) if (own === undefined || !uplink?.carries(own)) sink.deliver(payload, level, timestamp);
  }

  /** The primary's mix-minus for one promoted attendee (the pipe end knows which it is for). */
  deliverPersonal(id: string, payload: Buffer, level: number, timestamp: number): void {
    for (const [sink, own] of this.sinks) if (own === id) sink.deliver(payload, level, timestamp);
  }

  levels(): { id: string; level: number }[] {
    return [];
  }
  talkerIds(): string[] {
    return [];
  }
  close(): void {
    this.sinks.clear();
    this.kept.clear();
    this.uplink = undefined;
  }
}
