import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  answerBindingRequest,
  buildBindingError,
  buildBindingSuccess,
  checkBindingRequest,
  crc32,
  isStun,
  parseStun,
  stunLocalUfrag,
  stunUsername,
  verifyFingerprint,
  verifyMessageIntegrity,
  type StunMessage,
} from '../../src/media/protocol/stun.ts';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

// RFC 5769 §2.1–2.3. All three use this password.
const PASSWORD = 'VOkJxbRl1RmTxUk/WvJxBt';

const SAMPLE_REQUEST = hex(`
  00010058 2112a442 b7e7a701 bc34d686 fa87dfae
  80220010 5354554e 20746573 7420636c 69656e74
  00240004 6e0001ff
  80290008 932ff9b1 51263b36
  00060009 6576746a 3a683676 59202020
  00080014 9aeaa70c bfd8cb56 781ef2b5 b2d3f249 c1b571a2
  80280004 e57a3bcf`);

const SAMPLE_IPV4_RESPONSE = hex(`
  0101003c 2112a442 b7e7a701 bc34d686 fa87dfae
  8022000b 74657374 20766563 746f7220
  00200008 0001a147 e112a643
  00080014 2b91f599 fd9e90c3 8c7489f9 2af9ba53 f06be7d7
  80280004 c07d4c96`);

const SAMPLE_IPV6_RESPONSE = hex(`
  01010048 2112a442 b7e7a701 bc34d686 fa87dfae
  8022000b 74657374 20766563 746f7220
  00200014 0002a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9
  00080014 a382954e 4be67bf1 1784c97c 8292c275 bfe3ed41
  80280004 c8fb0b4c`);

const TRANSACTION_ID = hex('b7e7a701bc34d686fa87dfae');

function parsed(packet: Buffer): StunMessage {
  const message = parseStun(packet);
  assert.ok(message, 'expected a well-formed STUN message');
  return message;
}

/** MESSAGE-INTEGRITY recomputed here independently of stun.ts, from RFC 5389 §15.4. */
function independentIntegrity(packet: Buffer, password: string): Buffer {
  const miOffset = findAttribute(packet, 0x0008);
  const copy = Buffer.from(packet.subarray(0, miOffset));
  copy.writeUInt16BE(miOffset + 24 - 20, 2);
  return createHmac('sha1', password).update(copy).digest();
}

function findAttribute(packet: Buffer, type: number): number {
  for (let offset = 20; offset < packet.length; ) {
    if (packet.readUInt16BE(offset) === type) return offset;
    offset += 4 + ((packet.readUInt16BE(offset + 2) + 3) & ~3);
  }
  throw new Error(`attribute ${type} not found`);
}

/** A tiny request encoder for the tests (the module under test only builds responses). */
function bindingRequest(options: {
  username?: string;
  password?: string;
  controlling?: boolean;
  controlled?: boolean;
  useCandidate?: boolean;
  extraAttributes?: Array<[number, Buffer]>;
  fingerprint?: boolean;
}): Buffer {
  const attributes: Buffer[] = [];
  const add = (type: number, value: Buffer): void => {
    const a = Buffer.alloc(4 + ((value.length + 3) & ~3));
    a.writeUInt16BE(type, 0);
    a.writeUInt16BE(value.length, 2);
    value.copy(a, 4);
    attributes.push(a);
  };
  if (options.username !== undefined) add(0x0006, Buffer.from(options.username));
  add(0x0024, hex('6e7f1eff'));
  if (options.controlling) add(0x802a, hex('0102030405060708'));
  if (options.controlled) add(0x8029, hex('0102030405060708'));
  if (options.useCandidate) add(0x0025, Buffer.alloc(0));
  for (const [type, value] of options.extraAttributes ?? []) add(type, value);
  let message = Buffer.concat([hex('00010000 2112a442'), randomBytes(12), ...attributes]);
  if (options.password !== undefined) {
    message.writeUInt16BE(message.length - 20 + 24, 2);
    const mac = createHmac('sha1', options.password).update(message).digest();
    message = Buffer.concat([message, hex('00080014'), mac]);
  }
  if (options.fingerprint ?? true) {
    message.writeUInt16BE(message.length - 20 + 8, 2);
    const fingerprint = Buffer.alloc(8);
    fingerprint.writeUInt32BE(0x80280004, 0);
    fingerprint.writeUInt32BE((crc32(message) ^ 0x5354554e) >>> 0, 4);
    message = Buffer.concat([message, fingerprint]);
  } else {
    message.writeUInt16BE(message.length - 20, 2);
  }
  return message;
}

describe('CRC-32', () => {
  test('matches the standard check value', () => {
    assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
    assert.equal(crc32(Buffer.alloc(0)), 0);
  });
});

describe('RFC 5769 test vectors', () => {
  test('§2.1 sample request parses, authenticates and carries a valid fingerprint', () => {
    assert.ok(isStun(SAMPLE_REQUEST));
    const message = parsed(SAMPLE_REQUEST);
    assert.equal(message.type, 0x0001);
    assert.equal(message.method, 0x001);
    assert.equal(message.messageClass, 'request');
    assert.deepEqual(message.transactionId, TRANSACTION_ID);
    assert.equal(message.username, 'evtj:h6vY');
    assert.equal(message.priority, 0x6e0001ff);
    assert.equal(message.iceControlled, 0x932ff9b151263b36n);
    assert.equal(message.iceControlling, undefined);
    assert.equal(message.useCandidate, false);
    assert.ok(verifyMessageIntegrity(message, PASSWORD));
    assert.ok(verifyMessageIntegrity(message, Buffer.from(PASSWORD)));
    assert.ok(!verifyMessageIntegrity(message, 'VOkJxbRl1RmTxUk/WvJxBu'));
    assert.ok(verifyFingerprint(message));
  });

  test('§2.1 the cheap USERNAME lookup finds the local ufrag', () => {
    assert.equal(stunUsername(SAMPLE_REQUEST), 'evtj:h6vY');
    assert.equal(stunLocalUfrag(SAMPLE_REQUEST), 'evtj');
  });

  test('§2.2 sample IPv4 response', () => {
    const message = parsed(SAMPLE_IPV4_RESPONSE);
    assert.equal(message.messageClass, 'success');
    assert.deepEqual(message.xorMappedAddress, { family: 'IPv4', address: '192.0.2.1', port: 32853 });
    assert.ok(verifyMessageIntegrity(message, PASSWORD));
    assert.ok(verifyFingerprint(message));
  });

  test('§2.3 sample IPv6 response', () => {
    const message = parsed(SAMPLE_IPV6_RESPONSE);
    assert.deepEqual(message.xorMappedAddress, { family: 'IPv6', address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 });
    assert.ok(verifyMessageIntegrity(message, PASSWORD));
    assert.ok(verifyFingerprint(message));
  });

  test('a flipped byte anywhere before MESSAGE-INTEGRITY breaks integrity', () => {
    const miOffset = findAttribute(SAMPLE_REQUEST, 0x0008);
    for (let i = 0; i < miOffset + 24; i++) {
      if (i === 2 || i === 3) continue; // the length field is rewritten for the check
      const tampered = Buffer.from(SAMPLE_REQUEST);
      tampered[i]! ^= 0x01;
      const message = parseStun(tampered);
      if (message === undefined) continue;
      assert.ok(!(verifyMessageIntegrity(message, PASSWORD) && verifyFingerprint(message)), `byte ${i}`);
      assert.ok(!verifyFingerprint(message), `fingerprint should catch byte ${i}`);
    }
  });
});

describe('Binding responses', () => {
  const request = parsed(SAMPLE_REQUEST);

  test('a success response echoes the transaction id and maps an IPv4 sender', () => {
    const response = buildBindingSuccess(request, { address: '192.0.2.1', port: 32853 }, PASSWORD);
    const message = parsed(response);
    assert.equal(message.type, 0x0101);
    assert.deepEqual(message.transactionId, TRANSACTION_ID);
    assert.deepEqual(message.xorMappedAddress, { family: 'IPv4', address: '192.0.2.1', port: 32853 });
    // Byte-identical to the XOR-MAPPED-ADDRESS of RFC 5769 §2.2.
    assert.deepEqual(response.subarray(20, 32), hex('00200008 0001a147 e112a643'));
    assert.ok(verifyMessageIntegrity(message, PASSWORD));
    assert.ok(verifyFingerprint(message));
    const miOffset = findAttribute(response, 0x0008);
    assert.deepEqual(response.subarray(miOffset + 4, miOffset + 24), independentIntegrity(response, PASSWORD));
    assert.equal(findAttribute(response, 0x8028), response.length - 8, 'FINGERPRINT comes last');
  });

  test('a success response maps an IPv6 sender like RFC 5769 §2.3', () => {
    const response = buildBindingSuccess(request, { address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 }, PASSWORD);
    assert.deepEqual(response.subarray(20, 44), hex('00200014 0002a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9'));
    const message = parsed(response);
    assert.deepEqual(message.xorMappedAddress, { family: 'IPv6', address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 });
    assert.ok(verifyMessageIntegrity(message, PASSWORD));
    assert.ok(verifyFingerprint(message));
  });

  test('IPv6 addresses in compressed form, with a zone or a dotted tail are encoded', () => {
    for (const [address, expected] of [
      ['::1', '::1'],
      ['fe80::1%eth0', 'fe80::1'],
      ['2001:db8::', '2001:db8::'],
      ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
    ] as const) {
      const message = parsed(buildBindingSuccess(request, { address, port: 9 }, PASSWORD));
      assert.deepEqual(message.xorMappedAddress, { family: 'IPv6', address: expected, port: 9 });
    }
  });

  test('an IPv4-mapped IPv6 sender (dual-stack socket) is reported as IPv4', () => {
    const message = parsed(buildBindingSuccess(request, { address: '::ffff:203.0.113.7', port: 50000 }, PASSWORD));
    assert.deepEqual(message.xorMappedAddress, { family: 'IPv4', address: '203.0.113.7', port: 50000 });
  });

  test('error responses carry ERROR-CODE, and MESSAGE-INTEGRITY only when asked', () => {
    const unauthenticated = parsed(buildBindingError(request, 401));
    assert.equal(unauthenticated.type, 0x0111);
    assert.equal(unauthenticated.messageClass, 'error');
    assert.deepEqual(unauthenticated.errorCode, { code: 401, reason: 'Unauthenticated' });
    assert.equal(unauthenticated.messageIntegrityOffset, undefined);
    assert.ok(verifyFingerprint(unauthenticated));

    const conflict = parsed(buildBindingError(request, 487, { localPassword: PASSWORD }));
    assert.deepEqual(conflict.errorCode, { code: 487, reason: 'Role Conflict' });
    assert.ok(verifyMessageIntegrity(conflict, PASSWORD));
    assert.ok(verifyFingerprint(conflict));

    const unknown = buildBindingError(request, 420, { localPassword: PASSWORD, unknownAttributes: [0x0033, 0x0044] });
    const listOffset = findAttribute(unknown, 0x000a);
    assert.deepEqual(unknown.subarray(listOffset, listOffset + 8), hex('000a0004 00330044'));
    assert.ok(verifyMessageIntegrity(parsed(unknown), PASSWORD));
  });
});

describe('ICE-lite request handling', () => {
  const credentials = { localUfrag: 'srvr', localPassword: 'server-password-0123456789' };
  const remote = { address: '198.51.100.4', port: 61000 };

  test('an authentic check from a controlling agent is accepted and answered', () => {
    const packet = bindingRequest({ username: 'srvr:brws', password: credentials.localPassword, controlling: true, useCandidate: true });
    assert.equal(stunLocalUfrag(packet), 'srvr');
    const answer = answerBindingRequest(packet, credentials, remote);
    assert.deepEqual(answer.verdict, { action: 'accept', remoteUfrag: 'brws', useCandidate: true, priority: 0x6e7f1eff });
    assert.ok(answer.response);
    const response = parsed(answer.response);
    assert.equal(response.type, 0x0101);
    assert.deepEqual(response.transactionId, packet.subarray(8, 20));
    assert.deepEqual(response.xorMappedAddress, { family: 'IPv4', ...remote });
    assert.ok(verifyMessageIntegrity(response, credentials.localPassword));
    assert.ok(verifyFingerprint(response));
  });

  test('a request without FINGERPRINT is still accepted', () => {
    const packet = bindingRequest({ username: 'srvr:brws', password: credentials.localPassword, controlling: true, fingerprint: false });
    assert.equal(answerBindingRequest(packet, credentials, remote).verdict.action, 'accept');
  });

  test('a wrong password or a foreign ufrag earns a 401 without MESSAGE-INTEGRITY', () => {
    for (const packet of [
      bindingRequest({ username: 'srvr:brws', password: 'not-the-password', controlling: true }),
      bindingRequest({ username: 'othr:brws', password: credentials.localPassword, controlling: true }),
      bindingRequest({ username: 'srvr', password: credentials.localPassword, controlling: true }),
    ]) {
      const answer = answerBindingRequest(packet, credentials, remote);
      assert.deepEqual(answer.verdict, { action: 'reject', code: 401, authenticated: false });
      const response = parsed(answer.response!);
      assert.equal(response.errorCode?.code, 401);
      assert.equal(response.messageIntegrityOffset, undefined);
    }
  });

  test('a request missing USERNAME or MESSAGE-INTEGRITY earns a 400', () => {
    for (const packet of [
      bindingRequest({ password: credentials.localPassword, controlling: true }),
      bindingRequest({ username: 'srvr:brws', controlling: true }),
    ]) {
      const answer = answerBindingRequest(packet, credentials, remote);
      assert.equal(answer.verdict.action, 'reject');
      assert.equal(parsed(answer.response!).errorCode?.code, 400);
    }
  });

  test('an unknown comprehension-required attribute earns an authenticated 420', () => {
    const packet = bindingRequest({
      username: 'srvr:brws',
      password: credentials.localPassword,
      controlling: true,
      extraAttributes: [[0x0033, hex('01')]],
    });
    const answer = answerBindingRequest(packet, credentials, remote);
    assert.deepEqual(answer.verdict, { action: 'reject', code: 420, authenticated: true, unknownAttributes: [0x0033] });
    const response = parsed(answer.response!);
    assert.equal(response.errorCode?.code, 420);
    assert.ok(verifyMessageIntegrity(response, credentials.localPassword));
  });

  test('comprehension-optional attributes (e.g. Chrome network info) are ignored', () => {
    const packet = bindingRequest({
      username: 'srvr:brws',
      password: credentials.localPassword,
      controlling: true,
      extraAttributes: [[0xc057, hex('00010000')]],
    });
    assert.equal(answerBindingRequest(packet, credentials, remote).verdict.action, 'accept');
  });

  test('a peer that is controlled too gets a 487 role conflict (RFC 5769 §2.1 is such a request)', () => {
    const verdict = checkBindingRequest(parsed(SAMPLE_REQUEST), { localUfrag: 'evtj', localPassword: PASSWORD });
    assert.deepEqual(verdict, { action: 'reject', code: 487, authenticated: true });
    const answer = answerBindingRequest(SAMPLE_REQUEST, { localUfrag: 'evtj', localPassword: PASSWORD }, remote);
    const response = parsed(answer.response!);
    assert.equal(response.errorCode?.code, 487);
    assert.ok(verifyMessageIntegrity(response, PASSWORD));
  });

  test('responses, indications and a bad FINGERPRINT are discarded silently', () => {
    assert.deepEqual(answerBindingRequest(SAMPLE_IPV4_RESPONSE, credentials, remote), {
      response: undefined,
      verdict: { action: 'discard' },
      request: parseStun(SAMPLE_IPV4_RESPONSE),
    });
    const indication = Buffer.from(hex('00110000 2112a442'));
    assert.equal(answerBindingRequest(Buffer.concat([indication, randomBytes(12)]), credentials, remote).verdict.action, 'discard');
    const badFingerprint = bindingRequest({ username: 'srvr:brws', password: credentials.localPassword, controlling: true });
    badFingerprint[badFingerprint.length - 1]! ^= 0xff;
    const answer = answerBindingRequest(badFingerprint, credentials, remote);
    assert.equal(answer.verdict.action, 'discard');
    assert.equal(answer.response, undefined);
  });
});

describe('malformed input', () => {
  test('isStun rejects RTP, DTLS and short packets', () => {
    assert.ok(!isStun(Buffer.alloc(0)));
    assert.ok(!isStun(SAMPLE_REQUEST.subarray(0, 19)));
    assert.ok(!isStun(hex('8060 0001 00000000 11223344 0000000000000000'))); // RTP
    assert.ok(!isStun(hex('16fefd 0000 000000000000 0010 0100000000000000000000'))); // DTLS
    const wrongCookie = Buffer.from(SAMPLE_REQUEST);
    wrongCookie[4] = 0x22;
    assert.ok(!isStun(wrongCookie));
  });

  test('every truncation of a valid message is rejected', () => {
    for (let length = 0; length < SAMPLE_REQUEST.length; length++) {
      const truncated = SAMPLE_REQUEST.subarray(0, length);
      assert.equal(parseStun(truncated), undefined, `length ${length}`);
      assert.equal(stunUsername(truncated), undefined, `length ${length}`);
    }
  });

  test('a truncated message whose length field was fixed up is rejected (attribute overruns)', () => {
    const truncated = Buffer.from(SAMPLE_REQUEST.subarray(0, 20 + 20 + 8 + 4));
    truncated.writeUInt16BE(truncated.length - 20, 2);
    assert.equal(parseStun(truncated), undefined);
  });

  test('attributes after FINGERPRINT, bad attribute sizes and unaligned lengths are rejected', () => {
    const trailing = Buffer.concat([SAMPLE_REQUEST, hex('80220000')]);
    trailing.writeUInt16BE(trailing.length - 20, 2);
    assert.equal(parseStun(trailing), undefined);

    const shortPriority = Buffer.from(SAMPLE_REQUEST);
    shortPriority.writeUInt16BE(2, findAttribute(SAMPLE_REQUEST, 0x0024) + 2);
    assert.equal(parseStun(shortPriority), undefined);

    const unaligned = Buffer.concat([SAMPLE_REQUEST, hex('00')]);
    unaligned.writeUInt16BE(unaligned.length - 20, 2);
    assert.equal(parseStun(unaligned), undefined);
  });

  test('attributes after MESSAGE-INTEGRITY other than FINGERPRINT are ignored', () => {
    const packet = bindingRequest({ username: 'srvr:brws', password: 'pw', controlling: true, fingerprint: false });
    const withTrailer = Buffer.concat([packet, hex('00250000')]); // USE-CANDIDATE after MESSAGE-INTEGRITY
    withTrailer.writeUInt16BE(withTrailer.length - 20, 2);
    const message = parsed(withTrailer);
    assert.equal(message.useCandidate, false);
    assert.ok(verifyMessageIntegrity(message, 'pw'));
  });

  test('random mutations never throw', () => {
    const samples = [SAMPLE_REQUEST, SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE];
    for (let round = 0; round < 20000; round++) {
      const packet = Buffer.from(samples[round % samples.length]!);
      const flips = 1 + (round % 4);
      for (let i = 0; i < flips; i++) packet[Math.floor(Math.random() * packet.length)] = Math.floor(Math.random() * 256);
      const cut = round % 7 === 0 ? packet.subarray(0, Math.floor(Math.random() * packet.length)) : packet;
      const message = parseStun(cut);
      stunUsername(cut);
      stunLocalUfrag(cut);
      if (message) {
        verifyMessageIntegrity(message, PASSWORD);
        verifyFingerprint(message);
        answerBindingRequest(cut, { localUfrag: 'evtj', localPassword: PASSWORD }, { address: '192.0.2.1', port: 1 });
      }
    }
    for (let round = 0; round < 5000; round++) {
      const packet = randomBytes(20 + (round % 64) * 4);
      packet[0]! &= 0x03;
      packet.writeUInt32BE(0x2112a442, 4);
      if (round % 2) packet.writeUInt16BE(packet.length - 20, 2);
      const message = parseStun(packet);
      stunUsername(packet);
      if (message) answerBindingRequest(packet, { localUfrag: 'evtj', localPassword: PASSWORD }, { address: '::1', port: 1 });
    }
  });
});
