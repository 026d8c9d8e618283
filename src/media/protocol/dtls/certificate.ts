/**
 * A self-signed ECDSA P-256 X.509 v3 certificate, the kind browsers make for WebRTC themselves: the
 * peer checks it only against the fingerprint in our SDP answer, so it carries a name, a validity
 * and the key, and no extensions.
 */
import { createECDH, createPrivateKey, createPublicKey, randomBytes, sign, type KeyObject } from 'node:crypto';
import { bitString, explicit, objectIdentifier, sequence, set, time, unsignedInteger, utf8String } from './der.ts';

const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
} as const;

const X509_VERSION_3 = 2;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Our identity lives as long as its worker; browsers ignore the dates of a fingerprinted certificate. */
const VALIDITY_MS = 10 * 365 * DAY_MS;

export interface SelfSignedCertificate {
  certificateDer: Buffer;
  privateKey: KeyObject;
}

export function createSelfSignedCertificate(commonName = 'amphi', now = new Date()): SelfSignedCertificate {
  const privateKey = createP256PrivateKey();
  const subjectPublicKeyInfo = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const name = sequence(set(sequence(objectIdentifier(OID.commonName), utf8String(commonName))));
  const signatureAlgorithm = sequence(objectIdentifier(OID.ecdsaWithSha256));
  const tbsCertificate = sequence(
    explicit(0, unsignedInteger(X509_VERSION_3)),
    unsignedInteger(serialNumber()),
    signatureAlgorithm,
    name,
    // A day back, for peers whose clocks run late.
    sequence(time(new Date(now.getTime() - DAY_MS)), time(new Date(now.getTime() + VALIDITY_MS))),
    name,
    subjectPublicKeyInfo,
  );
  const signature = sign('sha256', tbsCertificate, { key: privateKey, dsaEncoding: 'der' });
  return { certificateDer: sequence(tbsCertificate, signatureAlgorithm, bitString(signature)), privateKey };
}

/**
 * From ECDH key material rather than generateKeyPair: Node 20 can deadlock a thread when the garbage
 * collector frees a key-generation job while a key's lock is held (seen in a media worker under churn).
 */
function createP256PrivateKey(): KeyObject {
  const ecdh = createECDH('prime256v1');
  const publicKey = ecdh.generateKeys(); // 0x04 | x | y
  const d = Buffer.alloc(32);
  const raw = ecdh.getPrivateKey();
  raw.copy(d, 32 - raw.length);
  return createPrivateKey({
    key: {
      kty: 'EC',
      crv: 'P-256',
      x: publicKey.subarray(1, 33).toString('base64url'),
      y: publicKey.subarray(33, 65).toString('base64url'),
      d: d.toString('base64url'),
    },
    format: 'jwk',
  });
}

/** RFC 5280 §4.1.2.2: positive, at most 20 bytes; 16 random bytes with the top bit clear and a non-zero lead. */
function serialNumber(): Buffer {
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01;
  return serial;
}
