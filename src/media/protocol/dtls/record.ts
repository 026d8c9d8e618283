/** DTLS records (RFC 6347 §4.1): the 13-byte header, epochs and 48-bit sequence numbers. */
import { RECORD_HEADER_BYTES } from './wire.ts';

export interface DtlsRecord {
  contentType: number;
  version: number;
  epoch: number;
  sequenceNumber: number;
  /** The fragment as carried: plaintext in epoch 0, protected after a ChangeCipherSpec. */
  body: Buffer;
}

/** Splits a datagram into records; stops at the first malformed one. */
export function parseRecords(datagram: Buffer): { records: DtlsRecord[]; malformed: boolean } {
  const records: DtlsRecord[] = [];
  let offset = 0;
  while (offset < datagram.length) {
    if (datagram.length - offset < RECORD_HEADER_BYTES) return { records, malformed: true };
    const version = datagram.readUInt16BE(offset + 1);
    const end = offset + RECORD_HEADER_BYTES + datagram.readUInt16BE(offset + 11);
    // Every DTLS version has major 0xFE.
    if (version >> 8 !== 0xfe || end > datagram.length) return { records, malformed: true };
    records.push({
      contentType: datagram.readUInt8(offset),
      version,
      epoch: datagram.readUInt16BE(offset + 3),
      sequenceNumber: datagram.readUIntBE(offset + 5, 6),
      body: datagram.subarray(offset + RECORD_HEADER_BYTES, end),
    });
    offset = end;
  }
  return { records, malformed: false };
}

/** One record: header then body. */
export function encodeRecord(record: DtlsRecord): Buffer {
  if (record.body.length > 0xffff) throw new RangeError('a DTLS record carries at most 2^16 - 1 bytes');
  const out = Buffer.alloc(RECORD_HEADER_BYTES + record.body.length);
  out.writeUInt8(record.contentType, 0);
  out.writeUInt16BE(record.version, 1);
  out.writeUInt16BE(record.epoch, 3);
  out.writeUIntBE(record.sequenceNumber, 5, 6);
  out.writeUInt16BE(record.body.length, 11);
  record.body.copy(out, RECORD_HEADER_BYTES);
  return out;
}
