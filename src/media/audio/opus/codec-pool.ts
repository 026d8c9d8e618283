import type { OpusBackend, OpusDecoder, OpusEncoder, OpusEncoderSettings } from './codec.ts';

export interface CodecPoolStats {
  encodersCreated: number;
  decodersCreated: number;
  idleEncoders: number;
  idleDecoders: number;
  discarded: number;
}

/**
 * One thread's opus codecs, lent to mixers and taken back reset. Talkers come and go every few
 * seconds; reusing codecs keeps that churn from allocating (and, with the native backend, from
 * waiting on the garbage collector to free native memory). A codec that threw is discarded,
 * never lent again.
 */
export class OpusCodecPool {
  private readonly idleEncoders: OpusEncoder[] = [];
  private readonly idleDecoders: OpusDecoder[] = [];
  private readonly counts = { encodersCreated: 0, decodersCreated: 0, discarded: 0 };

  constructor(
    readonly backend: OpusBackend,
    private readonly settings: OpusEncoderSettings,
    /** Idle codecs kept of each kind; more are freed when given back. */
    private readonly maxIdle = 256,
  ) {}

  takeEncoder(): OpusEncoder {
    const idle = this.idleEncoders.pop();
    if (idle) return idle;
    this.counts.encodersCreated++;
    return this.backend.createEncoder(this.settings);
  }

  takeDecoder(): OpusDecoder {
    const idle = this.idleDecoders.pop();
    if (idle) return idle;
    this.counts.decodersCreated++;
    return this.backend.createDecoder();
  }

  giveEncoder(encoder: OpusEncoder): void {
    this.give(encoder, this.idleEncoders);
  }

  giveDecoder(decoder: OpusDecoder): void {
    this.give(decoder, this.idleDecoders);
  }

  /** A codec whose state may be corrupt: freed, not reused. */
  discard(codec: OpusEncoder | OpusDecoder): void {
    this.counts.discarded++;
    try {
      codec.free();
    } catch {
      // already unusable; nothing more to release
    }
  }

  stats(): CodecPoolStats {
    return { ...this.counts, idleEncoders: this.idleEncoders.length, idleDecoders: this.idleDecoders.length };
  }

  private give<T extends OpusEncoder | OpusDecoder>(codec: T, idle: T[]): void {
    if (idle.length >= this.maxIdle) return codec.free();
    try {
      codec.reset();
    } catch {
      return this.discard(codec);
    }
    idle.push(codec);
  }
}
