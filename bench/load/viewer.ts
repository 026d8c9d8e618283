import type { ChimeSDKMeetingsClient, Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import { buildNack, buildRemb } from '../../src/media/protocol/rtp.ts';
import { joinMeeting, leave, type JoinedSession } from '../../test/support/media-session.ts';
import type { DelayHistogram } from './delay-histogram.ts';

/**
 * A headless viewer in a replica, behaving as a browser's receiver does on the wire: ICE consent checks
 * every 2.5 s, an RTCP receiver report with a REMB every second, a NACK as soon as a video packet is seen
 * missing. Amphi negotiates REMB, not transport-wide congestion control, so REMB is the feedback. It
 * counts what arrives per stream (loss: sequence numbers never filled, NACKed retransmissions included)
 * and each video packet's one-way delay.
 *
 * SRTP: one packet in AUTHENTICATE_ONE_IN is unprotected (authenticated and decrypted, which fails on any
 * forged or damaged one); the rest are counted from their RTP header, which SRTP leaves in the clear. The
 * load's one core could not decrypt 250 viewers' 54,000 packets a second and still measure the server.
 */
export const AUTHENTICATE_ONE_IN = 50;
const CONSENT_INTERVAL_MS = 2500;
const REPORT_INTERVAL_MS = 1000;
const VP8_PAYLOAD_TYPE = 96;
/** What a viewer tells the server it could take (REMB): more than the camera sends, as a good link would. */
const DOWNLINK_ESTIMATE_BPS = 5_000_000;
/** A hole older than this is lost for good (a retransmission would come within a few ms on loopback). */
const LOSS_DEADLINE_MS = 1000;
const RTP_CLOCK_TICKS_PER_MS = 90;

/** One received stream: sequence numbers extended over wraps, holes awaiting a retransmission. */
class StreamTally {
  /** Packets the sequence numbers say were sent, and those that came (once each). */
  expected = 0;
  received = 0;
  lost = 0;
  highest = -1;
  private readonly holes = new Map<number, number>();

  /** Counts `seq` (16 bits); returns the sequence numbers this arrival shows missing. */
  arrive(seq: number, now: number): number[] {
    if (this.highest < 0) {
      this.highest = seq;
      this.expected = 1;
      this.received = 1;
      return [];
    }
    const delta = ((seq - (this.highest & 0xffff) + 0x8000) & 0xffff) - 0x8000;
    if (delta > 0) {
      const missing: number[] = [];
      for (let gap = 1; gap < delta; gap++) {
        const hole = (this.highest + gap) & 0xffff;
        this.holes.set(hole, now);
        missing.push(hole);
      }
      this.highest += delta;
      this.expected += delta;
      this.received++;
      return missing;
    }
    if (this.holes.delete(seq)) this.received++; // a retransmission (or a late one) filled a hole
    return [];
  }

  /** Holes past the deadline become losses. */
  settle(now: number): void {
    for (const [seq, since] of this.holes) {
      if (now - since < LOSS_DEADLINE_MS) continue;
      this.holes.delete(seq);
      this.lost++;
    }
  }

  /** RFC 3550 extended highest sequence number, for the receiver report. */
  get extendedHighest(): number {
    return this.highest < 0 ? 0 : this.highest >>> 0;
  }
}

export class Viewer {
  readonly video = new StreamTally();
  readonly audio = new StreamTally();
  nacksSent = 0;
  private readonly reportTimer: NodeJS.Timeout;
  private readonly senderSsrc = (Math.random() * 0xffffffff) >>> 0;
  private videoSsrc = 0;
  private audioSsrc = 0;
  /** Relative one-way delay (ticks of 90 kHz): arrival minus the frame's RTP time, as of the first packet; its minimum. */
  private delayReference: number | undefined;
  private minRelativeDelay = Infinity;

  private constructor(
    private readonly session: JoinedSession,
    private readonly delays: { current: DelayHistogram },
  ) {
    const media = session.media;
    media.on('rtp', (packet) => this.arrive(packet));
    media.on('protectedRtp', (datagram) => this.arrive(datagram));
    this.reportTimer = setInterval(() => this.report(), REPORT_INTERVAL_MS);
  }

  /** Joins `replica` and subscribes to the camera `videoStreamId`; `delays` is where video delays go (swapped per step). */
  static async join(api: ChimeSDKMeetingsClient, replica: Meeting, name: string, videoStreamId: number, delays: { current: DelayHistogram }): Promise<Viewer> {
    const session = await joinMeeting(api, replica, name, {
      publish: false,
      receiveStreamIds: [videoStreamId],
      checkIntervalMs: CONSENT_INTERVAL_MS,
      authenticateOneIn: AUTHENTICATE_ONE_IN,
    });
    return new Viewer(session, delays);
  }

  /** SRTP packets that failed authentication (of those checked) and those checked. */
  get authentication(): { checked: number; failed: number } {
    return { checked: this.session.media.received.rtp, failed: this.session.media.received.unauthentic };
  }

  close(): void {
    clearInterval(this.reportTimer);
    leave(this.session);
  }

  /** Reads only the RTP header (in the clear whether or not the packet was unprotected). */
  private arrive(packet: Buffer): void {
    const now = performance.now();
    const payloadType = packet[1]! & 0x7f;
    const seq = packet.readUInt16BE(2);
    if (payloadType === VP8_PAYLOAD_TYPE) {
      this.videoSsrc = packet.readUInt32BE(8);
      const missing = this.video.arrive(seq, now);
      if (missing.length > 0) {
        this.session.media.sendRtcp(buildNack(this.senderSsrc, this.videoSsrc, missing));
        this.nacksSent++;
      }
      this.recordDelay(now, packet.readUInt32BE(4));
    } else {
      this.audioSsrc = packet.readUInt32BE(8);
      this.audio.arrive(seq, now);
    }
  }

  /**
   * The publisher stamps each packet with its send time (RTP time = performance.now × 90 in its process; the
   * monotonic clock runs alike in every process, and the server adds a constant). Arrival minus RTP time is the
   * one-way delay plus a constant; less its smallest value so far, it is the delay added over the quickest packet.
   */
  private recordDelay(now: number, rtpTimestamp: number): void {
    const raw = (Math.round(now * RTP_CLOCK_TICKS_PER_MS) - rtpTimestamp) >>> 0;
    this.delayReference ??= raw;
    const relative = (raw - this.delayReference) | 0;
    if (relative < this.minRelativeDelay) this.minRelativeDelay = relative;
    this.delays.current.add((relative - this.minRelativeDelay) / RTP_CLOCK_TICKS_PER_MS);
  }

  /** A receiver report (both streams) and a REMB, in one compound packet, as Chrome sends them. */
  private report(): void {
    const now = performance.now();
    this.video.settle(now);
    this.audio.settle(now);
    const streams = [
      { ssrc: this.videoSsrc, tally: this.video },
      { ssrc: this.audioSsrc, tally: this.audio },
    ].filter((stream) => stream.ssrc !== 0);
    if (streams.length === 0) return;
    const rr = Buffer.alloc(8 + 24 * streams.length);
    rr[0] = 0x80 | streams.length;
    rr[1] = 201;
    rr.writeUInt16BE(rr.length / 4 - 1, 2);
    rr.writeUInt32BE(this.senderSsrc, 4);
    streams.forEach(({ ssrc, tally }, i) => {
      const at = 8 + 24 * i;
      rr.writeUInt32BE(ssrc, at);
      rr.writeIntBE(Math.min(0x7fffff, tally.lost), at + 5, 3);
      rr.writeUInt32BE(tally.extendedHighest, at + 8);
    });
    const remb = this.videoSsrc !== 0 ? buildRemb(this.senderSsrc, DOWNLINK_ESTIMATE_BPS, [this.videoSsrc]) : Buffer.alloc(0);
    this.session.media.sendRtcp(Buffer.concat([rr, remb]));
  }
}
