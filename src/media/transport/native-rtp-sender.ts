import { rtpHeaderLength } from '../protocol/rtp.ts';
import type { SrtpSendContext } from '../protocol/srtp.ts';
import type { DgramHandle } from './dgram-fd.ts';
import { DESCRIPTOR_WORDS, DescriptorWord, type NativeAddon, type NativeSealer } from './native-addon.ts';
import type { RemoteAddress, RtpSender } from './rtp-sender.ts';

/**
 * Packets gathered before a flush, by default: sendmmsg takes up to 1024; a fan-out to a full replica (250 viewers)
 * fits, a key frame to it flushes a few times. A socket that sends to one peer (a pipe) needs far fewer.
 */
export const FAN_OUT_BATCH_PACKETS = 256;
/** Room per packet in the arena: a full-size packet with its tag. */
const SLOT_BYTES = 1536;
/** Beyond this many remote addresses the parsed-address cache starts over (it only spares re-parsing). */
const MAX_CACHED_ADDRESSES = 4096;

/**
 * The native path: each packet is copied into an arena with room for its tag and described in a Uint32Array
 * (sealer, place, header length, the ROC its context chose, destination); at the end of the turn (a microtask)
 * one addon call seals them all in place with OpenSSL and sends them with sendmmsg on the socket's own descriptor.
 *
 * The context keeps the packet indices (`rolloverCounter`), so a stream may move between this path and
 * SrtpSendContext.protectRtp without the receiver noticing; only the keys are copied into a native sealer, once
 * per context.
 */
export class NativeRtpSender implements RtpSender {
  readonly path = 'native';
  /** Since creation: flushes, packets the kernel took, packets refused (a full socket buffer, an unreachable address). */
  readonly stats = { batches: 0, sent: 0, dropped: 0 };
  private readonly arena: Buffer;
  private readonly descriptors: Uint32Array;
  /** Holds each gathered packet's sealer until the flush: the addon frees a sealer when its object is collected. */
  private readonly pendingSealers: (NativeSealer | undefined)[];
  private readonly sealers = new WeakMap<SrtpSendContext, NativeSealer>();
  private readonly ipv4ByAddress = new Map<string, number>();
  private count = 0;
  private used = 0;
  private flushQueued = false;
  private closed = false;
  private readonly flushAtEndOfTurn = (): void => {
    this.flushQueued = false;
    this.flush();
  };

  /**
   * `batchPackets`: how many packets one flush may carry.
   * `socket`: where datagrams leave, read afresh at every flush (a closing socket answers a negative descriptor);
   * undefined seals without sending, for measurements. `fallback` sends what the addon can't address (not IPv4).
   */
  constructor(
    private readonly addon: NativeAddon,
    private readonly socket: DgramHandle | undefined,
    private readonly fallback: RtpSender,
    private readonly batchPackets = FAN_OUT_BATCH_PACKETS,
  ) {
    this.arena = Buffer.allocUnsafeSlow(batchPackets * SLOT_BYTES);
    this.descriptors = new Uint32Array(batchPackets * DESCRIPTOR_WORDS);
    this.pendingSealers = new Array<NativeSealer | undefined>(batchPackets).fill(undefined);
  }

  send(context: SrtpSendContext, packet: Buffer, remote: RemoteAddress): number {
    const headerLength = rtpHeaderLength(packet, 0);
    if (headerLength < 0) throw new RangeError('Not an RTP packet');
    const ipv4 = this.ipv4Of(remote.address);
    if (ipv4 < 0) return this.fallback.send(context, packet, remote);
    const sealer = this.sealerFor(context);
    const length = packet.length;
    const datagramLength = length + sealer.tagLength;
    if (this.count === this.batchPackets || this.used + datagramLength > this.arena.length) this.flush();
    const roc = context.rolloverCounter(packet.readUInt32BE(8), packet.readUInt16BE(2));
    if (this.closed) return datagramLength;
    packet.copy(this.arena, this.used);
    const words = this.descriptors;
    const at = this.count * DESCRIPTOR_WORDS;
    words[at + DescriptorWord.sealerSlot] = sealer.slot;
    words[at + DescriptorWord.offset] = this.used;
    words[at + DescriptorWord.length] = length;
    words[at + DescriptorWord.headerLength] = headerLength;
    words[at + DescriptorWord.roc] = roc;
    words[at + DescriptorWord.ipv4] = ipv4;
    words[at + DescriptorWord.port] = remote.port;
    words[at + DescriptorWord.status] = 0;
    this.pendingSealers[this.count] = sealer;
    this.count++;
    this.used += datagramLength;
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flushAtEndOfTurn);
    }
    return datagramLength;
  }

  flush(): void {
    const count = this.count;
    if (count === 0) return;
    this.count = 0;
    this.used = 0;
    let sent = 0;
    const fd = this.socket ? this.socket.fd : -1;
    if (!this.closed && (fd >= 0 || !this.socket)) {
      try {
        sent = this.addon.sealBatch(fd, this.arena, this.descriptors, count);
      } catch {
        // Only malformed arguments throw, which this class never passes; the batch is lost, the thread goes on.
      }
    }
    this.stats.batches++;
    this.stats.sent += sent;
    this.stats.dropped += count - sent;
    this.pendingSealers.fill(undefined, 0, count);
  }

  close(): void {
    this.closed = true;
    this.pendingSealers.fill(undefined, 0, this.count);
    this.count = 0;
    this.used = 0;
    this.fallback.close();
  }

  private sealerFor(context: SrtpSendContext): NativeSealer {
    let sealer = this.sealers.get(context);
    if (!sealer) {
      const { rtpKey, rtpSalt, rtpAuthKey } = context.keys;
      sealer = this.addon.createSealer(context.profile.id, rtpKey, rtpSalt, rtpAuthKey);
      this.sealers.set(context, sealer);
    }
    return sealer;
  }

  /** The dotted IPv4 address as a number, or -1 for anything else. */
  private ipv4Of(address: string): number {
    const cached = this.ipv4ByAddress.get(address);
    if (cached !== undefined) return cached;
    const parts = address.split('.');
    let value = parts.length === 4 ? 0 : -1;
    for (const part of parts) {
      const byte = /^\d{1,3}$/.test(part) ? Number(part) : 256;
      if (value < 0 || byte > 255) {
        value = -1;
        break;
      }
      value = value * 256 + byte;
    }
    if (this.ipv4ByAddress.size >= MAX_CACHED_ADDRESSES) this.ipv4ByAddress.clear();
    this.ipv4ByAddress.set(address, value);
    return value;
  }
}
