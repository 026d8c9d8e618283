/**
 * Hello extensions (RFC 5246 §7.4.1.4) and the bodies of those the server reads or answers: use_srtp
 * (RFC 5764 §4.1.1), supported_groups and ec_point_formats (RFC 8422 §5.1), signature_algorithms
 * (RFC 5246 §7.4.1.4.1), extended_master_secret (RFC 7627) and renegotiation_info (RFC 5746).
 */
import { ByteReader, decodeAll, uint16, uint16List, uint8, vector } from './bytes.ts';
import { ExtensionType } from './wire.ts';

export interface Extension {
  type: number;
  data: Buffer;
}

export function readExtensions(reader: ByteReader): Extension[] {
  return reader.items(reader.vector(2), (item) => ({ type: item.uint16(), data: item.vector(2) }));
}

export function encodeExtensions(extensions: readonly Extension[]): Buffer {
  return vector(2, extensions.map(({ type, data }) => Buffer.concat([uint16(type), vector(2, data)])));
}

const readUint16Vector = (reader: ByteReader, min: number): number[] =>
  reader.items(reader.vector(2, min, 0xfffe), (item) => item.uint16());

export interface UseSrtp {
  /** DTLS-SRTP protection profile ids, in the sender's order of preference. */
  profiles: number[];
  mki: Buffer;
}

export function encodeUseSrtp({ profiles, mki }: UseSrtp): Extension {
  return { type: ExtensionType.useSrtp, data: Buffer.concat([vector(2, uint16List(profiles)), vector(1, mki)]) };
}

export function decodeUseSrtp(data: Buffer): UseSrtp | undefined {
  return decodeAll(data, (reader) => ({ profiles: readUint16Vector(reader, 2), mki: reader.vector(1) }));
}

export function encodeSupportedGroups(groups: readonly number[]): Extension {
  return { type: ExtensionType.supportedGroups, data: vector(2, uint16List(groups)) };
}

export function decodeSupportedGroups(data: Buffer): number[] | undefined {
  return decodeAll(data, (reader) => readUint16Vector(reader, 2));
}

/** Signature schemes as hash << 8 | signature. */
export function encodeSignatureAlgorithms(schemes: readonly number[]): Extension {
  return { type: ExtensionType.signatureAlgorithms, data: vector(2, uint16List(schemes)) };
}

export function decodeSignatureAlgorithms(data: Buffer): number[] | undefined {
  return decodeAll(data, (reader) => readUint16Vector(reader, 2));
}

/** ECPointFormat values; 0 (uncompressed) is the only one RFC 8422 keeps. */
export function encodeEcPointFormats(formats: readonly number[]): Extension {
  return { type: ExtensionType.ecPointFormats, data: vector(1, Buffer.concat(formats.map(uint8))) };
}

export function decodeEcPointFormats(data: Buffer): number[] | undefined {
  return decodeAll(data, (reader) => [...reader.vector(1, 1)]);
}

export function encodeExtendedMasterSecret(): Extension {
  return { type: ExtensionType.extendedMasterSecret, data: Buffer.alloc(0) };
}

/** On an initial handshake renegotiated_connection is empty. */
export function encodeRenegotiationInfo(renegotiatedConnection = Buffer.alloc(0)): Extension {
  return { type: ExtensionType.renegotiationInfo, data: vector(1, renegotiatedConnection) };
}

export function decodeRenegotiationInfo(data: Buffer): Buffer | undefined {
  return decodeAll(data, (reader) => reader.vector(1));
}
