import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { copyFrame, OPUS_APPLICATION_VOIP, OPUS_SAMPLE_RATE, OpusCtl, type OpusBackend, type OpusDecoder, type OpusEncoder, type OpusEncoderSettings } from './codec.ts';

/** The part of `@discordjs/opus` (libopus built from source on install) that Amphi uses. */
interface NativeOpus {
  encode(pcm: Buffer): Buffer;
  decode(packet: Buffer): Buffer;
  applyEncoderCTL(request: number, value: number): void;
  applyDecoderCTL(request: number, value: number): void;
  setBitrate(bitrate: number): void;
}
type NativeOpusClass = new (sampleRate: number, channels: number) => NativeOpus;

const EMPTY = Buffer.alloc(0);
const require = createRequire(import.meta.url);

/**
 * libopus as a native addon. Its objects are freed by the garbage collector only, which knows
 * nothing of their native size; the codec pool reuses them, so churn never depends on a GC.
 */
export function loadNativeBackend(): OpusBackend {
  const { OpusEncoder: Native } = require(nativeAddonPath()) as { OpusEncoder: NativeOpusClass };
  return {
    name: 'native',
    createEncoder(settings: OpusEncoderSettings): OpusEncoder {
      let native: NativeOpus | undefined = new Native(OPUS_SAMPLE_RATE, 1);
      native.applyEncoderCTL(OpusCtl.setApplication, OPUS_APPLICATION_VOIP);
      native.applyEncoderCTL(OpusCtl.setComplexity, settings.complexity);
      native.applyEncoderCTL(OpusCtl.setInbandFec, settings.inbandFec ? 1 : 0);
      native.applyEncoderCTL(OpusCtl.setPacketLossPercent, settings.expectedLossPercent);
      native.setBitrate(settings.bitrate);
      const live = () => native ?? failFreed();
      return {
        encode: (pcm) => live().encode(pcm),
        reset: () => live().applyEncoderCTL(OpusCtl.resetState, 0),
        free: () => void (native = undefined),
      };
    },
    createDecoder(): OpusDecoder {
      let native: NativeOpus | undefined = new Native(OPUS_SAMPLE_RATE, 1);
      const live = () => native ?? failFreed();
      return {
        // A lost frame is concealed from an empty packet; this binding asks libopus for its
        // largest frame (120 ms) then, of which the first 20 ms are the frame that was lost (the
        // decoder's state moves on by 120 ms, so the mixer conceals one frame in a row at most).
        decodeInto: (packet, pcm) => copyFrame(live().decode(packet ?? EMPTY), pcm),
        reset: () => live().applyDecoderCTL(OpusCtl.resetState, 0),
        free: () => void (native = undefined),
      };
    },
  };
}

/**
 * Where the addon's binary is. Its package's own loader looks only under the running Node's ABI directory
 * (`prebuild/node-v<ABI>-napi-v3-<platform>-<arch>-…`), so it finds nothing when Amphi runs on another Node
 * than the one that ran `npm ci`. The binary is built for N-API version 3, which every later Node keeps, so any Node
 * may load it: the running ABI's directory is taken if there is one, else any of this platform and architecture.
 */
function nativeAddonPath(): string {
  const prebuilds = path.join(path.dirname(require.resolve('@discordjs/opus/package.json')), 'prebuild');
  const napiBuilds = readdirSync(prebuilds)
    .filter((directory) => directory.includes(`-napi-v3-${process.platform}-${process.arch}-`))
    .sort();
  const chosen = napiBuilds.find((directory) => directory.startsWith(`node-v${process.versions.modules}-`)) ?? napiBuilds[0];
  if (chosen === undefined) throw new Error(`no N-API build of @discordjs/opus for ${process.platform}-${process.arch} in ${prebuilds}`);
  return path.join(prebuilds, chosen, 'opus.node');
}

function failFreed(): never {
  throw new Error('opus codec used after free');
}
