import assert from 'node:assert/strict';
import { createCipheriv, createHmac, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  SRTP_AEAD_AES_128_GCM,
  SRTP_AES128_CM_HMAC_SHA1_80,
  SRTP_PROFILES,
  SrtpReceiveContext,
  SrtpSendContext,
  SrtpSession,
  deriveSrtpSessionKeys,
  srtpKdf,
  srtpKeyingMaterialLength,
  srtpKeysFromDtls,
  srtpProfileById,
  type SrtpProfile,
  type SrtpSessionKeys,
} from '../../src/media/protocol/srtp.ts';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

function rtpPacket(seq: number, options: { ssrc?: number; payload?: Buffer; csrcs?: number; extension?: Buffer; marker?: boolean } = {}): Buffer {
  const csrcs = options.csrcs ?? 0;
  const header = Buffer.alloc(12 + csrcs * 4);
  header[0] = 0x80 | csrcs | (options.extension ? 0x10 : 0);
  header[1] = (options.marker ? 0x80 : 0) | 111;
  header.writeUInt16BE(seq, 2);
  header.writeUInt32BE((seq * 960) >>> 0, 4);
  header.writeUInt32BE(options.ssrc ?? 0x11223344, 8);
  for (let i = 0; i < csrcs; i++) header.writeUInt32BE(0xc0000000 + i, 12 + i * 4);
  const parts: Buffer[] = [header];
  if (options.extension) {
    const extensionHeader = Buffer.alloc(4);
    extensionHeader.writeUInt16BE(0xbede, 0);
    extensionHeader.writeUInt16BE(options.extension.length / 4, 2);
    parts.push(extensionHeader, options.extension);
  }
  parts.push(options.payload ?? Buffer.from(`payload of packet ${seq}`));
  return Buffer.concat(parts);
}

/** A receiver report with one report block, sender SSRC as given. */
function rtcpPacket(ssrc = 0x11223344, filler = 0xab): Buffer {
  const packet = Buffer.alloc(32, filler);
  packet.writeUInt32BE(0x81c90007, 0);
  packet.writeUInt32BE(ssrc, 4);
  return packet;
}

/** A server/client pair sharing one exporter output, as after a DTLS handshake. */
function pair(profile: SrtpProfile): { server: SrtpSession; client: SrtpSession } {
  const material = randomBytes(srtpKeyingMaterialLength(profile));
  return { server: SrtpSession.fromDtls(material, profile, 'server'), client: SrtpSession.fromDtls(material, profile, 'client') };
}

describe('profiles and keying', () => {
  test('profile ids and lengths match RFC 5764 and RFC 7714', () => {
    assert.deepEqual(
      { id: SRTP_AES128_CM_HMAC_SHA1_80.id, key: 16, salt: 14, tag: 10 },
      { id: 0x0001, key: SRTP_AES128_CM_HMAC_SHA1_80.keyLength, salt: SRTP_AES128_CM_HMAC_SHA1_80.saltLength, tag: SRTP_AES128_CM_HMAC_SHA1_80.authTagLength },
    );
    assert.deepEqual(
      { id: SRTP_AEAD_AES_128_GCM.id, key: 16, salt: 12, tag: 16 },
      { id: 0x0007, key: SRTP_AEAD_AES_128_GCM.keyLength, salt: SRTP_AEAD_AES_128_GCM.saltLength, tag: SRTP_AEAD_AES_128_GCM.authTagLength },
    );
    assert.equal(srtpProfileById(0x0007), SRTP_AEAD_AES_128_GCM);
    assert.equal(srtpProfileById(0x0001), SRTP_AES128_CM_HMAC_SHA1_80);
    assert.equal(srtpProfileById(0x0002), undefined);
    assert.equal(srtpKeyingMaterialLength(SRTP_AES128_CM_HMAC_SHA1_80), 60);
    assert.equal(srtpKeyingMaterialLength(SRTP_AEAD_AES_128_GCM), 56);
  });

  test('exporter output is split client key | server key | client salt | server salt', () => {
    const material = Buffer.from(Array.from({ length: 60 }, (_, i) => i));
    const server = srtpKeysFromDtls(material, SRTP_AES128_CM_HMAC_SHA1_80, 'server');
    assert.deepEqual(server.remote.key, material.subarray(0, 16));
    assert.deepEqual(server.local.key, material.subarray(16, 32));
    assert.deepEqual(server.remote.salt, material.subarray(32, 46));
    assert.deepEqual(server.local.salt, material.subarray(46, 60));
    const client = srtpKeysFromDtls(material, SRTP_AES128_CM_HMAC_SHA1_80, 'client');
    assert.deepEqual(client.local, server.remote);
    assert.deepEqual(client.remote, server.local);

    const gcm = srtpKeysFromDtls(material.subarray(0, 56), SRTP_AEAD_AES_128_GCM, 'server');
    assert.deepEqual(gcm.local.salt, material.subarray(44, 56));
    assert.deepEqual(gcm.remote.salt, material.subarray(32, 44));
    assert.throws(() => srtpKeysFromDtls(material, SRTP_AEAD_AES_128_GCM, 'server'), RangeError);
  });

  test('RFC 3711 B.3 key derivation', () => {
    const masterKey = hex('E1F97A0D3E018BE0D64FA32C06DE4139');
    const masterSalt = hex('0EC675AD498AFEEBB6960B3AABE6');
    assert.deepEqual(srtpKdf(masterKey, masterSalt, 0x00, 16), hex('C61E7A93744F39EE10734AFE3FF7A087'));
    assert.deepEqual(srtpKdf(masterKey, masterSalt, 0x02, 14), hex('30CBBC08863D8C85D49DB34A9AE1'));
    assert.deepEqual(
      srtpKdf(masterKey, masterSalt, 0x01, 94),
      hex(`CEBE321F6FF7716B6FD4AB49AF256A15 6D38BAA48F0A0ACF3C34E2359E6CDBCE E049646C43D9327AD175578EF7227098
           6371C10C9A369AC2F94A8C5FBCDDDC25 6D6E919A48B610EF17C2041E47403576 6B68642C59BBFC2F34DB60DBDFB2`),
    );
    const keys = deriveSrtpSessionKeys(SRTP_AES128_CM_HMAC_SHA1_80, { key: masterKey, salt: masterSalt });
    assert.deepEqual(keys.rtpKey, hex('C61E7A93744F39EE10734AFE3FF7A087'));
    assert.deepEqual(keys.rtpSalt, hex('30CBBC08863D8C85D49DB34A9AE1'));
    assert.deepEqual(keys.rtpAuthKey, hex('CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4'));
  });

  test('GCM session keys use a zero-padded 12-byte salt and have no auth keys', () => {
    const master = { key: randomBytes(16), salt: randomBytes(12) };
    const keys = deriveSrtpSessionKeys(SRTP_AEAD_AES_128_GCM, master);
    const padded = Buffer.concat([master.salt, Buffer.alloc(2)]);
    assert.deepEqual(keys.rtpKey, srtpKdf(master.key, padded, 0, 16));
    assert.deepEqual(keys.rtpSalt, srtpKdf(master.key, padded, 2, 12));
    assert.deepEqual(keys.rtcpSalt, srtpKdf(master.key, padded, 5, 12));
    assert.equal(keys.rtpAuthKey.length, 0);
    assert.throws(() => deriveSrtpSessionKeys(SRTP_AEAD_AES_128_GCM, { key: master.key, salt: randomBytes(14) }), RangeError);
  });
});

describe('AES_CM_128_HMAC_SHA1_80 vectors', () => {
  test('RFC 3711 B.2 keystream (SSRC 0, index 0), start and end of the segment', () => {
    const keys: SrtpSessionKeys = {
      rtpKey: hex('2B7E151628AED2A6ABF7158809CF4F3C'),
      rtpSalt: hex('F0F1F2F3F4F5F6F7F8F9FAFBFCFD'),
      rtpAuthKey: Buffer.alloc(20),
      rtcpKey: Buffer.alloc(16),
      rtcpSalt: Buffer.alloc(14),
      rtcpAuthKey: Buffer.alloc(20),
    };
    const segmentLength = 1044512;
    const packet = Buffer.alloc(12 + segmentLength);
    packet[0] = 0x80; // seq 0, SSRC 0, zero payload: the ciphertext is the keystream
    const sealed = new SrtpSendContext(SRTP_AES128_CM_HMAC_SHA1_80, keys).protectRtp(packet);
    const keystream = sealed.subarray(12, 12 + segmentLength);
    assert.deepEqual(keystream.subarray(0, 48), hex('E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB 41E95B3BB0A2E8DD477901E4FCA894C0'));
    assert.deepEqual(keystream.subarray(-48), hex('EC8CDF7398607CB0F2D21675EA9EA1E4 362B7C3C6773516318A077D7FC5073AE 6A2CC3787889374FBEB4C81B17BA6C44'));
  });

  // libsrtp's test/srtp_driver.c reference packets, keyed with the RFC 3711 B.3 master key.
  const master = { key: hex('E1F97A0D3E018BE0D64FA32C06DE4139'), salt: hex('0EC675AD498AFEEBB6960B3AABE6') };
  const plainRtp = hex('800f1234decafbadcafebabe abababababababababababababababab');
  const protectedRtp = hex('800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb');
  const plainRtcp = hex('81c8000bcafebabe abababababababababababababababab');
  const protectedRtcp = hex('81c8000bcafebabe 7128035be487b9bdbef89041f977a5a8 80000001 993e08cd54d6c1230798');

  test('libsrtp reference RTP packet', () => {
    assert.deepEqual(SrtpSendContext.fromMasterKey(SRTP_AES128_CM_HMAC_SHA1_80, master).protectRtp(plainRtp), protectedRtp);
    assert.deepEqual(SrtpReceiveContext.fromMasterKey(SRTP_AES128_CM_HMAC_SHA1_80, master).unprotectRtp(protectedRtp), plainRtp);
  });

  test('libsrtp reference RTCP packet (SRTCP index 1, E set)', () => {
    assert.deepEqual(SrtpSendContext.fromMasterKey(SRTP_AES128_CM_HMAC_SHA1_80, master).protectRtcp(plainRtcp), protectedRtcp);
    assert.deepEqual(SrtpReceiveContext.fromMasterKey(SRTP_AES128_CM_HMAC_SHA1_80, master).unprotectRtcp(protectedRtcp), plainRtcp);
  });

  test('unencrypted SRTCP (E clear) is accepted when authentic', () => {
    const keys = deriveSrtpSessionKeys(SRTP_AES128_CM_HMAC_SHA1_80, master);
    const body = Buffer.concat([plainRtcp, hex('00000007')]);
    const tag = createHmac('sha1', keys.rtcpAuthKey).update(body).digest().subarray(0, 10);
    const receiver = new SrtpReceiveContext(SRTP_AES128_CM_HMAC_SHA1_80, keys);
    assert.deepEqual(receiver.unprotectRtcp(Buffer.concat([body, tag])), plainRtcp);
    const forged = Buffer.concat([body, tag]);
    forged[9]! ^= 1;
    assert.equal(new SrtpReceiveContext(SRTP_AES128_CM_HMAC_SHA1_80, keys).unprotectRtcp(forged), undefined);
  });
});

describe('AEAD_AES_128_GCM vectors (RFC 7714)', () => {
  // §16 and §17 give session keys directly: key 000102…0f, salt "Quid pro quo".
  const keys: SrtpSessionKeys = {
    rtpKey: hex('000102030405060708090a0b0c0d0e0f'),
    rtpSalt: hex('517569642070726f2071756f'),
    rtpAuthKey: Buffer.alloc(0),
    rtcpKey: hex('000102030405060708090a0b0c0d0e0f'),
    rtcpSalt: hex('517569642070726f2071756f'),
    rtcpAuthKey: Buffer.alloc(0),
  };
  const plainRtp = hex(`8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973 20646976 69736120 696e2070 61727465 73207472 6573`);
  const protectedRtp = hex(`8040f17b 8041f8d3 5501a0b2
    f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5 0d294e6f 42a5f47a 51c7d19b 36de3adf 8833
    899d7f27 beb16a91 52cf765e e4390cce`);
  const plainRtcp = hex(`81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 4c756e61
    deadbeef deadbeef deadbeef deadbeef deadbeef`);
  const protectedRtcp = hex(`81c8000d 4d617273
    63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7 6c06f32d c676a5f1 730d6fda 4ce09b46 86303ded
    0bb9275b c84aa458 96cf4d2f c5abf872 45d9eade 800005d4`);

  test('§16.1.1 RTP encryption', () => {
    assert.deepEqual(new SrtpSendContext(SRTP_AEAD_AES_128_GCM, keys).protectRtp(plainRtp), protectedRtp);
    assert.deepEqual(new SrtpReceiveContext(SRTP_AEAD_AES_128_GCM, keys).unprotectRtp(protectedRtp), plainRtp);
  });

  test('§16.1.1 IV, checked against the packet with node crypto directly', () => {
    // IV = (0x0000 | SSRC | ROC | SEQ) XOR salt = 51753c6580c2726f20718414 (RFC 7714 §16.1.1).
    const cipher = createCipheriv('aes-128-gcm', keys.rtpKey, hex('51753c6580c2726f20718414'));
    cipher.setAAD(plainRtp.subarray(0, 12));
    const body = Buffer.concat([cipher.update(plainRtp.subarray(12)), cipher.final(), cipher.getAuthTag()]);
    assert.deepEqual(body, protectedRtp.subarray(12));
  });

  test('§17.1 RTCP encryption (SRTCP index 0x5d4)', () => {
    const sender = new SrtpSendContext(SRTP_AEAD_AES_128_GCM, keys);
    for (let index = 1; index < 0x5d4; index++) sender.protectRtcp(plainRtcp);
    assert.deepEqual(sender.protectRtcp(plainRtcp), protectedRtcp);
    assert.deepEqual(new SrtpReceiveContext(SRTP_AEAD_AES_128_GCM, keys).unprotectRtcp(protectedRtcp), plainRtcp);
  });

  test('unencrypted SRTCP (E clear): whole packet as AAD, tag, then index', () => {
    const indexWord = hex('000005d5');
    const iv = hex('517524055203726f207170bb');
    iv[11]! ^= 0xd4 ^ 0xd5; // index 0x5d5 instead of 0x5d4
    const cipher = createCipheriv('aes-128-gcm', keys.rtcpKey, iv);
    cipher.setAAD(Buffer.concat([plainRtcp, indexWord]));
    cipher.final();
    const packet = Buffer.concat([plainRtcp, cipher.getAuthTag(), indexWord]);
    assert.deepEqual(new SrtpReceiveContext(SRTP_AEAD_AES_128_GCM, keys).unprotectRtcp(packet), plainRtcp);
    packet[12]! ^= 1;
    assert.equal(new SrtpReceiveContext(SRTP_AEAD_AES_128_GCM, keys).unprotectRtcp(packet), undefined);
  });
});

for (const profile of SRTP_PROFILES) {
  describe(`${profile.name} round trips`, () => {
    test('RTP protect → unprotect gives back the packet, in both directions', () => {
      const { server, client } = pair(profile);
      for (const packet of [
        rtpPacket(1),
        rtpPacket(2, { payload: Buffer.alloc(0) }),
        rtpPacket(3, { csrcs: 3, payload: randomBytes(1200) }),
        rtpPacket(4, { extension: hex('10ff0000 22aabb00'), marker: true }),
      ]) {
        const sealed = server.protectRtp(packet);
        assert.equal(sealed.length, packet.length + profile.authTagLength);
        const headerLength = 12 + (packet[0]! & 0x0f) * 4 + (packet[0]! & 0x10 ? 4 + 8 : 0);
        assert.deepEqual(sealed.subarray(0, headerLength), packet.subarray(0, headerLength), 'header stays in clear');
        if (packet.length > headerLength) assert.notDeepEqual(sealed.subarray(headerLength, packet.length), packet.subarray(headerLength));
        assert.deepEqual(client.unprotectRtp(sealed), packet);
        assert.deepEqual(server.unprotectRtp(client.protectRtp(packet)), packet);
      }
    });

    test('the input packet is not modified', () => {
      const { server } = pair(profile);
      const packet = rtpPacket(7, { payload: randomBytes(100) });
      const copy = Buffer.from(packet);
      server.protectRtp(packet);
      assert.deepEqual(packet, copy);
    });

    test('any flipped bit makes the packet fail authentication', () => {
      const { server, client } = pair(profile);
      const sealed = server.protectRtp(rtpPacket(10, { payload: randomBytes(40) }));
      for (let i = 0; i < sealed.length; i++) {
        const tampered = Buffer.from(sealed);
        tampered[i]! ^= 0x01 << (i % 8);
        assert.equal(client.unprotectRtp(tampered), undefined, `byte ${i}`);
      }
      assert.ok(client.unprotectRtp(sealed), 'failed attempts leave the state intact');
    });

    test('the wrong key fails authentication', () => {
      const { server } = pair(profile);
      const { client: stranger } = pair(profile);
      assert.equal(stranger.unprotectRtp(server.protectRtp(rtpPacket(1))), undefined);
      assert.equal(stranger.unprotectRtcp(server.protectRtcp(rtcpPacket())), undefined);
    });

    test('replayed and too-old packets are rejected, reordered ones within 64 accepted', () => {
      const { server, client } = pair(profile);
      const sealed = new Map<number, Buffer>();
      for (let seq = 1000; seq < 1200; seq++) sealed.set(seq, server.protectRtp(rtpPacket(seq)));
      const get = (seq: number): Buffer => sealed.get(seq)!;

      assert.ok(client.unprotectRtp(get(1100)));
      assert.equal(client.unprotectRtp(get(1100)), undefined, 'duplicate');
      assert.ok(client.unprotectRtp(get(1099)), 'one behind');
      assert.ok(client.unprotectRtp(get(1037)), '63 behind');
      assert.equal(client.unprotectRtp(get(1036)), undefined, '64 behind');
      assert.equal(client.unprotectRtp(get(1037)), undefined, 'duplicate of a late one');
      assert.ok(client.unprotectRtp(get(1150)), 'jump ahead');
      assert.ok(client.unprotectRtp(get(1101)), '49 behind the new highest');
      assert.equal(client.unprotectRtp(get(1099)), undefined, 'already received before the jump');
      assert.equal(client.unprotectRtp(get(1086)), undefined, 'fell out of the window');
      assert.ok(client.unprotectRtp(get(1199)));
      assert.equal(client.unprotectRtp(get(1150)), undefined, 'still remembered after a 49 shift');
      assert.equal(client.unprotectRtp(get(1101)), undefined, 'out of the window now');
    });

    test('sequence numbers wrapping 65535 → 0 keep working, including a late packet from before the wrap', () => {
      const { server, client } = pair(profile);
      const sealed: Buffer[] = [];
      for (let n = 0; n < 40; n++) sealed.push(server.protectRtp(rtpPacket((65520 + n) & 0xffff)));
      // Deliver in order except that 65534 arrives after 0 and 1.
      const order = sealed.map((_, i) => i);
      const late = order.splice(14, 1)[0]!; // seq 65534
      order.splice(17, 0, late);
      for (const i of order) assert.deepEqual(client.unprotectRtp(sealed[i]!), rtpPacket((65520 + i) & 0xffff), `seq ${(65520 + i) & 0xffff}`);
      // Several wraps.
      for (let n = 40; n < 3 * 65536; n += 1000) {
        const packet = rtpPacket((65520 + n) & 0xffff);
        assert.deepEqual(client.unprotectRtp(server.protectRtp(packet)), packet, `n ${n}`);
      }
    });

    test('after a wrap, packets carry ROC 1: a fresh receiver (ROC 0) cannot decrypt them', () => {
      const material = randomBytes(srtpKeyingMaterialLength(profile));
      const server = SrtpSession.fromDtls(material, profile, 'server');
      server.protectRtp(rtpPacket(65535));
      const afterWrap = server.protectRtp(rtpPacket(0));
      assert.equal(SrtpSession.fromDtls(material, profile, 'client').unprotectRtp(afterWrap), undefined);
    });

    test('SSRCs have independent state', () => {
      const { server, client } = pair(profile);
      const a = server.protectRtp(rtpPacket(5, { ssrc: 1 }));
      const b = server.protectRtp(rtpPacket(5, { ssrc: 2 }));
      assert.ok(client.unprotectRtp(a));
      assert.ok(client.unprotectRtp(b));
      assert.equal(client.unprotectRtp(b), undefined);
    });

    test('RTCP round trip, tamper and replay', () => {
      const { server, client } = pair(profile);
      const packet = rtcpPacket();
      const first = server.protectRtcp(packet);
      const second = server.protectRtcp(packet);
      assert.equal(first.length, packet.length + 4 + profile.authTagLength);
      assert.notDeepEqual(first, second, 'each packet has its own index');
      assert.deepEqual(first.subarray(0, 8), packet.subarray(0, 8));
      assert.deepEqual(client.unprotectRtcp(second), packet);
      assert.deepEqual(client.unprotectRtcp(first), packet, 'reordered');
      assert.equal(client.unprotectRtcp(first), undefined, 'replayed');
      for (let i = 0; i < first.length; i++) {
        const tampered = Buffer.from(server.protectRtcp(packet));
        tampered[i]! ^= 0x80;
        assert.equal(client.unprotectRtcp(tampered), undefined, `byte ${i}`);
      }
      assert.deepEqual(server.unprotectRtcp(client.protectRtcp(rtcpPacket(0x55667788, 0x01))), rtcpPacket(0x55667788, 0x01));
    });

    test('garbage never throws and never authenticates', () => {
      const { server, client } = pair(profile);
      const valid = server.protectRtp(rtpPacket(1, { payload: randomBytes(60) }));
      const validRtcp = server.protectRtcp(rtcpPacket());
      for (let length = 0; length < valid.length; length++) assert.equal(client.unprotectRtp(valid.subarray(0, length)), undefined);
      for (let length = 0; length < validRtcp.length; length++) assert.equal(client.unprotectRtcp(validRtcp.subarray(0, length)), undefined);
      for (let round = 0; round < 5000; round++) {
        const garbage = randomBytes(round % 200);
        if (round % 2 && garbage.length) garbage[0] = 0x80 | (garbage[0]! & 0x3f);
        assert.equal(client.unprotectRtp(garbage), undefined);
        assert.equal(client.unprotectRtcp(garbage), undefined);
      }
      // A CSRC count or extension length pointing past the end.
      assert.equal(client.unprotectRtp(hex('8f6f0001 00000000 11223344 00000000000000000000000000000000')), undefined);
      assert.equal(client.unprotectRtp(hex('906f0001 00000000 11223344 bede00ff 00000000000000000000000000000000')), undefined);
    });

    test('protect refuses packets that are not RTP/RTCP', () => {
      const { server } = pair(profile);
      assert.throws(() => server.protectRtp(Buffer.alloc(8)), RangeError);
      assert.throws(() => server.protectRtp(hex('00000000 00000000 00000000')), RangeError);
      assert.throws(() => server.protectRtcp(Buffer.alloc(4)), RangeError);
    });
  });
}

describe('interoperability with werift', async () => {
  type Werift = {
    SrtpSession: typeof import('werift-dtls/lib/rtp/src/srtp/srtp.js').SrtpSession;
    SrtcpSession: typeof import('werift-dtls/lib/rtp/src/srtp/srtcp.js').SrtcpSession;
    RtpPacket: typeof import('werift-dtls/lib/rtp/src/rtp/rtp.js').RtpPacket;
  };
  let werift: Werift | undefined;
  try {
    const [srtp, srtcp, rtp] = await Promise.all([
      import('werift-dtls/lib/rtp/src/srtp/srtp.js'),
      import('werift-dtls/lib/rtp/src/srtp/srtcp.js'),
      import('werift-dtls/lib/rtp/src/rtp/rtp.js'),
    ]);
    werift = { SrtpSession: srtp.SrtpSession, SrtcpSession: srtcp.SrtcpSession, RtpPacket: rtp.RtpPacket };
  } catch {
    werift = undefined;
  }

  for (const profile of SRTP_PROFILES) {
    test(`${profile.name}: werift's output unprotects with ours and vice versa`, { skip: werift === undefined && 'werift-dtls not installed' }, () => {
      const { SrtpSession: WeriftSrtp, SrtcpSession: WeriftSrtcp, RtpPacket } = werift!;
      const material = randomBytes(srtpKeyingMaterialLength(profile));
      const ours = SrtpSession.fromDtls(material, profile, 'server');
      const client = srtpKeysFromDtls(material, profile, 'client');
      const config = {
        profile: profile.id,
        keys: { localMasterKey: client.local.key, localMasterSalt: client.local.salt, remoteMasterKey: client.remote.key, remoteMasterSalt: client.remote.salt },
      };
      const theirs = new WeriftSrtp(config);
      const theirsRtcp = new WeriftSrtcp(config);

      // Across a sequence number wrap, so both sides must agree on ROC.
      for (let n = 0; n < 300; n++) {
        const seq = (65400 + n) & 0xffff;
        const packet = rtpPacket(seq, { payload: randomBytes(20 + (n % 50)), csrcs: n % 3 });
        const parsed = RtpPacket.deSerialize(packet);
        const fromWerift = theirs.encrypt(parsed.payload, parsed.header);
        assert.deepEqual(ours.unprotectRtp(fromWerift), packet, `werift → ours, seq ${seq}`);
        const fromUs = ours.protectRtp(packet);
        assert.deepEqual(theirs.decrypt(fromUs), packet, `ours → werift, seq ${seq}`);
      }
      for (let n = 0; n < 10; n++) {
        const packet = rtcpPacket(0x0badcafe, n);
        assert.deepEqual(ours.unprotectRtcp(theirsRtcp.encrypt(packet)), packet, 'werift → ours, RTCP');
        assert.deepEqual(theirsRtcp.decrypt(ours.protectRtcp(packet)), packet, 'ours → werift, RTCP');
      }
    });
  }
});
