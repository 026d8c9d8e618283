import { createRequire } from 'node:module';
import { copyFrame, OPUS_SAMPLE_RATE, OpusCtl, type OpusBackend, type OpusDecoder, type OpusEncoder, type OpusEncoderSettings } from './codec.ts';

/** The WebAssembly build of `@evan/opus`: one libopus heap per thread, codecs freed explicitly. */
interface WasmEncoder {
  encode(pcm: Uint8Array): Uint8Array;
  ctl(request: number, value: number): number;
  drop(): void;
}
interface WasmDecoder {
  decode(packet: Uint8Array): Uint8Array;
  ctl(request: number, value: number): number;
  drop(): void;
}
interface WasmOpus {
  Encoder: new (options: { channels: 1 | 2; sample_rate: number; application: 'voip' | 'audio' }) => WasmEncoder;
  Decoder: new (options: { channels: 1 | 2; sample_rate: number }) => WasmDecoder;
}

const EMPTY = new Uint8Array(0);

export function loadWasmBackend(): OpusBackend {
  const wasm = createRequire(import.meta.url)('@evan/opus/wasm/index.js') as WasmOpus;
  return {
    name: 'wasm',
    createEncoder(settings: OpusEncoderSettings): OpusEncoder {
      const encoder = new wasm.Encoder({ channels: 1, sample_rate: OPUS_SAMPLE_RATE, application: 'voip' });
      try {
        encoder.ctl(OpusCtl.setComplexity, settings.complexity);
        encoder.ctl(OpusCtl.setInbandFec, settings.inbandFec ? 1 : 0);
        encoder.ctl(OpusCtl.setPacketLossPercent, settings.expectedLossPercent);
        encoder.ctl(OpusCtl.setBitrate, settings.bitrate);
      } catch (error) {
        encoder.drop();
        throw error;
      }
      let freed = false;
      // A freed codec's methods would work on address 0 of the shared heap: refuse instead.
      const live = () => (freed ? failFreed() : encoder);
      return {
        encode(pcm) {
          const packet = live().encode(pcm);
          return Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength);
        },
        reset: () => void live().ctl(OpusCtl.resetState, 0),
        free() {
          if (!freed) encoder.drop();
          freed = true;
        },
      };
    },
    createDecoder(): OpusDecoder {
      const decoder = new wasm.Decoder({ channels: 1, sample_rate: OPUS_SAMPLE_RATE });
      let freed = false;
      const live = () => (freed ? failFreed() : decoder);
      return {
        // Concealment (an empty packet) runs 120 ms in this binding too; see the native backend.
        decodeInto: (packet, pcm) => copyFrame(live().decode(packet ?? EMPTY), pcm),
        reset: () => void live().ctl(OpusCtl.resetState, 0),
        free() {
          if (!freed) decoder.drop();
          freed = true;
        },
      };
    },
  };
}

function failFreed(): never {
  throw new Error('opus codec used after free');
}
