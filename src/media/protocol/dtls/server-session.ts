/**
 * DTLS 1.2 server side of a WebRTC transport (RFC 6347, RFC 5764 DTLS-SRTP), one session per
 * attendee connection, driven by the media worker's shared UDP socket: the worker hands us every
 * datagram whose first byte is 20..63 (RFC 7983) and sends the datagrams we hand back.
 *
 * The session owns the record layer in both directions, the handshake and the session's lifetime:
 * every timer it starts is cancelled by close() or by the end of the handshake, and no input, however
 * malformed, throws out of handleDatagram.
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { SRTP_PROFILES, srtpProfileById, type SrtpProfile, type SrtpProtectionProfile } from '../srtp/profiles.ts';
import { DtlsError, describe } from './errors.ts';
import { HandshakeReassembler, parseHandshakeFragments } from './fragments.ts';
import { isSupportedFingerprintAlgorithm, normalizeFingerprintValue, signingKeyOf, type DtlsFingerprint, type DtlsIdentity } from './identity.ts';
import { parseRecords, type DtlsRecord } from './record.ts';
import { RecordWriter } from './record-writer.ts';
import { ServerHandshake, type HandshakeHost, type SrtpKeyingMaterial } from './server-handshake.ts';
import { AlertDescription, AlertLevel, ContentType, alertName } from './wire.ts';

export type DtlsSessionState = 'new' | 'connecting' | 'connected' | 'closed' | 'failed';
export type DtlsCloseReason = 'local' | 'peer' | 'error';

/** Our preference order; the server picks the first of these the client offers. */
export const DEFAULT_SRTP_PROFILES: readonly SrtpProtectionProfile[] = SRTP_PROFILES.map((profile) => profile.id);

export interface DtlsServerSessionOptions {
  identity: DtlsIdentity;
  /** The `a=fingerprint` of the client's offer; the handshake fails unless its certificate matches. */
  expectedRemoteFingerprint: DtlsFingerprint;
  /**
   * Transmits one datagram to the peer. Errors are ignored (DTLS retransmits). Must not feed a
   * reply back into handleDatagram synchronously.
   */
  send: (datagram: Buffer) => void;
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

/**
 * What a session tells its owner. A listener that throws is reported as a process warning
 * (`DtlsCallbackWarning`) and neither stops the other listeners nor derails the handshake.
 */
export interface DtlsServerSessionEvents {
  /** Once, when the handshake completed and the peer is authenticated. */
  connected: [keys: SrtpKeyingMaterial];
  /** A fatal failure; `closed` with reason 'error' follows. (Not `error`: nobody has to listen.) */
  failed: [error: DtlsError];
  /** Once, whatever ended the session (our close(), the peer's close_notify, an error). */
  closed: [reason: DtlsCloseReason];
  /** Decrypted DTLS application data (SCTP, should data channels ever be terminated here). */
  applicationData: [data: Buffer];
}

export class DtlsServerSession extends EventEmitter<DtlsServerSessionEvents> {
  private readonly options: DtlsServerSessionOptions;
  private readonly writer: RecordWriter;
  private readonly handshake: ServerHandshake;
  private readonly reassembler = new HandshakeReassembler();
  private endState: 'closed' | 'failed' | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private handshakeDuration: number | undefined;
  private droppedRecords = 0;

  constructor(options: DtlsServerSessionOptions) {
    super();
    this.options = options;
    const { algorithm, value } = options.expectedRemoteFingerprint;
    if (!isSupportedFingerprintAlgorithm(algorithm)) {
      throw new DtlsError('unsupported-fingerprint', `unsupported fingerprint algorithm ${algorithm}`);
    }
    // Parses the key once per identity, and rejects an unusable one now rather than mid-handshake.
    signingKeyOf(options.identity);
    const srtpProfiles = (options.srtpProfiles ?? DEFAULT_SRTP_PROFILES)
      .map((id) => srtpProfileById(id))
      .filter((profile): profile is SrtpProfile => profile !== undefined);

    this.writer = new RecordWriter(options.send, options.retransmitTimeoutMs ?? 500);
    const host: HandshakeHost = {
      connected: (keys) => this.connected(keys),
      fail: (error, alert) => this.fail(error, alert),
      dropped: () => void this.droppedRecords++,
    };
    this.handshake = new ServerHandshake(
      {
        identity: options.identity,
        expectedFingerprint: { algorithm: algorithm.trim().toLowerCase(), value: normalizeFingerprintValue(value) },
        srtpProfiles,
        cookieExchange: options.cookieExchange ?? false,
      },
      this.writer,
      host,
    );

    const timeoutMs = options.handshakeTimeoutMs ?? 30_000;
    this.handshakeTimer = setTimeout(() => {
      this.handshakeTimer = undefined;
      this.fail(new DtlsError('handshake-timeout', `DTLS handshake did not complete within ${timeoutMs} ms`));
    }, timeoutMs);
  }

  get state(): DtlsSessionState {
    if (this.endState) return this.endState;
    if (this.handshake.connected) return 'connected';
    return this.handshake.handshakeStartedAt === undefined ? 'new' : 'connecting';
  }

  /** The negotiated SRTP protection profile id, known once the client's hello was accepted. */
  get srtpProfile(): SrtpProtectionProfile | undefined {
    return this.handshake.negotiated?.srtpProfile.id;
  }

  /** The client's certificate (DER), once received and matched against the expected fingerprint. */
  get remoteCertificate(): Buffer | undefined {
    return this.handshake.remoteCertificate;
  }

  /** Whether the master secret is bound to the handshake transcript (RFC 7627). */
  get extendedMasterSecret(): boolean {
    return this.handshake.negotiated?.extendedMasterSecret ?? false;
  }

  /** From the first ClientHello to our Finished, in milliseconds. */
  get handshakeDurationMs(): number | undefined {
    return this.handshakeDuration;
  }

  /** Records ignored as malformed, undecryptable, out of place or unauthenticated. */
  get droppedRecordCount(): number {
    return this.droppedRecords;
  }

  /** Listeners and earlier records of the same datagram may have ended the session. */
  private get ended(): boolean {
    return this.endState !== undefined;
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
    if (this.ended || !this.handshake.connected) return false;
    this.writer.sendDatagram(this.writer.seal(ContentType.applicationData, data));
    return true;
  }

  /** Ends the session and cancels every timer; tells a connected peer with close_notify. Idempotent. */
  close(): void {
    if (this.ended) return;
    if (this.handshake.connected) this.writer.sendAlert(AlertLevel.warning, AlertDescription.closeNotify);
    this.end('closed');
    this.notify('closed', 'local');
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
    const protection = this.handshake.recordProtection;
    return record.epoch === 1 && protection ? protection.open(record) : undefined;
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
        this.handshake.handle(message);
      }
    }
  }

  private handleAlertRecord(record: DtlsRecord): void {
    // Once connected, only an authenticated (encrypted) alert may end the session.
    const body = this.handshake.connected && record.epoch === 0 ? undefined : this.openRecord(record);
    if (!body || body.length !== 2) {
      this.droppedRecords++;
      return;
    }
    const level = body.readUInt8(0);
    const description = body.readUInt8(1);
    if (description === AlertDescription.closeNotify) {
      this.end('closed');
      this.notify('closed', 'peer');
    } else if (level === AlertLevel.fatal) {
      this.fail(new DtlsError('peer-alert', `the peer sent fatal alert ${alertName(description)}`));
    }
  }

  private handleApplicationDataRecord(record: DtlsRecord): void {
    const data = this.handshake.connected && record.epoch === 1 ? this.openRecord(record) : undefined;
    if (!data) {
      this.droppedRecords++;
      return;
    }
    this.notify('applicationData', data);
  }

  // -- lifecycle --------------------------------------------------------------------------------

  private connected(keys: SrtpKeyingMaterial): void {
    this.clearHandshakeTimer();
    const startedAt = this.handshake.handshakeStartedAt;
    if (startedAt !== undefined) this.handshakeDuration = performance.now() - startedAt;
    this.notify('connected', keys);
  }

  private fail(error: DtlsError, alert?: number): void {
    if (this.ended) return;
    if (alert !== undefined) this.writer.sendAlert(AlertLevel.fatal, alert);
    this.end('failed');
    this.notify('failed', error);
    this.notify('closed', 'error');
  }

  private end(state: 'closed' | 'failed'): void {
    this.endState = state;
    this.clearHandshakeTimer();
    this.writer.stopRetransmitting();
  }

  private clearHandshakeTimer(): void {
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
  }

  /**
   * Emits `event` to each listener in turn: listeners belong to the owner, and their exceptions
   * must neither derail the DTLS state machine nor keep the other listeners from hearing it.
   */
  private notify<K extends keyof DtlsServerSessionEvents>(event: K, ...args: DtlsServerSessionEvents[K]): void {
    // Raw listeners, so that `once` listeners remove themselves as they are called.
    for (const listener of this.rawListeners(event) as ((...values: DtlsServerSessionEvents[K]) => void)[]) {
      try {
        listener(...args);
      } catch (error) {
        process.emitWarning(error instanceof Error ? error : new Error(String(error)), 'DtlsCallbackWarning');
      }
    }
  }
}
