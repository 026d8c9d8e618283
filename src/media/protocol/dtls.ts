/**
 * DTLS 1.2 server for WebRTC (RFC 6347, RFC 5764 DTLS-SRTP): the module's public face. Its parts live in
 * `dtls/`: identity and certificate, the record layer (records, AES-GCM protection, our writer with
 * flights and retransmission), handshake message codecs and fragment reassembly, the key schedule
 * (PRF, master secret, exporter), negotiation, the server handshake state machine and the session.
 *
 * It is our own code on node:crypto: werift's DtlsServer could not be stopped (its retransmissions ran on
 * uncancellable timers), reassembled fragmented messages only in order, and never checked the client's
 * CertificateVerify or Finished, so a certificate fingerprint taken from SDP would have proved nothing.
 */
export { DtlsError, type DtlsErrorCode } from './dtls/errors.ts';
export {
  certificateFingerprint,
  createDtlsIdentity,
  formatSdpFingerprint,
  getDtlsIdentity,
  type DtlsFingerprint,
  type DtlsIdentity,
} from './dtls/identity.ts';
export type { SrtpKeyingMaterial } from './dtls/server-handshake.ts';
export {
  DEFAULT_SRTP_PROFILES,
  DtlsServerSession,
  type DtlsCloseReason,
  type DtlsServerSessionOptions,
  type DtlsSessionState,
} from './dtls/server-session.ts';
export { isDtlsDatagram } from './dtls/wire.ts';
export { SrtpProtectionProfile } from './srtp/profiles.ts';
