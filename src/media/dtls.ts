import { X509Certificate, createHash, timingSafeEqual, verify as verifySignature } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
// werift-dtls 0.5.8's package.json points "main" at lib/index.js, which it does not ship.
import {
  CipherContext,
  HashAlgorithm,
  NamedCurveAlgorithm,
  SignatureAlgorithm,
  SrtpContext,
  type SignatureHash,
} from 'werift-dtls/lib/dtls/src/index.js';
import { exportKeyingMaterial, prfVerifyDataClient } from 'werift-dtls/lib/dtls/src/cipher/prf.js';
import { SessionType } from 'werift-dtls/lib/dtls/src/cipher/suites/abstract.js';
import { DtlsContext } from 'werift-dtls/lib/dtls/src/context/dtls.js';
import { TransportContext } from 'werift-dtls/lib/dtls/src/context/transport.js';
import { flight2 } from 'werift-dtls/lib/dtls/src/flight/server/flight2.js';
import { Flight4 } from 'werift-dtls/lib/dtls/src/flight/server/flight4.js';
import { Flight6 } from 'werift-dtls/lib/dtls/src/flight/server/flight6.js';
import { Certificate } from 'werift-dtls/lib/dtls/src/handshake/message/certificate.js';
import { CertificateVerify } from 'werift-dtls/lib/dtls/src/handshake/message/client/certificateVerify.js';
import { ClientHello } from 'werift-dtls/lib/dtls/src/handshake/message/client/hello.js';
import { DtlsRandom } from 'werift-dtls/lib/dtls/src/handshake/random.js';
import { createPlaintext } from 'werift-dtls/lib/dtls/src/record/builder.js';
import { FragmentedHandshake } from 'werift-dtls/lib/dtls/src/record/message/fragment.js';
import { DtlsPlaintext } from 'werift-dtls/lib/dtls/src/record/message/plaintext.js';
import type { Options as WeriftDtlsOptions } from 'werift-dtls/lib/dtls/src/socket.js';
import type { Transport as WeriftTransport } from 'werift-dtls/lib/common/src/transport.js';

/**
 * DTLS 1.2 server side of a WebRTC transport (RFC 6347, RFC 5764 DTLS-SRTP), one session per
 * attendee connection, driven by the media worker's shared UDP socket: the worker hands us
 * every datagram whose first byte is 20..63 (RFC 7983) and we hand back datagrams to send.
 *
 * werift-dtls supplies the cryptography and the server flights (HelloVerifyRequest, flight 4,
 * flight 6); the record layer, handshake reassembly, message ordering, retransmission timers,
 * and the peer authentication checks werift's server leaves out (CertificateVerify signature,
 * client Finished, certificate fingerprint) are ours, because werift's own socket cannot be
 * stopped cleanly and trusts whatever the client sends.
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

const IDENTITY_SIGNATURE: SignatureHash = { hash: HashAlgorithm.sha256_4, signature: SignatureAlgorithm.ecdsa_3 };

/** Generates a fresh ECDSA P-256 self-signed certificate (the kind Chrome itself uses for WebRTC). */
export async function createDtlsIdentity(): Promise<DtlsIdentity> {
  const { certPem, keyPem } = await CipherContext.createSelfSignedCertificateWithKey(
    IDENTITY_SIGNATURE,
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

/** DTLS-SRTP protection profiles (RFC 5764, RFC 7714) that werift-dtls can negotiate. */
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

export function srtpProfileName(profile: SrtpProtectionProfile): string {
  return profile === SrtpProtectionProfile.AEAD_AES_128_GCM ? 'SRTP_AEAD_AES_128_GCM' : 'SRTP_AES128_CM_HMAC_SHA1_80';
}

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
// Wire constants
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
const AlertLevel = { warning: 1, fatal: 2 } as const;
const AlertDescription = {
  closeNotify: 0,
  unexpectedMessage: 10,
  handshakeFailure: 40,
  badCertificate: 42,
  illegalParameter: 47,
  decodeError: 50,
  decryptError: 51,
  internalError: 80,
} as const;
const SIGNATURE_SCHEME_ECDSA_SHA256 = 0x0403;
const SIGNATURE_SCHEME_RSA_PKCS1_SHA256 = 0x0401;

const RECORD_HEADER_BYTES = 13;
const HANDSHAKE_HEADER_BYTES = 12;
/** Flights are packed into datagrams no larger than this (Chrome's own DTLS MTU is 1200 too). */
const MAX_DATAGRAM_BYTES = 1200;
/** Larger than any ClientHello or certificate chain a browser sends, post-quantum key shares included. */
const MAX_HANDSHAKE_MESSAGE_BYTES = 64 * 1024;
const MAX_PARTIAL_MESSAGES = 8;
const MAX_MESSAGES_AHEAD = 8;
const MAX_RETRANSMIT_DELAY_MS = 8000;
/** Answering a retransmitted peer flight more often than this only amplifies duplicates. */
const MIN_RESEND_INTERVAL_MS = 50;
const VERIFY_DATA_BYTES = 12;

/** The client's flight 5 in order; we always request a certificate, so it always has all four. */
const CLIENT_FINAL_FLIGHT = [
  HandshakeType.certificate,
  HandshakeType.clientKeyExchange,
  HandshakeType.certificateVerify,
  HandshakeType.finished,
] as const;

interface DtlsRecord {
  contentType: number;
  versionMajor: number;
  versionMinor: number;
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
    const versionMajor = datagram.readUInt8(offset + 1);
    const length = datagram.readUInt16BE(offset + 11);
    const end = offset + RECORD_HEADER_BYTES + length;
    // Every DTLS version has major 0xFE (254).
    if (versionMajor !== 0xfe || end > datagram.length) return { records, malformed: true };
    records.push({
      contentType: datagram.readUInt8(offset),
      versionMajor,
      versionMinor: datagram.readUInt8(offset + 2),
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
  message: FragmentedHandshake;
  epoch: number;
  /** The peer sent this message_seq before: its previous flight is being retransmitted. */
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
 * Reassembles fragmented handshake messages (Chrome's DTLS 1.3 ClientHello with a post-quantum
 * key share spans several records) and releases them strictly in message_seq order, whatever
 * order, duplication or fragmentation the network produced.
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
      if (this.partial.size >= MAX_PARTIAL_MESSAGES) return [];
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

// ---------------------------------------------------------------------------------------------
// werift flights, transmitted by us
// ---------------------------------------------------------------------------------------------

type FlightSink = (records: Buffer[]) => void;

/** werift's flight 4 (ServerHello … ServerHelloDone); its own retransmission loop is replaced by ours. */
class ServerHelloFlight extends Flight4 {
  constructor(
    transport: TransportContext,
    dtls: DtlsContext,
    cipher: CipherContext,
    srtp: SrtpContext,
    private readonly sink: FlightSink,
  ) {
    super(transport, dtls, cipher, srtp);
  }

  protected override async transmit(records: Buffer[]): Promise<void> {
    this.sink(records);
  }
}

/** werift's flight 6 (ChangeCipherSpec, Finished); sent once, resent only when the client repeats its Finished. */
class ServerFinishedFlight extends Flight6 {
  constructor(
    transport: TransportContext,
    dtls: DtlsContext,
    cipher: CipherContext,
    private readonly sink: FlightSink,
  ) {
    super(transport, dtls, cipher);
  }

  protected override async transmit(records: Buffer[]): Promise<void> {
    this.sink(records);
  }
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
  /** Transmits one datagram to the peer. Must not block; errors are ignored (DTLS retransmits). */
  send: (datagram: Buffer) => void;
  /** Once, when the handshake completed and the peer is authenticated. */
  onConnected: (keys: SrtpKeyingMaterial) => void;
  /** A fatal failure; `onClosed('error')` follows. */
  onError?: (error: DtlsError) => void;
  /** Once, whatever ended the session (our close(), the peer's close_notify, an error). */
  onClosed?: (reason: DtlsCloseReason) => void;
  /** Decrypted DTLS application data (SCTP, if data channels are ever terminated here). */
  onApplicationData?: (data: Buffer) => void;
  /** Preference order, first wins. Default: AEAD_AES_128_GCM, then AES128_CM_HMAC_SHA1_80. */
  srtpProfiles?: readonly SrtpProtectionProfile[];
  /** From construction until connected; default 30 s. */
  handshakeTimeoutMs?: number;
  /** First retransmission of our flight 4 when the client goes quiet; doubles each time. Default 500 ms. */
  retransmitTimeoutMs?: number;
}

type HandshakePhase = 'awaiting-client-hello' | 'awaiting-client-finished' | 'connected' | 'ended';

export class DtlsServerSession {
  private readonly options: DtlsServerSessionOptions;
  private readonly expectedFingerprint: DtlsFingerprint;
  /** Read by werift through DtlsContext; extendedMasterSecret is set per client. */
  private readonly weriftOptions: WeriftDtlsOptions;
  private readonly transport: TransportContext;
  private readonly dtls: DtlsContext;
  private readonly cipher: CipherContext;
  private readonly srtp = new SrtpContext();
  private readonly reassembler = new HandshakeReassembler();
  private readonly finishedFlight: ServerFinishedFlight;

  private phase: HandshakePhase = 'awaiting-client-hello';
  private endState: 'closed' | 'failed' | undefined;
  private clientHelloSeen = false;
  /** Position in CLIENT_FINAL_FLIGHT of the next message we accept. */
  private finalFlightStep = 0;
  private sessionKeysReady = false;
  private peerCertificate: Buffer | undefined;
  private deliveredFlight: number | undefined;

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
    this.retransmitDelayMs = options.retransmitTimeoutMs ?? 500;

    const weriftTransport: WeriftTransport = {
      type: 'amphi',
      address: { address: '', family: '', port: 0 } satisfies AddressInfo,
      closed: false,
      onData: () => {},
      // Only werift's HelloVerifyRequest goes this way; the other flights come through a FlightSink.
      send: async (datagram: Buffer) => this.sendDatagram(datagram),
      close: async () => {},
    };
    this.transport = new TransportContext(weriftTransport);
    this.weriftOptions = {
      transport: weriftTransport,
      srtpProfiles: [...(options.srtpProfiles ?? DEFAULT_SRTP_PROFILES)],
      cert: options.identity.certificatePem,
      key: options.identity.privateKeyPem,
      signatureHash: IDENTITY_SIGNATURE,
      certificateRequest: true,
      extendedMasterSecret: true,
    };
    this.dtls = new DtlsContext(this.weriftOptions, SessionType.SERVER);
    this.cipher = new CipherContext(
      SessionType.SERVER,
      options.identity.certificatePem,
      options.identity.privateKeyPem,
      IDENTITY_SIGNATURE,
    );
    this.finishedFlight = new ServerFinishedFlight(this.transport, this.dtls, this.cipher, (records) =>
      this.onFlightReady(6, records),
    );

    const timeoutMs = options.handshakeTimeoutMs ?? 30_000;
    this.handshakeTimer = setTimeout(() => {
      this.handshakeTimer = undefined;
      this.fail(new DtlsError('handshake-timeout', `DTLS handshake did not complete within ${timeoutMs} ms`));
    }, timeoutMs);
  }

  get state(): DtlsSessionState {
    if (this.endState) return this.endState;
    if (this.phase === 'connected') return 'connected';
    return this.clientHelloSeen ? 'connecting' : 'new';
  }

  /** The negotiated SRTP protection profile, known once the client's hello was accepted. */
  get srtpProfile(): SrtpProtectionProfile | undefined {
    return this.srtp.srtpProfile;
  }

  /** The client's certificate (DER), once received and matched against the expected fingerprint. */
  get remoteCertificate(): Buffer | undefined {
    return this.peerCertificate;
  }

  /** Whether the master secret is bound to the handshake transcript (RFC 7627). */
  get extendedMasterSecret(): boolean {
    return this.phase === 'connected' && this.weriftOptions.extendedMasterSecret === true;
  }

  /** From the first ClientHello to our Finished, in milliseconds. */
  get handshakeDurationMs(): number | undefined {
    return this.handshakeDuration;
  }

  /** Records ignored as malformed, undecryptable, out of place or unauthenticated. */
  get droppedRecordCount(): number {
    return this.droppedRecords;
  }

  /** Callbacks and records processed earlier in the same datagram may have ended the session. */
  private get ended(): boolean {
    return this.phase === 'ended';
  }

  /** Feeds one datagram from the peer (first byte 20..63). Never throws. */
  handleDatagram(datagram: Buffer): void {
    if (this.phase === 'ended') return;
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
    this.sendRecord(ContentType.applicationData, data);
    return true;
  }

  /** Ends the session and cancels every timer; tells a connected peer with close_notify. Idempotent. */
  close(): void {
    if (this.phase === 'ended') return;
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
    if (record.epoch !== 1 || !this.sessionKeysReady) return undefined;
    const plaintext = new DtlsPlaintext(
      {
        contentType: record.contentType,
        protocolVersion: { major: record.versionMajor, minor: record.versionMinor },
        epoch: record.epoch,
        sequenceNumber: record.sequenceNumber,
        contentLen: record.body.length,
      },
      record.body,
    );
    try {
      return this.cipher.decryptPacket(plaintext);
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
        // The first hello and its retransmissions are handled alike: both get a HelloVerifyRequest.
        if (message.msg_type === HandshakeType.clientHello && epoch === 0) this.handleClientHello(message);
        else this.droppedRecords++;
        return;
      case 'awaiting-client-finished':
        if (retransmission) {
          // The client repeating its cookie hello means our flight 4 was lost.
          if (message.msg_type === HandshakeType.clientHello && this.hasOurCookie(message)) this.resendLastFlight();
          return;
        }
        this.handleClientFinalFlight(message, epoch);
        return;
      case 'connected':
        // The client repeating its Finished means our flight 6 was lost. Renegotiation is refused by silence.
        if (retransmission && message.msg_type === HandshakeType.finished && epoch === 1) this.resendLastFlight();
        return;
      case 'ended':
        return;
    }
  }

  private hasOurCookie(message: FragmentedHandshake): boolean {
    const hello = parseClientHello(message);
    return !!hello && !!this.dtls.cookie && hello.cookie.length > 0 && hello.cookie.equals(this.dtls.cookie);
  }

  private handleClientHello(message: FragmentedHandshake): void {
    const hello = parseClientHello(message);
    if (!hello) {
      this.droppedRecords++;
      return;
    }
    if (!this.clientHelloSeen) {
      this.clientHelloSeen = true;
      this.handshakeStartedAt = performance.now();
    }
    const cookie = this.dtls.cookie;
    if (cookie && hello.cookie.length > 0 && hello.cookie.equals(cookie)) {
      this.acceptClientHello(message, hello);
      return;
    }
    // A first hello (or one with a stale cookie): negotiate, answer with a HelloVerifyRequest.
    try {
      flight2(this.transport, this.dtls, this.cipher, this.srtp)(hello);
    } catch (error) {
      this.fail(new DtlsError('handshake-failure', `cannot negotiate with the ClientHello: ${describe(error) || 'no common SRTP profile'}`, { cause: error }), AlertDescription.handshakeFailure);
      return;
    }
    if (this.srtp.srtpProfile === undefined) {
      this.fail(new DtlsError('handshake-failure', 'the client offered no DTLS-SRTP profile'), AlertDescription.handshakeFailure);
    }
  }

  /** The hello that echoes our cookie: the client proved its address, so send flight 4. */
  private acceptClientHello(message: FragmentedHandshake, hello: ClientHello): void {
    // werift negotiated from the first hello; RFC 6347 requires the second to carry the same random.
    const random = DtlsRandom.from(hello.random).serialize();
    if (!this.cipher.remoteRandom || !random.equals(this.cipher.remoteRandom.serialize())) {
      this.fail(new DtlsError('handshake-failure', 'the second ClientHello changed its random'), AlertDescription.illegalParameter);
      return;
    }
    // werift echoes extended_master_secret whenever configured; RFC 7627 allows it only if offered.
    this.weriftOptions.extendedMasterSecret = this.dtls.remoteExtendedMasterSecret;
    const flight = new ServerHelloFlight(this.transport, this.dtls, this.cipher, this.srtp, (records) =>
      this.onFlightReady(4, records),
    );
    if (!this.runFlight(4, () => flight.exec(message, true))) return;
    this.phase = 'awaiting-client-finished';
    this.armRetransmit();
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
    this.peerCertificate = certificate;
    this.finishedFlight.handleHandshake(message);
  }

  private handleClientKeyExchange(message: FragmentedHandshake): void {
    try {
      // Derives the master secret (extended when agreed) and the record keys.
      this.finishedFlight.handleHandshake(message);
    } catch (error) {
      this.fail(new DtlsError('handshake-failure', `invalid ClientKeyExchange: ${describe(error)}`, { cause: error }), AlertDescription.handshakeFailure);
      return;
    }
    this.sessionKeysReady = true;
  }

  /** Proves the client holds the private key of the certificate whose fingerprint we checked. */
  private handleCertificateVerify(message: FragmentedHandshake): void {
    const certificate = this.peerCertificate;
    let verified = false;
    try {
      const { algorithm, signature } = CertificateVerify.deSerialize(message.fragment);
      // Signed: every handshake message so far, which is exactly werift's transcript cache now.
      const transcript = this.handshakeTranscript();
      const publicKey = new X509Certificate(certificate ?? Buffer.alloc(0)).publicKey;
      if (algorithm === SIGNATURE_SCHEME_ECDSA_SHA256 && publicKey.asymmetricKeyType === 'ec') {
        verified = verifySignature('sha256', transcript, { key: publicKey, dsaEncoding: 'der' }, signature);
      } else if (algorithm === SIGNATURE_SCHEME_RSA_PKCS1_SHA256 && publicKey.asymmetricKeyType === 'rsa') {
        verified = verifySignature('sha256', transcript, publicKey, signature);
      }
    } catch {
      verified = false;
    }
    if (!verified) {
      this.fail(new DtlsError('handshake-failure', 'the client CertificateVerify signature is invalid'), AlertDescription.decryptError);
      return;
    }
    this.finishedFlight.handleHandshake(message);
  }

  private handleClientFinished(message: FragmentedHandshake): void {
    const expected = prfVerifyDataClient(this.cipher.masterSecret, this.handshakeTranscript());
    const received = message.fragment;
    if (received.length !== VERIFY_DATA_BYTES || !timingSafeEqual(received, expected)) {
      this.fail(new DtlsError('handshake-failure', 'the client Finished does not match the handshake'), AlertDescription.decryptError);
      return;
    }
    this.finishedFlight.handleHandshake(message);
    if (!this.runFlight(6, () => this.finishedFlight.exec())) return;
    this.onHandshakeComplete();
  }

  private handshakeTranscript(): Buffer {
    return Buffer.concat(this.dtls.sortedHandshakeCache.map((handshake) => handshake.serialize()));
  }

  private onHandshakeComplete(): void {
    this.phase = 'connected';
    this.clearTimers();
    if (this.handshakeStartedAt !== undefined) this.handshakeDuration = performance.now() - this.handshakeStartedAt;
    const profile = this.srtp.srtpProfile;
    if (profile === undefined) {
      this.fail(new DtlsError('internal', 'connected without an SRTP profile'), AlertDescription.internalError);
      return;
    }
    const keys = this.exportSrtpKeys(profile);
    this.emit(() => this.options.onConnected(keys));
  }

  /** RFC 5764 §4.2: client key, server key, client salt, server salt. */
  private exportSrtpKeys(profile: SrtpProtectionProfile): SrtpKeyingMaterial {
    const { keyLength, saltLength } = SRTP_KEY_LENGTHS[profile];
    const material = exportKeyingMaterial(
      'EXTRACTOR-dtls_srtp',
      2 * (keyLength + saltLength),
      this.cipher.masterSecret,
      this.cipher.localRandom.serialize(),
      this.cipher.remoteRandom.serialize(),
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

  /**
   * Runs a werift flight. Its exec() is async only in name: up to transmit() it runs synchronously,
   * so the flight is on the wire when this returns true; a failure arrives as a rejection.
   */
  private runFlight(flight: number, exec: () => Promise<void>): boolean {
    this.deliveredFlight = undefined;
    exec().catch((error: unknown) => {
      this.fail(new DtlsError('internal', `building flight ${flight} failed: ${describe(error)}`, { cause: error }), AlertDescription.internalError);
    });
    return this.deliveredFlight === flight;
  }

  private onFlightReady(flight: number, records: Buffer[]): void {
    this.deliveredFlight = flight;
    if (flight === 6) this.continueRecordNumbersAfterFinished(records);
    this.sendFlight(records);
  }

  /**
   * werift numbers the epoch-1 Finished record after the epoch-0 records, then restarts at 0, so
   * our later records would reuse its number and a replay window would drop one of them.
   */
  private continueRecordNumbersAfterFinished(records: Buffer[]): void {
    const finished = records[records.length - 1];
    if (finished && finished.length >= RECORD_HEADER_BYTES) {
      this.dtls.recordSequenceNumber = finished.readUIntBE(5, 6);
    }
  }

  /** Packs a flight's records into as few datagrams as fit. */
  private sendFlight(records: readonly Buffer[]): void {
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
    this.sendFlight(this.dtls.lastMessage);
  }

  private sendRecord(contentType: number, fragment: Buffer): void {
    const [record] = createPlaintext(this.dtls)([{ type: contentType, fragment }], ++this.dtls.recordSequenceNumber);
    if (!record) return;
    const sealed = this.dtls.epoch > 0 ? this.cipher.encryptPacket(record) : record;
    this.sendDatagram(sealed.serialize());
  }

  private sendAlert(level: number, description: number): void {
    try {
      this.sendRecord(ContentType.alert, Buffer.from([level, description]));
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
      this.sendFlight(this.dtls.lastMessage);
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
    if (this.phase === 'ended') return;
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
    return Buffer.isBuffer(hello.cookie) && Array.isArray(hello.cipherSuites) ? hello : undefined;
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
