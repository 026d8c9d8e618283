/**
 * The server's side of a full DTLS 1.2 handshake (RFC 6347 §4.2.4, RFC 5246 §7.3) with client
 * authentication, as WebRTC needs it: the browser's certificate must match the fingerprint in its SDP
 * offer, and must be proved by its CertificateVerify.
 *
 *   client                                      server
 *   ClientHello                  ───▶
 *                                ◀───  HelloVerifyRequest (only with cookieExchange)
 *   ClientHello (with cookie)    ───▶
 *                                ◀───  ServerHello, Certificate, ServerKeyExchange,
 *                                      CertificateRequest, ServerHelloDone          (flight 4)
 *   Certificate, ClientKeyExchange,
 *   CertificateVerify, [ChangeCipherSpec], Finished ───▶
 *                                ◀───  [ChangeCipherSpec], Finished                 (flight 6)
 */
import { randomBytes, sign as signData, timingSafeEqual, verify as verifySignature, X509Certificate } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { SRTP_EXPORTER_LABEL, srtpKeyingMaterialLength, srtpKeysFromDtls, type SrtpMasterKeys, type SrtpProfile } from '../srtp/profiles.ts';
import { createEphemeralKey, type EphemeralKey } from './ephemeral-key.ts';
import { DtlsError, describe } from './errors.ts';
import { encodeExtendedMasterSecret, encodeRenegotiationInfo, encodeUseSrtp } from './extensions.ts';
import { encodeHandshakeMessage, type HandshakeMessage, type ReassembledMessage } from './fragments.ts';
import { decodeClientHello, encodeHelloVerifyRequest, encodeServerHello, newHelloRandom, type ClientHello } from './hello-messages.ts';
import { certificateFingerprint, normalizeFingerprintValue, signingKeyOf, type DtlsFingerprint, type DtlsIdentity } from './identity.ts';
import {
  decodeCertificate,
  decodeCertificateVerify,
  decodeClientKeyExchange,
  decodeFinished,
  encodeCertificate,
  encodeCertificateRequest,
  encodeEcdheParams,
  encodeFinished,
  encodeServerHelloDone,
  encodeServerKeyExchange,
} from './key-exchange-messages.ts';
import { aesGcmKeyBlock, exportKeyingMaterial, extendedMasterSecret, finishedVerifyData, masterSecret } from './keying.ts';
import { negotiate, type Negotiated } from './negotiation.ts';
import { AesGcmRecordProtection } from './record-protection.ts';
import type { RecordWriter } from './record-writer.ts';
import { AlertDescription, CipherSuite, ClientCertificateType, ContentType, DTLS_1_2, HandshakeType, SignatureScheme, VERIFY_DATA_BYTES } from './wire.ts';

/** SRTP master keys and salts for one connection, already split for our (server) side. */
export interface SrtpKeyingMaterial extends SrtpMasterKeys {
  profile: SrtpProfile;
}

/** What the handshake reports to the session that owns it. */
export interface HandshakeHost {
  /** The peer is authenticated and our last flight is sent. */
  connected(keys: SrtpKeyingMaterial): void;
  /** A fatal failure; the alert, if any, goes to the peer. */
  fail(error: DtlsError, alert?: number): void;
  /** A message that was out of place or unparsable, and is ignored. */
  dropped(): void;
}

export interface ServerHandshakeOptions {
  identity: DtlsIdentity;
  expectedFingerprint: DtlsFingerprint;
  srtpProfiles: readonly SrtpProfile[];
  cookieExchange: boolean;
}

const COOKIE_BYTES = 20;
/** The client's last flight in order; we always request a certificate, so it always has all four. */
const CLIENT_FINAL_FLIGHT = [HandshakeType.certificate, HandshakeType.clientKeyExchange, HandshakeType.certificateVerify, HandshakeType.finished] as const;

type Phase = 'awaiting-client-hello' | 'awaiting-client-finished' | 'connected';

/** What the accepted ClientHello fixed. */
interface Accepted {
  negotiated: Negotiated;
  helloSeq: number;
  clientRandom: Buffer;
  serverRandom: Buffer;
  ephemeralKey: EphemeralKey;
}

export class ServerHandshake {
  private phase: Phase = 'awaiting-client-hello';
  private cookie: Buffer | undefined;
  private accepted: Accepted | undefined;
  /** Every handshake message from the accepted ClientHello on, as hashed for Finished and EMS. */
  private readonly transcript: Buffer[] = [];
  /** Position in CLIENT_FINAL_FLIGHT of the next message we accept. */
  private finalFlightStep = 0;
  private clientFinishedSeq = -1;
  private peerCertificate: Buffer | undefined;
  private master: Buffer | undefined;
  private protection: AesGcmRecordProtection | undefined;
  private startedAt: number | undefined;

  constructor(
    private readonly options: ServerHandshakeOptions,
    private readonly writer: RecordWriter,
    private readonly host: HandshakeHost,
  ) {}

  get connected(): boolean {
    return this.phase === 'connected';
  }

  /** When the first usable ClientHello arrived (performance.now()). */
  get handshakeStartedAt(): number | undefined {
    return this.startedAt;
  }

  get negotiated(): Negotiated | undefined {
    return this.accepted?.negotiated;
  }

  get remoteCertificate(): Buffer | undefined {
    return this.peerCertificate;
  }

  /** The epoch-1 record protection, from the client's key exchange on. */
  get recordProtection(): AesGcmRecordProtection | undefined {
    return this.protection;
  }

  handle({ message, epoch, retransmission }: ReassembledMessage): void {
    switch (this.phase) {
      case 'awaiting-client-hello':
        // A first hello and its retransmissions are handled alike.
        if (message.msgType === HandshakeType.clientHello && epoch === 0) this.handleClientHello(message);
        else this.host.dropped();
        return;
      case 'awaiting-client-finished':
        if (retransmission) {
          // The client repeating the hello we answered means our flight was lost.
          if (message.msgType === HandshakeType.clientHello && message.messageSeq === this.accepted?.helloSeq) this.writer.resendLastFlight();
          return;
        }
        this.handleClientFinalFlight(message, epoch);
        return;
      case 'connected':
        // The client repeating its Finished means our last flight was lost. Renegotiation is refused by silence.
        if (retransmission && message.messageSeq === this.clientFinishedSeq && epoch === 1) this.writer.resendLastFlight();
        return;
    }
  }

  private handleClientHello(message: HandshakeMessage): void {
    const hello = decodeClientHello(message.body);
    if (!hello) return this.host.dropped();
    this.startedAt ??= performance.now();
    const negotiated = negotiate(hello, this.options.srtpProfiles);
    if (negotiated instanceof DtlsError) return this.host.fail(negotiated, AlertDescription.handshakeFailure);
    if (this.options.cookieExchange && !(this.cookie && hello.cookie.equals(this.cookie))) return this.sendHelloVerifyRequest();
    this.acceptClientHello(message, hello, negotiated);
  }

  /** Stateless: a retransmitted first hello gets the same HelloVerifyRequest again. */
  private sendHelloVerifyRequest(): void {
    this.cookie ??= randomBytes(COOKIE_BYTES);
    // Message 0, so our ServerHello follows as message 1 (RFC 6347 §4.2.2).
    const { records } = this.writer.handshake(HandshakeType.helloVerifyRequest, encodeHelloVerifyRequest({ version: DTLS_1_2, cookie: this.cookie }), 0);
    for (const record of records) this.writer.sendDatagram(record);
  }

  /** Flight 4: ServerHello, Certificate, ServerKeyExchange, CertificateRequest, ServerHelloDone. */
  private acceptClientHello(message: HandshakeMessage, hello: ClientHello, negotiated: Negotiated): void {
    const accepted: Accepted = {
      negotiated,
      helloSeq: message.messageSeq,
      clientRandom: Buffer.from(hello.random),
      serverRandom: newHelloRandom(),
      ephemeralKey: createEphemeralKey(negotiated.curve),
    };
    this.accepted = accepted;
    this.transcript.push(encodeHandshakeMessage(message));

    const serverHello = encodeServerHello({
      version: DTLS_1_2,
      random: accepted.serverRandom,
      sessionId: Buffer.alloc(0), // no session resumption
      cipherSuite: CipherSuite.ECDHE_ECDSA_AES_128_GCM_SHA256,
      compressionMethod: 0,
      extensions: [
        encodeUseSrtp({ profiles: [negotiated.srtpProfile.id], mki: Buffer.alloc(0) }),
        ...(negotiated.extendedMasterSecret ? [encodeExtendedMasterSecret()] : []),
        ...(negotiated.renegotiationInfo ? [encodeRenegotiationInfo()] : []),
      ],
    });
    const certificateRequest = encodeCertificateRequest({
      certificateTypes: [ClientCertificateType.ecdsaSign, ClientCertificateType.rsaSign],
      signatureSchemes: [SignatureScheme.ecdsaSha256, SignatureScheme.rsaPkcs1Sha256],
      authorities: [],
    });
    const records = [
      this.outgoing(HandshakeType.serverHello, serverHello),
      this.outgoing(HandshakeType.certificate, encodeCertificate([this.options.identity.certificateDer])),
      this.outgoing(HandshakeType.serverKeyExchange, this.signedKeyExchange(accepted)),
      this.outgoing(HandshakeType.certificateRequest, certificateRequest),
      this.outgoing(HandshakeType.serverHelloDone, encodeServerHelloDone()),
    ].flat();

    this.phase = 'awaiting-client-finished';
    this.writer.sendFlight(records);
    this.writer.startRetransmitting();
  }

  /** ServerKeyExchange with our ephemeral key, signed over both randoms (RFC 8422 §5.4). */
  private signedKeyExchange({ ephemeralKey, clientRandom, serverRandom }: Accepted): Buffer {
    const params = encodeEcdheParams(ephemeralKey.curve, ephemeralKey.publicKey);
    const signed = Buffer.concat([clientRandom, serverRandom, params]);
    const signature = signData('sha256', signed, { key: signingKeyOf(this.options.identity), dsaEncoding: 'der' });
    return encodeServerKeyExchange({
      namedCurve: ephemeralKey.curve,
      publicKey: ephemeralKey.publicKey,
      signatureScheme: SignatureScheme.ecdsaSha256,
      signature,
    });
  }

  private handleClientFinalFlight(message: HandshakeMessage, epoch: number): void {
    const expected = CLIENT_FINAL_FLIGHT[this.finalFlightStep];
    // Finished must arrive encrypted (after ChangeCipherSpec); everything before it in the clear.
    const expectedEpoch = expected === HandshakeType.finished ? 1 : 0;
    if (message.msgType !== expected || epoch !== expectedEpoch) {
      const error = new DtlsError('handshake-failure', `unexpected handshake message ${message.msgType} (epoch ${epoch}), expected ${expected}`);
      return this.host.fail(error, AlertDescription.unexpectedMessage);
    }
    this.finalFlightStep++;
    switch (expected) {
      case HandshakeType.certificate:
        return this.handleClientCertificate(message);
      case HandshakeType.clientKeyExchange:
        return this.handleClientKeyExchange(message);
      case HandshakeType.certificateVerify:
        return this.handleCertificateVerify(message);
      case HandshakeType.finished:
        return this.handleClientFinished(message);
    }
  }

  private handleClientCertificate(message: HandshakeMessage): void {
    const chain = decodeCertificate(message.body);
    if (!chain) return this.host.fail(new DtlsError('handshake-failure', 'unparsable client Certificate'), AlertDescription.decodeError);
    const certificate = chain[0];
    if (!certificate || certificate.length === 0) {
      return this.host.fail(new DtlsError('handshake-failure', 'the client sent no certificate'), AlertDescription.handshakeFailure);
    }
    const { algorithm, value } = this.options.expectedFingerprint;
    const actual = certificateFingerprint(certificate, algorithm);
    if (normalizeFingerprintValue(actual.value) !== value) {
      const error = new DtlsError('fingerprint-mismatch', `the client certificate's ${actual.algorithm} fingerprint ${actual.value} does not match the SDP offer`);
      return this.host.fail(error, AlertDescription.badCertificate);
    }
    this.peerCertificate = Buffer.from(certificate);
    this.transcript.push(encodeHandshakeMessage(message));
  }

  private handleClientKeyExchange(message: HandshakeMessage): void {
    const { negotiated, ephemeralKey, clientRandom, serverRandom } = this.accepted!;
    this.transcript.push(encodeHandshakeMessage(message));
    try {
      const publicKey = decodeClientKeyExchange(message.body);
      if (!publicKey) throw new Error('unparsable');
      const premaster = ephemeralKey.agree(publicKey);
      // RFC 7627: the session hash covers every message up to and including this one.
      this.master = negotiated.extendedMasterSecret
        ? extendedMasterSecret(premaster, Buffer.concat(this.transcript))
        : masterSecret(premaster, clientRandom, serverRandom);
      const keys = aesGcmKeyBlock(this.master, clientRandom, serverRandom);
      this.protection = new AesGcmRecordProtection(keys.server, keys.client);
    } catch (error) {
      this.host.fail(new DtlsError('handshake-failure', `invalid ClientKeyExchange: ${describe(error)}`, { cause: error }), AlertDescription.handshakeFailure);
    }
  }

  /** Proves the client holds the private key of the certificate whose fingerprint we checked. */
  private handleCertificateVerify(message: HandshakeMessage): void {
    let verified = false;
    try {
      const verify = decodeCertificateVerify(message.body);
      const signed = Buffer.concat(this.transcript);
      const publicKey = new X509Certificate(this.peerCertificate!).publicKey;
      if (verify?.signatureScheme === SignatureScheme.ecdsaSha256 && publicKey.asymmetricKeyType === 'ec') {
        verified = verifySignature('sha256', signed, { key: publicKey, dsaEncoding: 'der' }, verify.signature);
      } else if (verify?.signatureScheme === SignatureScheme.rsaPkcs1Sha256 && publicKey.asymmetricKeyType === 'rsa') {
        verified = verifySignature('sha256', signed, publicKey, verify.signature);
      }
    } catch {
      verified = false;
    }
    if (!verified) return this.host.fail(new DtlsError('handshake-failure', 'the client CertificateVerify signature is invalid'), AlertDescription.decryptError);
    this.transcript.push(encodeHandshakeMessage(message));
  }

  /** Checks the client's Finished, then flight 6: ChangeCipherSpec and our Finished. */
  private handleClientFinished(message: HandshakeMessage): void {
    const master = this.master!;
    const expected = finishedVerifyData(master, 'client', Buffer.concat(this.transcript));
    const received = decodeFinished(message.body);
    if (received.length !== VERIFY_DATA_BYTES || !timingSafeEqual(received, expected)) {
      return this.host.fail(new DtlsError('handshake-failure', 'the client Finished does not match the handshake'), AlertDescription.decryptError);
    }
    this.clientFinishedSeq = message.messageSeq;
    this.transcript.push(encodeHandshakeMessage(message));

    const changeCipherSpec = this.writer.seal(ContentType.changeCipherSpec, Buffer.from([1]));
    this.writer.startProtecting(this.protection!);
    const finished = this.outgoing(HandshakeType.finished, encodeFinished(finishedVerifyData(master, 'server', Buffer.concat(this.transcript))));

    this.phase = 'connected';
    this.writer.stopRetransmitting();
    this.writer.sendFlight([changeCipherSpec, ...finished]);
    this.host.connected(this.exportSrtpKeys());
  }

  /** RFC 5764 §4.2: the exporter's output, split for our side. */
  private exportSrtpKeys(): SrtpKeyingMaterial {
    const { negotiated, clientRandom, serverRandom } = this.accepted!;
    const profile = negotiated.srtpProfile;
    const material = exportKeyingMaterial(this.master!, SRTP_EXPORTER_LABEL, clientRandom, serverRandom, srtpKeyingMaterialLength(profile));
    return { profile, ...srtpKeysFromDtls(material, profile, 'server') };
  }

  /** Numbers one of our handshake messages, adds it to the transcript, and returns its records. */
  private outgoing(msgType: number, body: Buffer): Buffer[] {
    const { message, records } = this.writer.handshake(msgType, body);
    this.transcript.push(message);
    return records;
  }
}
