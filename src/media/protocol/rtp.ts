/**
 * RTP and RTCP read/write helpers working in place on packet buffers: the forwarding path
 * parses nothing it doesn't need and allocates nothing.
 */

/** RFC 5761: RTCP packet types 192–223 in the second byte tell RTCP from RTP on a muxed port. */
export function isRtcp(packet: Buffer): boolean {
  const type = packet[1] ?? 0;
  return type >= 192 && type <= 223;
}

export const rtp = {
  payloadType: (p: Buffer) => p[1]! & 0x7f,
  marker: (p: Buffer) => (p[1]! & 0x80) !== 0,
  sequence: (p: Buffer) => p.readUInt16BE(2),
  timestamp: (p: Buffer) => p.readUInt32BE(4),
  ssrc: (p: Buffer) => p.readUInt32BE(8),
  setPayloadType(p: Buffer, pt: number) {
    p[1] = (p[1]! & 0x80) | (pt & 0x7f);
  },
  setSequence: (p: Buffer, seq: number) => p.writeUInt16BE(seq & 0xffff, 2),
  setTimestamp: (p: Buffer, ts: number) => p.writeUInt32BE(ts >>> 0, 4),
  setSsrc: (p: Buffer, ssrc: number) => p.writeUInt32BE(ssrc >>> 0, 8),
};

/**
 * The packet an RTX packet (RFC 4588 §4) stands for, in a new buffer: the RTX payload starts with the
 * original sequence number, then the original payload; header and extensions stay, with the
 * original payload type and SSRC. Undefined for one that carries no payload (a padding-only
 * bandwidth probe). `payloadEnd` excludes padding, so the copy has none.
 */
export function unwrapRtx(packet: Buffer, headerLength: number, payloadEnd: number, payloadType: number, ssrc: number): Buffer | undefined {
  if (payloadEnd - headerLength <= 2) return undefined;
  const original = Buffer.allocUnsafe(payloadEnd - 2);
  packet.copy(original, 0, 0, headerLength);
  packet.copy(original, headerLength, headerLength + 2, payloadEnd);
  original[0] = original[0]! & ~0x20;
  rtp.setPayloadType(original, payloadType);
  rtp.setSequence(original, packet.readUInt16BE(headerLength));
  rtp.setSsrc(original, ssrc);
  return original;
}

/**
 * Length of the fixed header, CSRCs and header extension; -1 if the packet is malformed or the header
 * leaves no room for `trailerLength` bytes after it (an SRTP authentication tag).
 */
export function rtpHeaderLength(p: Buffer, trailerLength = 0): number {
  if (p.length < 12 + trailerLength || p[0]! >> 6 !== 2) return -1;
  let length = 12 + (p[0]! & 0x0f) * 4;
  if (p[0]! & 0x10) {
    if (p.length < length + 4) return -1;
    length += 4 + p.readUInt16BE(length + 2) * 4;
  }
  return length + trailerLength <= p.length ? length : -1;
}

/** RFC 8285 one-byte header extension profile. */
const ONE_BYTE_EXTENSION_PROFILE = 0xbede;

/**
 * Writes an RTP header into `out` (a reused scratch buffer) and returns its length: the fixed header (version 2,
 * `markerAndType` as the second byte), then, when `extensionId` is not 0, a one-byte header extension (RFC 8285)
 * holding one element of `extensionLength` (1–3) bytes, the low bytes of `extensionValue`, padded to a word.
 * Allocates nothing; it runs for every packet sent to a receiver.
 */
export function writeRtpHeader(
  out: Buffer,
  markerAndType: number,
  sequence: number,
  timestamp: number,
  ssrc: number,
  extensionId: number,
  extensionValue: number,
  extensionLength: 1 | 2 | 3,
): number {
  out[0] = extensionId ? 0x90 : 0x80;
  out[1] = markerAndType;
  out.writeUInt16BE(sequence & 0xffff, 2);
  out.writeUInt32BE(timestamp >>> 0, 4);
  out.writeUInt32BE(ssrc >>> 0, 8);
  if (!extensionId) return 12;
  out.writeUInt16BE(ONE_BYTE_EXTENSION_PROFILE, 12);
  out.writeUInt16BE(1, 14); // one 32-bit word: the element and its padding
  out[16] = (extensionId << 4) | (extensionLength - 1); // the length field counts bytes beyond the first
  out[17] = extensionLength === 3 ? (extensionValue >> 16) & 0xff : extensionLength === 2 ? (extensionValue >> 8) & 0xff : extensionValue & 0xff;
  out[18] = extensionLength === 3 ? (extensionValue >> 8) & 0xff : extensionLength === 2 ? extensionValue & 0xff : 0;
  out[19] = extensionLength === 3 ? extensionValue & 0xff : 0;
  return 20;
}

/**
 * Writes an audio RTP packet into `out` and returns its length: the header, with the RFC 6464 level of the payload
 * in -dBov as a one-byte extension when `levelExtensionId` is not 0 (a negative `level`, unknown, is written as 127:
 * silence), then the payload. Allocates nothing; it runs for every listener every 20 ms.
 */
export function writeAudioRtpPacket(
  out: Buffer,
  payloadType: number,
  sequence: number,
  timestamp: number,
  ssrc: number,
  levelExtensionId: number,
  level: number,
  payload: Buffer,
): number {
  const offset = writeRtpHeader(out, payloadType & 0x7f, sequence, timestamp, ssrc, levelExtensionId, level < 0 ? 127 : level & 0x7f, 1);
  return offset + payload.copy(out, offset);
}

/** Payload end, excluding RTP padding; -1 if malformed. */
export function rtpPayloadEnd(p: Buffer): number {
  if (!(p[0]! & 0x20)) return p.length;
  const padding = p[p.length - 1]!;
  return padding === 0 || padding > p.length - 12 ? -1 : p.length - padding;
}

/**
 * Finds header extension `id` (one-byte RFC 8285 profile 0xBEDE, or two-byte 0x100X) and
 * returns the offset of its value, with its length in `extensionLength`; -1 when absent.
 */
export let extensionLength = 0;
export function findExtension(p: Buffer, id: number): number {
  if (id <= 0 || !(p[0]! & 0x10)) return -1;
  const start = 12 + (p[0]! & 0x0f) * 4;
  if (p.length < start + 4) return -1;
  const profile = p.readUInt16BE(start);
  const end = start + 4 + p.readUInt16BE(start + 2) * 4;
  if (end > p.length) return -1;
  let offset = start + 4;
  if (profile === ONE_BYTE_EXTENSION_PROFILE) {
    while (offset < end) {
      const byte = p[offset]!;
      if (byte === 0) {
        offset++;
        continue;
      }
      const extId = byte >> 4;
      const length = (byte & 0x0f) + 1;
      if (extId === 15) return -1;
      if (extId === id) {
        extensionLength = length;
        return offset + 1 + length <= end ? offset + 1 : -1;
      }
      offset += 1 + length;
    }
  } else if ((profile & 0xfff0) === 0x1000) {
    while (offset + 1 < end) {
      const extId = p[offset]!;
      if (extId === 0) {
        offset++;
        continue;
      }
      const length = p[offset + 1]!;
      if (extId === id) {
        extensionLength = length;
        return offset + 2 + length <= end ? offset + 2 : -1;
      }
      offset += 2 + length;
    }
  }
  return -1;
}

/** Reads an SDES-style string extension (mid, rid) or undefined. */
export function readStringExtension(p: Buffer, id: number): string | undefined {
  const at = findExtension(p, id);
  return at < 0 ? undefined : p.toString('latin1', at, at + extensionLength);
}

/** RFC 6464 audio level: 0 (loudest) … 127 (silence) in -dBov, or -1 when absent. */
export function audioLevel(p: Buffer, id: number): number {
  const at = findExtension(p, id);
  return at < 0 ? -1 : p[at]! & 0x7f;
}

/** Whether a VP8 RTP payload starts a key frame (RFC 7741 payload descriptor + VP8 frame tag). */
export function isVp8KeyFrame(p: Buffer, payloadOffset: number): boolean {
  let offset = payloadOffset;
  const descriptor = p[offset];
  if (descriptor === undefined) return false;
  const startOfPartition = (descriptor & 0x10) !== 0;
  const partitionId = descriptor & 0x0f;
  if (!startOfPartition || partitionId !== 0) return false;
  offset++;
  if (descriptor & 0x80) {
    const extension = p[offset++];
    if (extension === undefined) return false;
    if (extension & 0x80) offset += (p[offset]! & 0x80) ? 2 : 1; // PictureID, 7 or 15 bits
    if (extension & 0x40) offset++; // TL0PICIDX
    if (extension & 0x30) offset++; // TID/KEYIDX
  }
  const frameTag = p[offset];
  return frameTag !== undefined && (frameTag & 0x01) === 0;
}

// ---------------- RTCP ----------------

export const RtcpType = { SR: 200, RR: 201, SDES: 202, BYE: 203, APP: 204, RTPFB: 205, PSFB: 206 } as const;

export interface RtcpVisitor {
  pli?(mediaSsrc: number): void;
  fir?(mediaSsrc: number): void;
  nack?(mediaSsrc: number, sequence: number): void;
  remb?(bitrateBps: number, ssrcs: number[]): void;
  senderReport?(ssrc: number, ntpHigh: number, ntpLow: number, rtpTimestamp: number): void;
  /** A report block of an SR or RR: how many packets of `sourceSsrc` its sender lost so far (RFC 3550 §6.4.1, signed). */
  receptionReport?(sourceSsrc: number, cumulativeLost: number): void;
}

/** Walks a (decrypted) compound RTCP packet and reports what Amphi acts on. Malformed parts end the walk. */
export function visitRtcp(packet: Buffer, visitor: RtcpVisitor): void {
  let offset = 0;
  while (offset + 4 <= packet.length) {
    const first = packet[offset]!;
    if (first >> 6 !== 2) return;
    const count = first & 0x1f;
    const type = packet[offset + 1]!;
    const length = (packet.readUInt16BE(offset + 2) + 1) * 4;
    if (offset + length > packet.length) return;
    const body = offset + 4;
    if (type === RtcpType.PSFB && length >= 12) {
      const mediaSsrc = packet.readUInt32BE(body + 4);
      if (count === 1) visitor.pli?.(mediaSsrc);
      else if (count === 4) {
        for (let at = body + 8; at + 8 <= offset + length; at += 8) visitor.fir?.(packet.readUInt32BE(at));
      } else if (count === 15 && length >= 20 && packet.toString('latin1', body + 8, body + 12) === 'REMB') {
        const ssrcCount = packet[body + 12]!;
        const exponent = packet[body + 13]! >> 2;
        const mantissa = ((packet[body + 13]! & 0x03) << 16) | packet.readUInt16BE(body + 14);
        const ssrcs: number[] = [];
        for (let i = 0; i < ssrcCount && body + 16 + i * 4 + 4 <= offset + length; i++) ssrcs.push(packet.readUInt32BE(body + 16 + i * 4));
        visitor.remb?.(mantissa * 2 ** exponent, ssrcs);
      }
    } else if (type === RtcpType.RTPFB && count === 1 && length >= 12) {
      const mediaSsrc = packet.readUInt32BE(body + 4);
      for (let at = body + 8; at + 4 <= offset + length; at += 4) {
        const pid = packet.readUInt16BE(at);
        const blp = packet.readUInt16BE(at + 2);
        visitor.nack?.(mediaSsrc, pid);
        for (let bit = 0; bit < 16; bit++) if (blp & (1 << bit)) visitor.nack?.(mediaSsrc, (pid + bit + 1) & 0xffff);
      }
    } else if (type === RtcpType.SR && length >= 28) {
      visitor.senderReport?.(packet.readUInt32BE(body), packet.readUInt32BE(body + 4), packet.readUInt32BE(body + 8), packet.readUInt32BE(body + 12));
      visitReportBlocks(packet, body + 24, count, offset + length, visitor);
    } else if (type === RtcpType.RR && length >= 8) {
      visitReportBlocks(packet, body + 4, count, offset + length, visitor);
    }
    offset += length;
  }
}

/** The report blocks of an SR or RR (24 bytes each), as far as the packet holds them. */
function visitReportBlocks(packet: Buffer, start: number, count: number, end: number, visitor: RtcpVisitor): void {
  if (!visitor.receptionReport) return;
  for (let i = 0, at = start; i < count && at + 24 <= end; i++, at += 24) {
    visitor.receptionReport(packet.readUInt32BE(at), packet.readIntBE(at + 5, 3));
  }
}

export function buildPli(senderSsrc: number, mediaSsrc: number): Buffer {
  const packet = Buffer.alloc(12);
  packet[0] = 0x81;
  packet[1] = RtcpType.PSFB;
  packet.writeUInt16BE(2, 2);
  packet.writeUInt32BE(senderSsrc >>> 0, 4);
  packet.writeUInt32BE(mediaSsrc >>> 0, 8);
  return packet;
}

export function buildFir(senderSsrc: number, mediaSsrc: number, sequence: number): Buffer {
  const packet = Buffer.alloc(20);
  packet[0] = 0x84;
  packet[1] = RtcpType.PSFB;
  packet.writeUInt16BE(4, 2);
  packet.writeUInt32BE(senderSsrc >>> 0, 4);
  packet.writeUInt32BE(mediaSsrc >>> 0, 12);
  packet[16] = sequence & 0xff;
  return packet;
}

export function buildNack(senderSsrc: number, mediaSsrc: number, sequences: number[]): Buffer {
  const pairs: [number, number][] = [];
  for (const seq of sequences) {
    const last = pairs[pairs.length - 1];
    const delta = last ? (seq - last[0]) & 0xffff : 0;
    if (last && delta >= 1 && delta <= 16) last[1] |= 1 << (delta - 1);
    else pairs.push([seq, 0]);
  }
  const packet = Buffer.alloc(12 + pairs.length * 4);
  packet[0] = 0x81;
  packet[1] = RtcpType.RTPFB;
  packet.writeUInt16BE(2 + pairs.length, 2);
  packet.writeUInt32BE(senderSsrc >>> 0, 4);
  packet.writeUInt32BE(mediaSsrc >>> 0, 8);
  pairs.forEach(([pid, blp], i) => {
    packet.writeUInt16BE(pid, 12 + i * 4);
    packet.writeUInt16BE(blp, 14 + i * 4);
  });
  return packet;
}

export function buildRemb(senderSsrc: number, bitrateBps: number, ssrcs: number[]): Buffer {
  let exponent = 0;
  let mantissa = Math.max(0, Math.floor(bitrateBps));
  while (mantissa > 0x3ffff) {
    mantissa >>>= 1;
    exponent++;
  }
  const packet = Buffer.alloc(20 + ssrcs.length * 4);
  packet[0] = 0x8f;
  packet[1] = RtcpType.PSFB;
  packet.writeUInt16BE(4 + ssrcs.length, 2);
  packet.writeUInt32BE(senderSsrc >>> 0, 4);
  packet.write('REMB', 12, 'latin1');
  packet[16] = ssrcs.length;
  packet[17] = (exponent << 2) | (mantissa >> 16);
  packet.writeUInt16BE(mantissa & 0xffff, 18);
  ssrcs.forEach((ssrc, i) => packet.writeUInt32BE(ssrc >>> 0, 20 + i * 4));
  return packet;
}

/** A sender report with no report blocks, so receivers can map RTP time to wall clock (lip sync). */
export function buildSenderReport(ssrc: number, nowMs: number, rtpTimestamp: number, packets: number, octets: number): Buffer {
  const packet = Buffer.alloc(28);
  packet[0] = 0x80;
  packet[1] = RtcpType.SR;
  packet.writeUInt16BE(6, 2);
  packet.writeUInt32BE(ssrc >>> 0, 4);
  const ntpSeconds = Math.floor(nowMs / 1000) + 2_208_988_800;
  packet.writeUInt32BE(ntpSeconds >>> 0, 8);
  packet.writeUInt32BE(Math.floor(((nowMs % 1000) / 1000) * 2 ** 32) >>> 0, 12);
  packet.writeUInt32BE(rtpTimestamp >>> 0, 16);
  packet.writeUInt32BE(packets >>> 0, 20);
  packet.writeUInt32BE(octets >>> 0, 24);
  return packet;
}

/** Gaps (in 48 kHz units) that an outgoing audio stream carries over from its source's clock. */
const MAX_FOLLOWED_GAP = 50 * 960;

/**
 * An outgoing audio stream's RTP timestamps, following the media clock of whatever feeds it:
 * frames skipped on that clock leave the same gap here, and a jump (a new source with another
 * clock, or a wrap) moves on by one frame, so the stream never goes backwards.
 */
export class AudioTimestamps {
  private last: number | undefined;

  constructor(
    private current: number,
    private readonly frameSamples = 960,
  ) {}

  /**
   * The timestamp for the frame the source stamped `sourceTimestamp`, or -1 for a frame of the
   * same time as the last one (a stream switching to another source mid-frame): not to be sent.
   */
  next(sourceTimestamp: number): number {
    const step = this.last === undefined ? this.frameSamples : (sourceTimestamp - this.last) >>> 0;
    if (step === 0) return -1;
    this.last = sourceTimestamp;
    this.current = (this.current + (step > 0 && step <= MAX_FOLLOWED_GAP ? step : this.frameSamples)) >>> 0;
    return this.current;
  }
}
