/**
 * STUN (RFC 5389 / RFC 8489) as an ICE-lite agent (RFC 8445 §2.5) needs it: the server side of
 * connectivity checks only. We never send requests; we parse the Binding requests browsers send to
 * the shared media port, authenticate them with the short-term credential (the local ICE password)
 * and answer with a Binding success or error response.
 *
 * Parsing is strict and bounds-checked: anything malformed yields `undefined`, never an exception,
 * because every byte here comes straight off an unauthenticated UDP socket.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';

export const STUN_MAGIC_COOKIE = 0x2112a442;
export const STUN_HEADER_LENGTH = 20;

export const StunMessageType = {
  BindingRequest: 0x0001,
  BindingIndication: 0x0011,
  BindingSuccessResponse: 0x0101,
  BindingErrorResponse: 0x0111,
} as const;

export const StunAttribute = {
  MappedAddress: 0x0001,
  Username: 0x0006,
  MessageIntegrity: 0x0008,
  ErrorCode: 0x0009,
  UnknownAttributes: 0x000a,
  XorMappedAddress: 0x0020,
  Priority: 0x0024,
  UseCandidate: 0x0025,
  Software: 0x8022,
  Fingerprint: 0x8028,
  IceControlled: 0x8029,
  IceControlling: 0x802a,
} as const;

export type StunClass = 'request' | 'indication' | 'success' | 'error';

export interface StunAddress {
  family: 'IPv4' | 'IPv6';
  address: string;
  port: number;
}

export interface StunMessage {
  /** The 14-bit message type (method and class interleaved), e.g. 0x0001 for a Binding request. */
  readonly type: number;
  readonly method: number;
  readonly messageClass: StunClass;
  /** 12 bytes, copied out of the packet. */
  readonly transactionId: Buffer;
  /** "<receiver's ufrag>:<sender's ufrag>" in ICE. */
  readonly username?: string;
  readonly priority?: number;
  readonly useCandidate: boolean;
  readonly iceControlling?: bigint;
  readonly iceControlled?: bigint;
  readonly xorMappedAddress?: StunAddress;
  readonly errorCode?: { code: number; reason: string };
  /** Attribute types below 0x8000 we do not understand (before MESSAGE-INTEGRITY); a request carrying any earns a 420. */
  readonly unknownComprehensionRequired: readonly number[];
  /** Offset in `packet` of the MESSAGE-INTEGRITY attribute header, if present. */
  readonly messageIntegrityOffset?: number;
  /** Offset in `packet` of the FINGERPRINT attribute header, if present (always the last attribute). */
  readonly fingerprintOffset?: number;
  /** The packet the message was parsed from; integrity and fingerprint checks read it again, so do not reuse it meanwhile. */
  readonly packet: Buffer;
}

/** Cheap demultiplexing test (RFC 7983): top two bits zero and the magic cookie in place. */
export function isStun(packet: Buffer): boolean {
  return packet.length >= STUN_HEADER_LENGTH && packet[0]! < 4 && packet.readUInt32BE(4) === STUN_MAGIC_COOKIE;
}

/** Header checks shared by the full parser and the cheap USERNAME lookup; returns the end of the attributes. */
function validatedMessageEnd(packet: Buffer): number | undefined {
  if (!isStun(packet)) return undefined;
  const bodyLength = packet.readUInt16BE(2);
  // Attributes are 32-bit aligned, and over UDP the datagram is exactly one message.
  if (bodyLength % 4 !== 0 || STUN_HEADER_LENGTH + bodyLength !== packet.length) return undefined;
  return packet.length;
}

function classOf(type: number): StunClass {
  switch (((type >> 7) & 0x2) | ((type >> 4) & 0x1)) {
    case 0:
      return 'request';
    case 1:
      return 'indication';
    case 2:
      return 'success';
    default:
      return 'error';
  }
}

function methodOf(type: number): number {
  return (type & 0x000f) | ((type >> 1) & 0x0070) | ((type >> 2) & 0x0f80);
}

/** RFC 8489 §14.3: USERNAME must be under 513 bytes. */
const MAX_USERNAME_BYTES = 513;

export function parseStun(packet: Buffer): StunMessage | undefined {
  const end = validatedMessageEnd(packet);
  if (end === undefined) return undefined;
  const type = packet.readUInt16BE(0);

  let username: string | undefined;
  let priority: number | undefined;
  let useCandidate = false;
  let iceControlling: bigint | undefined;
  let iceControlled: bigint | undefined;
  let xorMappedAddress: StunAddress | undefined;
  let errorCode: { code: number; reason: string } | undefined;
  let messageIntegrityOffset: number | undefined;
  let fingerprintOffset: number | undefined;
  const unknownComprehensionRequired: number[] = [];

  let offset = STUN_HEADER_LENGTH;
  while (offset < end) {
    if (fingerprintOffset !== undefined) return undefined; // FINGERPRINT must be last
    if (offset + 4 > end) return undefined;
    const attributeType = packet.readUInt16BE(offset);
    const valueLength = packet.readUInt16BE(offset + 2);
    const valueOffset = offset + 4;
    const next = valueOffset + ((valueLength + 3) & ~3);
    if (next > end) return undefined;
    const attributeOffset = offset;
    offset = next;

    // RFC 5389 §15.4: after MESSAGE-INTEGRITY only FINGERPRINT counts; anything else is ignored.
    if (messageIntegrityOffset !== undefined && attributeType !== StunAttribute.Fingerprint) continue;

    switch (attributeType) {
      case StunAttribute.Username:
        if (valueLength > MAX_USERNAME_BYTES || username !== undefined) return undefined;
        username = packet.toString('utf8', valueOffset, valueOffset + valueLength);
        break;
      case StunAttribute.MessageIntegrity:
        if (valueLength !== 20) return undefined;
        messageIntegrityOffset = attributeOffset;
        break;
      case StunAttribute.Fingerprint:
        if (valueLength !== 4) return undefined;
        fingerprintOffset = attributeOffset;
        break;
      case StunAttribute.Priority:
        if (valueLength !== 4) return undefined;
        priority = packet.readUInt32BE(valueOffset);
        break;
      case StunAttribute.UseCandidate:
        if (valueLength !== 0) return undefined;
        useCandidate = true;
        break;
      case StunAttribute.IceControlling:
        if (valueLength !== 8) return undefined;
        iceControlling = packet.readBigUInt64BE(valueOffset);
        break;
      case StunAttribute.IceControlled:
        if (valueLength !== 8) return undefined;
        iceControlled = packet.readBigUInt64BE(valueOffset);
        break;
      case StunAttribute.XorMappedAddress: {
        const address = readXorAddress(packet, valueOffset, valueLength);
        if (address === undefined) return undefined;
        xorMappedAddress = address;
        break;
      }
      case StunAttribute.ErrorCode: {
        if (valueLength < 4) return undefined;
        const code = (packet[valueOffset + 2]! & 0x7) * 100 + packet[valueOffset + 3]!;
        errorCode = { code, reason: packet.toString('utf8', valueOffset + 4, valueOffset + valueLength) };
        break;
      }
      default:
        if (attributeType < 0x8000 && attributeType !== StunAttribute.MappedAddress && attributeType !== StunAttribute.UnknownAttributes) {
          unknownComprehensionRequired.push(attributeType);
        }
    }
  }

  return {
    type,
    method: methodOf(type),
    messageClass: classOf(type),
    transactionId: Buffer.from(packet.subarray(8, 20)),
    username,
    priority,
    useCandidate,
    iceControlling,
    iceControlled,
    xorMappedAddress,
    errorCode,
    unknownComprehensionRequired,
    messageIntegrityOffset,
    fingerprintOffset,
    packet,
  };
}

/**
 * The USERNAME of a STUN message without a full parse, for the UDP demultiplexer: it walks the
 * attribute headers only and decodes nothing else. Undefined when absent or the packet is malformed.
 */
export function stunUsername(packet: Buffer): string | undefined {
  const end = validatedMessageEnd(packet);
  if (end === undefined) return undefined;
  let offset = STUN_HEADER_LENGTH;
  while (offset + 4 <= end) {
    const attributeType = packet.readUInt16BE(offset);
    const valueLength = packet.readUInt16BE(offset + 2);
    const next = offset + 4 + ((valueLength + 3) & ~3);
    if (next > end) return undefined;
    if (attributeType === StunAttribute.Username) {
      if (valueLength > MAX_USERNAME_BYTES) return undefined;
      return packet.toString('utf8', offset + 4, offset + 4 + valueLength);
    }
    if (attributeType === StunAttribute.MessageIntegrity) return undefined; // nothing after it is authenticated
    offset = next;
  }
  return undefined;
}

/** The local (receiver's) ufrag of a connectivity check: the part of USERNAME before the colon. */
export function stunLocalUfrag(packet: Buffer): string | undefined {
  const username = stunUsername(packet);
  if (username === undefined) return undefined;
  const colon = username.indexOf(':');
  return colon > 0 ? username.slice(0, colon) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Integrity and fingerprint

/**
 * HMAC-SHA1 over the message up to (excluding) the MESSAGE-INTEGRITY attribute, with the header's
 * length field rewritten to end just after MESSAGE-INTEGRITY (RFC 5389 §15.4).
 */
function messageIntegrityOf(packet: Buffer, messageIntegrityOffset: number, key: string | Buffer): Buffer {
  const header = Buffer.from(packet.subarray(0, STUN_HEADER_LENGTH));
  header.writeUInt16BE(messageIntegrityOffset + 24 - STUN_HEADER_LENGTH, 2);
  return createHmac('sha1', key).update(header).update(packet.subarray(STUN_HEADER_LENGTH, messageIntegrityOffset)).digest();
}

/**
 * Checks MESSAGE-INTEGRITY with the short-term credential: `key` is the ICE password of the side
 * that receives the request (for ICE, ours). False when the attribute is missing or wrong.
 */
export function verifyMessageIntegrity(message: StunMessage, key: string | Buffer): boolean {
  const offset = message.messageIntegrityOffset;
  if (offset === undefined) return false;
  const expected = messageIntegrityOf(message.packet, offset, key);
  return timingSafeEqual(expected, message.packet.subarray(offset + 4, offset + 24));
}

const FINGERPRINT_XOR = 0x5354554e;

/** True when FINGERPRINT is present and matches. */
export function verifyFingerprint(message: StunMessage): boolean {
  const offset = message.fingerprintOffset;
  if (offset === undefined) return false;
  // FINGERPRINT is the last attribute, so the header's length already covers it: no adjustment needed.
  return ((crc32(message.packet.subarray(0, offset)) ^ FINGERPRINT_XOR) >>> 0) === message.packet.readUInt32BE(offset + 4);
}

// node's zlib.crc32 only arrived in Node 22; IEEE 802.3 CRC-32 (reflected, polynomial 0xEDB88320).
const CRC32_TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

export function crc32(data: Uint8Array): number {
  let crc = -1;
  for (let i = 0; i < data.length; i++) crc = CRC32_TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Addresses

function readXorAddress(packet: Buffer, valueOffset: number, valueLength: number): StunAddress | undefined {
  if (valueLength < 4) return undefined;
  const family = packet[valueOffset + 1];
  const port = packet.readUInt16BE(valueOffset + 2) ^ (STUN_MAGIC_COOKIE >>> 16);
  if (family === 0x01) {
    if (valueLength !== 8) return undefined;
    const raw = (packet.readUInt32BE(valueOffset + 4) ^ STUN_MAGIC_COOKIE) >>> 0;
    return { family: 'IPv4', address: `${raw >>> 24}.${(raw >>> 16) & 0xff}.${(raw >>> 8) & 0xff}.${raw & 0xff}`, port };
  }
  if (family === 0x02) {
    if (valueLength !== 20) return undefined;
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) {
      // XOR key is magic cookie || transaction id, which are exactly bytes 4..19 of the header.
      const word = ((packet[valueOffset + 4 + i]! ^ packet[4 + i]!) << 8) | (packet[valueOffset + 5 + i]! ^ packet[5 + i]!);
      groups.push(word.toString(16));
    }
    return { family: 'IPv6', address: compressIpv6(groups), port };
  }
  return undefined;
}

function compressIpv6(groups: string[]): string {
  // Shorten the longest run of zero groups (length ≥ 2) to "::", as RFC 5952 recommends.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return groups.join(':');
  return `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLength).join(':')}`;
}

/** 16 bytes of an IPv6 address in any textual form node accepts (zone id ignored). */
function ipv6Bytes(address: string): Buffer | undefined {
  let text = address.split('%')[0]!;
  if (!isIPv6(text)) return undefined;
  // An embedded dotted IPv4 tail ("::ffff:1.2.3.4") is the last two groups.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const [a = 0, b = 0, c = 0, d = 0] = tail.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split('::');
  const head = halves[0] ? halves[0].split(':') : [];
  const rest = halves[1] ? halves[1].split(':') : [];
  const elided = halves.length > 1 ? 8 - head.length - rest.length : 0;
  const groups = [...head, ...new Array<string>(elided).fill('0'), ...rest];
  if (groups.length !== 8) return undefined;
  const bytes = Buffer.alloc(16);
  groups.forEach((group, i) => bytes.writeUInt16BE(parseInt(group, 16), i * 2));
  return bytes;
}

function ipv4Bytes(address: string): Buffer {
  return Buffer.from(address.split('.').map(Number));
}

/**
 * A dual-stack socket reports IPv4 peers as "::ffff:a.b.c.d"; the browser sent to an IPv4 address,
 * so it must learn its IPv4 reflexive address, not an IPv4-mapped IPv6 one.
 */
function unmapIpv4(address: string): string {
  const lower = address.toLowerCase();
  return lower.startsWith('::ffff:') && isIPv4(lower.slice(7)) ? lower.slice(7) : address;
}

function xorMappedAddressAttribute(remote: { address: string; port: number }, transactionId: Buffer): Buffer {
  const address = unmapIpv4(remote.address);
  const xorPort = (remote.port ^ (STUN_MAGIC_COOKIE >>> 16)) & 0xffff;
  if (isIPv4(address)) {
    const value = Buffer.alloc(8);
    value[1] = 0x01;
    value.writeUInt16BE(xorPort, 2);
    value.writeUInt32BE((ipv4Bytes(address).readUInt32BE(0) ^ STUN_MAGIC_COOKIE) >>> 0, 4);
    return attribute(StunAttribute.XorMappedAddress, value);
  }
  const bytes = ipv6Bytes(address);
  if (bytes === undefined) throw new RangeError(`Not an IP address: ${remote.address}`);
  const value = Buffer.alloc(20);
  value[1] = 0x02;
  value.writeUInt16BE(xorPort, 2);
  value.writeUInt32BE(STUN_MAGIC_COOKIE, 4);
  transactionId.copy(value, 8);
  for (let i = 0; i < 16; i++) value[4 + i]! ^= bytes[i]!;
  return attribute(StunAttribute.XorMappedAddress, value);
}

// ---------------------------------------------------------------------------------------------
// Building responses

function attribute(type: number, value: Buffer): Buffer {
  const padded = Buffer.alloc(4 + ((value.length + 3) & ~3));
  padded.writeUInt16BE(type, 0);
  padded.writeUInt16BE(value.length, 2);
  value.copy(padded, 4);
  return padded;
}

/**
 * Header + attributes, then MESSAGE-INTEGRITY (when a key is given) and FINGERPRINT, each computed
 * with the length field covering the message up to and including itself.
 */
function encodeMessage(type: number, transactionId: Buffer, attributes: Buffer[], integrityKey: string | Buffer | undefined): Buffer {
  const bodyLength = attributes.reduce((sum, a) => sum + a.length, 0);
  const integrityLength = integrityKey === undefined ? 0 : 24;
  const message = Buffer.alloc(STUN_HEADER_LENGTH + bodyLength + integrityLength + 8);
  message.writeUInt16BE(type, 0);
  message.writeUInt32BE(STUN_MAGIC_COOKIE, 4);
  transactionId.copy(message, 8, 0, 12);
  let offset = STUN_HEADER_LENGTH;
  for (const a of attributes) offset += a.copy(message, offset);

  if (integrityKey !== undefined) {
    const integrity = messageIntegrityOf(message, offset, integrityKey);
    message.writeUInt16BE(StunAttribute.MessageIntegrity, offset);
    message.writeUInt16BE(20, offset + 2);
    integrity.copy(message, offset + 4);
    offset += 24;
  }

  message.writeUInt16BE(message.length - STUN_HEADER_LENGTH, 2);
  message.writeUInt16BE(StunAttribute.Fingerprint, offset);
  message.writeUInt16BE(4, offset + 2);
  message.writeUInt32BE((crc32(message.subarray(0, offset)) ^ FINGERPRINT_XOR) >>> 0, offset + 4);
  return message;
}

/**
 * Binding success response to `request`: XOR-MAPPED-ADDRESS of the sender as seen by our socket,
 * MESSAGE-INTEGRITY keyed with the local ICE password, FINGERPRINT.
 */
export function buildBindingSuccess(request: StunMessage, remote: { address: string; port: number }, localPassword: string | Buffer): Buffer {
  return encodeMessage(StunMessageType.BindingSuccessResponse, request.transactionId, [xorMappedAddressAttribute(remote, request.transactionId)], localPassword);
}

export type StunErrorCode = 400 | 401 | 420 | 487;

const REASON_PHRASES: Record<StunErrorCode, string> = {
  400: 'Bad Request',
  401: 'Unauthenticated',
  420: 'Unknown Attribute',
  487: 'Role Conflict',
};

/**
 * Binding error response. Pass `localPassword` only when the request itself authenticated (420, 487):
 * a 400 or 401 answers a request we could not authenticate, so it carries no MESSAGE-INTEGRITY.
 */
export function buildBindingError(
  request: StunMessage,
  code: StunErrorCode,
  options: { localPassword?: string | Buffer; unknownAttributes?: readonly number[] } = {},
): Buffer {
  const reason = Buffer.from(REASON_PHRASES[code], 'utf8');
  const errorValue = Buffer.alloc(4 + reason.length);
  errorValue[2] = Math.floor(code / 100);
  errorValue[3] = code % 100;
  reason.copy(errorValue, 4);
  const attributes = [attribute(StunAttribute.ErrorCode, errorValue)];
  if (code === 420 && options.unknownAttributes?.length) {
    const list = Buffer.alloc(options.unknownAttributes.length * 2);
    options.unknownAttributes.forEach((type, i) => list.writeUInt16BE(type, i * 2));
    attributes.push(attribute(StunAttribute.UnknownAttributes, list));
  }
  return encodeMessage(StunMessageType.BindingErrorResponse, request.transactionId, attributes, options.localPassword);
}

// ---------------------------------------------------------------------------------------------
// ICE-lite request handling

export interface IceCredentials {
  localUfrag: string;
  localPassword: string | Buffer;
}

export type BindingRequestVerdict =
  /** Authentic connectivity check: answer with a success response. */
  | { action: 'accept'; remoteUfrag: string; useCandidate: boolean; priority: number | undefined }
  /** Answer with this error; `authenticated` says whether the error response may carry MESSAGE-INTEGRITY. */
  | { action: 'reject'; code: StunErrorCode; authenticated: boolean; unknownAttributes?: readonly number[] }
  /** Not something to answer (a response, an indication such as a keepalive, a bad FINGERPRINT). */
  | { action: 'discard' };

/**
 * Decides what an ICE-lite agent does with a parsed message, in the order RFC 5389 §10.1.2 and
 * RFC 8445 §7.3 prescribe. Being lite, we are always the controlled agent.
 */
export function checkBindingRequest(message: StunMessage, credentials: IceCredentials): BindingRequestVerdict {
  if (message.type !== StunMessageType.BindingRequest) return { action: 'discard' };
  // A wrong FINGERPRINT means this is not STUN at all (RFC 7983 demux); browsers always send one.
  if (message.fingerprintOffset !== undefined && !verifyFingerprint(message)) return { action: 'discard' };
  if (message.username === undefined || message.messageIntegrityOffset === undefined) {
    return { action: 'reject', code: 400, authenticated: false };
  }
  const colon = message.username.indexOf(':');
  if (colon <= 0 || message.username.slice(0, colon) !== credentials.localUfrag) {
    return { action: 'reject', code: 401, authenticated: false };
  }
  if (!verifyMessageIntegrity(message, credentials.localPassword)) return { action: 'reject', code: 401, authenticated: false };
  if (message.unknownComprehensionRequired.length > 0) {
    return { action: 'reject', code: 420, authenticated: true, unknownAttributes: message.unknownComprehensionRequired };
  }
  // The peer believes it is controlled too; a lite agent cannot take the controlling role (RFC 8445 §7.3.1.1).
  if (message.iceControlled !== undefined) return { action: 'reject', code: 487, authenticated: true };
  return { action: 'accept', remoteUfrag: message.username.slice(colon + 1), useCandidate: message.useCandidate, priority: message.priority };
}

export interface BindingAnswer {
  /** What to send back to `remote`, if anything. */
  response: Buffer | undefined;
  verdict: BindingRequestVerdict;
  /** The parsed request; undefined when the packet was not a well-formed STUN message. */
  request: StunMessage | undefined;
}

/** Parse, check and answer a connectivity check in one go. */
export function answerBindingRequest(packet: Buffer, credentials: IceCredentials, remote: { address: string; port: number }): BindingAnswer {
  const request = parseStun(packet);
  if (request === undefined) return { response: undefined, verdict: { action: 'discard' }, request };
  const verdict = checkBindingRequest(request, credentials);
  switch (verdict.action) {
    case 'accept':
      return { response: buildBindingSuccess(request, remote, credentials.localPassword), verdict, request };
    case 'reject':
      return {
        response: buildBindingError(request, verdict.code, {
          localPassword: verdict.authenticated ? credentials.localPassword : undefined,
          unknownAttributes: verdict.unknownAttributes,
        }),
        verdict,
        request,
      };
    default:
      return { response: undefined, verdict, request };
  }
}
