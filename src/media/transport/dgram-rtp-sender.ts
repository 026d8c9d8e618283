import type dgram from 'node:dgram';
import type { SrtpSendContext } from '../protocol/srtp.ts';
import type { RemoteAddress, RtpSender } from './rtp-sender.ts';

/** The TypeScript path: each packet protected by its context and handed to dgram at once. */
export class DgramRtpSender implements RtpSender {
  readonly path = 'typescript';
  private closed = false;

  constructor(private readonly socket: dgram.Socket) {}

  send(context: SrtpSendContext, packet: Buffer, remote: RemoteAddress): number {
    const datagram = context.protectRtp(packet);
    if (!this.closed) this.socket.send(datagram, remote.port, remote.address);
    return datagram.length;
  }

  flush(): void {}

  close(): void {
    this.closed = true;
  }
}
