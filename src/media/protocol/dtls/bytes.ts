/**
 * Reading and writing the TLS presentation language (RFC 5246 §4): big-endian integers and vectors
 * with a 1-, 2- or 3-byte length prefix. Handshakes are rare, so writing favours clarity over copies.
 */

/** Thrown by ByteReader on input that does not fit its declared structure; caught by `decodeAll`. */
export class DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}

export class ByteReader {
  private offset = 0;

  constructor(private readonly data: Buffer) {}

  get remaining(): number {
    return this.data.length - this.offset;
  }

  uint8(): number {
    return this.take(1).readUInt8(0);
  }

  uint16(): number {
    return this.take(2).readUInt16BE(0);
  }

  uint24(): number {
    return this.take(3).readUIntBE(0, 3);
  }

  /** The next `length` bytes, as a view into the input. */
  bytes(length: number): Buffer {
    return this.take(length);
  }

  /** A vector whose length prefix is `prefixBytes` long, bounded as the structure declares it. */
  vector(prefixBytes: 1 | 2 | 3, min = 0, max = Infinity): Buffer {
    const length = this.take(prefixBytes).readUIntBE(0, prefixBytes);
    if (length < min || length > max) throw new DecodeError(`vector length ${length} outside ${min}..${max}`);
    return this.take(length);
  }

  /** Reads items of a vector until it is used up; `read` must consume something each time. */
  items<T>(vector: Buffer, read: (reader: ByteReader) => T): T[] {
    const reader = new ByteReader(vector);
    const items: T[] = [];
    while (reader.remaining > 0) items.push(read(reader));
    return items;
  }

  /** Fails unless everything was read: trailing bytes mean a structure we misunderstood. */
  end(): void {
    if (this.remaining !== 0) throw new DecodeError(`${this.remaining} unexpected trailing bytes`);
  }

  private take(length: number): Buffer {
    if (length > this.remaining) throw new DecodeError(`needs ${length} bytes, ${this.remaining} left`);
    const slice = this.data.subarray(this.offset, this.offset + length);
    this.offset += length;
    return slice;
  }
}

/** Decodes the whole of `data` with `read`; undefined when it is malformed or has bytes left over. */
export function decodeAll<T>(data: Buffer, read: (reader: ByteReader) => T): T | undefined {
  try {
    const reader = new ByteReader(data);
    const value = read(reader);
    reader.end();
    return value;
  } catch (error) {
    if (error instanceof DecodeError) return undefined;
    throw error;
  }
}

export function uint8(value: number): Buffer {
  return Buffer.from([value & 0xff]);
}

export function uint16(value: number): Buffer {
  const out = Buffer.alloc(2);
  out.writeUInt16BE(value, 0);
  return out;
}

/** `content` behind its length on `prefixBytes` bytes; throws if it cannot be represented. */
export function vector(prefixBytes: 1 | 2 | 3, content: Buffer | readonly Buffer[]): Buffer {
  const body = Buffer.isBuffer(content) ? content : Buffer.concat(content as Buffer[]);
  if (body.length >= 2 ** (8 * prefixBytes)) throw new RangeError(`${body.length} bytes do not fit a ${prefixBytes}-byte length`);
  const prefix = Buffer.alloc(prefixBytes);
  prefix.writeUIntBE(body.length, 0, prefixBytes);
  return Buffer.concat([prefix, body]);
}

export function uint16List(values: readonly number[]): Buffer {
  return Buffer.concat(values.map(uint16));
}
