/**
 * The hello messages: ClientHello (RFC 6347 §4.2.1, with its cookie), HelloVerifyRequest and
 * ServerHello (RFC 5246 §7.4.1). Decoders return undefined for anything malformed.
 */
import { randomBytes } from 'node:crypto';
import { ByteReader, decodeAll, uint16, uint16List, uint8, vector } from './bytes.ts';
import { encodeExtensions, readExtensions, type Extension } from './extensions.ts';
import { RANDOM_BYTES } from './wire.ts';

const MAX_SESSION_ID_BYTES = 32;

export interface ClientHello {
  version: number;
  /** 32 bytes: gmt_unix_time then 28 random bytes. */
  random: Buffer;
  sessionId: Buffer;
  cookie: Buffer;
  cipherSuites: number[];
  compressionMethods: number[];
  extensions: Extension[];
}

export function decodeClientHello(body: Buffer): ClientHello | undefined {
  return decodeAll(body, (reader) => ({
    version: reader.uint16(),
    random: reader.bytes(RANDOM_BYTES),
    sessionId: reader.vector(1, 0, MAX_SESSION_ID_BYTES),
    cookie: reader.vector(1),
    cipherSuites: reader.items(reader.vector(2, 2, 0xfffe), (item) => item.uint16()),
    compressionMethods: [...reader.vector(1, 1)],
    // Extensions may be left out altogether (RFC 5246 §7.4.1.2).
    extensions: reader.remaining > 0 ? readExtensions(reader) : [],
  }));
}

export function encodeClientHello(hello: ClientHello): Buffer {
  return Buffer.concat([
    uint16(hello.version),
    fixedRandom(hello.random),
    vector(1, hello.sessionId),
    vector(1, hello.cookie),
    vector(2, uint16List(hello.cipherSuites)),
    vector(1, Buffer.from(hello.compressionMethods)),
    ...(hello.extensions.length > 0 ? [encodeExtensions(hello.extensions)] : []),
  ]);
}

export interface HelloVerifyRequest {
  version: number;
  cookie: Buffer;
}

export function encodeHelloVerifyRequest({ version, cookie }: HelloVerifyRequest): Buffer {
  return Buffer.concat([uint16(version), vector(1, cookie)]);
}

export function decodeHelloVerifyRequest(body: Buffer): HelloVerifyRequest | undefined {
  return decodeAll(body, (reader) => ({ version: reader.uint16(), cookie: reader.vector(1) }));
}

export interface ServerHello {
  version: number;
  random: Buffer;
  sessionId: Buffer;
  cipherSuite: number;
  compressionMethod: number;
  extensions: Extension[];
}

export function encodeServerHello(hello: ServerHello): Buffer {
  return Buffer.concat([
    uint16(hello.version),
    fixedRandom(hello.random),
    vector(1, hello.sessionId),
    uint16(hello.cipherSuite),
    uint8(hello.compressionMethod),
    ...(hello.extensions.length > 0 ? [encodeExtensions(hello.extensions)] : []),
  ]);
}

export function decodeServerHello(body: Buffer): ServerHello | undefined {
  return decodeAll(body, (reader: ByteReader) => ({
    version: reader.uint16(),
    random: reader.bytes(RANDOM_BYTES),
    sessionId: reader.vector(1, 0, MAX_SESSION_ID_BYTES),
    cipherSuite: reader.uint16(),
    compressionMethod: reader.uint8(),
    extensions: reader.remaining > 0 ? readExtensions(reader) : [],
  }));
}

function fixedRandom(random: Buffer): Buffer {
  if (random.length !== RANDOM_BYTES) throw new RangeError(`a hello random is ${RANDOM_BYTES} bytes`);
  return random;
}

/** A fresh hello random: the time in seconds, as RFC 5246 still describes it, then 28 random bytes. */
export function newHelloRandom(nowMs = Date.now()): Buffer {
  const random = randomBytes(RANDOM_BYTES);
  random.writeUInt32BE(Math.floor(nowMs / 1000) >>> 0, 0);
  return random;
}
