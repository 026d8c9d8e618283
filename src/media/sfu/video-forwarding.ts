import { EventEmitter } from 'node:events';
import { isVp8KeyFrame, rtp, writeRtpHeader } from '../protocol/rtp.ts';
import { FanOutPacer } from './fan-out-pacer.ts';
import { MissingPackets } from './missing-packets.ts';

/**
 * SFU video forwarding. A VideoLayer is one published stream (a camera, or one simulcast
 * layer of it); each subscriber attaches a VideoDownstream, which rewrites SSRC, sequence
 * number and timestamp for its receiver so that switching sources or layers stays a
 * continuous stream to the browser.
 */

export interface PacketSink {
  sendRtp(packet: Buffer): void;
}

const HISTORY_SIZE = 1024;
/** At most one key-frame request per second reaches a publisher, however many receivers ask. */
const KEY_FRAME_REQUEST_INTERVAL_MS = 1000;
const MAX_RTP_SIZE = 1500;
/** One output buffer for the whole thread: every packet is built, protected and sent before the next. */
const scratch = Buffer.allocUnsafe(MAX_RTP_SIZE + 64);
/** One pacer for the whole thread (a worker): its layers share one send budget per event-loop turn. */
export const threadFanOutPacer = new FanOutPacer<VideoLayer>();

export interface VideoLayerEvents {
  /** The layer gained its first subscriber or lost its last (a replica's pipe fetches a stream only while wanted). */
  demandChange: [wanted: boolean];
}

export class VideoLayer extends EventEmitter<VideoLayerEvents> {
  /** SSRC the publisher sends this layer with, once known. */
  ssrc = 0;
  readonly subscribers = new Set<VideoDownstream>();
  private readonly history: (Buffer | undefined)[] = new Array(HISTORY_SIZE);
  private readonly historyHeader = new Uint16Array(HISTORY_SIZE);
  private readonly historyEnd = new Uint16Array(HISTORY_SIZE);
  private lastKeyFrameRequestAt = -Infinity;
  private pendingKeyFrameRequest: NodeJS.Timeout | undefined;
  private meterBytes = 0;
  private meterStart = Date.now();
  private bitrate = 0;
  lastPacketAt = 0;
  packets = 0;
  keyFrames = 0;
  /** Key-frame requests sent to the publisher (receivers' PLI/FIR merged, and switches). */
  keyFrameRequests = 0;
  /** Packets asked of the publisher again (NACK), and lost packets that came after all (repaired or late). */
  resendRequests = 0;
  recovered = 0;
  /** Packets that arrived twice, dropped. */
  duplicates = 0;
  /** Only where the publisher answers NACKs (a client; not a replica's pipe). */
  private readonly missing: MissingPackets | undefined;

  constructor(
    readonly streamId: number,
    readonly groupId: number,
    private readonly askPublisherForKeyFrame: (ssrc: number) => void,
    /** Asks the publisher to send these packets again (ascending); without it, losses wait for a key frame. */
    private readonly askPublisherToResend?: (ssrc: number, sequences: number[]) => void,
    /** Whose send budget the fan-out spends: the thread's, unless a test or bench brings its own. */
    private readonly pacer: FanOutPacer<VideoLayer> = threadFanOutPacer,
  ) {
    super();
    if (askPublisherToResend) this.missing = new MissingPackets();
  }

  addSubscriber(subscriber: VideoDownstream): void {
    this.subscribers.add(subscriber);
    if (this.subscribers.size === 1) this.emit('demandChange', true);
  }

  removeSubscriber(subscriber: VideoDownstream): void {
    if (this.subscribers.delete(subscriber) && this.subscribers.size === 0) this.emit('demandChange', false);
  }

  /** A decrypted RTP packet of this layer from its publisher. */
  receive(packet: Buffer, headerLength: number, payloadEnd: number): void {
    const now = Date.now();
    const seq = rtp.sequence(packet);
    const slot = seq % HISTORY_SIZE;
    // A packet asked for again may come twice (it was only late): receivers need it once.
    const stored = this.history[slot];
    if (stored && rtp.sequence(stored) === seq) return void this.duplicates++;
    this.packets++;
    this.lastPacketAt = now;
    this.meterBytes += packet.length;
    if (now - this.meterStart >= 1000) {
      this.bitrate = Math.round((this.meterBytes * 8 * 1000) / (now - this.meterStart));
      this.meterBytes = 0;
      this.meterStart = now;
    }
    if (this.missing) this.repairUpstream(seq, now);
    this.history[slot] = packet;
    this.historyHeader[slot] = headerLength;
    this.historyEnd[slot] = payloadEnd;
    const keyFrame = isVp8KeyFrame(packet, headerLength);
    if (keyFrame) this.keyFrames++;
    this.pacer.fanOut(this, packet, headerLength, payloadEnd, keyFrame, seq);
  }

  /**
   * What the publisher lost on its way here is asked for while anyone watches: a receiver's NACK
   * can only be answered from the history, and the history has only what arrived.
   */
  private repairUpstream(seq: number, now: number): void {
    if (this.missing!.received(seq, now)) this.recovered++;
    if (this.subscribers.size === 0 || this.ssrc === 0) return;
    const due = this.missing!.due(now);
    if (due.length === 0) return;
    this.resendRequests += due.length;
    this.askPublisherToResend!(this.ssrc, due);
  }

  /** The stored packet with this sequence number, for retransmission. */
  fromHistory(seq: number): { packet: Buffer; headerLength: number; payloadEnd: number } | undefined {
    const slot = seq % HISTORY_SIZE;
    const packet = this.history[slot];
    if (!packet || rtp.sequence(packet) !== seq) return undefined;
    return { packet, headerLength: this.historyHeader[slot]!, payloadEnd: this.historyEnd[slot]! };
  }

  bitrateBps(): number {
    return Date.now() - this.lastPacketAt > 2000 ? 0 : this.bitrate;
  }

  /** Merges receivers' PLI/FIR: the first goes out at once, the rest at most once per second. */
  requestKeyFrame(): void {
    if (this.pendingKeyFrameRequest) return;
    const now = Date.now();
    const wait = this.lastKeyFrameRequestAt + KEY_FRAME_REQUEST_INTERVAL_MS - now;
    if (wait <= 0) return this.sendKeyFrameRequest(now);
    this.pendingKeyFrameRequest = setTimeout(() => {
      this.pendingKeyFrameRequest = undefined;
      this.sendKeyFrameRequest(Date.now());
    }, wait);
    this.pendingKeyFrameRequest.unref();
  }

  private sendKeyFrameRequest(now: number): void {
    this.lastKeyFrameRequestAt = now;
    if (this.ssrc === 0) return;
    this.keyFrameRequests++;
    this.askPublisherForKeyFrame(this.ssrc);
  }

  close(): void {
    clearTimeout(this.pendingKeyFrameRequest);
    this.pacer.forget(this);
    for (const subscriber of [...this.subscribers]) subscriber.detach();
    this.history.fill(undefined);
  }
}

export class VideoDownstream {
  layer: VideoLayer | undefined;
  paused = false;
  forwarded = 0;
  /** Packets the receiver asked for again (NACK), those sent again from the layer's history, and those it no longer had. */
  nacked = 0;
  retransmitted = 0;
  missed = 0;
  private waitingForKeyFrame = true;
  private started = false;
  private seqOffset = 0;
  private tsOffset = 0;
  private firstInSeq = 0;
  private lastOutSeq = Math.floor(Math.random() * 0x7fff);
  private lastOutTs = Math.floor(Math.random() * 0x7fffffff);
  private lastOutAt = 0;
  private lastInTs = 0;

  constructor(
    /** SSRC this receiver sees; changes only with a new VideoDownstream. */
    readonly ssrc: number,
    private readonly payloadType: number,
    /** abs-send-time extension id negotiated with this receiver (0: none), for its bandwidth estimate. */
    private readonly absSendTimeId: number,
    private readonly sink: PacketSink,
  ) {}

  /** Switches to `layer` (or to nothing); the stream continues at the layer's next key frame. */
  attach(layer: VideoLayer | undefined): void {
    if (layer === this.layer) return;
    this.layer?.removeSubscriber(this);
    this.layer = layer;
    this.waitingForKeyFrame = true;
    if (layer) {
      layer.addSubscriber(this);
      layer.requestKeyFrame();
    }
  }

  detach(): void {
    const layer = this.layer;
    this.layer = undefined;
    layer?.removeSubscriber(this);
  }

  requestKeyFrame(): void {
    this.layer?.requestKeyFrame();
  }

  forward(packet: Buffer, headerLength: number, payloadEnd: number, keyFrame: boolean, seq: number): void {
    if (this.paused || payloadEnd <= headerLength) return;
    const timestamp = rtp.timestamp(packet);
    if (this.waitingForKeyFrame) {
      if (!keyFrame) return;
      this.waitingForKeyFrame = false;
      // Continue this receiver's numbering across source and layer switches.
      const elapsedTicks = this.started ? Math.max(1, Math.round((Date.now() - this.lastOutAt) * 90)) : 0;
      this.seqOffset = (this.lastOutSeq + 1 - seq) & 0xffff;
      this.tsOffset = (this.lastOutTs + elapsedTicks - timestamp) >>> 0;
      this.firstInSeq = seq;
      this.started = true;
    } else if (((seq - this.firstInSeq) & 0xffff) > 0x8000) {
      return; // older than the switch point
    }
    const outSeq = (seq + this.seqOffset) & 0xffff;
    const outTs = (timestamp + this.tsOffset) >>> 0;
    if (((outSeq - this.lastOutSeq) & 0xffff) < 0x8000) {
      this.lastOutSeq = outSeq;
      this.lastOutTs = outTs;
      this.lastOutAt = Date.now();
      this.lastInTs = timestamp;
    }
    this.send(packet, headerLength, payloadEnd, outSeq, outTs);
  }

  /** Answers a NACK for `outSeq` from the layer's history. */
  retransmit(outSeq: number): void {
    const layer = this.layer;
    if (!layer || !this.started) return;
    this.nacked++;
    const seq = (outSeq - this.seqOffset) & 0xffff;
    const stored = ((seq - this.firstInSeq) & 0xffff) > 0x8000 ? undefined : layer.fromHistory(seq);
    if (!stored) return void this.missed++;
    this.retransmitted++;
    this.send(stored.packet, stored.headerLength, stored.payloadEnd, outSeq, (rtp.timestamp(stored.packet) + this.tsOffset) >>> 0);
  }

  private send(packet: Buffer, headerLength: number, payloadEnd: number, outSeq: number, outTs: number): void {
    const payloadLength = payloadEnd - headerLength;
    // abs-send-time: 6.18 fixed-point seconds, in a 3-byte element.
    const absSendTime = this.absSendTimeId ? Math.floor((performance.timeOrigin + performance.now()) * 262.144) & 0xffffff : 0;
    const offset = writeRtpHeader(scratch, (packet[1]! & 0x80) | this.payloadType, outSeq, outTs, this.ssrc, this.absSendTimeId, absSendTime, 3);
    if (offset + payloadLength > scratch.length) return;
    packet.copy(scratch, offset, headerLength, payloadEnd);
    this.forwarded++;
    this.sink.sendRtp(scratch.subarray(0, offset + payloadLength));
  }
}
