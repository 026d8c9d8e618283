import type { MixerSink } from './audio-mixer.ts';
import type { AudioHub } from './audio-hub.ts';

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
  upstream: (id: string, payload: Buffer, level: number) => void = () => undefined;

  addSource(id: string): void {
    this.sources.add(id);
  }
  removeSource(id: string): void {
    this.sources.delete(id);
  }
  push(id: string, payload: Buffer, level: number): void {
    if (this.promoted.has(id) && this.sources.has(id)) this.upstream(id, payload, level);
  }
  addSink(sink: MixerSink, ownSourceId?: string): void {
    this.sinks.set(sink, ownSourceId);
  }
  removeSink(sink: MixerSink): void {
    this.sinks.delete(sink);
  }
  promote(id: string): void {
    this.promoted.add(id);
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
  }
}
