import assert from 'node:assert/strict';
import { constants as cryptoConstants, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { describe, test } from 'node:test';
import { createSelfSignedCertificate } from '../../src/media/protocol/dtls/certificate.ts';
import {
  aesGcmKeyBlock,
  exportKeyingMaterial,
  extendedMasterSecret,
  finishedVerifyData,
  masterSecret,
  prfSha256,
} from '../../src/media/protocol/dtls/keying.ts';
import { AesGcmRecordProtection } from '../../src/media/protocol/dtls/record-protection.ts';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

describe('TLS 1.2 key schedule', () => {
  test('P_SHA256 matches the published TLS 1.2 PRF test vector', () => {
    // The widely used PRF test vector for TLS 1.2 with SHA-256 (100 bytes of output).
    const output = prfSha256(hex('9b be 43 6b a9 40 f0 17 b1 76 52 84 9a 71 db 35'), 'test label', hex('a0 ba 9f 93 6c da 31 18 27 a6 f7 96 ff d5 19 8c'), 100);
    assert.deepEqual(
      output,
      hex(`e3 f2 29 ba 72 7b e1 7b 8d 12 26 20 55 7c d4 53 c2 aa b2 1d 07 c3 d4 95 32 9b 52 d4 e6 1e db 5a
           6b 30 17 91 e9 0d 35 c9 c9 a4 6b 4e 14 ba f9 af 0f a0 22 f7 07 7d ef 17 ab fd 37 97 c0 56 4b
           ab 4f bc 91 66 6e 9d ef 9b 97 fc e3 4f 79 67 89 ba a4 80 82 d1 22 ee 42 c5 a7 2e 5a 51 10 ff
           f7 01 87 34 7b 66`),
    );
    // Shorter outputs are prefixes of longer ones.
    assert.deepEqual(prfSha256(hex('9bbe436ba940f017b17652849a71db35'), 'test label', hex('a0ba9f936cda311827a6f796ffd5198c'), 7), output.subarray(0, 7));
  });

  test('master secrets, verify_data, key block and exporter are the PRF with their labels and seeds', () => {
    const premaster = randomBytes(32);
    const clientRandom = randomBytes(32);
    const serverRandom = randomBytes(32);
    const transcript = randomBytes(900);
    const master = masterSecret(premaster, clientRandom, serverRandom);
    assert.equal(master.length, 48);
    assert.deepEqual(master, prfSha256(premaster, 'master secret', Buffer.concat([clientRandom, serverRandom]), 48));
    assert.equal(extendedMasterSecret(premaster, transcript).length, 48);
    assert.notDeepEqual(extendedMasterSecret(premaster, transcript), master);
    assert.equal(finishedVerifyData(master, 'client', transcript).length, 12);
    assert.notDeepEqual(finishedVerifyData(master, 'client', transcript), finishedVerifyData(master, 'server', transcript));

    const block = prfSha256(master, 'key expansion', Buffer.concat([serverRandom, clientRandom]), 40);
    const keys = aesGcmKeyBlock(master, clientRandom, serverRandom);
    assert.deepEqual(Buffer.concat([keys.client.key, keys.server.key, keys.client.salt, keys.server.salt]), block);

    const exported = exportKeyingMaterial(master, 'EXTRACTOR-dtls_srtp', clientRandom, serverRandom, 56);
    assert.deepEqual(exported, prfSha256(master, 'EXTRACTOR-dtls_srtp', Buffer.concat([clientRandom, serverRandom]), 56));
    const withContext = exportKeyingMaterial(master, 'EXPORTER-test', clientRandom, serverRandom, 32, Buffer.from('ctx'));
    assert.deepEqual(withContext, prfSha256(master, 'EXPORTER-test', Buffer.concat([clientRandom, serverRandom, hex('0003'), Buffer.from('ctx')]), 32));
  });

  test("agrees with OpenSSL's TLS 1.2: key block, record protection, both Finished and the exporter", async () => {
    // node:tls speaks TLS 1.2 with the suite our DTLS server uses, and with our certificate. Its keylog gives
    // the client random and master secret; the server random is read off the wire by a relay.
    const { certificateDer, privateKey } = createSelfSignedCertificate();
    const certPem = `-----BEGIN CERTIFICATE-----\n${certificateDer.toString('base64')}\n-----END CERTIFICATE-----\n`;
    const server = tls.createServer({
      cert: certPem,
      key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
      minVersion: 'TLSv1.2',
      maxVersion: 'TLSv1.2',
      ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256',
      // No NewSessionTicket: the server's flights are then exactly the ones our DTLS server sends.
      secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
    });
    const serverSide = new Promise<tls.TLSSocket>((resolve) => server.once('secureConnection', resolve));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');

    const fromServer: Buffer[] = [];
    const fromClient: Buffer[] = [];
    const relay = net.createServer((client) => {
      const upstream = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
      client.on('data', (chunk: Buffer) => {
        fromClient.push(chunk);
        upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => {
        fromServer.push(chunk);
        client.write(chunk);
      });
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    relay.listen(0, '127.0.0.1');
    await once(relay, 'listening');

    const client = tls.connect({ port: (relay.address() as net.AddressInfo).port, host: '127.0.0.1', rejectUnauthorized: false, maxVersion: 'TLSv1.2' });
    const keylog = new Promise<string>((resolve) => client.once('keylog', (line: Buffer) => resolve(line.toString())));
    await once(client, 'secureConnect');
    const peer = await serverSide;
    try {
      assert.equal(client.getCipher().standardName, 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256');
      const [, clientRandomHex, masterHex] = (await keylog).trim().split(' ');
      const clientRandom = hex(clientRandomHex!);
      const master = hex(masterHex!);
      await delay(20); // the relay's last writes
      const serverRecords = tlsRecords(Buffer.concat(fromServer));
      const clientRecords = tlsRecords(Buffer.concat(fromClient));
      const serverHello = serverRecords[0]!;
      assert.equal(serverHello.type, 22, 'a handshake record');
      assert.equal(serverHello.body[0], 2, 'ServerHello first');
      const serverRandom = serverHello.body.subarray(6, 38);

      // Each side's Finished is the first record it protects (sequence number 0 after its ChangeCipherSpec),
      // under its half of our key block: as server we open the client's, as client the server's.
      const keys = aesGcmKeyBlock(master, clientRandom, serverRandom);
      const asServer = new AesGcmRecordProtection(keys.server, keys.client);
      const asClient = new AesGcmRecordProtection(keys.client, keys.server);
      const openFinished = (records: TlsRecord[], protection: AesGcmRecordProtection) => {
        const record = records[records.findIndex((r) => r.type === 20) + 1]!;
        const plaintext = protection.open({ contentType: record.type, version: record.version, epoch: 0, sequenceNumber: 0, body: record.body });
        assert.ok(plaintext, 'the Finished record opens with our key block');
        return plaintext;
      };
      /** The handshake messages a side sent in the clear, before its ChangeCipherSpec. */
      const plainHandshake = (records: TlsRecord[]) =>
        Buffer.concat(records.slice(0, records.findIndex((r) => r.type === 20)).filter((r) => r.type === 22).map((r) => r.body));
      const clientHandshake = plainHandshake(clientRecords);
      const clientHelloLength = 4 + clientHandshake.readUIntBE(1, 3);
      // Hashed in order: ClientHello, the server's first flight, ClientKeyExchange, then the client's Finished.
      const beforeClientFinished = Buffer.concat([clientHandshake.subarray(0, clientHelloLength), plainHandshake(serverRecords), clientHandshake.subarray(clientHelloLength)]);
      const clientFinished = openFinished(clientRecords, asServer);
      const finishedHeader = hex('14 00 00 0c'); // TLS's 4-byte handshake header: Finished, 12 bytes
      assert.deepEqual(clientFinished, Buffer.concat([finishedHeader, finishedVerifyData(master, 'client', beforeClientFinished)]));
      assert.deepEqual(
        openFinished(serverRecords, asClient),
        Buffer.concat([finishedHeader, finishedVerifyData(master, 'server', Buffer.concat([beforeClientFinished, clientFinished]))]),
      );

      assert.deepEqual(
        exportKeyingMaterial(master, 'EXTRACTOR-dtls_srtp', clientRandom, serverRandom, 60),
        // No context at all (RFC 5764's use), which @types/node cannot express.
        client.exportKeyingMaterial(60, 'EXTRACTOR-dtls_srtp', undefined as unknown as Buffer),
      );
      const context = Buffer.from('some context');
      assert.deepEqual(
        exportKeyingMaterial(master, 'EXPORTER-amphi-test', clientRandom, serverRandom, 32, context),
        peer.exportKeyingMaterial(32, 'EXPORTER-amphi-test', context),
      );
    } finally {
      client.destroy();
      peer.destroy();
      relay.close();
      server.close();
    }
  });
});

interface TlsRecord {
  type: number;
  version: number;
  body: Buffer;
}

/** TLS (not DTLS) records: type, version, 16-bit length. */
function tlsRecords(stream: Buffer): TlsRecord[] {
  const records: TlsRecord[] = [];
  for (let offset = 0; offset + 5 <= stream.length; offset += 5 + stream.readUInt16BE(offset + 3)) {
    records.push({ type: stream[offset]!, version: stream.readUInt16BE(offset + 1), body: stream.subarray(offset + 5, offset + 5 + stream.readUInt16BE(offset + 3)) });
  }
  return records;
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('AES-128-GCM record protection', () => {
  const clientKeys = { key: randomBytes(16), salt: randomBytes(4) };
  const serverKeys = { key: randomBytes(16), salt: randomBytes(4) };
  const server = new AesGcmRecordProtection(serverKeys, clientKeys);
  const client = new AesGcmRecordProtection(clientKeys, serverKeys);
  const header = { contentType: 23, version: 0xfefd, epoch: 1, sequenceNumber: 0x0102030405 };

  test('what one side seals the other opens, nonce and tag included', () => {
    const plaintext = Buffer.from('application data');
    const body = server.seal(header, plaintext);
    assert.equal(body.length, 8 + plaintext.length + 16);
    assert.deepEqual(body.subarray(0, 8), hex('0001 000102030405'), 'explicit nonce: epoch and sequence number');
    assert.deepEqual(client.open({ ...header, body }), plaintext);
    assert.equal(server.open({ ...header, body }), undefined, 'our own write key does not open');
    assert.deepEqual(client.open({ ...header, body: server.seal(header, Buffer.alloc(0)) }), Buffer.alloc(0));
  });

  test('a changed byte, header field or truncation does not open', () => {
    const body = server.seal(header, Buffer.from('0123456789abcdef0123'));
    for (let i = 0; i < body.length; i++) {
      const changed = Buffer.from(body);
      changed[i]! ^= 0x01;
      assert.equal(client.open({ ...header, body: changed }), undefined, `byte ${i}`);
    }
    assert.equal(client.open({ ...header, sequenceNumber: header.sequenceNumber + 1, body }), undefined);
    assert.equal(client.open({ ...header, epoch: 2, body }), undefined);
    assert.equal(client.open({ ...header, contentType: 22, body }), undefined);
    assert.equal(client.open({ ...header, version: 0xfeff, body }), undefined);
    for (const length of [0, 8, 23]) assert.equal(client.open({ ...header, body: body.subarray(0, length) }), undefined);
  });
});
