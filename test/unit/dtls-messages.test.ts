import assert from 'node:assert/strict';
import { X509Certificate, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { createSelfSignedCertificate } from '../../src/media/protocol/dtls/certificate.ts';
import { bitString, explicit, objectIdentifier, sequence, time, unsignedInteger, utf8String } from '../../src/media/protocol/dtls/der.ts';
import {
  decodeEcPointFormats,
  decodeRenegotiationInfo,
  decodeSignatureAlgorithms,
  decodeSupportedGroups,
  decodeUseSrtp,
  encodeEcPointFormats,
  encodeExtendedMasterSecret,
  encodeRenegotiationInfo,
  encodeSignatureAlgorithms,
  encodeSupportedGroups,
  encodeUseSrtp,
} from '../../src/media/protocol/dtls/extensions.ts';
import {
  HandshakeReassembler,
  encodeHandshakeMessage,
  fragmentHandshakeMessage,
  parseHandshakeFragments,
  type HandshakeMessage,
} from '../../src/media/protocol/dtls/fragments.ts';
import {
  decodeClientHello,
  decodeHelloVerifyRequest,
  decodeServerHello,
  encodeClientHello,
  encodeHelloVerifyRequest,
  encodeServerHello,
  newHelloRandom,
  type ClientHello,
} from '../../src/media/protocol/dtls/hello-messages.ts';
import {
  decodeCertificate,
  decodeCertificateRequest,
  decodeCertificateVerify,
  decodeClientKeyExchange,
  decodeServerHelloDone,
  decodeServerKeyExchange,
  encodeCertificate,
  encodeCertificateRequest,
  encodeCertificateVerify,
  encodeClientKeyExchange,
  encodeEcdheParams,
  encodeServerHelloDone,
  encodeServerKeyExchange,
} from '../../src/media/protocol/dtls/key-exchange-messages.ts';
import { encodeRecord, parseRecords } from '../../src/media/protocol/dtls/record.ts';
import { DtlsServerSession, createDtlsIdentity } from '../../src/media/protocol/dtls.ts';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

/** A ClientHello like a browser's: our suite among others, the extensions the server reads. */
function browserLikeHello(overrides: Partial<ClientHello> = {}): ClientHello {
  return {
    version: 0xfefd,
    random: newHelloRandom(),
    sessionId: Buffer.alloc(0),
    cookie: Buffer.alloc(0),
    cipherSuites: [0xc02b, 0xc02f, 0xcca9, 0xc009, 0x00ff],
    compressionMethods: [0],
    extensions: [
      encodeSupportedGroups([29, 23, 24]),
      encodeEcPointFormats([0]),
      encodeSignatureAlgorithms([0x0403, 0x0804, 0x0401]),
      encodeUseSrtp({ profiles: [0x0007, 0x0001], mki: Buffer.alloc(0) }),
      encodeExtendedMasterSecret(),
      encodeRenegotiationInfo(),
      { type: 0x002b, data: hex('04 fefc fefd') }, // supported_versions (DTLS 1.3 capable): ignored
    ],
    ...overrides,
  };
}

/**
 * Decoding never throws: not on any prefix of a valid message (some prefixes are themselves valid, where
 * an optional part would start), not on nothing, and a byte too many makes the message invalid.
 */
function assertStrict(encoded: Buffer, decode: (body: Buffer) => unknown): void {
  for (let length = 0; length < encoded.length; length++) assert.doesNotThrow(() => decode(encoded.subarray(0, length)));
  assert.equal(decode(Buffer.alloc(0)), undefined, 'nothing');
  assert.equal(decode(Buffer.concat([encoded, Buffer.from([0])])), undefined, 'a trailing byte');
}

describe('hello extensions', () => {
  test('encode to the bytes RFC 5764, RFC 8422, RFC 7627 and RFC 5746 define', () => {
    const useSrtp = encodeUseSrtp({ profiles: [0x0007], mki: Buffer.alloc(0) });
    assert.deepEqual([useSrtp.type, useSrtp.data], [14, hex('0002 0007 00')]);
    assert.deepEqual(encodeSupportedGroups([29, 23]).data, hex('0004 001d 0017'));
    assert.deepEqual(encodeSignatureAlgorithms([0x0403]).data, hex('0002 0403'));
    assert.deepEqual(encodeEcPointFormats([0]), { type: 11, data: hex('01 00') });
    assert.deepEqual(encodeExtendedMasterSecret(), { type: 23, data: Buffer.alloc(0) });
    assert.deepEqual(encodeRenegotiationInfo(), { type: 0xff01, data: hex('00') });
  });

  test('decode what they encode, and refuse malformed bodies', () => {
    assert.deepEqual(decodeUseSrtp(hex('0004 0001 0007 02 abcd')), { profiles: [1, 7], mki: hex('abcd') });
    assert.deepEqual(decodeSupportedGroups(hex('0004 001d 0017')), [29, 23]);
    assert.deepEqual(decodeSignatureAlgorithms(hex('0004 0403 0804')), [0x0403, 0x0804]);
    assert.deepEqual(decodeEcPointFormats(hex('02 00 01')), [0, 1]);
    assert.deepEqual(decodeRenegotiationInfo(hex('00')), Buffer.alloc(0));
    for (const malformed of ['', '00', '0003 0001 00', '0002 0007', '0002 0007 00 ff', '0000 00']) {
      assert.equal(decodeUseSrtp(hex(malformed)), undefined, malformed);
    }
    assert.equal(decodeSupportedGroups(hex('0003 001d 00')), undefined);
    assert.equal(decodeSupportedGroups(hex('0000')), undefined, 'at least one group');
    assert.equal(decodeEcPointFormats(hex('00')), undefined, 'at least one format');
  });
});

describe('handshake message codecs', () => {
  test('ClientHello round-trips and is decoded strictly', () => {
    const hello = browserLikeHello({ cookie: randomBytes(20), sessionId: randomBytes(32) });
    const encoded = encodeClientHello(hello);
    assert.deepEqual(decodeClientHello(encoded), hello);
    assertStrict(encoded, decodeClientHello);
    // Without extensions the block may be left out altogether.
    const bare = browserLikeHello({ extensions: [] });
    assert.deepEqual(decodeClientHello(encodeClientHello(bare)), bare);
    // Out of range: a 33-byte session id, an odd cipher suite list, no compression method.
    const at = 2 + 32;
    assert.equal(decodeClientHello(Buffer.concat([encoded.subarray(0, at), hex('21'), Buffer.alloc(33)])), undefined);
    const suitesAt = at + 1 + 32 + 1 + 20;
    const oddSuites = Buffer.from(encoded);
    oddSuites.writeUInt16BE(9, suitesAt);
    assert.equal(decodeClientHello(oddSuites), undefined);
    assert.equal(decodeClientHello(encodeClientHello({ ...bare, compressionMethods: [] })), undefined);
  });

  test('HelloVerifyRequest and ServerHello round-trip; ServerHello has the exact wire layout', () => {
    const cookie = randomBytes(20);
    assert.deepEqual(encodeHelloVerifyRequest({ version: 0xfefd, cookie }), Buffer.concat([hex('fefd 14'), cookie]));
    assert.deepEqual(decodeHelloVerifyRequest(encodeHelloVerifyRequest({ version: 0xfefd, cookie })), { version: 0xfefd, cookie });

    const random = Buffer.alloc(32, 0xaa);
    const serverHello = {
      version: 0xfefd,
      random,
      sessionId: Buffer.alloc(0),
      cipherSuite: 0xc02b,
      compressionMethod: 0,
      extensions: [encodeUseSrtp({ profiles: [7], mki: Buffer.alloc(0) }), encodeExtendedMasterSecret(), encodeRenegotiationInfo()],
    };
    const encoded = encodeServerHello(serverHello);
    assert.deepEqual(
      encoded,
      Buffer.concat([hex('fefd'), random, hex('00 c02b 00'), hex('0012 000e 0005 0002 0007 00 0017 0000 ff01 0001 00')]),
    );
    assert.deepEqual(decodeServerHello(encoded), serverHello);
    assertStrict(encoded, decodeServerHello);
    assert.throws(() => encodeServerHello({ ...serverHello, random: Buffer.alloc(31) }), RangeError);
  });

  test('the key exchange messages round-trip and refuse malformed bodies', () => {
    const { certificateDer } = createSelfSignedCertificate();
    const chain = [certificateDer, randomBytes(300)];
    assert.deepEqual(decodeCertificate(encodeCertificate(chain)), chain);
    assert.deepEqual(decodeCertificate(encodeCertificate([])), []);
    assertStrict(encodeCertificate(chain), decodeCertificate);

    const publicKey = randomBytes(65);
    assert.deepEqual(encodeEcdheParams(23, publicKey), Buffer.concat([hex('03 0017 41'), publicKey]));
    const keyExchange = { namedCurve: 23, publicKey, signatureScheme: 0x0403, signature: randomBytes(71) };
    const encodedKeyExchange = encodeServerKeyExchange(keyExchange);
    assert.deepEqual(decodeServerKeyExchange(encodedKeyExchange), keyExchange);
    assertStrict(encodedKeyExchange, decodeServerKeyExchange);
    const explicitCurve = Buffer.from(encodedKeyExchange);
    explicitCurve[0] = 1;
    assert.equal(decodeServerKeyExchange(explicitCurve), undefined, 'explicit curves are not TLS 1.2 ECDHE any more');

    const request = { certificateTypes: [64, 1], signatureSchemes: [0x0403, 0x0401], authorities: [randomBytes(10)] };
    assert.deepEqual(encodeCertificateRequest({ ...request, authorities: [] }), hex('02 40 01 0004 0403 0401 0000'));
    assert.deepEqual(decodeCertificateRequest(encodeCertificateRequest(request)), request);
    assertStrict(encodeCertificateRequest(request), decodeCertificateRequest);

    assert.deepEqual(encodeServerHelloDone(), Buffer.alloc(0));
    assert.equal(decodeServerHelloDone(Buffer.alloc(0)), true);
    assert.equal(decodeServerHelloDone(Buffer.alloc(1)), undefined);

    const clientKey = randomBytes(32);
    assert.deepEqual(encodeClientKeyExchange(clientKey), Buffer.concat([hex('20'), clientKey]));
    assert.deepEqual(decodeClientKeyExchange(encodeClientKeyExchange(clientKey)), clientKey);
    assert.equal(decodeClientKeyExchange(hex('00')), undefined, 'an empty point');
    assertStrict(encodeClientKeyExchange(clientKey), decodeClientKeyExchange);

    const verify = { signatureScheme: 0x0403, signature: randomBytes(70) };
    assert.deepEqual(decodeCertificateVerify(encodeCertificateVerify(verify)), verify);
    assertStrict(encodeCertificateVerify(verify), decodeCertificateVerify);
  });

  test('random bytes and mutated hellos never throw out of a decoder', () => {
    const valid = encodeClientHello(browserLikeHello());
    const decoders = [decodeClientHello, decodeServerHello, decodeCertificate, decodeServerKeyExchange, decodeCertificateRequest, decodeCertificateVerify];
    for (let i = 0; i < 2000; i++) {
      const mutated = Buffer.from(valid);
      for (let flips = 1 + (i % 4); flips > 0; flips--) mutated[(i * 7919 + flips * 104729) % mutated.length] = (i * 31 + flips) & 0xff;
      const noise = randomBytes(i % 120);
      for (const decode of decoders) {
        assert.doesNotThrow(() => decode(mutated));
        assert.doesNotThrow(() => decode(noise));
      }
    }
  });
});

describe('records and handshake fragments', () => {
  test('records round-trip; a datagram with a short or overlong record is cut there', () => {
    const records = [
      { contentType: 22, version: 0xfefd, epoch: 0, sequenceNumber: 5, body: randomBytes(40) },
      { contentType: 23, version: 0xfefd, epoch: 1, sequenceNumber: 2 ** 40 + 3, body: randomBytes(3) },
    ];
    const datagram = Buffer.concat(records.map(encodeRecord));
    assert.deepEqual(parseRecords(datagram), { records, malformed: false });
    assert.deepEqual(parseRecords(datagram.subarray(0, datagram.length - 1)), { records: records.slice(0, 1), malformed: true });
    const wrongVersion = Buffer.from(datagram);
    wrongVersion[1] = 0x03;
    assert.deepEqual(parseRecords(wrongVersion), { records: [], malformed: true });
  });

  test('messages are fragmented, then reassembled from any order, duplicates and retransmissions included', () => {
    const message: HandshakeMessage = { msgType: 11, messageSeq: 0, body: randomBytes(2500) };
    const fragments = fragmentHandshakeMessage(message, 1000);
    assert.equal(fragments.length, 3);
    const whole = encodeHandshakeMessage(message);
    assert.deepEqual(whole.subarray(0, 12), hex('0b 0009c4 0000 000000 0009c4'));
    assert.deepEqual(fragmentHandshakeMessage({ msgType: 14, messageSeq: 4, body: Buffer.alloc(0) }, 1000), [hex('0e 000000 0004 000000 000000')]);

    const next: HandshakeMessage = { msgType: 16, messageSeq: 1, body: randomBytes(33) };
    const reassembler = new HandshakeReassembler();
    // The second message arrives first, then the first one's fragments backwards, one of them twice.
    const arrivals = [...fragmentHandshakeMessage(next, 1000), fragments[2]!, fragments[1]!, fragments[1]!, fragments[0]!];
    const released = arrivals.flatMap((bytes) => {
      const { fragments: parsed, malformed } = parseHandshakeFragments(bytes);
      assert.equal(malformed, false);
      return parsed.flatMap((fragment) => reassembler.add(fragment, 0));
    });
    assert.deepEqual(
      released.map((r) => [r.message.msgType, r.message.messageSeq, r.retransmission]),
      [
        [11, 0, false],
        [16, 1, false],
      ],
    );
    assert.deepEqual(encodeHandshakeMessage(released[0]!.message), whole);
    // The peer retransmitting message 0 is reported as such.
    const again = parseHandshakeFragments(encodeHandshakeMessage(message)).fragments[0]!;
    assert.deepEqual(reassembler.add(again, 0).map((r) => r.retransmission), [true]);
  });

  test('fragment headers that overrun are malformed', () => {
    assert.equal(parseHandshakeFragments(hex('01 000010 0000 000000 000010 00')).malformed, true, 'shorter than it says');
    assert.equal(parseHandshakeFragments(hex('01 000002 0000 000001 000002 0000')).malformed, true, 'past the message length');
    assert.equal(parseHandshakeFragments(hex('01 0000')).malformed, true, 'a partial header');
  });
});

describe('DER and the self-signed certificate', () => {
  test('the DER writer encodes integers, identifiers, lengths and times canonically', () => {
    assert.deepEqual(unsignedInteger(0), hex('02 01 00'));
    assert.deepEqual(unsignedInteger(127), hex('02 01 7f'));
    assert.deepEqual(unsignedInteger(128), hex('02 02 00 80'));
    assert.deepEqual(unsignedInteger(256), hex('02 02 01 00'));
    assert.deepEqual(unsignedInteger(hex('00 00 ff')), hex('02 02 00 ff'), 'leading zeros dropped, sign byte kept');
    assert.deepEqual(objectIdentifier('1.2.840.10045.4.3.2'), hex('06 08 2a 86 48 ce 3d 04 03 02'));
    assert.deepEqual(objectIdentifier('2.5.4.3'), hex('06 03 55 04 03'));
    assert.deepEqual(sequence(Buffer.alloc(200)).subarray(0, 3), hex('30 81 c8'));
    assert.deepEqual(sequence(Buffer.alloc(300)).subarray(0, 4), hex('30 82 01 2c'));
    assert.deepEqual(bitString(hex('abcd')), hex('03 03 00 ab cd'));
    assert.deepEqual(explicit(0, unsignedInteger(2)), hex('a0 03 02 01 02'));
    assert.deepEqual(utf8String('amphi'), Buffer.concat([hex('0c 05'), Buffer.from('amphi')]));
    assert.deepEqual(time(new Date(Date.UTC(2049, 11, 31, 23, 59, 59))), Buffer.concat([hex('17 0d'), Buffer.from('491231235959Z')]));
    assert.deepEqual(time(new Date(Date.UTC(2050, 0, 1, 0, 0, 0))), Buffer.concat([hex('18 0f'), Buffer.from('20500101000000Z')]));
  });

  test('the certificate is a v3 self-signed ECDSA P-256 certificate that node and OpenSSL parse', () => {
    const now = new Date();
    const { certificateDer, privateKey } = createSelfSignedCertificate('amphi', now);
    const certificate = new X509Certificate(certificateDer);
    assert.equal(certificate.subject, 'CN=amphi');
    assert.equal(certificate.issuer, 'CN=amphi');
    assert.ok(certificate.verify(certificate.publicKey), 'self-signed');
    assert.ok(certificate.checkPrivateKey(privateKey));
    assert.equal(certificate.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.ok(new Date(certificate.validFrom) < now && new Date(certificate.validTo) > new Date(now.getTime() + 365 * 86_400_000));
    assert.match(certificate.serialNumber, /^[0-7][0-9A-F]{31}$/, 'a positive 16-byte serial');
    assert.equal(certificate.raw.length, certificateDer.length, 'nothing after the certificate');
    assert.notEqual(createSelfSignedCertificate().certificateDer.toString('hex'), certificateDer.toString('hex'), 'a fresh key each time');
  });
});

describe('malformed hellos at the session', () => {
  test('are dropped without failing the session, and a well-formed one still gets flight 4', async () => {
    const [server, client] = await Promise.all([createDtlsIdentity(), createDtlsIdentity()]);
    const sent: Buffer[] = [];
    const errors: Error[] = [];
    const session = new DtlsServerSession({
      identity: server,
      expectedRemoteFingerprint: client.fingerprint,
      send: (datagram) => sent.push(datagram),
    });
    session.on('failed', (error) => errors.push(error));
    try {
      const valid = encodeClientHello(browserLikeHello());
      const hello = (body: Buffer, recordSeq: number) =>
        encodeRecord({ contentType: 22, version: 0xfefd, epoch: 0, sequenceNumber: recordSeq, body: encodeHandshakeMessage({ msgType: 1, messageSeq: 0, body }) });
      // Cut short, trailing garbage, an extension list that overruns: each a complete message_seq 0 that is not a hello.
      let recordSeq = 0;
      for (const body of [valid.subarray(0, 45), Buffer.concat([valid, hex('00')]), Buffer.concat([valid.subarray(0, valid.length - 3), hex('ffff')])]) {
        // A fresh session state per attempt: message_seq 0 is consumed by the reassembler once complete.
        const attempt = new DtlsServerSession({ identity: server, expectedRemoteFingerprint: client.fingerprint, send: (d) => sent.push(d) });
        assert.doesNotThrow(() => attempt.handleDatagram(hello(body, recordSeq++)));
        assert.equal(attempt.state, 'new', `attempt ${recordSeq}`);
        assert.equal(attempt.droppedRecordCount, 1);
        attempt.close();
      }
      assert.equal(sent.length, 0, 'nothing answered');
      session.handleDatagram(hello(valid, recordSeq++));
      assert.equal(session.state, 'connecting');
      assert.equal(sent.length, 1);
      assert.equal(sent[0]![13], 2, 'ServerHello');
      const serverHello = decodeServerHello(parseHandshakeFragments(parseRecords(sent[0]!).records[0]!.body).fragments[0]!.data);
      assert.ok(serverHello);
      assert.equal(serverHello.cipherSuite, 0xc02b);
      assert.deepEqual(
        serverHello.extensions.map((e) => e.type),
        [14, 23, 0xff01],
        'use_srtp, extended_master_secret, renegotiation_info, as the hello asked',
      );
      assert.deepEqual(decodeUseSrtp(serverHello.extensions[0]!.data)?.profiles, [7]);
      assert.deepEqual(errors, []);
    } finally {
      session.close();
    }
  });
});
