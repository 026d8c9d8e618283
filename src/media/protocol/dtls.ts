import {
  X509Certificate,
  createECDH,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  randomBytes,
  sign as signData,
  timingSafeEqual,
  verify as verifySignature,
  type KeyObject,
} from 'node:crypto';
import { performance } from 'node:perf_hooks';
// werift-dtls 0.5.8's package.json points "main" at lib/index.js, which it does not ship.
import { CipherContext, HashAlgorithm, NamedCurveAlgorithm, SignatureAlgorithm } from 'werift-dtls/lib/dtls/src/index.js';
import { createCipher } from 'werift-dtls/lib/dtls/src/cipher/create.js';
import {
  exportKeyingMaterial,
  prfExtendedMasterSecret,
  prfMasterSecret,
  prfVerifyDataClient,
  prfVerifyDataServer,
} from 'werift-dtls/lib/dtls/src/cipher/prf.js';
import { SessionType } from 'werift-dtls/lib/dtls/src/cipher/suites/abstract.js';
import { Certificate } from 'werift-dtls/lib/dtls/src/handshake/message/certificate.js';
import { CertificateVerify } from 'werift-dtls/lib/dtls/src/handshake/message/client/certificateVerify.js';
import { ClientHello } from 'werift-dtls/lib/dtls/src/handshake/message/client/hello.js';
import { ClientKeyExchange } from 'werift-dtls/lib/dtls/src/handshake/message/client/keyExchange.js';
import { Finished } from 'werift-dtls/lib/dtls/src/handshake/message/finished.js';
import { ServerCertificateRequest } from 'werift-dtls/lib/dtls/src/handshake/message/server/certificateRequest.js';
import { ServerHello } from 'werift-dtls/lib/dtls/src/handshake/message/server/hello.js';
import { ServerHelloDone } from 'werift-dtls/lib/dtls/src/handshake/message/server/helloDone.js';
import { ServerHelloVerifyRequest } from 'werift-dtls/lib/dtls/src/handshake/message/server/helloVerifyRequest.js';
import { ServerKeyExchange } from 'werift-dtls/lib/dtls/src/handshake/message/server/keyExchange.js';
import { DtlsRandom } from 'werift-dtls/lib/dtls/src/handshake/random.js';
import { FragmentedHandshake } from 'werift-dtls/lib/dtls/src/record/message/fragment.js';
import type { Handshake } from 'werift-dtls/lib/dtls/src/typings/domain.js';

/**
 * DTLS 1.2 server side of a WebRTC transport (RFC 6347, RFC 5764 DTLS-SRTP), one session per
 * attendee connection, driven by the media worker's shared UDP socket: the worker hands us every
 * datagram whose first byte is 20..63 (RFC 7983) and sends the datagrams we hand back.
 *
 * werift-dtls provides the message codecs, the TLS PRF, the AES-GCM record protection and the
 * certificate generator. The handshake state machine is ours: werift's DtlsServer cannot be
 * stopped (its retransmissions run on uncancellable timers), reassembles fragmented messages only
 * when they arrive in order, and never checks the client's CertificateVerify or Finished, so a
 * certificate fingerprint taken from SDP would prove nothing.
 */

// ---------------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------------

export interface DtlsFingerprint {
  /** Hash function token as written in SDP, lowercase: `sha-256`. */
  algorithm: string;
  /** Uppercase hex bytes separated by colons: `AB:CD:…`. */
  value: string;
}

/** The certificate and key this process (or worker) presents to every browser. */
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
  const { certPem, keyPem } = await CipherContext.createSelfSignedCertificateWithKey(
    { hash: HashAlgorithm.sha256_4, signature: SignatureAlgorithm.ecdsa_3 },
    NamedCurveAlgorithm.secp256r1_23,
  );
  const certificateDer = Buffer.from(new X509Certificate(certPem).raw);
  const fingerprint = certificateFingerprint(certificateDer, 'sha-256');
  return Object.freeze({
    certificatePem: certPem,
    privateKeyPem: keyPem,
    certificateDer,
    fingerprint,
    sdpFingerprint: formatSdpFingerprint(fingerprint),
  });
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

function signingKeyOf(identity: DtlsIdentity): KeyObject {
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

function normalizeFingerprintValue(value: string): string {
  return value.replace(/[\s:]/g, '').toUpperCase();
}

// ---------------------------------------------------------------------------------------------
// SRTP protection profiles
// ---------------------------------------------------------------------------------------------

/** DTLS-SRTP protection profiles (RFC 5764, RFC 7714) that werift's SRTP code implements. */
export const SrtpProtectionProfile = {
  AES128_CM_HMAC_SHA1_80: 0x0001,
  AEAD_AES_128_GCM: 0x0007,
} as const;
export type SrtpProtectionProfile = (typeof SrtpProtectionProfile)[keyof typeof SrtpProtectionProfile];

/** Our preference order; the server picks the first of these the client offers. */
export const DEFAULT_SRTP_PROFILES: readonly SrtpProtectionProfile[] = [
  SrtpProtectionProfile.AEAD_AES_128_GCM,
  SrtpProtectionProfile.AES128_CM_HMAC_SHA1_80,
];

const SRTP_KEY_LENGTHS: Readonly<Record<SrtpProtectionProfile, { keyLength: number; saltLength: number }>> = {
  [SrtpProtectionProfile.AES128_CM_HMAC_SHA1_80]: { keyLength: 16, saltLength: 14 },
  [SrtpProtectionProfile.AEAD_AES_128_GCM]: { keyLength: 16, saltLength: 12 },
};

/** SRTP master keys and salts for one connection, already split for our (server) side. */
export interface SrtpKeyingMaterial {
  profile: SrtpProtectionProfile;
  /** server_write key/salt: protects what we send. */
  localKey: Buffer;
  localSalt: Buffer;
  /** client_write key/salt: protects what the browser sends. */
  remoteKey: Buffer;
  remoteSalt: Buffer;
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

export type DtlsErrorCode =
  | 'fingerprint-mismatch'
  | 'handshake-failure'
  | 'handshake-timeout'
  | 'peer-alert'
  | 'unsupported-fingerprint'
  | 'internal';

export class DtlsError extends Error {
  constructor(
    readonly code: DtlsErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DtlsError';
  }
}

// ---------------------------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------------------------

/** RFC 7983: a datagram whose first byte is 20..63 is DTLS. */
export function isDtlsDatagram(datagram: Uint8Array): boolean {
  const first = datagram[0];
  return first !== undefined && first >= 20 && first <= 63;
}

const ContentType = { changeCipherSpec: 20, alert: 21, handshake: 22, applicationData: 23 } as const;
const HandshakeType = {
  clientHello: 1,
  certificate: 11,
  certificateVerify: 15,
  clientKeyExchange: 16,
  finished: 20,
} as const;
const ExtensionType = {
  supportedGroups: 10,
  signatureAlgorithms: 13,
  useSrtp: 14,
  extendedMasterSecret: 23,
  renegotiationInfo: 0xff01,
} as const;
const AlertLevel = { warning: 1, fatal: 2 } as const;
const AlertDescription = {
  closeNotify: 0,
  unexpectedMessage: 10,
  handshakeFailure: 40,
  badCertificate: 42,
  decodeError: 50,
  decryptError: 51,
  internalError: 80,
} as const;

const DTLS_1_2 = { major: 0xfe, minor: 0xfd } as const;
/** The only suite an ECDSA certificate allows among those werift implements with a SHA-256 PRF. */
const CIPHER_SUITE_ECDHE_ECDSA_AES_128_GCM_SHA256 = 0xc02b;
const TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00ff;
/** Fastest first; X25519 is also the group Chrome offers first. */
const CURVE_PREFERENCE = [NamedCurveAlgorithm.x25519_29, NamedCurveAlgorithm.secp256r1_23] as const;
type Curve = (typeof CURVE_PREFERENCE)[number];
const HASH_SHA256 = 4;
const SIGNATURE_ECDSA = 3;
const SIGNATURE_SCHEME_ECDSA_SHA256 = 0x0403;
const SIGNATURE_SCHEME_RSA_PKCS1_SHA256 = 0x0401;
const CLIENT_CERTIFICATE_TYPE_RSA_SIGN = 1;
const CLIENT_CERTIFICATE_TYPE_ECDSA_SIGN = 64;

const RECORD_HEADER_BYTES = 13;
const HANDSHAKE_HEADER_BYTES = 12;
/** Flights are packed into datagrams no larger than this (Chrome's own DTLS MTU is 1200 too). */
const MAX_DATAGRAM_BYTES = 1200;
const MAX_HANDSHAKE_FRAGMENT_BYTES = MAX_DATAGRAM_BYTES - RECORD_HEADER_BYTES - HANDSHAKE_HEADER_BYTES;
/** Larger than any ClientHello or certificate chain a browser sends, post-quantum key shares included. */
const MAX_HANDSHAKE_MESSAGE_BYTES = 64 * 1024;
const MAX_PARTIAL_MESSAGES = 8;
const MAX_MESSAGES_AHEAD = 8;
const MAX_RETRANSMIT_DELAY_MS = 8000;
/** Answering a retransmitted peer flight more often than this only amplifies duplicates. */
const MIN_RESEND_INTERVAL_MS = 50;
const VERIFY_DATA_BYTES = 12;
const COOKIE_BYTES = 20;

/** The client's last flight in order; we always request a certificate, so it always has all four. */
const CLIENT_FINAL_FLIGHT = [
  HandshakeType.certificate,
  HandshakeType.clientKeyExchange,
  HandshakeType.certificateVerify,
  HandshakeType.finished,
] as const;

interface DtlsRecord {
  contentType: number;
  version: number;
  epoch: number;
  sequenceNumber: number;
  body: Buffer;
}

/** Splits a datagram into records; stops at the first malformed one. */
function parseRecords(datagram: Buffer): { records: DtlsRecord[]; malformed: boolean } {
  const records: DtlsRecord[] = [];
  let offset = 0;
  while (offset < datagram.length) {
    if (datagram.length - offset < RECORD_HEADER_BYTES) return { records, malformed: true };
    const version = datagram.readUInt16BE(offset + 1);
    const end = offset + RECORD_HEADER_BYTES + datagram.readUInt16BE(offset + 11);
    // Every DTLS version has major 0xFE.
    if (version >> 8 !== 0xfe || end > datagram.length) return { records, malformed: true };
    records.push({
      contentType: datagram.readUInt8(offset),
      version,
      epoch: datagram.readUInt16BE(offset + 3),
      sequenceNumber: datagram.readUIntBE(offset + 5, 6),
      body: datagram.subarray(offset + RECORD_HEADER_BYTES, end),
    });
    offset = end;
  }
  return { records, malformed: false };
}

interface HandshakeFragment {
  msgType: number;
  length: number;
  messageSeq: number;
  fragmentOffset: number;
  data: Buffer;
}

function parseHandshakeFragments(body: Buffer): { fragments: HandshakeFragment[]; malformed: boolean } {
  const fragments: HandshakeFragment[] = [];
  let offset = 0;
  while (offset < body.length) {
    if (body.length - offset < HANDSHAKE_HEADER_BYTES) return { fragments, malformed: true };
    const length = body.readUIntBE(offset + 1, 3);
    const fragmentOffset = body.readUIntBE(offset + 6, 3);
    const fragmentLength = body.readUIntBE(offset + 9, 3);
    const end = offset + HANDSHAKE_HEADER_BYTES + fragmentLength;
    if (end > body.length || fragmentOffset + fragmentLength > length) return { fragments, malformed: true };
    fragments.push({
      msgType: body.readUInt8(offset),
      length,
      messageSeq: body.readUInt16BE(offset + 4),
      fragmentOffset,
      data: body.subarray(offset + HANDSHAKE_HEADER_BYTES, end),
    });
    offset = end;
  }
  return { fragments, malformed: false };
}

interface HandshakeMessage {
  /** Reassembled: offset 0, fragment_length = length; serialize() is the transcript form. */
  message: FragmentedHandshake;
  epoch: number;
  /** The peer sent this message_seq before: it is retransmitting an earlier flight. */
  retransmission: boolean;
}

interface PartialMessage {
  msgType: number;
  length: number;
  epoch: number;
  body: Buffer;
  covered: Uint8Array;
  coveredBytes: number;
}

/**
 * Reassembles fragmented handshake messages (Chrome's DTLS 1.3-capable ClientHello, with its
 * post-quantum key share, spans two records) and releases them strictly in message_seq order,
 * whatever reordering, duplication or fragmentation the network produced.
 */
class HandshakeReassembler {
  private nextSeq = 0;
  private readonly partial = new Map<number, PartialMessage>();
  private readonly completeAhead = new Map<number, { message: FragmentedHandshake; epoch: number }>();

  add(fragment: HandshakeFragment, epoch: number): HandshakeMessage[] {
    const seq = fragment.messageSeq;
    if (fragment.length > MAX_HANDSHAKE_MESSAGE_BYTES) return [];
    if (seq >= this.nextSeq + MAX_MESSAGES_AHEAD || this.completeAhead.has(seq)) return [];

    let pending = this.partial.get(seq);
    if (pending && (pending.msgType !== fragment.msgType || pending.length !== fragment.length || pending.epoch !== epoch)) {
      this.partial.delete(seq);
      pending = undefined;
    }
    if (!pending) {
      // Stray fragments must not be able to block the real messages for good: evict the oldest.
      const oldest = this.partial.keys().next();
      if (this.partial.size >= MAX_PARTIAL_MESSAGES && !oldest.done) this.partial.delete(oldest.value);
      pending = {
        msgType: fragment.msgType,
        length: fragment.length,
        epoch,
        body: Buffer.alloc(fragment.length),
        covered: new Uint8Array(fragment.length),
        coveredBytes: 0,
      };
      this.partial.set(seq, pending);
    }
    fragment.data.copy(pending.body, fragment.fragmentOffset);
    const end = fragment.fragmentOffset + fragment.data.length;
    for (let i = fragment.fragmentOffset; i < end; i++) {
      if (pending.covered[i] === 0) {
        pending.covered[i] = 1;
        pending.coveredBytes++;
      }
    }
    if (pending.coveredBytes < pending.length) return [];

    this.partial.delete(seq);
    const message = new FragmentedHandshake(pending.msgType, pending.length, seq, 0, pending.length, pending.body);
    if (seq < this.nextSeq) return [{ message, epoch, retransmission: true }];

    this.completeAhead.set(seq, { message, epoch });
    const ready: HandshakeMessage[] = [];
    for (let next = this.completeAhead.get(this.nextSeq); next; next = this.completeAhead.get(this.nextSeq)) {
      this.completeAhead.delete(this.nextSeq);
      this.nextSeq++;
      ready.push({ ...next, retransmission: false });
    }
    return ready;
  }
}

/** Reads a uint16-length-prefixed list of uint16 values, as in supported_groups and use_srtp. */
function readUint16List(data: Buffer, offset = 0): number[] | undefined {
  if (data.length < offset + 2) return undefined;
  const length = data.readUInt16BE(offset);
  if (length % 2 !== 0 || data.length < offset + 2 + length) return undefined;
  const values: number[] = [];
  for (let i = offset + 2; i < offset + 2 + length; i += 2) values.push(data.readUInt16BE(i));
  return values;
}

// ---------------------------------------------------------------------------------------------
// Key exchange
// ---------------------------------------------------------------------------------------------

/** Ephemeral ECDHE key; node:crypto (OpenSSL) rather than werift's pure-JavaScript curves. */
interface EphemeralKey {
  curve: Curve;
  /** As sent in ServerKeyExchange: 32 raw bytes for X25519, an uncompressed point for P-256. */
  publicKey: Buffer;
  /** Validates the peer's key and returns the premaster secret. */
  agree(peerPublicKey: Buffer): Buffer;
}

/** PKCS #8 header of a raw 32-byte X25519 private key (RFC 8410). */
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

function createEphemeralKey(curve: Curve): EphemeralKey {
  if (curve === NamedCurveAlgorithm.x25519_29) {
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

// ---------------------------------------------------------------------------------------------
// Session
// ---------------------------------------------------------------------------------------------

export type DtlsSessionState = 'new' | 'connecting' | 'connected' | 'closed' | 'failed';
export type DtlsCloseReason = 'local' | 'peer' | 'error';

export interface DtlsServerSessionOptions {
  identity: DtlsIdentity;
  /** The `a=fingerprint` of the client's offer; the handshake fails unless its certificate matches. */
  expectedRemoteFingerprint: DtlsFingerprint;
  /**
   * Transmits one datagram to the peer. Errors are ignored (DTLS retransmits). Must not feed a
   * reply back into handleDatagram synchronously.
   */
  send: (datagram: Buffer) => void;
  /** Once, when the handshake completed and the peer is authenticated. */
  onConnected: (keys: SrtpKeyingMaterial) => void;
  /** A fatal failure; `onClosed('error')` follows. */
  onError?: (error: DtlsError) => void;
  /** Once, whatever ended the session (our close(), the peer's close_notify, an error). */
  onClosed?: (reason: DtlsCloseReason) => void;
  /** Decrypted DTLS application data (SCTP, should data channels ever be terminated here). */
  onApplicationData?: (data: Buffer) => void;
  /** Preference order, first wins. Default: AEAD_AES_128_GCM, then AES128_CM_HMAC_SHA1_80. */
  srtpProfiles?: readonly SrtpProtectionProfile[];
  /**
   * Answer the first ClientHello with a HelloVerifyRequest cookie (RFC 6347 §4.2.1). Off by
   * default: it costs a round trip, and ICE connectivity checks have already proved that the peer
   * owns its address before the worker routes its datagrams to this session.
   */
  cookieExchange?: boolean;
  /** From construction until connected; default 30 s. */
  handshakeTimeoutMs?: number;
  /** First retransmission of our flight when the client goes quiet; doubles each time. Default 500 ms. */
  retransmitTimeoutMs?: number;
}

/** werift's AES-GCM record protection for TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256. */
type RecordCipher = ReturnType<typeof createCipher>;

type HandshakePhase = 'awaiting-client-hello' | 'awaiting-client-finished' | 'connected' | 'ended';

interface Negotiated {
  curve: Curve;
  srtpProfile: SrtpProtectionProfile;
  extendedMasterSecret: boolean;
  renegotiationInfo: boolean;
}

export class DtlsServerSession {
  private readonly options: DtlsServerSessionOptions;
  private readonly expectedFingerprint: DtlsFingerprint;
  private readonly srtpProfiles: readonly SrtpProtectionProfile[];
  private readonly reassembler = new HandshakeReassembler();

  private phase: HandshakePhase = 'awaiting-client-hello';
  private endState: 'closed' | 'failed' | undefined;
  private cookie: Buffer | undefined;

  // Handshake state, from the accepted ClientHello on.
  private negotiated: Negotiated | undefined;
  private acceptedHelloSeq = -1;
  private clientRandom: Buffer | undefined;
  private serverRandom: Buffer | undefined;
  private ephemeralKey: EphemeralKey | undefined;
  /** Every handshake message from the accepted ClientHello on, as hashed for Finished and EMS. */
  private readonly transcript: Buffer[] = [];
  /** Position in CLIENT_FINAL_FLIGHT of the next message we accept. */
  private finalFlightStep = 0;
  private clientFinishedSeq = -1;
  private peerCertificate: Buffer | undefined;
  private masterSecret: Buffer | undefined;
  private recordCipher: RecordCipher | undefined;

  // Our side of the record layer.
  private nextMessageSeq = 0;
  private writeEpoch = 0;
  private readonly nextRecordSeq = [0, 0];
  private lastFlight: Buffer[] = [];

  private handshakeTimer: NodeJS.Timeout | undefined;
  private retransmitTimer: NodeJS.Timeout | undefined;
  private retransmitDelayMs: number;
  private lastResendAt = -Infinity;
  private handshakeStartedAt: number | undefined;
  private handshakeDuration: number | undefined;
  private droppedRecords = 0;

  constructor(options: DtlsServerSessionOptions) {
    this.options = options;
    const algorithm = options.expectedRemoteFingerprint.algorithm.trim().toLowerCase();
    if (!FINGERPRINT_HASHES[algorithm]) {
      throw new DtlsError('unsupported-fingerprint', `unsupported fingerprint algorithm ${options.expectedRemoteFingerprint.algorithm}`);
    }
    this.expectedFingerprint = { algorithm, value: normalizeFingerprintValue(options.expectedRemoteFingerprint.value) };
    this.srtpProfiles = options.srtpProfiles ?? DEFAULT_SRTP_PROFILES;
    this.retransmitDelayMs = options.retransmitTimeoutMs ?? 500;
    // Parses the key once per identity, and rejects an unusable one now rather than mid-handshake.
    signingKeyOf(options.identity);

    const timeoutMs = options.handshakeTimeoutMs ?? 30_000;
    this.handshakeTimer = setTimeout(() => {
      this.handshakeTimer = undefined;
      this.fail(new DtlsError('handshake-timeout', `DTLS handshake did not complete within ${timeoutMs} ms`));
    }, timeoutMs);
  }

  get state(): DtlsSessionState {
    if (this.endState) return this.endState;
    if (this.phase === 'connected') return 'connected';
    return this.handshakeStartedAt === undefined ? 'new' : 'connecting';
  }

  /** The negotiated SRTP protection profile, known once the client's hello was accepted. */
  get srtpProfile(): SrtpProtectionProfile | undefined {
    return this.negotiated?.srtpProfile;
  }

  /** The client's certificate (DER), once received and matched against the expected fingerprint. */
  get remoteCertificate(): Buffer | undefined {
    return this.peerCertificate;
  }

  /** Whether the master secret is bound to the handshake transcript (RFC 7627). */
  get extendedMasterSecret(): boolean {
    return this.negotiated?.extendedMasterSecret ?? false;
  }

  /** From the first ClientHello to our Finished, in milliseconds. */
  get handshakeDurationMs(): number | undefined {
    return this.handshakeDuration;
  }

  /** Records ignored as malformed, undecryptable, out of place or unauthenticated. */
  get droppedRecordCount(): number {
    return this.droppedRecords;
  }

  /** Callbacks and earlier records of the same datagram may have ended the session. */
  private get ended(): boolean {
    return this.phase === 'ended';
  }

  /** Feeds one datagram from the peer (first byte 20..63). Never throws. */
  handleDatagram(datagram: Buffer): void {
    if (this.ended) return;
    try {
      const { records, malformed } = parseRecords(datagram);
      if (malformed) this.droppedRecords++;
      for (const record of records) {
        if (this.ended) return;
        this.handleRecord(record);
      }
    } catch (error) {
      this.fail(new DtlsError('internal', `DTLS processing failed: ${describe(error)}`, { cause: error }), AlertDescription.internalError);
    }
  }

  /** Encrypts and sends application data; false when not connected. */
  sendApplicationData(data: Buffer): boolean {
    if (this.phase !== 'connected') return false;
    this.sendDatagram(this.sealRecord(ContentType.applicationData, data));
    return true;
  }

  /** Ends the session and cancels every timer; tells a connected peer with close_notify. Idempotent. */
  close(): void {
    if (this.ended) return;
    if (this.phase === 'connected') this.sendAlert(AlertLevel.warning, AlertDescription.closeNotify);
    this.end('closed');
    this.emit(() => this.options.onClosed?.('local'));
  }

  // -- records ----------------------------------------------------------------------------------

  private handleRecord(record: DtlsRecord): void {
    switch (record.contentType) {
      case ContentType.handshake:
        return this.handleHandshakeRecord(record);
      case ContentType.alert:
        return this.handleAlertRecord(record);
      case ContentType.applicationData:
        return this.handleApplicationDataRecord(record);
      case ContentType.changeCipherSpec:
        // Epoch numbers already say which records are encrypted.
        return;
      default:
        this.droppedRecords++;
    }
  }

  /** Plaintext of a record: epoch 0 as is, epoch 1 decrypted and authenticated; undefined otherwise. */
  private openRecord(record: DtlsRecord): Buffer | undefined {
    if (record.epoch === 0) return record.body;
    if (record.epoch !== 1 || !this.recordCipher) return undefined;
    try {
      return this.recordCipher.decrypt(SessionType.SERVER, record.body, {
        type: record.contentType,
        version: record.version,
        epoch: record.epoch,
        sequenceNumber: record.sequenceNumber,
      });
    } catch {
      return undefined;
    }
  }

  private handleHandshakeRecord(record: DtlsRecord): void {
    const body = this.openRecord(record);
    if (!body) {
      this.droppedRecords++;
      return;
    }
    const { fragments, malformed } = parseHandshakeFragments(body);
    if (malformed) this.droppedRecords++;
    for (const fragment of fragments) {
      for (const message of this.reassembler.add(fragment, record.epoch)) {
        if (this.ended) return;
        this.handleHandshakeMessage(message);
      }
    }
  }

  private handleAlertRecord(record: DtlsRecord): void {
    // Once connected, only an authenticated (encrypted) alert may end the session.
    const body = this.phase === 'connected' && record.epoch === 0 ? undefined : this.openRecord(record);
    if (!body || body.length !== 2) {
      this.droppedRecords++;
      return;
    }
    const level = body.readUInt8(0);
    const description = body.readUInt8(1);
    if (description === AlertDescription.closeNotify) {
      this.end('closed');
      this.emit(() => this.options.onClosed?.('peer'));
    } else if (level === AlertLevel.fatal) {
      this.fail(new DtlsError('peer-alert', `the peer sent fatal alert ${alertName(description)}`));
    }
  }

  private handleApplicationDataRecord(record: DtlsRecord): void {
    const data = this.phase === 'connected' && record.epoch === 1 ? this.openRecord(record) : undefined;
    if (!data) {
      this.droppedRecords++;
      return;
    }
    this.emit(() => this.options.onApplicationData?.(data));
  }

  // -- handshake --------------------------------------------------------------------------------

  private handleHandshakeMessage({ message, epoch, retransmission }: HandshakeMessage): void {
    switch (this.phase) {
      case 'awaiting-client-hello':
        // A first hello and its retransmissions are handled alike.
        if (message.msg_type === HandshakeType.clientHello && epoch === 0) this.handleClientHello(message);
        else this.droppedRecords++;
        return;
      case 'awaiting-client-finished':
        if (retransmission) {
          // The client repeating the hello we answered means our flight was lost.
          if (message.msg_type === HandshakeType.clientHello && message.message_seq === this.acceptedHelloSeq) this.resendLastFlight();
          return;
        }
        this.handleClientFinalFlight(message, epoch);
        return;
      case 'connected':
        // The client repeating its Finished means our last flight was lost. Renegotiation is refused by silence.
        if (retransmission && message.message_seq === this.clientFinishedSeq && epoch === 1) this.resendLastFlight();
        return;
      case 'ended':
        return;
    }
  }

  private handleClientHello(message: FragmentedHandshake): void {
    const hello = parseClientHello(message);
    if (!hello) {
      this.droppedRecords++;
      return;
    }
    this.handshakeStartedAt ??= performance.now();
    const negotiated = this.negotiate(hello);
    if (negotiated instanceof DtlsError) {
      this.fail(negotiated, AlertDescription.handshakeFailure);
      return;
    }
    if (this.options.cookieExchange && !(this.cookie && hello.cookie.equals(this.cookie))) {
      this.sendHelloVerifyRequest();
      return;
    }
    this.acceptClientHello(message, hello, negotiated);
  }

  /** Picks what this ClientHello allows, in our preference order. */
  private negotiate(hello: ClientHello): Negotiated | DtlsError {
    if (!hello.cipherSuites.includes(CIPHER_SUITE_ECDHE_ECDSA_AES_128_GCM_SHA256)) {
      return new DtlsError('handshake-failure', 'the client does not offer TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256');
    }
    let curve: Curve | undefined = NamedCurveAlgorithm.secp256r1_23; // RFC 8422 §4: no extension, any curve
    let srtpProfile: SrtpProtectionProfile | undefined;
    let extendedMasterSecret = false;
    let renegotiationInfo = hello.cipherSuites.includes(TLS_EMPTY_RENEGOTIATION_INFO_SCSV);
    for (const { type, data } of hello.extensions) {
      switch (type) {
        case ExtensionType.supportedGroups: {
          const groups = readUint16List(data) ?? [];
          curve = CURVE_PREFERENCE.find((candidate) => groups.includes(candidate));
          break;
        }
        case ExtensionType.signatureAlgorithms: {
          const schemes = readUint16List(data) ?? [];
          if (!schemes.includes((HASH_SHA256 << 8) | SIGNATURE_ECDSA)) {
            return new DtlsError('handshake-failure', 'the client does not accept ECDSA with SHA-256 signatures');
          }
          break;
        }
        case ExtensionType.useSrtp: {
          const offered = readUint16List(data) ?? [];
          srtpProfile = this.srtpProfiles.find((profile) => offered.includes(profile));
          if (srtpProfile === undefined) {
            const names = offered.map((profile) => `0x${profile.toString(16).padStart(4, '0')}`).join(', ');
            return new DtlsError('handshake-failure', `no common SRTP protection profile (the client offers ${names || 'none'})`);
          }
          break;
        }
        case ExtensionType.extendedMasterSecret:
          extendedMasterSecret = true;
          break;
        case ExtensionType.renegotiationInfo:
          renegotiationInfo = true;
          break;
      }
    }
    if (curve === undefined) return new DtlsError('handshake-failure', 'the client offers neither X25519 nor P-256');
    if (srtpProfile === undefined) return new DtlsError('handshake-failure', 'the client offers no DTLS-SRTP (use_srtp)');
    return { curve, srtpProfile, extendedMasterSecret, renegotiationInfo };
  }

  /** Stateless: a retransmitted first hello gets the same HelloVerifyRequest again. */
  private sendHelloVerifyRequest(): void {
    this.cookie ??= randomBytes(COOKIE_BYTES);
    const request = new ServerHelloVerifyRequest({ ...DTLS_1_2 }, this.cookie);
    request.messageSeq = 0;
    // Our ServerHello then follows as message 1 (RFC 6347 §4.2.2).
    this.nextMessageSeq = 1;
    this.sendDatagram(this.sealRecord(ContentType.handshake, request.toFragment().serialize()));
  }

  /** Flight 4: ServerHello, Certificate, ServerKeyExchange, CertificateRequest, ServerHelloDone. */
  private acceptClientHello(message: FragmentedHandshake, hello: ClientHello, negotiated: Negotiated): void {
    this.negotiated = negotiated;
    this.acceptedHelloSeq = message.message_seq;
    this.clientRandom = new DtlsRandom(hello.random.gmt_unix_time, hello.random.random_bytes).serialize();
    const serverRandom = new DtlsRandom();
    this.serverRandom = serverRandom.serialize();
    this.ephemeralKey = createEphemeralKey(negotiated.curve);
    this.transcript.push(message.serialize());

    const extensions = [
      // use_srtp: one profile, empty MKI.
      { type: ExtensionType.useSrtp, data: Buffer.from([0, 2, negotiated.srtpProfile >> 8, negotiated.srtpProfile & 0xff, 0]) },
      ...(negotiated.extendedMasterSecret ? [{ type: ExtensionType.extendedMasterSecret, data: Buffer.alloc(0) }] : []),
      ...(negotiated.renegotiationInfo ? [{ type: ExtensionType.renegotiationInfo, data: Buffer.from([0]) }] : []),
    ];
    const serverHello = new ServerHello(
      { ...DTLS_1_2 },
      serverRandom,
      Buffer.alloc(0), // no session resumption
      CIPHER_SUITE_ECDHE_ECDSA_AES_128_GCM_SHA256,
      0,
      extensions,
    );
    const keyExchange = this.signedKeyExchange();
    const certificateRequest = new ServerCertificateRequest(
      [CLIENT_CERTIFICATE_TYPE_ECDSA_SIGN, CLIENT_CERTIFICATE_TYPE_RSA_SIGN],
      [
        { hash: HashAlgorithm.sha256_4, signature: SignatureAlgorithm.ecdsa_3 },
        { hash: HashAlgorithm.sha256_4, signature: SignatureAlgorithm.rsa_1 },
      ],
      [],
    );
    const records = [
      serverHello,
      new Certificate([this.options.identity.certificateDer]),
      keyExchange,
      certificateRequest,
      new ServerHelloDone(),
    ].flatMap((handshake) => this.handshakeRecords(handshake));

    this.phase = 'awaiting-client-finished';
    this.sendFlight(records);
    this.armRetransmit();
  }

  /** ServerKeyExchange with our ephemeral key, signed over both randoms (RFC 8422 §5.4). */
  private signedKeyExchange(): ServerKeyExchange {
    const key = this.ephemeralKey!;
    const params = Buffer.alloc(4);
    params.writeUInt8(3, 0); // named_curve
    params.writeUInt16BE(key.curve, 1);
    params.writeUInt8(key.publicKey.length, 3);
    const signed = Buffer.concat([this.clientRandom!, this.serverRandom!, params, key.publicKey]);
    const signature = signData('sha256', signed, { key: signingKeyOf(this.options.identity), dsaEncoding: 'der' });
    return new ServerKeyExchange(3, key.curve, key.publicKey.length, key.publicKey, HASH_SHA256, SIGNATURE_ECDSA, signature.length, signature);
  }

  private handleClientFinalFlight(message: FragmentedHandshake, epoch: number): void {
    const expected = CLIENT_FINAL_FLIGHT[this.finalFlightStep];
    // Finished must arrive encrypted (after ChangeCipherSpec); everything before it in the clear.
    const expectedEpoch = expected === HandshakeType.finished ? 1 : 0;
    if (message.msg_type !== expected || epoch !== expectedEpoch) {
      this.fail(
        new DtlsError('handshake-failure', `unexpected handshake message ${message.msg_type} (epoch ${epoch}), expected ${expected}`),
        AlertDescription.unexpectedMessage,
      );
      return;
    }
    this.finalFlightStep++;
    switch (expected) {
      case HandshakeType.certificate:
        return this.handleClientCertificate(message);
      case HandshakeType.clientKeyExchange:
        return this.handleClientKeyExchange(message);
      case HandshakeType.certificateVerify:
        return this.handleCertificateVerify(message);
      case HandshakeType.finished:
        return this.handleClientFinished(message);
    }
  }

  private handleClientCertificate(message: FragmentedHandshake): void {
    let certificate: Buffer | undefined;
    try {
      certificate = Certificate.deSerialize(message.fragment).certificateList[0];
    } catch (error) {
      this.fail(new DtlsError('handshake-failure', 'unparsable client Certificate', { cause: error }), AlertDescription.decodeError);
      return;
    }
    if (!certificate || certificate.length === 0) {
      this.fail(new DtlsError('handshake-failure', 'the client sent no certificate'), AlertDescription.handshakeFailure);
      return;
    }
    const actual = certificateFingerprint(certificate, this.expectedFingerprint.algorithm);
    if (normalizeFingerprintValue(actual.value) !== this.expectedFingerprint.value) {
      this.fail(
        new DtlsError('fingerprint-mismatch', `the client certificate's ${actual.algorithm} fingerprint ${actual.value} does not match the SDP offer`),
        AlertDescription.badCertificate,
      );
      return;
    }
    this.peerCertificate = Buffer.from(certificate);
    this.transcript.push(message.serialize());
  }

  private handleClientKeyExchange(message: FragmentedHandshake): void {
    this.transcript.push(message.serialize());
    try {
      const { publicKey } = ClientKeyExchange.deSerialize(message.fragment);
      const premaster = this.ephemeralKey!.agree(publicKey);
      // RFC 7627: the session hash covers every message up to and including this one.
      this.masterSecret = this.negotiated!.extendedMasterSecret
        ? prfExtendedMasterSecret(premaster, Buffer.concat(this.transcript))
        : prfMasterSecret(premaster, this.clientRandom!, this.serverRandom!);
      const recordCipher = createCipher(CIPHER_SUITE_ECDHE_ECDSA_AES_128_GCM_SHA256);
      recordCipher.init(this.masterSecret, this.serverRandom!, this.clientRandom!);
      this.recordCipher = recordCipher;
    } catch (error) {
      this.fail(new DtlsError('handshake-failure', `invalid ClientKeyExchange: ${describe(error)}`, { cause: error }), AlertDescription.handshakeFailure);
    }
  }

  /** Proves the client holds the private key of the certificate whose fingerprint we checked. */
  private handleCertificateVerify(message: FragmentedHandshake): void {
    let verified = false;
    try {
      const { algorithm, signature } = CertificateVerify.deSerialize(message.fragment);
      const signed = Buffer.concat(this.transcript);
      const publicKey = new X509Certificate(this.peerCertificate!).publicKey;
      if (algorithm === SIGNATURE_SCHEME_ECDSA_SHA256 && publicKey.asymmetricKeyType === 'ec') {
        verified = verifySignature('sha256', signed, { key: publicKey, dsaEncoding: 'der' }, signature);
      } else if (algorithm === SIGNATURE_SCHEME_RSA_PKCS1_SHA256 && publicKey.asymmetricKeyType === 'rsa') {
        verified = verifySignature('sha256', signed, publicKey, signature);
      }
    } catch {
      verified = false;
    }
    if (!verified) {
      this.fail(new DtlsError('handshake-failure', 'the client CertificateVerify signature is invalid'), AlertDescription.decryptError);
      return;
    }
    this.transcript.push(message.serialize());
  }

  /** Checks the client's Finished, then flight 6: ChangeCipherSpec and our Finished. */
  private handleClientFinished(message: FragmentedHandshake): void {
    const masterSecret = this.masterSecret!;
    const expected = prfVerifyDataClient(masterSecret, Buffer.concat(this.transcript));
    const received = message.fragment;
    if (received.length !== VERIFY_DATA_BYTES || !timingSafeEqual(received, expected)) {
      this.fail(new DtlsError('handshake-failure', 'the client Finished does not match the handshake'), AlertDescription.decryptError);
      return;
    }
    this.clientFinishedSeq = message.message_seq;
    this.transcript.push(message.serialize());

    const changeCipherSpec = this.sealRecord(ContentType.changeCipherSpec, Buffer.from([1]));
    this.writeEpoch = 1;
    const finished = this.handshakeRecords(new Finished(prfVerifyDataServer(masterSecret, Buffer.concat(this.transcript))));

    this.phase = 'connected';
    this.clearTimers();
    if (this.handshakeStartedAt !== undefined) this.handshakeDuration = performance.now() - this.handshakeStartedAt;
    this.sendFlight([changeCipherSpec, ...finished]);
    const keys = this.exportSrtpKeys(this.negotiated!.srtpProfile);
    this.emit(() => this.options.onConnected(keys));
  }

  /** RFC 5764 §4.2: client key, server key, client salt, server salt. */
  private exportSrtpKeys(profile: SrtpProtectionProfile): SrtpKeyingMaterial {
    const { keyLength, saltLength } = SRTP_KEY_LENGTHS[profile];
    const material = exportKeyingMaterial(
      'EXTRACTOR-dtls_srtp',
      2 * (keyLength + saltLength),
      this.masterSecret!,
      this.serverRandom!,
      this.clientRandom!,
      false,
    );
    const slice = (start: number, length: number) => Buffer.from(material.subarray(start, start + length));
    return {
      profile,
      remoteKey: slice(0, keyLength),
      localKey: slice(keyLength, keyLength),
      remoteSalt: slice(2 * keyLength, saltLength),
      localSalt: slice(2 * keyLength + saltLength, saltLength),
    };
  }

  // -- sending ----------------------------------------------------------------------------------

  /** Numbers a handshake message, adds it to the transcript, and seals it into records. */
  private handshakeRecords(handshake: Handshake): Buffer[] {
    handshake.messageSeq = this.nextMessageSeq++;
    const whole = handshake.toFragment();
    this.transcript.push(whole.serialize());
    return whole
      .chunk(MAX_HANDSHAKE_FRAGMENT_BYTES)
      .map((fragment) => this.sealRecord(ContentType.handshake, fragment.serialize()));
  }

  /** One record in the current write epoch; sequence numbers restart at 0 in each epoch. */
  private sealRecord(contentType: number, body: Buffer): Buffer {
    const epoch = this.writeEpoch;
    const sequenceNumber = this.nextRecordSeq[epoch] ?? 0;
    this.nextRecordSeq[epoch] = sequenceNumber + 1;
    const version = (DTLS_1_2.major << 8) | DTLS_1_2.minor;
    const payload =
      epoch === 0 ? body : this.recordCipher!.encrypt(SessionType.SERVER, body, { type: contentType, version, epoch, sequenceNumber });
    const header = Buffer.alloc(RECORD_HEADER_BYTES);
    header.writeUInt8(contentType, 0);
    header.writeUInt16BE(version, 1);
    header.writeUInt16BE(epoch, 3);
    header.writeUIntBE(sequenceNumber, 5, 6);
    header.writeUInt16BE(payload.length, 11);
    return Buffer.concat([header, payload]);
  }

  /** Remembers the flight for retransmission and packs its records into as few datagrams as fit. */
  private sendFlight(records: Buffer[]): void {
    this.lastFlight = records;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    for (const record of records) {
      if (pendingBytes > 0 && pendingBytes + record.length > MAX_DATAGRAM_BYTES) {
        this.sendDatagram(Buffer.concat(pending));
        pending = [];
        pendingBytes = 0;
      }
      pending.push(record);
      pendingBytes += record.length;
    }
    if (pendingBytes > 0) this.sendDatagram(Buffer.concat(pending));
  }

  private resendLastFlight(): void {
    const now = performance.now();
    if (now - this.lastResendAt < MIN_RESEND_INTERVAL_MS) return;
    this.lastResendAt = now;
    this.sendFlight(this.lastFlight);
  }

  private sendAlert(level: number, description: number): void {
    try {
      this.sendDatagram(this.sealRecord(ContentType.alert, Buffer.from([level, description])));
    } catch {
      // The alert is a courtesy; the session ends either way.
    }
  }

  private sendDatagram(datagram: Buffer): void {
    try {
      this.options.send(datagram);
    } catch {
      // Transport errors are the socket owner's business; DTLS recovers through retransmission.
    }
  }

  // -- timers and lifecycle ---------------------------------------------------------------------

  private armRetransmit(): void {
    this.retransmitTimer = setTimeout(() => {
      this.retransmitTimer = undefined;
      if (this.phase !== 'awaiting-client-finished') return;
      this.sendFlight(this.lastFlight);
      this.retransmitDelayMs = Math.min(this.retransmitDelayMs * 2, MAX_RETRANSMIT_DELAY_MS);
      this.armRetransmit();
    }, this.retransmitDelayMs);
  }

  private clearTimers(): void {
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    if (this.retransmitTimer) clearTimeout(this.retransmitTimer);
    this.handshakeTimer = undefined;
    this.retransmitTimer = undefined;
  }

  private fail(error: DtlsError, alert?: number): void {
    if (this.ended) return;
    if (alert !== undefined) this.sendAlert(AlertLevel.fatal, alert);
    this.end('failed');
    this.emit(() => this.options.onError?.(error));
    this.emit(() => this.options.onClosed?.('error'));
  }

  private end(state: 'closed' | 'failed'): void {
    this.phase = 'ended';
    this.endState = state;
    this.clearTimers();
  }

  /** Callbacks belong to the caller; their exceptions must not derail the DTLS state machine. */
  private emit(callback: () => void): void {
    try {
      callback();
    } catch (error) {
      process.emitWarning(error instanceof Error ? error : new Error(String(error)), 'DtlsCallbackWarning');
    }
  }
}

function parseClientHello(message: FragmentedHandshake): ClientHello | undefined {
  try {
    const hello = ClientHello.deSerialize(message.fragment);
    const wellFormed =
      Buffer.isBuffer(hello.cookie) &&
      Array.isArray(hello.cipherSuites) &&
      Array.isArray(hello.extensions) &&
      Buffer.isBuffer(hello.random?.random_bytes) &&
      hello.random.random_bytes.length === 28;
    return wellFormed ? hello : undefined;
  } catch {
    return undefined;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function alertName(description: number): string {
  const entry = Object.entries(AlertDescription).find(([, value]) => value === description);
  return entry ? `${entry[0]} (${description})` : String(description);
}
