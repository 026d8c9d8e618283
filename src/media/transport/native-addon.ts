import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * The native send path's addon (`native/`, built by `npm ci` when a C++ compiler is there): SRTP sealing of a batch
 * of RTP packets with OpenSSL and one `sendmmsg` for all of them. Everything here is optional: without the addon,
 * or with `AMPHI_NATIVE=off`, the TypeScript path (SrtpSendContext + dgram) does the same work packet by packet.
 */

/** A sealer for one SRTP send context's keys; the addon frees it when this object is collected. */
export interface NativeSealer {
  /** How batch descriptors name it. */
  readonly slot: number;
  /** Bytes the profile's tag adds to a packet. */
  readonly tagLength: number;
}

/**
 * What the addon exports (native/src/addon.cc). A batch is an arena Buffer holding plain RTP packets, each with
 * room for its tag after it, and a Uint32Array of `descriptorWords` words per packet, in the order of
 * `DescriptorWord`.
 */
export interface NativeAddon {
  readonly descriptorWords: number;
  /** Throws a TypeError on a wrong profile id or key length. */
  createSealer(profileId: number, key: Buffer, salt: Buffer, authKey: Buffer): NativeSealer;
  /** Seals `count` packets in place and sends them on `fd` with sendmmsg; returns how many were sent. fd -1: seal only. */
  sealBatch(fd: number, arena: Buffer, descriptors: Uint32Array, count: number): number;
  /** The bound port of `fd` if it is an IPv4 UDP socket, else -1. */
  boundUdp4Port(fd: number): number;
}

/** The words of one packet's descriptor (native/src/addon.cc keeps the same order). */
export const DescriptorWord = {
  sealerSlot: 0,
  offset: 1,
  length: 2,
  headerLength: 3,
  roc: 4,
  /** Destination IPv4 address as a number, host byte order. */
  ipv4: 5,
  port: 6,
  /** Written by the addon: 0 when sealed and sent, else the errno that refused the packet. */
  status: 7,
} as const;
export const DESCRIPTOR_WORDS = 8;

export const NATIVE_ADDON_PATH = fileURLToPath(new URL('../../../native/build/Release/amphi_native.node', import.meta.url));

/** `AMPHI_NATIVE`: `off` forces the TypeScript path, `on` makes a missing addon an error, unset (or `auto`) uses it when built. */
export type NativeChoice = 'auto' | 'on' | 'off';

export type NativeAddonLoad = { addon: NativeAddon; reason?: undefined } | { addon: undefined; reason: string };

/** The setting's value, or undefined when it is none of on, off, auto (the caller says so and uses auto). */
export function nativeChoiceFromEnv(value = process.env.AMPHI_NATIVE): NativeChoice | undefined {
  if (value === undefined || value === '' || value === 'auto') return 'auto';
  return value === 'on' || value === 'off' ? value : undefined;
}

/** Loads the addon at `path`; never throws for `auto` (the reason says why not), throws for `on` when it can't. */
export function loadNativeAddon(path = NATIVE_ADDON_PATH, choice: NativeChoice = nativeChoiceFromEnv() ?? 'auto'): NativeAddonLoad {
  if (choice === 'off') return { addon: undefined, reason: 'AMPHI_NATIVE=off' };
  let loaded: NativeAddonLoad;
  try {
    const addon = createRequire(import.meta.url)(path) as Partial<NativeAddon>;
    loaded = isNativeAddon(addon)
      ? { addon }
      : { addon: undefined, reason: `${path} is not this version's native addon (rebuild it: npm run build:native)` };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    loaded = {
      addon: undefined,
      reason: code === 'MODULE_NOT_FOUND' ? `the native addon is not built (no ${path})` : `the native addon failed to load: ${(error as Error).message}`,
    };
  }
  if (choice === 'on' && !loaded.addon) throw new Error(`AMPHI_NATIVE=on but ${loaded.reason}`);
  return loaded;
}

function isNativeAddon(candidate: Partial<NativeAddon>): candidate is NativeAddon {
  return (
    candidate.descriptorWords === DESCRIPTOR_WORDS &&
    typeof candidate.createSealer === 'function' &&
    typeof candidate.sealBatch === 'function' &&
    typeof candidate.boundUdp4Port === 'function'
  );
}

let threadLoad: NativeAddonLoad | undefined;

/** The addon for this thread, loaded once (each worker thread has its own instance of it). */
export function nativeAddon(): NativeAddonLoad {
  threadLoad ??= loadNativeAddon();
  return threadLoad;
}
