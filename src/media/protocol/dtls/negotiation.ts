/** What the server picks from a ClientHello: curve, SRTP profile and the extensions it answers. */
import type { SrtpProfile } from '../srtp/profiles.ts';
import { CURVE_PREFERENCE, type Curve } from './ephemeral-key.ts';
import { DtlsError } from './errors.ts';
import { decodeSignatureAlgorithms, decodeSupportedGroups, decodeUseSrtp } from './extensions.ts';
import type { ClientHello } from './hello-messages.ts';
import { CipherSuite, ExtensionType, NamedGroup, SignatureScheme } from './wire.ts';

export interface Negotiated {
  curve: Curve;
  srtpProfile: SrtpProfile;
  extendedMasterSecret: boolean;
  renegotiationInfo: boolean;
}

/** Picks what this ClientHello allows, in our preference order (`srtpProfiles` first wins). */
export function negotiate(hello: ClientHello, srtpProfiles: readonly SrtpProfile[]): Negotiated | DtlsError {
  if (!hello.cipherSuites.includes(CipherSuite.ECDHE_ECDSA_AES_128_GCM_SHA256)) {
    return new DtlsError('handshake-failure', 'the client does not offer TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256');
  }
  let curve: Curve | undefined = NamedGroup.secp256r1; // RFC 8422 §4: no extension, any curve
  let srtpProfile: SrtpProfile | undefined;
  let extendedMasterSecret = false;
  let renegotiationInfo = hello.cipherSuites.includes(CipherSuite.EMPTY_RENEGOTIATION_INFO_SCSV);
  for (const { type, data } of hello.extensions) {
    switch (type) {
      case ExtensionType.supportedGroups: {
        const groups = decodeSupportedGroups(data) ?? [];
        curve = CURVE_PREFERENCE.find((candidate) => groups.includes(candidate));
        break;
      }
      case ExtensionType.signatureAlgorithms: {
        const schemes = decodeSignatureAlgorithms(data) ?? [];
        if (!schemes.includes(SignatureScheme.ecdsaSha256)) {
          return new DtlsError('handshake-failure', 'the client does not accept ECDSA with SHA-256 signatures');
        }
        break;
      }
      case ExtensionType.useSrtp: {
        const offered = decodeUseSrtp(data)?.profiles ?? [];
        srtpProfile = srtpProfiles.find((profile) => offered.includes(profile.id));
        if (srtpProfile === undefined) {
          const names = offered.map((profile) => `0x${profile.toString(16).padStart(4, '0')}`).join(', ');
          return new DtlsError('handshake-failure', `no common SRTP protection profile (the client offers ${names || 'none'})`);
        }
        break;
      }
      case ExtensionType.extendedMasterSecret:
        extendedMasterSecret = true;
        break;
      case ExtensionType.renegotiationInfo:
        renegotiationInfo = true;
        break;
    }
  }
  if (curve === undefined) return new DtlsError('handshake-failure', 'the client offers neither X25519 nor P-256');
  if (srtpProfile === undefined) return new DtlsError('handshake-failure', 'the client offers no DTLS-SRTP (use_srtp)');
  return { curve, srtpProfile, extendedMasterSecret, renegotiationInfo };
}
