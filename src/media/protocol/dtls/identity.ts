/** The certificate and key this process (or worker) presents to every browser, and SDP fingerprints (RFC 8122). */
import { createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import { createSelfSignedCertificate } from './certificate.ts';
import { DtlsError } from './errors.ts';

export interface DtlsFingerprint {
  /** Hash function token as written in SDP, lowercase: `sha-256`. */
  algorithm: string;
  /** Uppercase hex bytes separated by colons: `AB:CD:…`. */
  value: string;
}

export interface DtlsIdentity {
  readonly certificatePem: string;
  readonly privateKeyPem: string;
  readonly certificateDer: Buffer;
  readonly fingerprint: DtlsFingerprint;
  /** `sha-256 AB:CD:…`, the value of our answer's `a=fingerprint:` line. */
  readonly sdpFingerprint: string;
}

/** Generates a fresh ECDSA P-256 self-signed certificate (the kind Chrome itself uses for WebRTC). */
export async function createDtlsIdentity(): Promise<DtlsIdentity> {
  const { certificateDer, privateKey } = createSelfSignedCertificate();
  const fingerprint = certificateFingerprint(certificateDer, 'sha-256');
  const identity: DtlsIdentity = Object.freeze({
    certificatePem: toPem('CERTIFICATE', certificateDer),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    certificateDer,
    fingerprint,
    sdpFingerprint: formatSdpFingerprint(fingerprint),
  });
  signingKeys.set(identity, privateKey);
  return identity;
}

let sharedIdentity: Promise<DtlsIdentity> | undefined;

/**
 * The identity shared by every session of this module instance, generated on first use. Each
 * worker thread loads its own module instance, so each worker gets its own identity.
 */
export function getDtlsIdentity(): Promise<DtlsIdentity> {
  if (!sharedIdentity) {
    sharedIdentity = createDtlsIdentity();
    // A failed generation must not poison every later caller.
    sharedIdentity.catch(() => {
      sharedIdentity = undefined;
    });
  }
  return sharedIdentity;
}

const signingKeys = new WeakMap<DtlsIdentity, KeyObject>();

/** The identity's private key, parsed once; throws unless it is an ECDSA key. */
export function signingKeyOf(identity: DtlsIdentity): KeyObject {
  let key = signingKeys.get(identity);
  if (!key) {
    key = createPrivateKey(identity.privateKeyPem);
    if (key.asymmetricKeyType !== 'ec') throw new DtlsError('internal', 'the DTLS identity must hold an ECDSA key');
    signingKeys.set(identity, key);
  }
  return key;
}

const FINGERPRINT_HASHES: Readonly<Record<string, string>> = {
  'sha-1': 'sha1',
  'sha-224': 'sha224',
  'sha-256': 'sha256',
  'sha-384': 'sha384',
  'sha-512': 'sha512',
};

export function isSupportedFingerprintAlgorithm(algorithm: string): boolean {
  return FINGERPRINT_HASHES[algorithm.trim().toLowerCase()] !== undefined;
}

/** Fingerprint of a DER certificate, in SDP form (RFC 8122). */
export function certificateFingerprint(certificateDer: Buffer, algorithm = 'sha-256'): DtlsFingerprint {
  const normalized = algorithm.trim().toLowerCase();
  const hashName = FINGERPRINT_HASHES[normalized];
  if (!hashName) throw new DtlsError('unsupported-fingerprint', `unsupported fingerprint algorithm ${algorithm}`);
  const hex = createHash(hashName).update(certificateDer).digest('hex').toUpperCase();
  return { algorithm: normalized, value: hex.match(/../g)?.join(':') ?? '' };
}

export function formatSdpFingerprint(fingerprint: DtlsFingerprint): string {
  return `${fingerprint.algorithm} ${fingerprint.value}`;
}

export function normalizeFingerprintValue(value: string): string {
  return value.replace(/[\s:]/g, '').toUpperCase();
}

function toPem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
