import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { isStun, stunLocalUfrag } from '../protocol/stun.ts';
import { createRtpSender } from './rtp-send-path.ts';
import type { RtpSender } from './rtp-sender.ts';

/** What the mux routes packets to: a WebRTC transport, known by its ICE ufrag and bound addresses. */
export interface MuxedTransport {
  readonly iceUfrag: string;
  /** `address:port` keys the mux has bound to this transport. */
  readonly boundAddresses: Set<string>;
  receive(packet: Buffer, address: string, port: number, key: string): void;
}

/**
 * One UDP socket for every attendee of a media worker. Packets are told apart by their sender:
 * a known address belongs to the transport it was bound to by an authenticated ICE check; from
 * an unknown address only a STUN binding request naming a local ICE ufrag is looked at.
 */
export class UdpMux {
  private readonly byAddress = new Map<string, MuxedTransport>();
  private readonly byUfrag = new Map<string, MuxedTransport>();
  private socket: dgram.Socket | undefined;
  /** How every muxed transport's RTP leaves this socket; set once it is bound. */
  rtpSender: RtpSender | undefined;
  port = 0;

  constructor(
    private readonly host: string,
    private readonly requestedPort: number,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024, sendBufferSize: 4 * 1024 * 1024 });
    socket.on('message', (packet, remote) => {
      try {
        this.receive(packet, remote.address, remote.port);
      } catch (error) {
        // One bad packet or one broken peer must not take the worker's other attendees down.
        this.logger.warn({ err: error }, 'media packet handling failed');
      }
    });
    socket.on('error', (error) => this.logger.error({ err: error }, 'media UDP socket error'));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(this.requestedPort, this.host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    this.socket = socket;
    this.port = (socket.address() as AddressInfo).port;
    this.rtpSender = createRtpSender(socket, this.logger);
  }

  register(transport: MuxedTransport): void {
    this.byUfrag.set(transport.iceUfrag, transport);
  }

  unregister(transport: MuxedTransport): void {
    if (this.byUfrag.get(transport.iceUfrag) === transport) this.byUfrag.delete(transport.iceUfrag);
    for (const key of transport.boundAddresses) if (this.byAddress.get(key) === transport) this.byAddress.delete(key);
  }

  /** Routes later packets from this address to the transport (after a valid ICE check). */
  bind(key: string, transport: MuxedTransport): void {
    const previous = this.byAddress.get(key);
    if (previous && previous !== transport) previous.boundAddresses.delete(key);
    this.byAddress.set(key, transport);
    transport.boundAddresses.add(key);
  }

  send(packet: Uint8Array, address: string, port: number): void {
    this.socket?.send(packet, port, address);
  }

  private receive(packet: Buffer, address: string, port: number): void {
    const key = `${address}:${port}`;
    const known = this.byAddress.get(key);
    if (known) {
      known.receive(packet, address, port, key);
      return;
    }
    if (!isStun(packet)) return;
    const ufrag = stunLocalUfrag(packet);
    const transport = ufrag === undefined ? undefined : this.byUfrag.get(ufrag);
    transport?.receive(packet, address, port, key);
  }

  close(): void {
    // Before the socket: its descriptor is free for reuse the moment it closes.
    this.rtpSender?.close();
    this.rtpSender = undefined;
    this.socket?.close();
    this.socket = undefined;
  }
}
