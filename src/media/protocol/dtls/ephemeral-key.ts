/** Ephemeral ECDHE keys for the handshake (RFC 8422), with node:crypto (OpenSSL) doing the curve work. */
import { createECDH, createPrivateKey, createPublicKey, diffieHellman, randomBytes } from 'node:crypto';
import { NamedGroup } from './wire.ts';

/** Fastest first; X25519 is also the group Chrome offers first. */
export const CURVE_PREFERENCE = [NamedGroup.x25519, NamedGroup.secp256r1] as const;
export type Curve = (typeof CURVE_PREFERENCE)[number];

export interface EphemeralKey {
  curve: Curve;
  /** As sent in ServerKeyExchange: 32 raw bytes for X25519, an uncompressed point for P-256. */
  publicKey: Buffer;
  /** Validates the peer's key and returns the premaster secret; throws on an invalid key. */
  agree(peerPublicKey: Buffer): Buffer;
}

/** PKCS #8 header of a raw 32-byte X25519 private key (RFC 8410). */
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

export function createEphemeralKey(curve: Curve): EphemeralKey {
  if (curve === NamedGroup.x25519) {
    // From random bytes rather than generateKeyPairSync('x25519'): Node 20 can deadlock a thread
    // when the garbage collector frees a key-generation job while a key's lock is held (seen in
    // a media worker under churn: ~KeyGenJob waiting on a mutex inside a GC).
    const privateKey = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, randomBytes(32)]), format: 'der', type: 'pkcs8' });
    const raw = Buffer.from(createPublicKey(privateKey).export({ format: 'jwk' }).x ?? '', 'base64url');
    return {
      curve,
      publicKey: raw,
      agree: (peerPublicKey) => {
        if (peerPublicKey.length !== 32) throw new Error('an X25519 public key is 32 bytes');
        const peerKey = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: peerPublicKey.toString('base64url') }, format: 'jwk' });
        // OpenSSL refuses low-order points (an all-zero shared secret).
        return diffieHellman({ privateKey, publicKey: peerKey });
      },
    };
  }
  const ecdh = createECDH('prime256v1');
  const publicKey = ecdh.generateKeys();
  return { curve, publicKey, agree: (peerPublicKey) => ecdh.computeSecret(peerPublicKey) };
}
