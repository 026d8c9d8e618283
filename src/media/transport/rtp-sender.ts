import type { SrtpSendContext } from '../protocol/srtp.ts';

export interface RemoteAddress {
  address: string;
  port: number;
}

/**
 * How a socket's outgoing RTP is protected and sent: the seam between the transports, which decide what to send
 * and to whom, and the path that does it. The TypeScript path protects and sends each packet at once; the native
 * path gathers what one turn of the event loop produces (one incoming packet forwarded to N viewers, one frame of
 * audio to every listener) and seals and sends it all in one call at the end of the turn.
 */
export interface RtpSender {
  readonly path: 'native' | 'typescript';
  /**
   * Protects `packet` (plain RTP, which the caller may reuse as soon as this returns) with `context` and sends it to
   * `remote`. Returns the length of the datagram that leaves. Throws, as SrtpSendContext.protectRtp does, on a
   * packet that is not RTP.
   */
  send(context: SrtpSendContext, packet: Buffer, remote: RemoteAddress): number;
  /** Sends whatever is gathered now, rather than at the end of the turn. */
  flush(): void;
  /** Drops what is gathered; called before the socket closes (its descriptor may be reused at once). */
  close(): void;
}
