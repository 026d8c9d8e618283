import { FRAME_MS, type MixerSink } from './audio-mixer.ts';
import type { AudioHub } from './audio-hub.ts';

/**
 * Each microphone's last frames are kept while its attendee is not promoted and sent up the
 * moment it is, so that the primary's mixer can start the new talker at once (it needs two
 * frames, and keeps its own attendees' last ones for that) instead of waiting for fresh ones.
 * Frames older than this are not sent.
 */
const KEPT_FRAMES = 2;
const KEPT_MAX_AGE_MS = 3 * FRAME_MS;

/**
 * A replica room's audio: nothing is mixed here. Every listener gets the primary's shared mix
 * from the pipe; a promoted attendee gets its own mix-minus instead, and only its voice goes up
 * the pipe. Everyone else's microphone goes nowhere.
 */
export class AudioRelay implements AudioHub {
  private readonly sinks = new Map<MixerSink, string | undefined>();
  private readonly sources = new Set<string>();
  /** Local attendee ids now promoted, whose voice goes up and who get a personal mix. */
  private readonly promoted = new Set<string>();
  private readonly kept = new Map<string, { payload: Buffer; level: number; at: number }[]>();
  upstream: (id: string, payload: Buffer, level: number) => void = () => undefined;

  addSource(id: string): void {
    this.sources.add(id);
  }
  removeSource(id: string): void {
    this.sources.delete(id);
    this.kept.delete(id);
  }
  push(id: string, payload: Buffer, level: number): void {
    if (!this.sources.has(id)) return;
    if (this.promoted.has(id)) return this.upstream(id, payload, level);
    let kept = this.kept.get(id);
    if (!kept) this.kept.set(id, (kept = []));
    if (kept.length >= KEPT_FRAMES) kept.shift();
    kept.push({ payload: Buffer.from(payload), level, at: performance.now() });
  }
  addSink(sink: MixerSink, ownSourceId?: string): void {
    this.sinks.set(sink, ownSourceId);
  }
  removeSink(sink: MixerSink): void {
    this.sinks.delete(sink);
  }
  promote(id: string): void {
    this.promoted.add(id);
    const now = performance.now();
    for (const frame of this.kept.get(id) ?? []) if (now - frame.at <= KEPT_MAX_AGE_MS) this.upstream(id, frame.payload, frame.level);
    this.kept.delete(id);
  }
  demote(id: string): void {
    this.promoted.delete(id);
  }

  /** The primary's shared mix, for everyone without a personal one. */
  deliverShared(payload: Buffer, level: number, timestamp: number): void {
    for (const [sink, own] of this.sinks) if (own === undefined || !this.promoted.has(own)) sink.deliver(payload, level, timestamp);
  }

  /** The primary's mix-minus for one promoted attendee. */
  deliverPersonal(id: string, payload: Buffer, level: number, timestamp: number): void {
    if (!this.promoted.has(id)) return;
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
  }
}
