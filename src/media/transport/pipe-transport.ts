import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { SRTP_AEAD_AES_128_GCM, SrtpSession, type SrtpMasterKey } from '../protocol/srtp.ts';
import { createRtpSender } from './rtp-send-path.ts';
import type { RtpSender } from './rtp-sender.ts';
import { SrtpTransport, type RemoteAddress } from './srtp-transport.ts';
import type { TrafficCounters } from './traffic-counters.ts';

/** A pipe sends to one peer, a packet or a few per turn: a small batch spares each pipe the fan-out's arena. */
const PIPE_BATCH_PACKETS = 16;

/**
 * One end of a pipe between two rooms: RTP and RTCP over UDP to one fixed remote address, protected with SRTP
 * (AEAD_AES_128_GCM) under keys handed to both ends by whoever opens the pipe, so it works the same between two
 * threads of one machine and between two machines.
 */
export interface PipeKeys {
  send: SrtpMasterKey;
  receive: SrtpMasterKey;
}

export class PipeTransport extends SrtpTransport {
  /** `rejected`: from another address, unauthentic or replayed, or failed in a listener. */
  readonly stats = { rtpIn: 0, rtpOut: 0, rtcpIn: 0, rtcpOut: 0, rejected: 0 };

  private readonly sender: RtpSender;

  private constructor(
    private readonly socket: dgram.Socket,
    traffic: TrafficCounters | undefined,
  ) {
    super(traffic);
    this.sender = createRtpSender(socket, undefined, undefined, PIPE_BATCH_PACKETS);
    socket.on('message', (packet, from) => {
      try {
        this.receive(packet, from.address, from.port);
      } catch {
        this.stats.rejected++; // a failure here costs this packet only
      }
    });
    socket.on('error', () => undefined);
  }

  /** `traffic`: the worker's counters, shared by its transports. */
  static async open(listenIp: string, traffic?: TrafficCounters): Promise<PipeTransport> {
    const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, listenIp, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new PipeTransport(socket, traffic);
  }

  get port(): number {
    return (this.socket.address() as AddressInfo).port;
  }

  connect(remote: RemoteAddress, keys: PipeKeys): void {
    this.remote = remote;
    this.srtp = new SrtpSession(SRTP_AEAD_AES_128_GCM, { local: keys.send, remote: keys.receive });
    this.setConnected(!this.closed);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // Before the socket: its descriptor is free for reuse the moment it closes.
    this.sender.close();
    this.socket.close();
    this.setConnected(false);
  }

  protected transmit(datagram: Buffer, remote: RemoteAddress): void {
    this.socket.send(datagram, remote.port, remote.address);
  }

  protected get rtpSender(): RtpSender {
    return this.sender;
  }

  private receive(packet: Buffer, address: string, port: number): void {
    // Only the other end, and only what its keys protect.
    if (!this.remote || address !== this.remote.address || port !== this.remote.port) return void this.stats.rejected++;
    if (!this.receiveSrtp(packet)) this.stats.rejected++;
  }
}
