/**
 * The cipher-specific part of SRTP and SRTCP (RFC 3711 §3, RFC 7714), given the packet index: what
 * each protection profile's transform does, and the SRTCP framing they share.
 */

/** SRTCP packets carry E (encrypted) in the top bit of the word holding the 31-bit index. */
export const SRTCP_E_FLAG = 0x80000000;
export const SRTCP_INDEX_MASK = 0x7fffffff;
export const RTCP_HEADER_LENGTH = 8;
export const SRTCP_INDEX_LENGTH = 4;

export interface PacketTransform {
  readonly tagLength: number;
  /** `packet` is a plain RTP packet; the result is header | ciphertext | tag. */
  sealRtp(packet: Buffer, headerLength: number, ssrc: number, roc: number, seq: number): Buffer;
  /** `packet` is an SRTP packet with its tag; undefined when it does not authenticate. */
  openRtp(packet: Buffer, headerLength: number, ssrc: number, roc: number, seq: number): Buffer | undefined;
  /** Encrypts and appends E|index and the tag, in the order the profile prescribes. */
  sealRtcp(packet: Buffer, ssrc: number, index: number): Buffer;
  /** `encryptedIndex` is the word with the E flag as read from the packet. */
  openRtcp(packet: Buffer, ssrc: number, encryptedIndex: number): Buffer | undefined;
  /** Where E|index sits in an SRTCP packet: before the tag for AES-CM, after it for GCM. */
  srtcpIndexOffset(packetLength: number): number;
}

export function constantTimeEqual(a: Buffer, aOffset: number, b: Buffer, bOffset: number, length: number): boolean {
  let difference = 0;
  for (let i = 0; i < length; i++) difference |= a[aOffset + i]! ^ b[bOffset + i]!;
  return difference === 0;
}
