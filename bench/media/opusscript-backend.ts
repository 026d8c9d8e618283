import OpusScript from 'opusscript';
import { copyFrame, OPUS_FRAME_SAMPLES, OPUS_SAMPLE_RATE, OpusCtl, type OpusBackend } from '../../src/media/audio/opus/codec.ts';

/**
 * opusscript, the WebAssembly build Amphi used before, behind Amphi's codec interface: only to
 * measure the mixer with it side by side. It corrupts its heap when codecs are created and freed
 * in numbers, so the benchmark keeps its few codecs in one pool for the whole run.
 */
export function opusscriptBackend(): OpusBackend {
  return {
    name: 'wasm',
    createEncoder(settings) {
      const encoder = new OpusScript(OPUS_SAMPLE_RATE, 1, OpusScript.Application.VOIP);
      encoder.encoderCTL(OpusCtl.setComplexity, settings.complexity);
      encoder.encoderCTL(OpusCtl.setInbandFec, settings.inbandFec ? 1 : 0);
      encoder.encoderCTL(OpusCtl.setPacketLossPercent, settings.expectedLossPercent);
      encoder.setBitrate(settings.bitrate);
      return { encode: (pcm) => encoder.encode(pcm, OPUS_FRAME_SAMPLES), reset: () => encoder.encoderCTL(OpusCtl.resetState, 0), free: () => encoder.delete() };
    },
    createDecoder() {
      const decoder = new OpusScript(OPUS_SAMPLE_RATE, 1, OpusScript.Application.VOIP);
      return { decodeInto: (packet, pcm) => copyFrame(decoder.decode(packet ?? Buffer.alloc(0)), pcm), reset: () => undefined, free: () => decoder.delete() };
    },
  };
}
