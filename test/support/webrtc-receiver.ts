import { createHmac, randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { EventEmitter, once } from 'node:events';
import { DtlsClient, HashAlgorithm, SignatureAlgorithm } from 'werift-dtls/lib/dtls/src/index.js';
import type { Transport as WeriftTransport } from 'werift-dtls/lib/common/src/transport.js';
import { createDtlsIdentity, isDtlsDatagram, SrtpProtectionProfile, type DtlsIdentity } from '../../src/media/protocol/dtls.ts';
import { isRtcp } from '../../src/media/protocol/rtp.ts';
import { crc32, isStun } from '../../src/media/protocol/stun.ts';
import { SrtpSession, srtpProfileById } from '../../src/media/protocol/srtp.ts';
import type { Offer } from '../../src/media/protocol/sdp.ts';

/** What the media server's answer tells a client: its ICE credentials and candidate. */
export interface ServerEndpoint {
  iceUfrag: string;
  icePwd: string;
  address: string;
  port: number;
}

export interface WebRtcReceiverEvents {
  /** A plain RTP packet from the server (SRTP that unprotected). */
  rtp: [packet: Buffer];
  /** An SRTP packet left protected (see `authenticateOneIn`): its RTP header is in the clear, its payload is not. */
  protectedRtp: [datagram: Buffer];
  rtcp: [packet: Buffer];
  /** The server answered one of our checks. */
  stunResponse: [];
}

const CLIENT_SIGNATURE = { hash: HashAlgorithm.sha256_4, signature: SignatureAlgorithm.ecdsa_3 } as const;

/** Reads what a client needs from an SDP answer: the server's ICE credentials and its first host candidate. */
export function serverEndpoint(answer: string): ServerEndpoint {
  const iceUfrag = /^a=ice-ufrag:(\S+)/m.exec(answer)?.[1];
  const icePwd = /^a=ice-pwd:(\S+)/m.exec(answer)?.[1];
  const candidate = /^a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host/m.exec(answer);
  if (!iceUfrag || !icePwd || !candidate) throw new Error('answer lacks ICE credentials or a host candidate');
  return { iceUfrag, icePwd, address: candidate[1]!, port: Number(candidate[2]) };
}

/**
 * The network side of a browser peer connection, reduced to what a receiver does: ICE connectivity
 * checks as the controlling agent (which are also its RFC 7675 consent checks), DTLS as client (werift's
 * DtlsClient with its own certificate), then SRTP both ways on one UDP socket. Its consent checks can be
 * stopped and resumed, as a browser that lost its path or was told to stop would.
 */
export class WebRtcReceiver extends EventEmitter<WebRtcReceiverEvents> {
  readonly iceUfrag = randomBytes(3).toString('hex');
  readonly icePwd = randomBytes(12).toString('hex');
  /**
   * Counters: what came in, by kind; `lost`: RTP dropped on purpose (loseNext); `protectedRtp`: RTP left
   * protected; `unauthentic`: RTP that failed to unprotect.
   */
  readonly received = { rtp: 0, rtcp: 0, stunResponses: 0, lost: 0, protectedRtp: 0, unauthentic: 0 };
  private rtpArrivals = 0;
  private server: ServerEndpoint | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  private dtls: DtlsClient | undefined;
  private srtp: SrtpSession | undefined;
  private readonly dtlsTransport: WeriftTransport;
  private losing: { ssrc: number; count: number; lost: number[]; done: (lost: number[]) => void } | undefined;

  private constructor(
    private socket: Socket,
    readonly identity: DtlsIdentity,
    private readonly checkIntervalMs: number,
    /** Unprotect (authenticate and decrypt) one RTP packet in this many; the rest are emitted as `protectedRtp`. */
    private readonly authenticateOneIn: number,
  ) {
    super();
    this.dtlsTransport = {
      type: 'udp',
      address: { address: '127.0.0.1', family: 'IPv4', port: 0 },
      closed: false,
      onData: () => {},
      send: (datagram) => new Promise<void>((resolve) => this.sendDatagram(Buffer.from(datagram), resolve)),
      close: async () => {},
    };
    socket.on('message', (datagram) => this.receive(datagram));
  }

  /**
   * `authenticateOneIn`: a load client with hundreds of receivers in one process checks SRTP on a sample only
   * (default 1: every packet).
   */
  static async open(options: { checkIntervalMs?: number; authenticateOneIn?: number } = {}): Promise<WebRtcReceiver> {
    const socket = createSocket('udp4');
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
    return new WebRtcReceiver(socket, await createDtlsIdentity(), options.checkIntervalMs ?? 200, options.authenticateOneIn ?? 1);
  }

  /** A recorded browser offer made this client's: its ICE credentials and certificate fingerprint. */
  own(offer: Offer): Offer {
    return { ...offer, iceUfrag: this.iceUfrag, icePwd: this.icePwd, fingerprint: this.identity.fingerprint };
  }

  /** Checks the server until it answers, then runs the DTLS handshake; resolves with SRTP keys in place. */
  async connect(server: ServerEndpoint): Promise<void> {
    this.server = server;
    const answered = once(this, 'stunResponse');
    this.startConsent();
    await answered;
    const dtls = new DtlsClient({
      transport: this.dtlsTransport,
      cert: this.identity.certificatePem,
      key: this.identity.privateKeyPem,
      signatureHash: CLIENT_SIGNATURE,
      srtpProfiles: [SrtpProtectionProfile.AEAD_AES_128_GCM, SrtpProtectionProfile.AES128_CM_HMAC_SHA1_80],
      extendedMasterSecret: true,
    });
    this.dtls = dtls;
    const connected = new Promise<void>((resolve) => dtls.onConnect.once(() => resolve()));
    dtls.connect().catch(() => {});
    await connected;
    const profile = srtpProfileById(dtls.srtp.srtpProfile!);
    if (!profile) throw new Error('the handshake agreed on no SRTP profile');
    const keys = dtls.extractSessionKeys(profile.keyLength, profile.saltLength);
    this.srtp = new SrtpSession(profile, {
      local: { key: Buffer.from(keys.localKey), salt: Buffer.from(keys.localSalt) },
      remote: { key: Buffer.from(keys.remoteKey), salt: Buffer.from(keys.remoteSalt) },
    });
  }

  /** Sends authenticated binding requests (nominating this address) every checkIntervalMs, starting now. */
  startConsent(): void {
    if (this.checkTimer) return;
    this.sendCheck();
    this.checkTimer = setInterval(() => this.sendCheck(), this.checkIntervalMs);
  }

  /** Stops the checks: the server hears nothing more from this client's ICE agent. */
  stopConsent(): void {
    clearInterval(this.checkTimer);
    this.checkTimer = undefined;
  }

  /**
   * Drops the next `count` RTP packets of `ssrc` as a lossy path would (before SRTP ever sees them, so a
   * retransmission of one is new to the receiver, as it is to a browser); resolves with their sequence numbers.
   */
  loseNext(ssrc: number, count: number): Promise<number[]> {
    if (this.losing) throw new Error('already losing packets');
    return new Promise((resolve) => {
      this.losing = { ssrc, count, lost: [], done: resolve };
    });
  }

  sendRtcp(packet: Buffer): void {
    if (!this.srtp) throw new Error('not connected');
    this.sendDatagram(this.srtp.protectRtcp(packet));
  }

  /** Sends an RTP packet to the server, as a publishing client does. */
  sendRtp(packet: Buffer): void {
    if (!this.srtp) throw new Error('not connected');
    this.sendDatagram(this.srtp.protectRtp(packet));
  }

  /**
   * Moves to a new local address, as a client does when its path changes (a direct path to a TURN relay, or back):
   * a new socket whose checks nominate it; the old one is closed. Resolves with the new port.
   */
  async move(): Promise<number> {
    const socket = createSocket('udp4');
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
    socket.on('message', (datagram) => this.receive(datagram));
    const old = this.socket;
    this.socket = socket;
    old.close();
    this.sendCheck();
    return socket.address().port;
  }

  get port(): number {
    return this.socket.address().port;
  }

  close(): void {
    this.stopConsent();
    if (this.dtls) {
      // werift retransmits from a loop it cannot cancel; past its last flight, that loop ends at its next wake-up.
      this.dtls.dtls.flight = 1000;
      this.dtls.close();
    }
    this.socket.close();
  }

  private sendCheck(): void {
    const server = this.server;
    if (server) this.sendDatagram(bindingRequest(`${server.iceUfrag}:${this.iceUfrag}`, server.icePwd));
  }

  private sendDatagram(datagram: Buffer, sent?: () => void): void {
    const server = this.server;
    if (!server) return sent?.();
    this.socket.send(datagram, server.port, server.address, () => sent?.());
  }

  private receive(datagram: Buffer): void {
    if (isStun(datagram)) {
      // Responses to our checks (RFC 5389 success class 0x0101); the server sends us no requests (ICE-lite).
      if (datagram.readUInt16BE(0) === 0x0101) {
        this.received.stunResponses++;
        this.emit('stunResponse');
      }
    } else if (isDtlsDatagram(datagram)) {
      this.dtlsTransport.onData(datagram, ['127.0.0.1', 0]);
    } else if (this.srtp && datagram[0]! >= 128 && datagram[0]! <= 191) {
      if (isRtcp(datagram)) {
        const plain = this.srtp.unprotectRtcp(datagram);
        if (!plain) return;
        this.received.rtcp++;
        this.emit('rtcp', plain);
      } else {
        if (this.lose(datagram)) return;
        if (this.rtpArrivals++ % this.authenticateOneIn !== 0) {
          this.received.protectedRtp++;
          this.emit('protectedRtp', datagram);
          return;
        }
        const plain = this.srtp.unprotectRtp(datagram);
        if (!plain) {
          this.received.unauthentic++;
          return;
        }
        this.received.rtp++;
        this.emit('rtp', plain);
      }
    }
  }

  /** Whether this SRTP packet is one to lose (its SSRC and sequence number travel in the clear). */
  private lose(datagram: Buffer): boolean {
    const losing = this.losing;
    if (!losing || datagram.length < 12 || datagram.readUInt32BE(8) !== losing.ssrc) return false;
    losing.lost.push(datagram.readUInt16BE(2));
    this.received.lost++;
    if (losing.lost.length === losing.count) {
      this.losing = undefined;
      losing.done(losing.lost);
    }
    return true;
  }
}

/** An ICE connectivity check from the controlling agent, nominating its pair (RFC 8445 §7.1.2, RFC 5389 §15.4–15.5). */
function bindingRequest(username: string, password: string): Buffer {
  const attributes: Buffer[] = [];
  const add = (type: number, value: Buffer): void => {
    const attribute = Buffer.alloc(4 + ((value.length + 3) & ~3));
    attribute.writeUInt16BE(type, 0);
    attribute.writeUInt16BE(value.length, 2);
    value.copy(attribute, 4);
    attributes.push(attribute);
  };
  add(0x0006, Buffer.from(username)); // USERNAME
  add(0x0024, Buffer.from([0x6e, 0x7f, 0x1e, 0xff])); // PRIORITY
  add(0x802a, randomBytes(8)); // ICE-CONTROLLING, with its tie-breaker
  add(0x0025, Buffer.alloc(0)); // USE-CANDIDATE
  const header = Buffer.alloc(20);
  header.writeUInt16BE(0x0001, 0);
  header.writeUInt32BE(0x2112a442, 4);
  randomBytes(12).copy(header, 8);
  let message = Buffer.concat([header, ...attributes]);
  // MESSAGE-INTEGRITY covers the message with its length as if the attribute were already there.
  message.writeUInt16BE(message.length - 20 + 24, 2);
  const integrity = Buffer.alloc(24);
  integrity.writeUInt32BE(0x00080014, 0);
  createHmac('sha1', password).update(message).digest().copy(integrity, 4);
  message = Buffer.concat([message, integrity]);
  message.writeUInt16BE(message.length - 20 + 8, 2);
  const fingerprint = Buffer.alloc(8);
  fingerprint.writeUInt32BE(0x80280004, 0);
  fingerprint.writeUInt32BE((crc32(message) ^ 0x5354554e) >>> 0, 4);
  return Buffer.concat([message, fingerprint]);
}
