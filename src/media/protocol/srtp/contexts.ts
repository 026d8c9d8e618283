/**
 * SRTP and SRTCP contexts (RFC 3711): one per direction, holding the transform for the negotiated
 * profile and the per-SSRC packet indices; a session pairs both directions of one association.
 *
 * protect*() treat a malformed packet as a programming error and throw; unprotect*() return
 * undefined for anything malformed, unauthentic or replayed, and never throw.
 */
import { rtpHeaderLength } from '../rtp.ts';
import { AesCmHmacSha1Transform } from './aes-cm-transform.ts';
import { AesGcmTransform } from './aes-gcm-transform.ts';
import { HMAC_SHA1_KEY_LENGTH, deriveSrtpSessionKeys, type SrtpSessionKeys } from './key-derivation.ts';
import { RTCP_HEADER_LENGTH, SRTCP_INDEX_LENGTH, SRTCP_INDEX_MASK, type PacketTransform } from './packet-transform.ts';
import {
  SRTP_AEAD_AES_128_GCM,
  SRTP_AES128_CM_HMAC_SHA1_80,
  srtpKeysFromDtls,
  type SrtpMasterKey,
  type SrtpMasterKeys,
  type SrtpProfile,
} from './profiles.ts';
import { ReplayWindow, estimateRtpIndex } from './replay-window.ts';

/** Beyond this many SSRCs in one direction, new ones are refused: bounds memory per peer. */
const MAX_STREAMS = 1024;

function transformFor(profile: SrtpProfile, keys: SrtpSessionKeys): PacketTransform {
  if (keys.rtpKey.length !== profile.keyLength || keys.rtcpKey.length !== profile.keyLength) {
    throw new RangeError(`${profile.name} needs ${profile.keyLength}-byte session keys`);
  }
  if (keys.rtpSalt.length !== profile.saltLength || keys.rtcpSalt.length !== profile.saltLength) {
    throw new RangeError(`${profile.name} needs ${profile.saltLength}-byte session salts`);
  }
  if (profile.id === SRTP_AEAD_AES_128_GCM.id) return new AesGcmTransform(keys);
  if (profile.id === SRTP_AES128_CM_HMAC_SHA1_80.id) {
    if (keys.rtpAuthKey.length !== HMAC_SHA1_KEY_LENGTH || keys.rtcpAuthKey.length !== HMAC_SHA1_KEY_LENGTH) {
      throw new RangeError(`${profile.name} needs ${HMAC_SHA1_KEY_LENGTH}-byte authentication keys`);
    }
    return new AesCmHmacSha1Transform(keys);
  }
  throw new RangeError(`Unsupported SRTP profile ${profile.name}`);
}

function isRtcpHeader(packet: Buffer, trailerLength: number): boolean {
  return packet.length >= RTCP_HEADER_LENGTH + trailerLength && packet[0]! >> 6 === 2;
}

/** Our outbound direction: protects RTP and RTCP with our write key. */
export class SrtpSendContext {
  readonly profile: SrtpProfile;
  /** Kept for a sealer outside this context (the native send path) to protect with the same keys. */
  readonly keys: SrtpSessionKeys;
  private readonly transform: PacketTransform;
  /** Highest RTP index sent per SSRC. */
  private readonly rtpHighestIndex = new Map<number, number>();
  /** Last SRTCP index sent per SSRC. */
  private readonly rtcpIndex = new Map<number, number>();

  constructor(profile: SrtpProfile, keys: SrtpSessionKeys) {
    this.profile = profile;
    this.keys = keys;
    this.transform = transformFor(profile, keys);
  }

  static fromMasterKey(profile: SrtpProfile, master: SrtpMasterKey): SrtpSendContext {
    return new SrtpSendContext(profile, deriveSrtpSessionKeys(profile, master));
  }

  /** Returns a new buffer (the input is left untouched). Throws on a packet that is not RTP. */
  protectRtp(packet: Buffer): Buffer {
    const headerLength = rtpHeaderLength(packet, 0);
    if (headerLength < 0) throw new RangeError('Not an RTP packet');
    const seq = packet.readUInt16BE(2);
    const ssrc = packet.readUInt32BE(8);
    return this.transform.sealRtp(packet, headerLength, ssrc, this.rolloverCounter(ssrc, seq), seq);
  }

  /**
   * The ROC to protect the next packet of `ssrc` numbered `seq` with, recorded as sent: protectRtp's
   * bookkeeping, for a caller that seals the packet elsewhere (the native send path) and must share this
   * context's indices with protectRtp.
   */
  rolloverCounter(ssrc: number, seq: number): number {
    // Forwarded packets can arrive out of order, so the index is estimated like a receiver does,
    // which also steps ROC when the sequence number wraps.
    const highest = this.rtpHighestIndex.get(ssrc);
    let index = seq;
    if (highest === undefined) {
      this.rtpHighestIndex.set(ssrc, seq);
    } else {
      index = estimateRtpIndex(highest, seq);
      // Older than the stream's first packet: the receiver will drop it whatever ROC we pick.
      if (index < 0) index = seq;
      else if (index > highest) this.rtpHighestIndex.set(ssrc, index);
    }
    return Math.floor(index / 0x10000);
  }

  /** Returns a new buffer with E|index and the tag appended. Throws on a packet that is not RTCP. */
  protectRtcp(packet: Buffer): Buffer {
    if (!isRtcpHeader(packet, 0)) throw new RangeError('Not an RTCP packet');
    const ssrc = packet.readUInt32BE(4);
    // Starts at 1 like libsrtp, so our output matches its reference vectors.
    const index = (this.rtcpIndex.get(ssrc) ?? 0) + 1;
    // Reusing an index under the same key would reuse keystream: the DTLS session must be renewed first.
    if (index > SRTCP_INDEX_MASK) throw new RangeError('SRTCP index exhausted; re-key');
    this.rtcpIndex.set(ssrc, index);
    return this.transform.sealRtcp(packet, ssrc, index);
  }
}

/** The peer's inbound direction: unprotects with its write key, with replay protection per SSRC. */
export class SrtpReceiveContext {
  readonly profile: SrtpProfile;
  private readonly transform: PacketTransform;
  private readonly rtpWindows = new Map<number, ReplayWindow>();
  private readonly rtcpWindows = new Map<number, ReplayWindow>();

  constructor(profile: SrtpProfile, keys: SrtpSessionKeys) {
    this.profile = profile;
    this.transform = transformFor(profile, keys);
  }

  static fromMasterKey(profile: SrtpProfile, master: SrtpMasterKey): SrtpReceiveContext {
    return new SrtpReceiveContext(profile, deriveSrtpSessionKeys(profile, master));
  }

  /** The plain RTP packet in a new buffer, or undefined if malformed, unauthentic or replayed. */
  unprotectRtp(packet: Buffer): Buffer | undefined {
    const headerLength = rtpHeaderLength(packet, this.transform.tagLength);
    if (headerLength < 0) return undefined;
    const seq = packet.readUInt16BE(2);
    const ssrc = packet.readUInt32BE(8);
    const window = this.rtpWindows.get(ssrc);
    // A new SSRC starts at ROC 0 (RFC 3711 §3.3.1).
    const index = window === undefined ? seq : estimateRtpIndex(window.highest, seq);
    if (index < 0) return undefined;
    if (window === undefined ? this.rtpWindows.size >= MAX_STREAMS : !window.accepts(index)) return undefined;
    const plain = this.transform.openRtp(packet, headerLength, ssrc, Math.floor(index / 0x10000), seq);
    // State changes only once the packet has authenticated, so forgeries cannot move ROC or the window.
    if (plain === undefined) return undefined;
    if (window === undefined) this.rtpWindows.set(ssrc, new ReplayWindow(index));
    else window.record(index);
    return plain;
  }

  /** The plain RTCP packet in a new buffer, or undefined if malformed, unauthentic or replayed. */
  unprotectRtcp(packet: Buffer): Buffer | undefined {
    const trailerLength = SRTCP_INDEX_LENGTH + this.transform.tagLength;
    if (!isRtcpHeader(packet, trailerLength)) return undefined;
    const ssrc = packet.readUInt32BE(4);
    const encryptedIndex = packet.readUInt32BE(this.transform.srtcpIndexOffset(packet.length));
    const index = encryptedIndex & SRTCP_INDEX_MASK;
    const window = this.rtcpWindows.get(ssrc);
    if (window === undefined ? this.rtcpWindows.size >= MAX_STREAMS : !window.accepts(index)) return undefined;
    const plain = this.transform.openRtcp(packet, ssrc, encryptedIndex);
    if (plain === undefined) return undefined;
    if (window === undefined) this.rtcpWindows.set(ssrc, new ReplayWindow(index));
    else window.record(index);
    return plain;
  }
}

/** Both directions of one DTLS-SRTP association. */
export class SrtpSession {
  readonly profile: SrtpProfile;
  readonly send: SrtpSendContext;
  readonly receive: SrtpReceiveContext;

  constructor(profile: SrtpProfile, keys: SrtpMasterKeys) {
    this.profile = profile;
    this.send = SrtpSendContext.fromMasterKey(profile, keys.local);
    this.receive = SrtpReceiveContext.fromMasterKey(profile, keys.remote);
  }

  /** From the RFC 5764 exporter output (label SRTP_EXPORTER_LABEL, srtpKeyingMaterialLength bytes). */
  static fromDtls(keyingMaterial: Buffer, profile: SrtpProfile, role: 'server' | 'client'): SrtpSession {
    return new SrtpSession(profile, srtpKeysFromDtls(keyingMaterial, profile, role));
  }

  protectRtp(packet: Buffer): Buffer {
    return this.send.protectRtp(packet);
  }

  unprotectRtp(packet: Buffer): Buffer | undefined {
    return this.receive.unprotectRtp(packet);
  }

  protectRtcp(packet: Buffer): Buffer {
    return this.send.protectRtcp(packet);
  }

  unprotectRtcp(packet: Buffer): Buffer | undefined {
    return this.receive.unprotectRtcp(packet);
  }
}
