/**
 * SRTP and SRTCP (RFC 3711) with the two protection profiles browsers offer over DTLS-SRTP (RFC 5764):
 * AES_CM_128_HMAC_SHA1_80 and AEAD_AES_128_GCM (RFC 7714). This is the module's public face; its parts
 * live in `srtp/`: the profile table and DTLS key split (`profiles.ts`), session key derivation, the two
 * packet transforms, packet indices and replay protection, and the send/receive contexts.
 *
 * This runs per packet for every receiver, so everything that depends only on the keys (session keys,
 * KeyObjects, salts, the AES-CM block cipher) is set up once per context. Per packet, what remains is
 * what node's crypto API forces: for GCM one Cipher object and its output, for AES-CM one Hmac and
 * the keystream; plus the returned packet, a fresh Buffer. That last one is a pool slice costing a
 * small fraction of the crypto (bench/srtp.ts measures both), so rather than a reused output buffer
 * with a must-consume-before-next-call rule, callers get packets they may keep or queue freely.
 */
export {
  SRTP_AEAD_AES_128_GCM,
  SRTP_AES128_CM_HMAC_SHA1_80,
  SRTP_EXPORTER_LABEL,
  SRTP_PROFILES,
  SrtpProtectionProfile,
  srtpKeyingMaterialLength,
  srtpKeysFromDtls,
  srtpProfileById,
  type SrtpMasterKey,
  type SrtpMasterKeys,
  type SrtpProfile,
} from './srtp/profiles.ts';
export { SrtpKdfLabel, deriveSrtpSessionKeys, srtpKdf, type SrtpSessionKeys } from './srtp/key-derivation.ts';
export { SrtpReceiveContext, SrtpSendContext, SrtpSession } from './srtp/contexts.ts';
