/** DTLS 1.2 wire constants (RFC 5246, RFC 6347) for the subset Amphi's server speaks. */

/** RFC 7983: a datagram whose first byte is 20..63 is DTLS. */
export function isDtlsDatagram(datagram: Uint8Array): boolean {
  const first = datagram[0];
  return first !== undefined && first >= 20 && first <= 63;
}

export const ContentType = { changeCipherSpec: 20, alert: 21, handshake: 22, applicationData: 23 } as const;

export const HandshakeType = {
  helloRequest: 0,
  clientHello: 1,
  serverHello: 2,
  helloVerifyRequest: 3,
  certificate: 11,
  serverKeyExchange: 12,
  certificateRequest: 13,
  serverHelloDone: 14,
  certificateVerify: 15,
  clientKeyExchange: 16,
  finished: 20,
} as const;

export const ExtensionType = {
  supportedGroups: 10,
  ecPointFormats: 11,
  signatureAlgorithms: 13,
  useSrtp: 14,
  extendedMasterSecret: 23,
  renegotiationInfo: 0xff01,
} as const;

export const AlertLevel = { warning: 1, fatal: 2 } as const;

export const AlertDescription = {
  closeNotify: 0,
  unexpectedMessage: 10,
  handshakeFailure: 40,
  badCertificate: 42,
  decodeError: 50,
  decryptError: 51,
  internalError: 80,
} as const;

export function alertName(description: number): string {
  const entry = Object.entries(AlertDescription).find(([, value]) => value === description);
  return entry ? `${entry[0]} (${description})` : String(description);
}

/** ProtocolVersion {254, 253}; every DTLS version has major 0xFE. */
export const DTLS_1_2 = 0xfefd;

export const CipherSuite = {
  /** The only suite an ECDSA certificate allows among the AEAD ones with a SHA-256 PRF. */
  ECDHE_ECDSA_AES_128_GCM_SHA256: 0xc02b,
  /** RFC 5746 §3.3: the client's way of saying renegotiation_info without the extension. */
  EMPTY_RENEGOTIATION_INFO_SCSV: 0x00ff,
} as const;

/** RFC 8422 §5.1.1 (supported_groups) and §5.4 (ServerKeyExchange), X25519 from RFC 7748. */
export const NamedGroup = { secp256r1: 23, x25519: 29 } as const;
/** ECParameters.curve_type: the only one RFC 8422 keeps. */
export const EC_CURVE_TYPE_NAMED_CURVE = 3;

/** SignatureAndHashAlgorithm as one uint16: hash << 8 | signature (RFC 5246 §7.4.1.4.1). */
export const SignatureScheme = {
  rsaPkcs1Sha256: 0x0401,
  ecdsaSha256: 0x0403,
} as const;

export const ClientCertificateType = { rsaSign: 1, ecdsaSign: 64 } as const;

export const RECORD_HEADER_BYTES = 13;
export const HANDSHAKE_HEADER_BYTES = 12;
export const RANDOM_BYTES = 32;
export const VERIFY_DATA_BYTES = 12;
