/**
 * The messages after the hellos in a full DTLS 1.2 ECDHE handshake with client authentication:
 * Certificate, ServerKeyExchange (RFC 8422 §5.4), CertificateRequest, ServerHelloDone,
 * ClientKeyExchange (RFC 8422 §5.7), CertificateVerify and Finished (RFC 5246 §7.4).
 * Decoders return undefined for anything malformed.
 */
import { DecodeError, decodeAll, uint16, uint16List, uint8, vector } from './bytes.ts';
import { EC_CURVE_TYPE_NAMED_CURVE } from './wire.ts';

/** Certificate: the sender's chain, its own certificate first, each DER. */
export function encodeCertificate(certificates: readonly Buffer[]): Buffer {
  return vector(3, certificates.map((certificate) => vector(3, certificate)));
}

export function decodeCertificate(body: Buffer): Buffer[] | undefined {
  return decodeAll(body, (reader) => reader.items(reader.vector(3), (item) => item.vector(3)));
}

/** ServerECDHParams: a named curve and the server's ephemeral public key; what the signature covers. */
export function encodeEcdheParams(namedCurve: number, publicKey: Buffer): Buffer {
  return Buffer.concat([uint8(EC_CURVE_TYPE_NAMED_CURVE), uint16(namedCurve), vector(1, publicKey)]);
}

export interface ServerKeyExchange {
  namedCurve: number;
  publicKey: Buffer;
  /** hash << 8 | signature. */
  signatureScheme: number;
  signature: Buffer;
}

export function encodeServerKeyExchange(message: ServerKeyExchange): Buffer {
  return Buffer.concat([
    encodeEcdheParams(message.namedCurve, message.publicKey),
    uint16(message.signatureScheme),
    vector(2, message.signature),
  ]);
}

export function decodeServerKeyExchange(body: Buffer): ServerKeyExchange | undefined {
  return decodeAll(body, (reader) => {
    if (reader.uint8() !== EC_CURVE_TYPE_NAMED_CURVE) throw new DecodeError('RFC 8422 keeps named curves only');
    return { namedCurve: reader.uint16(), publicKey: reader.vector(1, 1), signatureScheme: reader.uint16(), signature: reader.vector(2) };
  });
}

export interface CertificateRequest {
  /** ClientCertificateType values. */
  certificateTypes: number[];
  /** Signature schemes the server accepts in CertificateVerify, hash << 8 | signature. */
  signatureSchemes: number[];
  /** DER DistinguishedNames; empty: any certificate will do. */
  authorities: Buffer[];
}

export function encodeCertificateRequest(request: CertificateRequest): Buffer {
  return Buffer.concat([
    vector(1, Buffer.from(request.certificateTypes)),
    vector(2, uint16List(request.signatureSchemes)),
    vector(2, request.authorities.map((name) => vector(2, name))),
  ]);
}

export function decodeCertificateRequest(body: Buffer): CertificateRequest | undefined {
  return decodeAll(body, (reader) => ({
    certificateTypes: [...reader.vector(1, 1)],
    signatureSchemes: reader.items(reader.vector(2, 2, 0xfffe), (item) => item.uint16()),
    authorities: reader.items(reader.vector(2), (item) => item.vector(2, 1)),
  }));
}

/** ServerHelloDone has an empty body. */
export function encodeServerHelloDone(): Buffer {
  return Buffer.alloc(0);
}

export function decodeServerHelloDone(body: Buffer): true | undefined {
  return body.length === 0 ? true : undefined;
}

/** ClientKeyExchange for ECDHE: the client's ephemeral public key. */
export function encodeClientKeyExchange(publicKey: Buffer): Buffer {
  return vector(1, publicKey);
}

export function decodeClientKeyExchange(body: Buffer): Buffer | undefined {
  return decodeAll(body, (reader) => reader.vector(1, 1));
}

export interface CertificateVerify {
  signatureScheme: number;
  signature: Buffer;
}

export function encodeCertificateVerify({ signatureScheme, signature }: CertificateVerify): Buffer {
  return Buffer.concat([uint16(signatureScheme), vector(2, signature)]);
}

export function decodeCertificateVerify(body: Buffer): CertificateVerify | undefined {
  return decodeAll(body, (reader) => ({ signatureScheme: reader.uint16(), signature: reader.vector(2) }));
}

/** Finished: verify_data, the whole body (12 bytes for every TLS 1.2 suite we speak). */
export function encodeFinished(verifyData: Buffer): Buffer {
  return Buffer.from(verifyData);
}

export function decodeFinished(body: Buffer): Buffer {
  return body;
}
