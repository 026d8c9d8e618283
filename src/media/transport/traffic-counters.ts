/**
 * What a media worker's transports sent and received, as plain numbers shared by all of them: the packet path
 * adds to them (two additions per packet) and the metrics read them only when asked, from the
 * worker's own thread.
 */
export class TrafficCounters {
  /** RTP packets sent, to clients and through pipes. */
  packetsSent = 0;
  /** Bytes of those packets as they left (SRTP-protected, without UDP and IP headers). */
  bytesSent = 0;
  /** RTP packets received (that unprotected), from clients and through pipes. */
  packetsReceived = 0;
  /** Packets sent that the receiving clients reported lost (RTCP receiver reports, cumulative per stream). */
  packetsLost = 0;

  snapshot(): TrafficSnapshot {
    return { packetsSent: this.packetsSent, bytesSent: this.bytesSent, packetsReceived: this.packetsReceived, packetsLost: this.packetsLost };
  }
}

export type TrafficSnapshot = Pick<TrafficCounters, 'packetsSent' | 'bytesSent' | 'packetsReceived' | 'packetsLost'>;
