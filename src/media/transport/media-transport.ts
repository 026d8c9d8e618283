import type { EventEmitter } from 'node:events';

/** What a transport reports about the packets it carries and its path. */
export interface MediaTransportEvents {
  /** A plain RTP packet from the other end, unprotected and authenticated. */
  rtp: [packet: Buffer];
  /** A plain (compound) RTCP packet from the other end, unprotected and authenticated. */
  rtcp: [packet: Buffer];
  /** The transport became able to carry media (keys, a path to the other end and, for WebRTC, its consent), or stopped being. */
  connectionChange: [connected: boolean];
}

export interface TransportCounters {
  rtpIn: number;
  rtpOut: number;
  rtcpIn: number;
  rtcpOut: number;
}

/**
 * What the rooms see of any transport, a browser's WebRTC connection or a pipe to another room:
 * plain RTP and RTCP out, plain RTP and RTCP in as events. Sending while not `connected` (before keys
 * and an address, without the other end's consent, after close()) does nothing.
 */
export interface MediaTransport extends EventEmitter<MediaTransportEvents> {
  readonly connected: boolean;
  readonly stats: Readonly<TransportCounters>;
  sendRtp(packet: Buffer): void;
  sendRtcp(packet: Buffer): void;
  close(): void;
}
