/**
 * The TLS 1.2 key schedule for our SHA-256 suite: the PRF (RFC 5246 §5), the master secret (§8.1) or
 * extended master secret (RFC 7627 §4), Finished's verify_data (§7.4.9), the AES-GCM key block
 * (§6.3, RFC 5288 §3) and the keying material exporter (RFC 5705 §4) that DTLS-SRTP keys come from.
 */
import { createHash, createHmac } from 'node:crypto';
import type { AeadWriteKeys } from './record-protection.ts';
import { VERIFY_DATA_BYTES } from './wire.ts';

const MASTER_SECRET_BYTES = 48;

/** PRF(secret, label, seed) = P_SHA256(secret, label | seed), cut to `length` bytes. */
export function prfSha256(secret: Buffer, label: string, seed: Buffer, length: number): Buffer {
  const labelAndSeed = Buffer.concat([Buffer.from(label, 'latin1'), seed]);
  const out = Buffer.alloc(length);
  // A(0) = seed; A(i) = HMAC(secret, A(i-1)); output = HMAC(secret, A(1) | seed) | HMAC(secret, A(2) | seed) | …
  let a = labelAndSeed;
  for (let written = 0; written < length; ) {
    a = createHmac('sha256', secret).update(a).digest();
    const block = createHmac('sha256', secret).update(a).update(labelAndSeed).digest();
    written += block.copy(out, written);
  }
  return out;
}

export function masterSecret(premasterSecret: Buffer, clientRandom: Buffer, serverRandom: Buffer): Buffer {
  return prfSha256(premasterSecret, 'master secret', Buffer.concat([clientRandom, serverRandom]), MASTER_SECRET_BYTES);
}

/** Bound to the handshake: `transcript` is every handshake message up to and including ClientKeyExchange. */
export function extendedMasterSecret(premasterSecret: Buffer, transcript: Buffer): Buffer {
  return prfSha256(premasterSecret, 'extended master secret', sha256(transcript), MASTER_SECRET_BYTES);
}

/** Finished's verify_data over every handshake message before this Finished. */
export function finishedVerifyData(master: Buffer, sender: 'client' | 'server', transcript: Buffer): Buffer {
  return prfSha256(master, `${sender} finished`, sha256(transcript), VERIFY_DATA_BYTES);
}

/** client_write and server_write key and implicit nonce of an AES-128-GCM suite (no MAC keys for AEAD). */
export function aesGcmKeyBlock(master: Buffer, clientRandom: Buffer, serverRandom: Buffer): { client: AeadWriteKeys; server: AeadWriteKeys } {
  const keyBytes = 16;
  const saltBytes = 4;
  // The key expansion seed is server_random | client_random, the other way round from the master secret.
  const block = prfSha256(master, 'key expansion', Buffer.concat([serverRandom, clientRandom]), 2 * (keyBytes + saltBytes));
  const at = (start: number, length: number) => Buffer.from(block.subarray(start, start + length));
  return {
    client: { key: at(0, keyBytes), salt: at(2 * keyBytes, saltBytes) },
    server: { key: at(keyBytes, keyBytes), salt: at(2 * keyBytes + saltBytes, saltBytes) },
  };
}

/** RFC 5705 exporter; without `context` the seed is just the two randoms (what DTLS-SRTP uses). */
export function exportKeyingMaterial(
  master: Buffer,
  label: string,
  clientRandom: Buffer,
  serverRandom: Buffer,
  length: number,
  context?: Buffer,
): Buffer {
  const seed = [clientRandom, serverRandom];
  if (context) {
    if (context.length > 0xffff) throw new RangeError('an exporter context is at most 2^16 - 1 bytes');
    const contextLength = Buffer.alloc(2);
    contextLength.writeUInt16BE(context.length, 0);
    seed.push(contextLength, context);
  }
  return prfSha256(master, label, Buffer.concat(seed), length);
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}
