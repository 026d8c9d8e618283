import { FRAME_SAMPLES, MIX_ENCODER_SETTINGS, SAMPLE_RATE } from '../../src/media/audio/audio-mixer.ts';
import type { OpusBackend } from '../../src/media/audio/opus/codec.ts';

/** A microphone playing a sine tone, encoded into 20 ms opus frames as a browser would. */
export class ToneEncoder {
  private readonly encoder;
  private phase = 0;
  constructor(
    readonly frequency: number,
    backend: OpusBackend,
  ) {
    this.encoder = backend.createEncoder(MIX_ENCODER_SETTINGS);
  }
  frame(): Buffer {
    const pcm = Buffer.alloc(FRAME_SAMPLES * 2);
    for (let i = 0; i < FRAME_SAMPLES; i++) {
      pcm.writeInt16LE(Math.round(6000 * Math.sin(this.phase)), i * 2);
      this.phase += (2 * Math.PI * this.frequency) / SAMPLE_RATE;
    }
    return this.encoder.encode(pcm);
  }
  free(): void {
    this.encoder.free();
  }
}

/** A loudspeaker: decodes the packets it gets and tells which tones the last half second holds. */
export class ToneEar {
  readonly payloads: Buffer[] = [];
  readonly timestamps: number[] = [];
  private readonly decoder;
  private readonly pcm = new Int16Array(FRAME_SAMPLES);
  private samples: number[] = [];
  constructor(backend: OpusBackend) {
    this.decoder = backend.createDecoder();
  }
  get packets(): number {
    return this.payloads.length;
  }
  deliver(payload: Buffer, _level: number, timestamp: number): void {
    this.payloads.push(payload);
    this.timestamps.push(timestamp);
    const samples = this.decoder.decodeInto(Buffer.from(payload), this.pcm);
    for (let i = 0; i < samples; i++) this.samples.push(this.pcm[i]!);
    if (this.samples.length > 2 * SAMPLE_RATE) this.samples = this.samples.slice(-SAMPLE_RATE / 2);
  }
  /** Goertzel power at `frequency` against a neighbouring frequency. */
  hears(frequency: number): boolean {
    const recent = this.samples.slice(-SAMPLE_RATE / 2);
    const power = (f: number) => {
      const k = 2 * Math.cos((2 * Math.PI * f) / SAMPLE_RATE);
      let s1 = 0;
      let s2 = 0;
      for (const x of recent) {
        const s0 = x + k * s1 - s2;
        s2 = s1;
        s1 = s0;
      }
      return (s1 * s1 + s2 * s2 - k * s1 * s2) / recent.length;
    };
    return power(frequency) > 1000 * (power(frequency * 1.37) + 1);
  }
}
