import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { DtlsServerSession, isDtlsDatagram, type DtlsFingerprint, type DtlsIdentity } from '../protocol/dtls.ts';
import { SrtpSession } from '../protocol/srtp.ts';
import { answerBindingRequest, isStun } from '../protocol/stun.ts';
import type { RtpSender } from './rtp-sender.ts';
import { SilenceWatch } from './silence-watch.ts';
import { SrtpTransport, type RemoteAddress } from './srtp-transport.ts';
import type { TrafficCounters } from './traffic-counters.ts';
import type { MuxedTransport, UdpMux } from './udp-mux.ts';

const ICE_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** Browsers send a consent check every few seconds; none for this long and consent has expired (RFC 7675 §5.1). */
const CONSENT_TIMEOUT_MS = 30_000;

export interface WebRtcTransportOptions {
  /** How long the client's consent lasts after its last authenticated check; 30 s (RFC 7675) unless a test shortens it. */
  consentTimeoutMs?: number;
  /** How often the client's silence is looked at: silent for two looks in a row, it is gone (5 s unless a test shortens it). */
  silenceCheckMs?: number;
  /** The worker's traffic counters, shared by its transports. */
  traffic?: TrafficCounters;
}

function iceString(length: number): string {
  const bytes = randomBytes(length);
  let out = '';
  for (const byte of bytes) out += ICE_CHARS[byte % ICE_CHARS.length];
  return out;
}

/**
 * One client's WebRTC transport on a shared UDP port, as a media server does it: ICE-lite
 * (answer authenticated checks, follow the nominated address), DTLS as server, then SRTP.
 * RTP and RTCP are multiplexed on the one 5-tuple (BUNDLE, rtcp-mux).
 *
 * Consent (RFC 7675): being lite, the transport sends no checks of its own; the client's consent
 * is fresh while its authenticated checks keep arriving, and expires `consentTimeoutMs` after the
 * last one. Without fresh consent nothing but STUN answers leaves for the client: `connected`
 * turns false, so sendRtp/sendRtcp send nothing, and DTLS is held back too. Consent comes back
 * with the client's next check, and media with it.
 */
export class WebRtcTransport extends SrtpTransport implements MuxedTransport {
  readonly iceUfrag = iceString(8);
  readonly icePwd = iceString(24);
  readonly boundAddresses = new Set<string>();
  private remoteFingerprint: DtlsFingerprint | undefined;
  private dtls: DtlsServerSession | undefined;
  private consentAt = 0;
  private consentIsFresh = false;
  private consentTimer: NodeJS.Timeout | undefined;
  private readonly consentTimeoutMs: number;
  /** Counters for metrics and tests; `srtpErrors`: SRTP or SRTCP that did not unprotect. */
  readonly stats = { rtpIn: 0, rtpOut: 0, rtcpIn: 0, rtcpOut: 0, srtpErrors: 0 };
  /** Says when the client stops sending anything (media, RTCP, consent checks): the attendee dropped. */
  readonly silence: SilenceWatch;

  constructor(
    private readonly mux: UdpMux,
    private readonly identity: DtlsIdentity,
    readonly candidates: { ip: string; port: number }[],
    private readonly logger: Logger,
    options: WebRtcTransportOptions = {},
  ) {
    super(options.traffic);
    this.consentTimeoutMs = options.consentTimeoutMs ?? CONSENT_TIMEOUT_MS;
    this.silence = new SilenceWatch(options.silenceCheckMs);
    mux.register(this);
  }

  /** Whether the client's consent to receive is fresh: an authenticated check came within the timeout. */
  get consentFresh(): boolean {
    return this.consentIsFresh;
  }

  /** When the client's last authenticated check on the selected path arrived (ms since the epoch; 0: never). */
  get lastConsentAt(): number {
    return this.consentAt;
  }

  get fingerprint(): string {
    return this.identity.sdpFingerprint;
  }

  /** From each offer: the client's ICE credentials and certificate fingerprint. */
  setRemoteParameters(remote: { iceUfrag: string; icePwd: string; fingerprint: DtlsFingerprint }): void {
    const changed = this.remoteFingerprint && (this.remoteFingerprint.value !== remote.fingerprint.value || this.remoteFingerprint.algorithm !== remote.fingerprint.algorithm);
    this.remoteFingerprint = remote.fingerprint;
    if (changed) {
      // A new certificate means a new DTLS association (the client restarted its connection).
      this.dtls?.close();
      this.dtls = undefined;
      this.srtp = undefined;
      this.updateConnected();
    }
  }

  /** A datagram from the mux, already attributed to this transport. */
  receive(packet: Buffer, address: string, port: number, key: string): void {
    if (this.closed || packet.length === 0) return;
    if (isStun(packet)) return this.receiveStun(packet, address, port, key);
    // Anything else only counts from the address ICE selected.
    if (!this.remote || this.remote.address !== address || this.remote.port !== port) return;
    this.silence.packet();
    const first = packet[0]!;
    if (isDtlsDatagram(packet)) {
      this.dtlsSession()?.handleDatagram(packet);
    } else if (first >= 128 && first <= 191 && this.srtp) {
      if (!this.receiveSrtp(packet)) this.stats.srtpErrors++;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.consentTimer);
    this.silence.stop();
    this.dtls?.close();
    this.mux.unregister(this);
    this.updateConnected();
  }

  private receiveStun(packet: Buffer, address: string, port: number, key: string): void {
    const { response, verdict } = answerBindingRequest(packet, { localUfrag: this.iceUfrag, localPassword: this.icePwd }, { address, port });
    if (response) this.mux.send(response, address, port);
    if (verdict.action !== 'accept') return;
    this.silence.packet();
    // ICE-lite: the controlling browser decides; follow the pair it nominates (or the first that works).
    if (!this.remote || verdict.useCandidate) {
      if (!this.remote || this.remote.address !== address || this.remote.port !== port) {
        this.remote = { address, port };
        this.mux.bind(key, this);
        this.logger.debug({ address, port }, 'ICE selected the client address');
      }
    } else {
      this.mux.bind(key, this);
    }
    // Consent is per path: only checks on the selected one keep it fresh (RFC 7675 §5.1).
    if (this.remote.address === address && this.remote.port === port) this.refreshConsent();
    this.updateConnected();
  }

  private refreshConsent(): void {
    this.consentAt = Date.now();
    if (this.consentTimer) {
      if (!this.consentIsFresh) this.logger.info('ICE consent is back');
      this.consentTimer.refresh();
    } else {
      this.consentTimer = setTimeout(() => this.expireConsent(), this.consentTimeoutMs);
      this.consentTimer.unref();
    }
    this.consentIsFresh = true;
  }

  private expireConsent(): void {
    if (this.closed) return;
    this.consentIsFresh = false;
    this.logger.info({ lastConsentAt: this.consentAt }, 'ICE consent expired: sending nothing but STUN answers');
    this.updateConnected();
  }

  /** The one place `connected` is decided: keys, the client's address and its consent. */
  private updateConnected(): void {
    this.setConnected(!this.closed && this.srtp !== undefined && this.remote !== undefined && this.consentIsFresh);
  }

  private dtlsSession(): DtlsServerSession | undefined {
    if (this.dtls || !this.remoteFingerprint) return this.dtls;
    const dtls = new DtlsServerSession({
      identity: this.identity,
      expectedRemoteFingerprint: this.remoteFingerprint,
      send: (datagram) => {
        // DTLS is not a consent check: like media, it waits for consent (RFC 7675 §5.1).
        if (this.remote && this.consentIsFresh) this.mux.send(datagram, this.remote.address, this.remote.port);
      },
    });
    dtls.once('connected', (keys) => {
      this.srtp = new SrtpSession(keys.profile, keys);
      this.logger.debug({ profile: keys.profile.name }, 'DTLS connected');
      this.updateConnected();
    });
    dtls.once('failed', (error) => this.logger.info({ err: error }, 'DTLS failed'));
    dtls.once('closed', () => {
      this.srtp = undefined;
      this.dtls = undefined;
      this.updateConnected();
    });
    this.dtls = dtls;
    return dtls;
  }

  protected transmit(datagram: Buffer, remote: RemoteAddress): void {
    // sendRtp/sendRtcp already require `connected`; this keeps the rule where the datagram leaves.
    if (this.consentIsFresh) this.mux.send(datagram, remote.address, remote.port);
  }

  /** RTP leaves through the mux's sender only once sendRtp checked `connected`, which includes fresh consent. */
  protected get rtpSender(): RtpSender | undefined {
    return this.mux.rtpSender;
  }
}
