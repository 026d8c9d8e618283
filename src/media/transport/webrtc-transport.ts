import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { DtlsServerSession, isDtlsDatagram, type DtlsFingerprint, type DtlsIdentity } from '../protocol/dtls.ts';
import { SrtpSession } from '../protocol/srtp.ts';
import { answerBindingRequest, isStun } from '../protocol/stun.ts';
import { SrtpTransport, type RemoteAddress } from './srtp-transport.ts';
import type { MuxedTransport, UdpMux } from './udp-mux.ts';

const ICE_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** Browsers send a consent check every few seconds; none for this long means the path is gone (RFC 7675). */
const CONSENT_TIMEOUT_MS = 30_000;

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
 */
export class WebRtcTransport extends SrtpTransport implements MuxedTransport {
  readonly iceUfrag = iceString(8);
  readonly icePwd = iceString(24);
  readonly boundAddresses = new Set<string>();
  private remoteFingerprint: DtlsFingerprint | undefined;
  private dtls: DtlsServerSession | undefined;
  private lastConsentAt = 0;
  private readonly consentTimer: NodeJS.Timeout;
  /** Counters for metrics and tests; `srtpErrors`: SRTP or SRTCP that did not unprotect. */
  readonly stats = { rtpIn: 0, rtpOut: 0, rtcpIn: 0, rtcpOut: 0, srtpErrors: 0 };

  constructor(
    private readonly mux: UdpMux,
    private readonly identity: DtlsIdentity,
    readonly candidates: { ip: string; port: number }[],
    private readonly logger: Logger,
  ) {
    super();
    mux.register(this);
    this.consentTimer = setInterval(() => {
      if (this.connected && Date.now() - this.lastConsentAt > CONSENT_TIMEOUT_MS) this.setConnected(false);
    }, 5_000);
    this.consentTimer.unref();
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
      this.setConnected(false);
    }
  }

  /** A datagram from the mux, already attributed to this transport. */
  receive(packet: Buffer, address: string, port: number, key: string): void {
    if (this.closed || packet.length === 0) return;
    if (isStun(packet)) return this.receiveStun(packet, address, port, key);
    // Anything else only counts from the address ICE selected.
    if (!this.remote || this.remote.address !== address || this.remote.port !== port) return;
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
    clearInterval(this.consentTimer);
    this.dtls?.close();
    this.mux.unregister(this);
    this.setConnected(false);
  }

  private receiveStun(packet: Buffer, address: string, port: number, key: string): void {
    const { response, verdict } = answerBindingRequest(packet, { localUfrag: this.iceUfrag, localPassword: this.icePwd }, { address, port });
    if (response) this.mux.send(response, address, port);
    if (verdict.action !== 'accept') return;
    this.lastConsentAt = Date.now();
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
    if (this.srtp) this.setConnected(true);
  }

  private dtlsSession(): DtlsServerSession | undefined {
    if (this.dtls || !this.remoteFingerprint) return this.dtls;
    const dtls = new DtlsServerSession({
      identity: this.identity,
      expectedRemoteFingerprint: this.remoteFingerprint,
      send: (datagram) => {
        if (this.remote) this.mux.send(datagram, this.remote.address, this.remote.port);
      },
    });
    dtls.once('connected', (keys) => {
      this.srtp = new SrtpSession(keys.profile, keys);
      this.logger.debug({ profile: keys.profile.name }, 'DTLS connected');
      this.setConnected(true);
    });
    dtls.once('failed', (error) => this.logger.info({ err: error }, 'DTLS failed'));
    dtls.once('closed', () => {
      this.srtp = undefined;
      this.dtls = undefined;
      this.setConnected(false);
    });
    this.dtls = dtls;
    return dtls;
  }

  protected transmit(datagram: Buffer, remote: RemoteAddress): void {
    this.mux.send(datagram, remote.address, remote.port);
  }
}
