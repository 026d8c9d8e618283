import type { MixerSink } from './audio-mixer.ts';

/**
 * Where a room's audio goes: the AudioMixer in a meeting that mixes for itself, or the
 * AudioRelay in a replica, whose listeners get the primary's mix through a pipe.
 */
export interface AudioHub {
  addSource(id: string): void;
  removeSource(id: string): void;
  /** One opus frame of a source, its RFC 6464 level (-1: none) and its RTP sequence number (-1: unknown). */
  push(id: string, payload: Buffer, level: number, seq?: number): void;
  addSink(sink: MixerSink, ownSourceId?: string): void;
  removeSink(sink: MixerSink): void;
  levels(): { id: string; level: number }[];
  talkerIds(): string[];
  /** Releases what the hub holds; it delivers nothing afterwards. */
  close(): void;
}
