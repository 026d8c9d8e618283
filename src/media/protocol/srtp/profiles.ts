/**
 * The SRTP protection profiles Amphi speaks (RFC 5764 §4.1.2, RFC 7714 §14.2) and how DTLS-SRTP keying
 * material becomes their master keys: the one table DTLS negotiates from and SRTP protects with.
 */

/** DTLS-SRTP protection profile ids (RFC 5764 §4.1.2, RFC 7714 §14.2), as the use_srtp extension carries them. */
export const SrtpProtectionProfile = {
  AES128_CM_HMAC_SHA1_80: 0x0001,
  AEAD_AES_128_GCM: 0x0007,
} as const;
export type SrtpProtectionProfile = (typeof SrtpProtectionProfile)[keyof typeof SrtpProtectionProfile];

export interface SrtpProfile {
  readonly name: 'SRTP_AES128_CM_HMAC_SHA1_80' | 'SRTP_AEAD_AES_128_GCM';
  readonly id: SrtpProtectionProfile;
  /** Master key length in bytes. */
  readonly keyLength: number;
  /** Master salt length in bytes. */
  readonly saltLength: number;
  /** Bytes the authentication tag adds to every packet. */
  readonly authTagLength: number;
}

export const SRTP_AES128_CM_HMAC_SHA1_80: SrtpProfile = Object.freeze({
  name: 'SRTP_AES128_CM_HMAC_SHA1_80',
  id: SrtpProtectionProfile.AES128_CM_HMAC_SHA1_80,
  keyLength: 16,
  saltLength: 14,
  authTagLength: 10,
});

export const SRTP_AEAD_AES_128_GCM: SrtpProfile = Object.freeze({
  name: 'SRTP_AEAD_AES_128_GCM',
  id: SrtpProtectionProfile.AEAD_AES_128_GCM,
  keyLength: 16,
  saltLength: 12,
  authTagLength: 16,
});

/** In order of preference: GCM costs one crypto object per packet instead of two. */
export const SRTP_PROFILES: readonly SrtpProfile[] = [SRTP_AEAD_AES_128_GCM, SRTP_AES128_CM_HMAC_SHA1_80];

export function srtpProfileById(id: number): SrtpProfile | undefined {
  return SRTP_PROFILES.find((profile) => profile.id === id);
}

/** The label of the DTLS keying material exporter for SRTP (RFC 5764 §4.2). */
export const SRTP_EXPORTER_LABEL = 'EXTRACTOR-dtls_srtp';

/** How many bytes to ask the DTLS exporter for: both keys and both salts. */
export function srtpKeyingMaterialLength(profile: SrtpProfile): number {
  return 2 * (profile.keyLength + profile.saltLength);
}

export interface SrtpMasterKey {
  key: Buffer;
  salt: Buffer;
}

export interface SrtpMasterKeys {
  /** What we protect with (our write key). */
  local: SrtpMasterKey;
  /** What we unprotect with (the peer's write key). */
  remote: SrtpMasterKey;
}

/**
 * Splits the RFC 5764 §4.2 exporter output, client_write_key | server_write_key | client_write_salt |
 * server_write_salt, into our write key (local) and the peer's (remote) for our DTLS role.
 */
export function srtpKeysFromDtls(keyingMaterial: Buffer, profile: SrtpProfile, role: 'server' | 'client'): SrtpMasterKeys {
  if (keyingMaterial.length !== srtpKeyingMaterialLength(profile)) {
    throw new RangeError(`${profile.name} needs ${srtpKeyingMaterialLength(profile)} bytes of keying material, got ${keyingMaterial.length}`);
  }
  const { keyLength, saltLength } = profile;
  const slice = (start: number, length: number): Buffer => Buffer.from(keyingMaterial.subarray(start, start + length));
  const client = { key: slice(0, keyLength), salt: slice(2 * keyLength, saltLength) };
  const server = { key: slice(keyLength, keyLength), salt: slice(2 * keyLength + saltLength, saltLength) };
  return role === 'server' ? { local: server, remote: client } : { local: client, remote: server };
}
