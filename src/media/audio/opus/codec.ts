/**
 * The opus codec as the mixer needs it: 48 kHz mono, 20 ms frames of 16-bit PCM. Two backends
 * implement it, libopus built natively on install and libopus compiled to WebAssembly; both are
 * chosen by `loadOpusBackend`.
 */
export const OPUS_SAMPLE_RATE = 48_000;
export const OPUS_FRAME_SAMPLES = 960;
export const OPUS_FRAME_BYTES = OPUS_FRAME_SAMPLES * 2;

/** libopus request numbers (opus_defines.h), shared by both backends. */
export const OpusCtl = {
  setApplication: 4000,
  setBitrate: 4002,
  setComplexity: 4010,
  setInbandFec: 4012,
  setPacketLossPercent: 4014,
  resetState: 4028,
} as const;

export const OPUS_APPLICATION_VOIP = 2048;

export interface OpusEncoderSettings {
  bitrate: number;
  complexity: number;
  inbandFec: boolean;
  /** Loss the encoder plans for; libopus adds in-band FEC only when this is above 0. */
  expectedLossPercent: number;
}

export interface OpusEncoder {
  /** Encodes one 20 ms frame (`OPUS_FRAME_BYTES` of s16le PCM); the result is the caller's to keep. */
  encode(pcm: Buffer): Buffer;
  /** Back to the state of a new encoder, settings kept. */
  reset(): void;
  /** Releases the codec's memory at once; the encoder is unusable afterwards. */
  free(): void;
}

export interface OpusDecoder {
  /**
   * Decodes one packet into `pcm` (`OPUS_FRAME_BYTES`), or conceals a lost one when `packet` is
   * undefined. Returns the samples written; the rest of `pcm` is zeroed. Throws on a corrupt packet.
   */
  decodeInto(packet: Buffer | undefined, pcm: Int16Array): number;
  reset(): void;
  free(): void;
}

export interface OpusBackend {
  readonly name: 'native' | 'wasm';
  createEncoder(settings: OpusEncoderSettings): OpusEncoder;
  createDecoder(): OpusDecoder;
}

/** Copies up to one frame of decoded s16le bytes into `pcm`, zero-filling the rest. */
export function copyFrame(decoded: Uint8Array, pcm: Int16Array): number {
  const samples = Math.min(OPUS_FRAME_SAMPLES, decoded.byteLength >> 1);
  if ((decoded.byteOffset & 1) === 0) pcm.set(new Int16Array(decoded.buffer, decoded.byteOffset, samples));
  else for (let i = 0; i < samples; i++) pcm[i] = ((decoded[2 * i]! | (decoded[2 * i + 1]! << 8)) << 16) >> 16;
  pcm.fill(0, samples);
  return samples;
}
