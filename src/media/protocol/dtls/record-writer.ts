/**
 * Our side of the record layer: numbers handshake messages and records (per epoch), protects them once
 * keys are in place, packs flights into datagrams and retransmits the last flight (RFC 6347 §4.2.4).
 */
import { performance } from 'node:perf_hooks';
import { encodeHandshakeMessage, fragmentHandshakeMessage } from './fragments.ts';
import { encodeRecord } from './record.ts';
import type { AesGcmRecordProtection } from './record-protection.ts';
import { ContentType, DTLS_1_2, HANDSHAKE_HEADER_BYTES, RECORD_HEADER_BYTES } from './wire.ts';

/** Flights are packed into datagrams no larger than this (Chrome's own DTLS MTU is 1200 too). */
const MAX_DATAGRAM_BYTES = 1200;
const MAX_HANDSHAKE_FRAGMENT_BYTES = MAX_DATAGRAM_BYTES - RECORD_HEADER_BYTES - HANDSHAKE_HEADER_BYTES;
const MAX_RETRANSMIT_DELAY_MS = 8000;
/** Answering a retransmitted peer flight more often than this only amplifies duplicates. */
const MIN_RESEND_INTERVAL_MS = 50;

export class RecordWriter {
  private epoch = 0;
  private readonly nextRecordSeq = [0, 0];
  private protection: AesGcmRecordProtection | undefined;
  private nextMessageSeq = 0;
  private lastFlight: Buffer[] = [];
  private retransmitTimer: NodeJS.Timeout | undefined;
  private retransmitDelayMs: number;
  private lastResendAt = -Infinity;

  /**
   * @param send transmits one datagram; its errors are ignored (DTLS recovers through retransmission).
   * @param retransmitTimeoutMs first retransmission of a flight; doubles each time.
   */
  constructor(
    private readonly send: (datagram: Buffer) => void,
    retransmitTimeoutMs: number,
  ) {
    this.retransmitDelayMs = retransmitTimeoutMs;
  }

  /**
   * Numbers a handshake message (next in sequence, or `messageSeq`, after which numbering continues)
   * and seals it into records. `message` is its transcript form.
   */
  handshake(msgType: number, body: Buffer, messageSeq = this.nextMessageSeq): { message: Buffer; records: Buffer[] } {
    this.nextMessageSeq = messageSeq + 1;
    const handshake = { msgType, messageSeq, body };
    return {
      message: encodeHandshakeMessage(handshake),
      records: fragmentHandshakeMessage(handshake, MAX_HANDSHAKE_FRAGMENT_BYTES).map((fragment) => this.seal(ContentType.handshake, fragment)),
    };
  }

  /** One record in the current write epoch; sequence numbers restart at 0 in each epoch. */
  seal(contentType: number, body: Buffer): Buffer {
    const epoch = this.epoch;
    const sequenceNumber = this.nextRecordSeq[epoch] ?? 0;
    this.nextRecordSeq[epoch] = sequenceNumber + 1;
    const header = { contentType, version: DTLS_1_2, epoch, sequenceNumber };
    return encodeRecord({ ...header, body: this.protection ? this.protection.seal(header, body) : body });
  }

  /** After our ChangeCipherSpec: every later record is epoch 1, protected. */
  startProtecting(protection: AesGcmRecordProtection): void {
    this.protection = protection;
    this.epoch = 1;
  }

  /** Remembers the flight for retransmission and packs its records into as few datagrams as fit. */
  sendFlight(records: Buffer[]): void {
    this.lastFlight = records;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    for (const record of records) {
      if (pendingBytes > 0 && pendingBytes + record.length > MAX_DATAGRAM_BYTES) {
        this.sendDatagram(Buffer.concat(pending));
        pending = [];
        pendingBytes = 0;
      }
      pending.push(record);
      pendingBytes += record.length;
    }
    if (pendingBytes > 0) this.sendDatagram(Buffer.concat(pending));
  }

  /** The peer repeated its flight, so ours was lost: send it again, at most every MIN_RESEND_INTERVAL_MS. */
  resendLastFlight(): void {
    const now = performance.now();
    if (now - this.lastResendAt < MIN_RESEND_INTERVAL_MS) return;
    this.lastResendAt = now;
    this.sendFlight(this.lastFlight);
  }

  /** Retransmits the last flight with exponential backoff until stopRetransmitting(). */
  startRetransmitting(): void {
    this.stopRetransmitting();
    this.retransmitTimer = setTimeout(() => {
      this.retransmitTimer = undefined;
      this.sendFlight(this.lastFlight);
      this.retransmitDelayMs = Math.min(this.retransmitDelayMs * 2, MAX_RETRANSMIT_DELAY_MS);
      this.startRetransmitting();
    }, this.retransmitDelayMs);
  }

  stopRetransmitting(): void {
    if (this.retransmitTimer) clearTimeout(this.retransmitTimer);
    this.retransmitTimer = undefined;
  }

  sendAlert(level: number, description: number): void {
    try {
      this.sendDatagram(this.seal(ContentType.alert, Buffer.from([level, description])));
    } catch {
      // The alert is a courtesy; the session ends either way.
    }
  }

  sendDatagram(datagram: Buffer): void {
    try {
      this.send(datagram);
    } catch {
      // Transport errors are the socket owner's business; DTLS recovers through retransmission.
    }
  }
}
