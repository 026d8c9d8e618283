import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { CipherSuiteList, DtlsClient, HashAlgorithm, SignatureAlgorithm } from 'werift-dtls/lib/dtls/src/index.js';
import { ClientHello } from 'werift-dtls/lib/dtls/src/handshake/message/client/hello.js';
import { DtlsRandom } from 'werift-dtls/lib/dtls/src/handshake/random.js';
import { createPlaintext } from 'werift-dtls/lib/dtls/src/record/builder.js';
import { DtlsPlaintext } from 'werift-dtls/lib/dtls/src/record/message/plaintext.js';
import type { Transport as WeriftTransport } from 'werift-dtls/lib/common/src/transport.js';
import {
  DtlsError,
  DtlsServerSession,
  SrtpProtectionProfile,
  certificateFingerprint,
  createDtlsIdentity,
  getDtlsIdentity,
  isDtlsDatagram,
  type DtlsCloseReason,
  type DtlsFingerprint,
  type DtlsIdentity,
  type SrtpKeyingMaterial,
} from '../../src/media/protocol/dtls.ts';

// The browser side is werift-dtls' own DtlsClient with its own certificate, standing in for Chrome.

const CLIENT_SIGNATURE = { hash: HashAlgorithm.sha256_4, signature: SignatureAlgorithm.ecdsa_3 } as const;
const ANY_ADDRESS = { address: '127.0.0.1', family: 'IPv4', port: 0 };
const PEER_ADDRESS = ['127.0.0.1', 0] as const;

let serverIdentity: DtlsIdentity;
let clientIdentity: DtlsIdentity;
let strangerIdentity: DtlsIdentity;

before(async () => {
  [serverIdentity, clientIdentity, strangerIdentity] = await Promise.all([
    getDtlsIdentity(),
    createDtlsIdentity(),
    createDtlsIdentity(),
  ]);
});

type Middlebox = (datagram: Buffer) => Buffer[];
const passThrough: Middlebox = (datagram) => [datagram];

interface Recorder {
  connected: SrtpKeyingMaterial[];
  errors: DtlsError[];
  closed: DtlsCloseReason[];
  applicationData: Buffer[];
  sent: Buffer[];
}

function newRecorder(): Recorder {
  return { connected: [], errors: [], closed: [], applicationData: [], sent: [] };
}

/** Records what the session tells its owner; answers the session. */
function recordEvents(session: DtlsServerSession, recorder: Recorder): DtlsServerSession {
  session.on('connected', (keys) => recorder.connected.push(keys));
  session.on('failed', (error) => recorder.errors.push(error));
  session.on('closed', (reason) => recorder.closed.push(reason));
  session.on('applicationData', (data) => recorder.applicationData.push(data));
  return session;
}

interface Pair {
  session: DtlsServerSession;
  client: DtlsClient;
  recorder: Recorder;
  /** Resolves when the werift client reports connected. */
  clientConnected: Promise<void>;
  /** Resolves at the first of the server's `connected` / `failed`. */
  serverSettled: Promise<void>;
  startedAt: number;
}

interface PairOptions {
  expectedRemoteFingerprint?: DtlsFingerprint;
  clientCertificate?: { certificatePem: string; privateKeyPem: string };
  clientProfiles?: SrtpProtectionProfile[];
  serverProfiles?: SrtpProtectionProfile[];
  toServer?: Middlebox;
  toClient?: Middlebox;
  retransmitTimeoutMs?: number;
  cookieExchange?: boolean;
}

/** A DtlsServerSession and a werift DtlsClient joined by an in-memory, asynchronous "network". */
function connectInMemory(options: PairOptions = {}): Pair {
  const recorder = newRecorder();
  const toServer = options.toServer ?? passThrough;
  const toClient = options.toClient ?? passThrough;
  let settleServer: () => void = () => {};
  const serverSettled = new Promise<void>((resolve) => (settleServer = resolve));

  const clientTransport: WeriftTransport = {
    type: 'memory',
    address: ANY_ADDRESS,
    closed: false,
    onData: () => {},
    send: async (datagram) => {
      for (const out of toServer(Buffer.from(datagram))) setImmediate(() => session.handleDatagram(out));
    },
    close: async () => {},
  };
  const session: DtlsServerSession = new DtlsServerSession({
    identity: serverIdentity,
    expectedRemoteFingerprint: options.expectedRemoteFingerprint ?? clientIdentity.fingerprint,
    srtpProfiles: options.serverProfiles,
    retransmitTimeoutMs: options.retransmitTimeoutMs,
    cookieExchange: options.cookieExchange,
    send: (datagram) => {
      recorder.sent.push(datagram);
      for (const out of toClient(datagram)) setImmediate(() => clientTransport.onData(out, PEER_ADDRESS));
    },
  });
  recordEvents(session, recorder);
  session.on('connected', () => settleServer());
  session.on('failed', () => settleServer());

  const certificate = options.clientCertificate ?? clientIdentity;
  const client = new DtlsClient({
    transport: clientTransport,
    cert: certificate.certificatePem,
    key: certificate.privateKeyPem,
    signatureHash: CLIENT_SIGNATURE,
    srtpProfiles: options.clientProfiles ?? [SrtpProtectionProfile.AES128_CM_HMAC_SHA1_80, SrtpProtectionProfile.AEAD_AES_128_GCM],
    extendedMasterSecret: true,
  });
  const clientConnected = new Promise<void>((resolve) => client.onConnect.once(() => resolve()));
  const startedAt = performance.now();
  client.connect().catch(() => {});
  return { session, client, recorder, clientConnected, serverSettled, startedAt };
}

/**
 * werift's client retransmits from an uncancellable timers/promises loop; pushing its flight
 * counter past the end makes that loop finish at its next wake-up instead of running for ~30 s.
 */
function stopClient(client: DtlsClient): void {
  client.dtls.flight = 1000;
  client.close();
}

function assertKeysCrosswise(server: SrtpKeyingMaterial, client: DtlsClient, keyLength: number, saltLength: number): void {
  const clientKeys = client.extractSessionKeys(keyLength, saltLength);
  assert.equal(server.local.key.length, keyLength);
  assert.equal(server.local.salt.length, saltLength);
  assert.equal(server.remote.key.length, keyLength);
  assert.equal(server.remote.salt.length, saltLength);
  assert.deepEqual(server.remote.key, clientKeys.localKey);
  assert.deepEqual(server.remote.salt, clientKeys.localSalt);
  assert.deepEqual(server.local.key, clientKeys.remoteKey);
  assert.deepEqual(server.local.salt, clientKeys.remoteSalt);
  assert.notDeepEqual(server.local.key, server.remote.key);
}

async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// -- record helpers for hand-built traffic ---------------------------------------------------------

function record(contentType: number, epoch: number, sequenceNumber: number, body: Buffer): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt8(contentType, 0);
  header.writeUInt8(0xfe, 1);
  header.writeUInt8(0xfd, 2);
  header.writeUInt16BE(epoch, 3);
  header.writeUIntBE(sequenceNumber, 5, 6);
  header.writeUInt16BE(body.length, 11);
  return Buffer.concat([header, body]);
}

function handshakeFragment(msgType: number, messageSeq: number, body: Buffer, offset = 0, length = body.length, total = body.length): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt8(msgType, 0);
  header.writeUIntBE(total, 1, 3);
  header.writeUInt16BE(messageSeq, 4);
  header.writeUIntBE(offset, 6, 3);
  header.writeUIntBE(length, 9, 3);
  return Buffer.concat([header, body.subarray(offset, offset + length)]);
}

/** Re-sends every epoch-0 handshake record as `pieces` fragment records, one per datagram, last piece first. */
function fragmentingMiddlebox(pieces: number): Middlebox {
  let recordSeq = 1000;
  return (datagram) => {
    if (datagram[0] !== 22 || datagram.readUInt16BE(3) !== 0) return [datagram];
    const body = datagram.subarray(13, 13 + datagram.readUInt16BE(11));
    const msgType = body.readUInt8(0);
    const messageSeq = body.readUInt16BE(4);
    const message = body.subarray(12);
    if (msgType !== 1) return [datagram];
    const size = Math.ceil(message.length / pieces);
    const out: Buffer[] = [];
    for (let offset = 0; offset < message.length; offset += size) {
      const length = Math.min(size, message.length - offset);
      out.push(record(22, 0, recordSeq++, handshakeFragment(msgType, messageSeq, message, offset, length, message.length)));
    }
    return out.reverse();
  };
}

/** A ClientHello record like werift's client would send, built synchronously by hand. */
function clientHelloRecord(cookie: Buffer, random: DtlsRandom, messageSeq: number): Buffer {
  const extensionsSource = new DtlsClient({
    transport: { type: 'none', address: ANY_ADDRESS, closed: false, onData: () => {}, send: async () => {}, close: async () => {} },
    cert: clientIdentity.certificatePem,
    key: clientIdentity.privateKeyPem,
    signatureHash: CLIENT_SIGNATURE,
    srtpProfiles: [SrtpProtectionProfile.AEAD_AES_128_GCM],
    extendedMasterSecret: true,
  });
  const hello = new ClientHello({ major: 0xfe, minor: 0xfd }, random, Buffer.alloc(0), cookie, CipherSuiteList, [0], extensionsSource.extensions);
  hello.messageSeq = messageSeq;
  return record(22, 0, messageSeq, hello.toFragment().serialize());
}

function cookieFromHelloVerifyRequest(datagram: Buffer): Buffer {
  assert.equal(datagram[0], 22, 'a handshake record');
  assert.equal(datagram[13], 3, 'a HelloVerifyRequest');
  const body = datagram.subarray(13 + 12);
  const cookieLength = body.readUInt8(2);
  return Buffer.from(body.subarray(3, 3 + cookieLength));
}

function activeTimeouts(): number {
  return process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;
}

// -------------------------------------------------------------------------------------------------

describe('DTLS identity', () => {
  test('is an ECDSA P-256 self-signed certificate with an SDP sha-256 fingerprint', async () => {
    const certificate = new X509Certificate(serverIdentity.certificatePem);
    assert.equal(certificate.publicKey.asymmetricKeyType, 'ec');
    assert.equal(certificate.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.ok(certificate.verify(certificate.publicKey), 'self-signed');
    assert.match(serverIdentity.sdpFingerprint, /^sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.equal(serverIdentity.fingerprint.value, certificate.fingerprint256);
    assert.deepEqual(certificateFingerprint(serverIdentity.certificateDer), serverIdentity.fingerprint);
    assert.equal(await getDtlsIdentity(), serverIdentity, 'one identity per process');
  });

  test('isDtlsDatagram follows RFC 7983', () => {
    assert.equal(isDtlsDatagram(Buffer.from([19])), false);
    assert.equal(isDtlsDatagram(Buffer.from([20])), true);
    assert.equal(isDtlsDatagram(Buffer.from([63])), true);
    assert.equal(isDtlsDatagram(Buffer.from([64])), false);
    assert.equal(isDtlsDatagram(Buffer.alloc(0)), false);
  });

  test('an unsupported fingerprint algorithm is refused up front', () => {
    assert.throws(
      () =>
        new DtlsServerSession({
          identity: serverIdentity,
          expectedRemoteFingerprint: { algorithm: 'md5', value: 'AA' },
          send: () => {},
        }),
      (error: unknown) => error instanceof DtlsError && error.code === 'unsupported-fingerprint',
    );
  });
});

describe('DtlsServerSession timers', () => {
  // Hand-built hellos keep this synchronous, so no other test's timers can come or go meanwhile.
  test('retransmits flight 4 until answered and leaves no timer behind on close', async () => {
    const recorder = newRecorder();
    const baseline = activeTimeouts();
    const session = recordEvents(
      new DtlsServerSession({
        identity: serverIdentity,
        expectedRemoteFingerprint: clientIdentity.fingerprint,
        send: (datagram) => recorder.sent.push(datagram),
        retransmitTimeoutMs: 20,
      }),
      recorder,
    );
    assert.equal(session.state, 'new');
    const hello = clientHelloRecord(Buffer.alloc(0), new DtlsRandom(), 0);
    session.handleDatagram(hello);
    assert.equal(recorder.sent.length, 1, 'flight 4 at once, packed into one datagram');
    const flight4 = recorder.sent[0]!;
    assert.equal(flight4[13], 2, 'starts with ServerHello');
    assert.equal(flight4.readUInt16BE(17), 0, 'ServerHello is our message 0');
    assert.ok(flight4.length <= 1200);
    assert.equal(session.state, 'connecting');
    assert.equal(session.srtpProfile, SrtpProtectionProfile.AEAD_AES_128_GCM);
    assert.equal(activeTimeouts(), baseline + 2, 'handshake deadline and retransmission timer');

    // The client repeating its hello gets flight 4 again at once.
    session.handleDatagram(hello);
    assert.equal(recorder.sent.length, 2);
    assert.deepEqual(recorder.sent[1], flight4);

    await delay(100);
    assert.ok(recorder.sent.length >= 4, 'our own timer retransmitted');
    assert.ok(recorder.sent.slice(2).every((datagram) => datagram.equals(flight4)));

    session.close();
    assert.equal(activeTimeouts(), baseline, 'close cancelled every timer');
    assert.equal(session.state, 'closed');
    assert.deepEqual(recorder.closed, ['local']);
    session.close();
    assert.deepEqual(recorder.closed, ['local'], 'close is idempotent');
    const sentAtClose = recorder.sent.length;
    await delay(60);
    assert.equal(recorder.sent.length, sentAtClose, 'nothing sent after close');
  });

  test('cookieExchange answers first hellos with a HelloVerifyRequest and no state', () => {
    const recorder = newRecorder();
    const session = recordEvents(
      new DtlsServerSession({
        identity: serverIdentity,
        expectedRemoteFingerprint: clientIdentity.fingerprint,
        send: (datagram) => recorder.sent.push(datagram),
        cookieExchange: true,
      }),
      recorder,
    );
    const random = new DtlsRandom();
    session.handleDatagram(clientHelloRecord(Buffer.alloc(0), random, 0));
    session.handleDatagram(clientHelloRecord(Buffer.alloc(0), random, 0));
    assert.equal(recorder.sent.length, 2);
    const cookie = cookieFromHelloVerifyRequest(recorder.sent[0]!);
    assert.equal(cookie.length, 20);
    assert.deepEqual(cookieFromHelloVerifyRequest(recorder.sent[1]!), cookie, 'the same cookie again');

    session.handleDatagram(clientHelloRecord(Buffer.alloc(20, 1), random, 1));
    assert.equal(cookieFromHelloVerifyRequest(recorder.sent[2]!).length, 20, 'a wrong cookie gets another HelloVerifyRequest');

    session.handleDatagram(clientHelloRecord(cookie, random, 2));
    const flight4 = recorder.sent[3]!;
    assert.equal(flight4[13], 2, 'ServerHello');
    assert.equal(flight4.readUInt16BE(17), 1, 'ServerHello follows the HelloVerifyRequest as message 1');
    session.close();
  });

  test('throwing callbacks and a failing socket neither escape nor stop the session', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      let sendCalls = 0;
      const session = new DtlsServerSession({
        identity: serverIdentity,
        expectedRemoteFingerprint: clientIdentity.fingerprint,
        send: () => {
          sendCalls++;
          throw new Error('socket closed');
        },
        handshakeTimeoutMs: 20,
      });
      session.on('failed', () => {
        throw new Error('a buggy failed listener');
      });
      const heardFailure: string[] = [];
      session.on('failed', (error) => heardFailure.push(error.code));
      assert.doesNotThrow(() => session.handleDatagram(clientHelloRecord(Buffer.alloc(0), new DtlsRandom(), 0)));
      assert.equal(sendCalls, 1);
      assert.equal(session.state, 'connecting');
      await delay(60);
      assert.equal(session.state, 'failed');
      assert.ok(warnings.some((warning) => warning.message === 'a buggy failed listener'));
      assert.deepEqual(heardFailure, ['handshake-timeout'], 'the next listener heard it all the same');
    } finally {
      process.off('warning', onWarning);
    }
  });

  test('a silent client fails the handshake after handshakeTimeoutMs', async () => {
    const recorder = newRecorder();
    const session = recordEvents(
      new DtlsServerSession({
        identity: serverIdentity,
        expectedRemoteFingerprint: clientIdentity.fingerprint,
        send: (datagram) => recorder.sent.push(datagram),
        handshakeTimeoutMs: 30,
      }),
      recorder,
    );
    await delay(80);
    assert.equal(session.state, 'failed');
    assert.deepEqual(recorder.errors.map((error) => error.code), ['handshake-timeout']);
    assert.deepEqual(recorder.closed, ['error']);
  });
});

describe('DtlsServerSession handshake with werift DtlsClient', () => {
  test('connects, prefers AEAD_AES_128_GCM and exports matching SRTP keys', async (t) => {
    const pair = connectInMemory();
    await withDeadline(Promise.all([pair.clientConnected, pair.serverSettled]), 5000, 'handshake');
    const elapsed = performance.now() - pair.startedAt;
    try {
      assert.deepEqual(pair.recorder.errors, []);
      assert.equal(pair.recorder.connected.length, 1);
      const keys = pair.recorder.connected[0]!;
      // The client listed CM_HMAC_SHA1_80 first; our preference wins.
      assert.equal(keys.profile.id, SrtpProtectionProfile.AEAD_AES_128_GCM);
      assert.equal(pair.session.srtpProfile, SrtpProtectionProfile.AEAD_AES_128_GCM);
      assert.equal(pair.client.srtp.srtpProfile, SrtpProtectionProfile.AEAD_AES_128_GCM);
      assertKeysCrosswise(keys, pair.client, 16, 12);
      assert.equal(pair.session.state, 'connected');
      assert.equal(pair.session.extendedMasterSecret, true);
      assert.deepEqual(pair.session.remoteCertificate, clientIdentity.certificateDer);
      assert.deepEqual(pair.client.remoteCertificate, serverIdentity.certificateDer);
      t.diagnostic(`in-memory handshake: ${elapsed.toFixed(1)} ms end to end, ${pair.session.handshakeDurationMs?.toFixed(1)} ms server side`);
      assert.ok(elapsed < 1000, `handshake took ${elapsed} ms`);
    } finally {
      pair.session.close();
      stopClient(pair.client);
    }
  });

  test('also connects with the cookie exchange on', async () => {
    const pair = connectInMemory({ cookieExchange: true });
    await withDeadline(Promise.all([pair.clientConnected, pair.serverSettled]), 5000, 'handshake');
    try {
      assert.deepEqual(pair.recorder.errors, []);
      assert.equal(pair.recorder.sent[0]![13], 3, 'HelloVerifyRequest first');
      assertKeysCrosswise(pair.recorder.connected[0]!, pair.client, 16, 12);
    } finally {
      pair.session.close();
      stopClient(pair.client);
    }
  });

  test('falls back to AES128_CM_HMAC_SHA1_80 when the client offers only that', async () => {
    const pair = connectInMemory({ clientProfiles: [SrtpProtectionProfile.AES128_CM_HMAC_SHA1_80] });
    await withDeadline(Promise.all([pair.clientConnected, pair.serverSettled]), 5000, 'handshake');
    try {
      const keys = pair.recorder.connected[0]!;
      assert.equal(keys.profile.id, SrtpProtectionProfile.AES128_CM_HMAC_SHA1_80);
      assertKeysCrosswise(keys, pair.client, 16, 14);
    } finally {
      pair.session.close();
      stopClient(pair.client);
    }
  });

  test('fails when no SRTP profile is shared', async () => {
    const pair = connectInMemory({
      clientProfiles: [SrtpProtectionProfile.AES128_CM_HMAC_SHA1_80],
      serverProfiles: [SrtpProtectionProfile.AEAD_AES_128_GCM],
    });
    await withDeadline(pair.serverSettled, 5000, 'failure');
    stopClient(pair.client);
    assert.deepEqual(pair.recorder.errors.map((error) => error.code), ['handshake-failure']);
    assert.equal(pair.recorder.connected.length, 0);
    assert.equal(pair.session.state, 'failed');
  });

  test('a certificate that does not match the SDP fingerprint fails without keys', async () => {
    const pair = connectInMemory({ expectedRemoteFingerprint: strangerIdentity.fingerprint });
    await withDeadline(pair.serverSettled, 5000, 'failure');
    await delay(20);
    stopClient(pair.client);
    assert.deepEqual(pair.recorder.errors.map((error) => error.code), ['fingerprint-mismatch']);
    assert.equal(pair.recorder.connected.length, 0);
    assert.equal(pair.client.connected, false, 'our Finished was never sent');
    assert.deepEqual(pair.recorder.closed, ['error']);
    const alert = pair.recorder.sent.at(-1)!;
    assert.deepEqual([alert[0], alert[13], alert[14]], [21, 2, 42], 'fatal bad_certificate alert');
  });

  test("a client presenting someone else's certificate cannot sign for it", async () => {
    // The certificate matches the fingerprint, but the key signing CertificateVerify is another one.
    const pair = connectInMemory({
      clientCertificate: { certificatePem: clientIdentity.certificatePem, privateKeyPem: strangerIdentity.privateKeyPem },
    });
    await withDeadline(pair.serverSettled, 5000, 'failure');
    await delay(20);
    stopClient(pair.client);
    assert.deepEqual(pair.recorder.errors.map((error) => error.code), ['handshake-failure']);
    assert.match(pair.recorder.errors[0]!.message, /CertificateVerify/);
    assert.equal(pair.recorder.connected.length, 0);
    assert.equal(pair.client.connected, false);
  });

  test('survives a ClientHello fragmented into reordered pieces (as Chrome sends large hellos)', async () => {
    const pair = connectInMemory({ toServer: fragmentingMiddlebox(3) });
    // Stray fragments that never complete must not take the reassembly slots the real hello needs.
    for (let seq = 0; seq < 8; seq++) {
      for (const msgType of [1, 11, 16]) {
        pair.session.handleDatagram(record(22, 0, 500 + seq, handshakeFragment(msgType, seq, Buffer.alloc(400, seq), 0, 100, 400 + msgType)));
      }
    }
    await withDeadline(Promise.all([pair.clientConnected, pair.serverSettled]), 5000, 'handshake');
    try {
      assert.equal(pair.recorder.connected.length, 1);
      assertKeysCrosswise(pair.recorder.connected[0]!, pair.client, 16, 12);
    } finally {
      pair.session.close();
      stopClient(pair.client);
    }
  });

  test('duplicated client datagrams neither break the handshake nor connect twice', async () => {
    const pair = connectInMemory({ toServer: (datagram) => [datagram, Buffer.from(datagram)] });
    await withDeadline(Promise.all([pair.clientConnected, pair.serverSettled]), 5000, 'handshake');
    await delay(20);
    try {
      assert.equal(pair.recorder.connected.length, 1);
      assert.deepEqual(pair.recorder.errors, []);
      assertKeysCrosswise(pair.recorder.connected[0]!, pair.client, 16, 12);
    } finally {
      pair.session.close();
      stopClient(pair.client);
    }
  });

  test('recovers a lost flight 4 with our retransmission timer', async (t) => {
    let dropped = false;
    const pair = connectInMemory({
      retransmitTimeoutMs: 100,
      toClient: (datagram) => {
        if (!dropped && datagram[13] === 2) {
          dropped = true;
          return [];
        }
        return [datagram];
      },
    });
    await withDeadline(Promise.all([pair.clientConnected, pair.serverSettled]), 5000, 'handshake');
    const elapsed = performance.now() - pair.startedAt;
    try {
      assert.ok(dropped);
      assert.equal(pair.recorder.connected.length, 1);
      assertKeysCrosswise(pair.recorder.connected[0]!, pair.client, 16, 12);
      t.diagnostic(`handshake with flight 4 lost once: ${elapsed.toFixed(1)} ms`);
    } finally {
      pair.session.close();
      stopClient(pair.client);
    }
  });

  test('resends flight 6 when the client repeats its Finished', async () => {
    let dropped = false;
    const pair = connectInMemory({
      toClient: (datagram) => {
        // Flight 6 is ChangeCipherSpec + Finished in one datagram.
        if (!dropped && datagram[0] === 20) {
          dropped = true;
          return [];
        }
        return [datagram];
      },
    });
    await withDeadline(Promise.all([pair.clientConnected, pair.serverSettled]), 5000, 'handshake');
    try {
      assert.ok(dropped);
      assert.equal(pair.recorder.connected.length, 1, 'connected once');
      assertKeysCrosswise(pair.recorder.connected[0]!, pair.client, 16, 12);
    } finally {
      pair.session.close();
      stopClient(pair.client);
    }
  });

  test('garbage never throws and does not disturb the handshake or the connection', async () => {
    let random = 0x12345678;
    const nextByte = () => {
      random = (Math.imul(random, 1103515245) + 12345) >>> 0;
      return random >>> 24;
    };
    const garbage: Buffer[] = [
      Buffer.alloc(0),
      Buffer.from([20]),
      Buffer.from([22, 0xfe, 0xfd]),
      record(22, 0, 0, Buffer.alloc(0)).subarray(0, 12),
      (() => {
        const header = record(22, 0, 1, Buffer.alloc(4));
        header.writeUInt16BE(0xffff, 11); // claims more than it carries
        return header;
      })(),
      record(22, 0, 2, Buffer.from([1, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4, 5])), // 16 MiB hello
      record(22, 0, 3, handshakeFragment(1, 0, Buffer.from('not a client hello at all'))),
      record(22, 1, 4, Buffer.alloc(40, 7)), // epoch 1 before any keys
      record(22, 7, 5, Buffer.alloc(40, 7)),
      record(21, 0, 6, Buffer.from([9])), // truncated alert
      record(23, 0, 7, Buffer.from('application data in the clear')),
      record(42, 0, 8, Buffer.from('unknown content type')),
      record(20, 0, 9, Buffer.from([1])),
    ];
    for (let i = 0; i < 3000; i++) {
      const length = nextByte() % 160;
      const datagram = Buffer.alloc(Math.max(1, length));
      for (let j = 0; j < datagram.length; j++) datagram[j] = nextByte();
      datagram[0] = 20 + (datagram[0]! % 44);
      if (datagram.length > 2 && i % 2 === 0) datagram[1] = 0xfe; // half of them pass the version check
      garbage.push(datagram);
    }

    const pair = connectInMemory({
      // Garbage goes ahead of every client datagram.
      toServer: (datagram) => [garbage[nextByte() % garbage.length]!, datagram],
    });
    for (const datagram of garbage) assert.doesNotThrow(() => pair.session.handleDatagram(datagram));
    await withDeadline(Promise.all([pair.clientConnected, pair.serverSettled]), 5000, 'handshake');
    try {
      assert.deepEqual(pair.recorder.errors, []);
      assert.equal(pair.recorder.connected.length, 1);
      assertKeysCrosswise(pair.recorder.connected[0]!, pair.client, 16, 12);

      // Once connected, unauthenticated alerts and forged records are ignored too.
      const forged = [
        record(21, 0, 99, Buffer.from([1, 0])), // close_notify in the clear
        record(21, 0, 100, Buffer.from([2, 40])), // fatal alert in the clear
        record(21, 1, 101, Buffer.alloc(26, 1)), // "encrypted" alert that does not authenticate
        record(23, 1, 102, Buffer.alloc(64, 3)),
        record(22, 0, 103, handshakeFragment(1, 9, Buffer.alloc(60))), // renegotiation attempt
        ...garbage,
      ];
      for (const datagram of forged) assert.doesNotThrow(() => pair.session.handleDatagram(datagram));
      assert.equal(pair.session.state, 'connected');
      assert.deepEqual(pair.recorder.closed, []);
      assert.deepEqual(pair.recorder.errors, []);
      assert.ok(pair.session.droppedRecordCount > 0);
    } finally {
      pair.session.close();
      stopClient(pair.client);
    }
  });

  test('carries application data both ways, and close_notify ends the session either way', async () => {
    const pair = connectInMemory();
    await withDeadline(Promise.all([pair.clientConnected, pair.serverSettled]), 5000, 'handshake');
    try {
      const received = new Promise<Buffer>((resolve) => pair.client.onData.once((data) => resolve(data)));
      assert.equal(pair.session.sendApplicationData(Buffer.from('to the browser')), true);
      assert.equal((await withDeadline(received, 1000, 'client data')).toString(), 'to the browser');

      await pair.client.send(Buffer.from('to the server'));
      await delay(10);
      assert.deepEqual(pair.recorder.applicationData.map(String), ['to the server']);

      // The peer's close_notify, encrypted as after any real handshake.
      const [alert] = createPlaintext(pair.client.dtls)([{ type: 21, fragment: Buffer.from([1, 0]) }], ++pair.client.dtls.recordSequenceNumber);
      pair.session.handleDatagram(pair.client.cipher.encryptPacket(alert!).serialize());
      assert.equal(pair.session.state, 'closed');
      assert.deepEqual(pair.recorder.closed, ['peer']);
      assert.equal(pair.session.sendApplicationData(Buffer.from('too late')), false);
    } finally {
      pair.session.close();
      stopClient(pair.client);
    }

    // Our close() sends an encrypted close_notify the client can open.
    const second = connectInMemory();
    await withDeadline(Promise.all([second.clientConnected, second.serverSettled]), 5000, 'handshake');
    second.session.close();
    stopClient(second.client);
    const notify = second.recorder.sent.at(-1)!;
    assert.equal(notify[0], 21);
    assert.equal(notify.readUInt16BE(3), 1, 'epoch 1');
    const opened = second.client.cipher.decryptPacket(DtlsPlaintext.deSerialize(notify));
    assert.deepEqual([...opened], [1, 0]);
    assert.deepEqual(second.recorder.closed, ['local']);
  });
});

describe('DtlsServerSession over loopback UDP', () => {
  const sockets: Socket[] = [];
  after(() => {
    for (const socket of sockets) socket.close();
  });

  test('handshakes through a real UDP socket pair on 127.0.0.1', async (t) => {
    const serverSocket = createSocket('udp4');
    const clientSocket = createSocket('udp4');
    sockets.push(serverSocket, clientSocket);
    serverSocket.bind(0, '127.0.0.1');
    clientSocket.bind(0, '127.0.0.1');
    await Promise.all([once(serverSocket, 'listening'), once(clientSocket, 'listening')]);
    const serverPort = serverSocket.address().port;
    const clientPort = clientSocket.address().port;

    const recorder = newRecorder();
    let settle: () => void = () => {};
    const settled = new Promise<void>((resolve) => (settle = resolve));
    const session = new DtlsServerSession({
      identity: serverIdentity,
      expectedRemoteFingerprint: clientIdentity.fingerprint,
      send: (datagram) => serverSocket.send(datagram, clientPort, '127.0.0.1'),
    });
    recordEvents(session, recorder);
    session.on('connected', () => settle());
    session.on('failed', () => settle());
    // The media worker's demultiplexing, reduced to one peer.
    serverSocket.on('message', (datagram, from) => {
      if (from.port === clientPort && isDtlsDatagram(datagram)) session.handleDatagram(datagram);
    });

    const clientTransport: WeriftTransport = {
      type: 'udp',
      address: ANY_ADDRESS,
      closed: false,
      onData: () => {},
      send: (datagram) =>
        new Promise<void>((resolve) => clientSocket.send(datagram, serverPort, '127.0.0.1', () => resolve())),
      close: async () => {},
    };
    clientSocket.on('message', (datagram) => clientTransport.onData(datagram, PEER_ADDRESS));
    const client = new DtlsClient({
      transport: clientTransport,
      cert: clientIdentity.certificatePem,
      key: clientIdentity.privateKeyPem,
      signatureHash: CLIENT_SIGNATURE,
      srtpProfiles: [SrtpProtectionProfile.AEAD_AES_128_GCM, SrtpProtectionProfile.AES128_CM_HMAC_SHA1_80],
      extendedMasterSecret: true,
    });
    const clientConnected = new Promise<void>((resolve) => client.onConnect.once(() => resolve()));
    const startedAt = performance.now();
    client.connect().catch(() => {});
    await withDeadline(Promise.all([clientConnected, settled]), 5000, 'UDP handshake');
    const elapsed = performance.now() - startedAt;
    try {
      assert.deepEqual(recorder.errors, []);
      const keys = recorder.connected[0]!;
      assert.equal(keys.profile.id, SrtpProtectionProfile.AEAD_AES_128_GCM);
      assertKeysCrosswise(keys, client, 16, 12);
      t.diagnostic(`UDP loopback handshake: ${elapsed.toFixed(1)} ms end to end, ${session.handshakeDurationMs?.toFixed(1)} ms server side`);
    } finally {
      session.close();
      stopClient(client);
    }
  });
});
