/**
 * The DTLS handshake header (RFC 6347 §4.2.2): message type, length, message_seq and the fragment's
 * offset and length; splitting our messages into fragments and reassembling the peer's.
 */
import { HANDSHAKE_HEADER_BYTES } from './wire.ts';

export interface HandshakeFragment {
  msgType: number;
  /** Length of the whole message. */
  length: number;
  messageSeq: number;
  fragmentOffset: number;
  data: Buffer;
}

/** A whole handshake message. */
export interface HandshakeMessage {
  msgType: number;
  messageSeq: number;
  body: Buffer;
}

/** Larger than any ClientHello or certificate chain a browser sends, post-quantum key shares included. */
const MAX_HANDSHAKE_MESSAGE_BYTES = 64 * 1024;
const MAX_PARTIAL_MESSAGES = 8;
const MAX_MESSAGES_AHEAD = 8;

export function parseHandshakeFragments(body: Buffer): { fragments: HandshakeFragment[]; malformed: boolean } {
  const fragments: HandshakeFragment[] = [];
  let offset = 0;
  while (offset < body.length) {
    if (body.length - offset < HANDSHAKE_HEADER_BYTES) return { fragments, malformed: true };
    const length = body.readUIntBE(offset + 1, 3);
    const fragmentOffset = body.readUIntBE(offset + 6, 3);
    const fragmentLength = body.readUIntBE(offset + 9, 3);
    const end = offset + HANDSHAKE_HEADER_BYTES + fragmentLength;
    if (end > body.length || fragmentOffset + fragmentLength > length) return { fragments, malformed: true };
    fragments.push({
      msgType: body.readUInt8(offset),
      length,
      messageSeq: body.readUInt16BE(offset + 4),
      fragmentOffset,
      data: body.subarray(offset + HANDSHAKE_HEADER_BYTES, end),
    });
    offset = end;
  }
  return { fragments, malformed: false };
}

function encodeFragment(message: HandshakeMessage, fragmentOffset: number, fragmentLength: number): Buffer {
  const out = Buffer.alloc(HANDSHAKE_HEADER_BYTES + fragmentLength);
  out.writeUInt8(message.msgType, 0);
  out.writeUIntBE(message.body.length, 1, 3);
  out.writeUInt16BE(message.messageSeq, 4);
  out.writeUIntBE(fragmentOffset, 6, 3);
  out.writeUIntBE(fragmentLength, 9, 3);
  message.body.copy(out, HANDSHAKE_HEADER_BYTES, fragmentOffset, fragmentOffset + fragmentLength);
  return out;
}

/**
 * The message as one fragment: how it is hashed into the handshake transcript (RFC 6347 §4.2.6),
 * whatever fragments it travelled in.
 */
export function encodeHandshakeMessage(message: HandshakeMessage): Buffer {
  return encodeFragment(message, 0, message.body.length);
}

/** The message as fragments of at most `maxFragmentBytes` body bytes each (one, even when empty). */
export function fragmentHandshakeMessage(message: HandshakeMessage, maxFragmentBytes: number): Buffer[] {
  const fragments: Buffer[] = [];
  let offset = 0;
  do {
    const length = Math.min(maxFragmentBytes, message.body.length - offset);
    fragments.push(encodeFragment(message, offset, length));
    offset += length;
  } while (offset < message.body.length);
  return fragments;
}

export interface ReassembledMessage {
  message: HandshakeMessage;
  epoch: number;
  /** The peer sent this message_seq before: it is retransmitting an earlier flight. */
  retransmission: boolean;
}

interface PartialMessage {
  msgType: number;
  length: number;
  epoch: number;
  body: Buffer;
  covered: Uint8Array;
  coveredBytes: number;
}

/**
 * Reassembles fragmented handshake messages (Chrome's DTLS 1.3-capable ClientHello, with its
 * post-quantum key share, spans two records) and releases them strictly in message_seq order,
 * whatever reordering, duplication or fragmentation the network produced.
 */
export class HandshakeReassembler {
  private nextSeq = 0;
  private readonly partial = new Map<number, PartialMessage>();
  private readonly completeAhead = new Map<number, { message: HandshakeMessage; epoch: number }>();

  add(fragment: HandshakeFragment, epoch: number): ReassembledMessage[] {
    const seq = fragment.messageSeq;
    if (fragment.length > MAX_HANDSHAKE_MESSAGE_BYTES) return [];
    if (seq >= this.nextSeq + MAX_MESSAGES_AHEAD || this.completeAhead.has(seq)) return [];

    let pending = this.partial.get(seq);
    if (pending && (pending.msgType !== fragment.msgType || pending.length !== fragment.length || pending.epoch !== epoch)) {
      this.partial.delete(seq);
      pending = undefined;
    }
    if (!pending) {
      // Stray fragments must not be able to block the real messages for good: evict the oldest.
      const oldest = this.partial.keys().next();
      if (this.partial.size >= MAX_PARTIAL_MESSAGES && !oldest.done) this.partial.delete(oldest.value);
      pending = {
        msgType: fragment.msgType,
        length: fragment.length,
        epoch,
        body: Buffer.alloc(fragment.length),
        covered: new Uint8Array(fragment.length),
        coveredBytes: 0,
      };
      this.partial.set(seq, pending);
    }
    fragment.data.copy(pending.body, fragment.fragmentOffset);
    const end = fragment.fragmentOffset + fragment.data.length;
    for (let i = fragment.fragmentOffset; i < end; i++) {
      if (pending.covered[i] === 0) {
        pending.covered[i] = 1;
        pending.coveredBytes++;
      }
    }
    if (pending.coveredBytes < pending.length) return [];

    this.partial.delete(seq);
    const message: HandshakeMessage = { msgType: pending.msgType, messageSeq: seq, body: pending.body };
    if (seq < this.nextSeq) return [{ message, epoch, retransmission: true }];

    this.completeAhead.set(seq, { message, epoch });
    const ready: ReassembledMessage[] = [];
    for (let next = this.completeAhead.get(this.nextSeq); next; next = this.completeAhead.get(this.nextSeq)) {
      this.completeAhead.delete(this.nextSeq);
      this.nextSeq++;
      ready.push({ ...next, retransmission: false });
    }
    return ready;
  }
}
