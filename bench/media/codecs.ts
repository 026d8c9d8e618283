/**
 * Opus cost per 20 ms frame (48 kHz mono, the mix's encoder settings) for each build Amphi can
 * use, against opusscript (the WebAssembly build Amphi used before), in interleaved rounds of
 * one run. CPU time of this thread, medians.
 */
import { MIX_ENCODER_SETTINGS } from '../../src/media/audio/audio-mixer.ts';
import { loadOpusBackend } from '../../src/media/audio/opus/backend.ts';
import { OPUS_FRAME_BYTES, OPUS_FRAME_SAMPLES, OPUS_SAMPLE_RATE, type OpusBackend } from '../../src/media/audio/opus/codec.ts';
import { cpuMicros, median } from './measure.ts';
import { opusscriptBackend } from './opusscript-backend.ts';

interface Coder {
  encode(pcm: Buffer): Buffer;
  decode(packet: Buffer): void;
}

const speech = Array.from({ length: 50 }, (_, frame) => {
  // Two tones with a slow envelope: not silence, so the encoder works as it would on a voice.
  const pcm = Buffer.alloc(OPUS_FRAME_BYTES);
  for (let i = 0; i < OPUS_FRAME_SAMPLES; i++) {
    const t = (frame * OPUS_FRAME_SAMPLES + i) / OPUS_SAMPLE_RATE;
    const envelope = 0.5 + 0.5 * Math.sin(2 * Math.PI * 3 * t);
    pcm.writeInt16LE(Math.round(envelope * (6000 * Math.sin(2 * Math.PI * 220 * t) + 3000 * Math.sin(2 * Math.PI * 1170 * t))), i * 2);
  }
  return pcm;
});

function coderOf(backend: OpusBackend): Coder {
  const encoder = backend.createEncoder(MIX_ENCODER_SETTINGS);
  const decoder = backend.createDecoder();
  const pcm = new Int16Array(OPUS_FRAME_SAMPLES);
  return { encode: (frame) => encoder.encode(frame), decode: (packet) => void decoder.decodeInto(packet, pcm) };
}

export function measureCodecs(rounds: number, frames: number) {
  const coders = { opusscript: coderOf(opusscriptBackend()), native: coderOf(loadOpusBackend('native')), wasm: coderOf(loadOpusBackend('wasm')) };
  const packets = Object.fromEntries(Object.entries(coders).map(([name, coder]) => [name, speech.map((pcm) => Buffer.from(coder.encode(pcm)))]));
  const results: Record<string, { encode: number[]; decode: number[] }> = {};
  for (let round = 0; round <= rounds; round++) {
    for (const [name, coder] of Object.entries(coders)) {
      const encode = cpuMicros(() => {
        for (let i = 0; i < frames; i++) coder.encode(speech[i % 50]!);
      });
      const decode = cpuMicros(() => {
        for (let i = 0; i < frames; i++) coder.decode(packets[name]![i % 50]!);
      });
      if (round === 0) continue; // warm-up
      (results[name] ??= { encode: [], decode: [] }).encode.push(encode / frames);
      results[name]!.decode.push(decode / frames);
    }
  }
  return Object.entries(results).map(([name, r]) => ({ name, encode: median(r.encode), decode: median(r.decode) }));
}
