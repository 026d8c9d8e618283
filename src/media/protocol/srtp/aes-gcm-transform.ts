/** AEAD_AES_128_GCM (RFC 7714 §8, §9). */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import type { SrtpSessionKeys } from './key-derivation.ts';
import { RTCP_HEADER_LENGTH, SRTCP_E_FLAG, SRTCP_INDEX_LENGTH, SRTCP_INDEX_MASK, type PacketTransform } from './packet-transform.ts';

export class AesGcmTransform implements PacketTransform {
  readonly tagLength = 16;
  private readonly rtpKey: KeyObject;
  private readonly rtcpKey: KeyObject;
  private readonly rtpSalt: Buffer;
  private readonly rtcpSalt: Buffer;
  private readonly iv = Buffer.alloc(12);
  // Encrypted SRTCP's AAD is the first 8 bytes of the packet then E|index (RFC 7714 §9.2).
  private readonly rtcpAad = Buffer.alloc(RTCP_HEADER_LENGTH + SRTCP_INDEX_LENGTH);

  constructor(keys: SrtpSessionKeys) {
    this.rtpKey = createSecretKey(keys.rtpKey);
    this.rtcpKey = createSecretKey(keys.rtcpKey);
    this.rtpSalt = Buffer.from(keys.rtpSalt);
    this.rtcpSalt = Buffer.from(keys.rtcpSalt);
  }

  /** IV = (0x0000 | SSRC | high 32 | low 16) XOR salt: ROC|SEQ for RTP, 0x0000|index for RTCP. */
  private ivFor(salt: Buffer, ssrc: number, high32: number, low16: number): Buffer {
    const iv = this.iv;
    iv.writeUInt16BE(salt.readUInt16BE(0), 0);
    iv.writeUInt32BE((salt.readUInt32BE(2) ^ ssrc) >>> 0, 2);
    iv.writeUInt32BE((salt.readUInt32BE(6) ^ high32) >>> 0, 6);
    iv.writeUInt16BE(salt.readUInt16BE(10) ^ low16, 10);
    return iv;
  }

  sealRtp(packet: Buffer, headerLength: number, ssrc: number, roc: number, seq: number): Buffer {
    const length = packet.length;
    const cipher = createCipheriv('aes-128-gcm', this.rtpKey, this.ivFor(this.rtpSalt, ssrc, roc, seq), { authTagLength: 16 });
    cipher.setAAD(packet.subarray(0, headerLength));
    const ciphertext = cipher.update(packet.subarray(headerLength));
    cipher.final();
    const out = Buffer.allocUnsafe(length + this.tagLength);
    packet.copy(out, 0, 0, headerLength);
    ciphertext.copy(out, headerLength);
    cipher.getAuthTag().copy(out, length);
    return out;
  }

  openRtp(packet: Buffer, headerLength: number, ssrc: number, roc: number, seq: number): Buffer | undefined {
    const length = packet.length - this.tagLength;
    const decipher = createDecipheriv('aes-128-gcm', this.rtpKey, this.ivFor(this.rtpSalt, ssrc, roc, seq), { authTagLength: 16 });
    decipher.setAAD(packet.subarray(0, headerLength));
    decipher.setAuthTag(packet.subarray(length));
    const plaintext = decipher.update(packet.subarray(headerLength, length));
    try {
      decipher.final();
    } catch {
      return undefined;
    }
    const out = Buffer.allocUnsafe(length);
    packet.copy(out, 0, 0, headerLength);
    plaintext.copy(out, headerLength);
    return out;
  }

  srtcpIndexOffset(packetLength: number): number {
    return packetLength - SRTCP_INDEX_LENGTH;
  }

  sealRtcp(packet: Buffer, ssrc: number, index: number): Buffer {
    const length = packet.length;
    const encryptedIndex = (SRTCP_E_FLAG | index) >>> 0;
    packet.copy(this.rtcpAad, 0, 0, RTCP_HEADER_LENGTH);
    this.rtcpAad.writeUInt32BE(encryptedIndex, RTCP_HEADER_LENGTH);
    const cipher = createCipheriv('aes-128-gcm', this.rtcpKey, this.rtcpIv(ssrc, index), { authTagLength: 16 });
    cipher.setAAD(this.rtcpAad);
    const ciphertext = cipher.update(packet.subarray(RTCP_HEADER_LENGTH));
    cipher.final();
    const out = Buffer.allocUnsafe(length + this.tagLength + SRTCP_INDEX_LENGTH);
    packet.copy(out, 0, 0, RTCP_HEADER_LENGTH);
    ciphertext.copy(out, RTCP_HEADER_LENGTH);
    cipher.getAuthTag().copy(out, length);
    out.writeUInt32BE(encryptedIndex, length + this.tagLength);
    return out;
  }

  openRtcp(packet: Buffer, ssrc: number, encryptedIndex: number): Buffer | undefined {
    const tagOffset = packet.length - SRTCP_INDEX_LENGTH - this.tagLength;
    const decipher = createDecipheriv('aes-128-gcm', this.rtcpKey, this.rtcpIv(ssrc, encryptedIndex & SRTCP_INDEX_MASK), { authTagLength: 16 });
    decipher.setAuthTag(packet.subarray(tagOffset, tagOffset + this.tagLength));
    const indexWord = packet.subarray(tagOffset + this.tagLength);
    if (!(encryptedIndex & SRTCP_E_FLAG)) {
      // Unencrypted SRTCP: the whole packet is associated data, followed by E|index (RFC 7714 §9.3).
      decipher.setAAD(Buffer.concat([packet.subarray(0, tagOffset), indexWord]));
      try {
        decipher.final();
      } catch {
        return undefined;
      }
      return Buffer.from(packet.subarray(0, tagOffset));
    }
    packet.copy(this.rtcpAad, 0, 0, RTCP_HEADER_LENGTH);
    indexWord.copy(this.rtcpAad, RTCP_HEADER_LENGTH);
    decipher.setAAD(this.rtcpAad);
    const plaintext = decipher.update(packet.subarray(RTCP_HEADER_LENGTH, tagOffset));
    try {
      decipher.final();
    } catch {
      return undefined;
    }
    const out = Buffer.allocUnsafe(tagOffset);
    packet.copy(out, 0, 0, RTCP_HEADER_LENGTH);
    plaintext.copy(out, RTCP_HEADER_LENGTH);
    return out;
  }

  /** The SRTCP IV has the 31-bit index in its last 32 bits (RFC 7714 §9.1), not split as ROC|SEQ. */
  private rtcpIv(ssrc: number, index: number): Buffer {
    const iv = this.ivFor(this.rtcpSalt, ssrc, 0, 0);
    iv.writeUInt32BE((iv.readUInt32BE(8) ^ index) >>> 0, 8);
    return iv;
  }
}
