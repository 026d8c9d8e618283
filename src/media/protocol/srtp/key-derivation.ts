/** SRTP session key derivation (RFC 3711 §4.3; RFC 7714 §11 keeps it for GCM). */
import { createCipheriv } from 'node:crypto';
import { SRTP_AEAD_AES_128_GCM, type SrtpMasterKey, type SrtpProfile } from './profiles.ts';

export const SrtpKdfLabel = {
  RtpEncryption: 0x00,
  RtpAuthentication: 0x01,
  RtpSalt: 0x02,
  RtcpEncryption: 0x03,
  RtcpAuthentication: 0x04,
  RtcpSalt: 0x05,
} as const;

/**
 * The AES-CM PRF with key_derivation_rate 0: AES-CTR keystream under the master key, starting at
 * (master_salt XOR label·2^48)·2^16. A 12-byte GCM salt is zero-padded to 14 bytes on the right, as
 * libsrtp does (so keys match what browsers derive).
 */
export function srtpKdf(masterKey: Buffer, masterSalt: Buffer, label: number, length: number): Buffer {
  if (masterSalt.length > 14) throw new RangeError('SRTP master salt longer than 14 bytes');
  const iv = Buffer.alloc(16);
  masterSalt.copy(iv);
  iv[7]! ^= label;
  return createCipheriv(`aes-${masterKey.length * 8}-ctr`, masterKey, iv).update(Buffer.alloc(length));
}

export interface SrtpSessionKeys {
  rtpKey: Buffer;
  rtpSalt: Buffer;
  /** Empty for GCM, which authenticates with the cipher. */
  rtpAuthKey: Buffer;
  rtcpKey: Buffer;
  rtcpSalt: Buffer;
  rtcpAuthKey: Buffer;
}

export const HMAC_SHA1_KEY_LENGTH = 20;

export function deriveSrtpSessionKeys(profile: SrtpProfile, master: SrtpMasterKey): SrtpSessionKeys {
  if (master.key.length !== profile.keyLength || master.salt.length !== profile.saltLength) {
    throw new RangeError(`${profile.name} needs a ${profile.keyLength}-byte master key and a ${profile.saltLength}-byte salt`);
  }
  const authKeyLength = profile.id === SRTP_AEAD_AES_128_GCM.id ? 0 : HMAC_SHA1_KEY_LENGTH;
  const derive = (label: number, length: number): Buffer => srtpKdf(master.key, master.salt, label, length);
  return {
    rtpKey: derive(SrtpKdfLabel.RtpEncryption, profile.keyLength),
    rtpSalt: derive(SrtpKdfLabel.RtpSalt, profile.saltLength),
    rtpAuthKey: derive(SrtpKdfLabel.RtpAuthentication, authKeyLength),
    rtcpKey: derive(SrtpKdfLabel.RtcpEncryption, profile.keyLength),
    rtcpSalt: derive(SrtpKdfLabel.RtcpSalt, profile.saltLength),
    rtcpAuthKey: derive(SrtpKdfLabel.RtcpAuthentication, authKeyLength),
  };
}
