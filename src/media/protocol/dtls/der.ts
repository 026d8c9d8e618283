/**
 * A small DER writer (ITU-T X.690) for the few ASN.1 types an X.509 certificate needs. Inputs are
 * trusted (we build our own certificate), so it checks only what would silently produce bad DER.
 */

const Tag = {
  integer: 0x02,
  bitString: 0x03,
  objectIdentifier: 0x06,
  utf8String: 0x0c,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
} as const;

/** Tag, definite length (short form below 128, long form above), content. */
function tlv(tag: number, content: Buffer): Buffer {
  let length: Buffer;
  if (content.length < 0x80) {
    length = Buffer.from([content.length]);
  } else {
    const digits: number[] = [];
    for (let rest = content.length; rest > 0; rest = Math.floor(rest / 256)) digits.unshift(rest % 256);
    length = Buffer.from([0x80 | digits.length, ...digits]);
  }
  return Buffer.concat([Buffer.from([tag]), length, content]);
}

export function sequence(...items: Buffer[]): Buffer {
  return tlv(Tag.sequence, Buffer.concat(items));
}

/** A SET whose members are given already in DER order (we only ever write sets of one). */
export function set(...items: Buffer[]): Buffer {
  return tlv(Tag.set, Buffer.concat(items));
}

/** A non-negative INTEGER from its big-endian magnitude, in the minimal two's complement form. */
export function unsignedInteger(magnitude: Buffer | number): Buffer {
  let bytes = typeof magnitude === 'number' ? numberBytes(magnitude) : magnitude;
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  bytes = bytes.subarray(start);
  if (bytes.length === 0) bytes = Buffer.from([0]);
  // A set top bit would read as negative.
  return tlv(Tag.integer, bytes[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes);
}

function numberBytes(value: number): Buffer {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`not a non-negative integer: ${value}`);
  const digits: number[] = [];
  for (let rest = value; rest > 0; rest = Math.floor(rest / 256)) digits.unshift(rest % 256);
  return Buffer.from(digits);
}

/** An OBJECT IDENTIFIER from its dotted form: the first two arcs in one byte, then base-128 arcs. */
export function objectIdentifier(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  if (arcs.length < 2 || arcs.some((arc) => !Number.isSafeInteger(arc) || arc < 0)) throw new RangeError(`bad OID ${dotted}`);
  const bytes: number[] = [];
  const base128 = (value: number) => {
    const digits = [value % 128];
    for (let rest = Math.floor(value / 128); rest > 0; rest = Math.floor(rest / 128)) digits.unshift(0x80 | rest % 128);
    bytes.push(...digits);
  };
  base128(arcs[0]! * 40 + arcs[1]!);
  for (const arc of arcs.slice(2)) base128(arc);
  return tlv(Tag.objectIdentifier, Buffer.from(bytes));
}

export function utf8String(text: string): Buffer {
  return tlv(Tag.utf8String, Buffer.from(text, 'utf8'));
}

/** A BIT STRING of whole bytes (no unused bits), as signatures and public keys are. */
export function bitString(bytes: Buffer): Buffer {
  return tlv(Tag.bitString, Buffer.concat([Buffer.from([0]), bytes]));
}

/** X.509 Time (RFC 5280 §4.1.2.5): UTCTime through 2049, GeneralizedTime from 2050, to the second, in UTC. */
export function time(date: Date): Buffer {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  const year = date.getUTCFullYear();
  if (year < 1950 || year > 9999) throw new RangeError(`year ${year} cannot be written as X.509 time`);
  return year < 2050 ? tlv(Tag.utcTime, Buffer.from(`${digits.slice(2)}Z`, 'latin1')) : tlv(Tag.generalizedTime, Buffer.from(`${digits}Z`, 'latin1'));
}

/** A context-specific, constructed, explicitly tagged value: [n] EXPLICIT. */
export function explicit(tagNumber: number, content: Buffer): Buffer {
  if (tagNumber > 30) throw new RangeError('only low tag numbers are written');
  return tlv(0xa0 | tagNumber, content);
}
