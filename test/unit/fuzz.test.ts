import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeFrame, encodeFrame, FrameError, FrameType } from '../../src/signaling/frames.ts';
import { parseOffer, SdpError } from '../../src/media/protocol/sdp.ts';
import { answerBindingRequest, parseStun } from '../../src/media/protocol/stun.ts';
import { audioLevel, findExtension, isRtcp, rtpHeaderLength, rtpPayloadEnd, visitRtcp } from '../../src/media/protocol/rtp.ts';
import { parseRecords } from '../../src/media/protocol/dtls/record.ts';
import { HandshakeReassembler, parseHandshakeFragments } from '../../src/media/protocol/dtls/fragments.ts';
import { decodeClientHello } from '../../src/media/protocol/dtls/hello-messages.ts';
import { DtlsServerSession } from '../../src/media/protocol/dtls/server-session.ts';
import { getDtlsIdentity } from '../../src/media/protocol/dtls/identity.ts';
import { startTestAmphi, TEST_KEY, type TestAmphi } from '../support/helpers.ts';
import { rawRequest } from '../support/raw-request.ts';

/**
 * Fuzzing with a fixed time budget per target: mutations of valid inputs (bit flips, truncation, splices, length
 * fields overwritten, repeated bytes) and random bytes go through every parser that reads what a stranger sends.
 * A target passes when nothing throws except its own typed error, nothing hangs (each call is timed against a
 * generous bound) and memory stays bounded. The seed is printed, so a failure can be replayed with AMPHI_FUZZ_SEED.
 */
const BUDGET_MS = Number(process.env.AMPHI_FUZZ_MS ?? 1_500);
const SEED = Number(process.env.AMPHI_FUZZ_SEED ?? Date.now() % 2 ** 31);
/** One input taking this long means a pathological path (the slowest legitimate parse is well under 50 ms). */
const MAX_CALL_MS = 500;

/** A small deterministic generator (mulberry32), so a seed replays a run. */
function random(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n: number) => Math.floor(next() * n) };
}

function mutate(rng: ReturnType<typeof random>, seed: Buffer): Buffer {
  const input = Buffer.from(seed);
  switch (rng.int(7)) {
    case 0: // bit flips
      for (let i = rng.int(8) + 1; i > 0 && input.length > 0; i--) input[rng.int(input.length)]! ^= 1 << rng.int(8);
      return input;
    case 1: // truncation
      return input.subarray(0, rng.int(input.length + 1));
    case 2: // a splice of random bytes
      return Buffer.concat([input.subarray(0, rng.int(input.length + 1)), randomBytes(rng, rng.int(64)), input.subarray(rng.int(input.length + 1))]);
    case 3: // a 16-bit or 32-bit field made huge or zero
      if (input.length >= 4) {
        const at = rng.int(input.length - 3);
        if (rng.int(2) === 0) input.writeUInt16BE(rng.int(2) === 0 ? 0xffff : 0, at);
        else input.writeUInt32BE(rng.int(2) === 0 ? 0xffffffff : 0, at);
      }
      return input;
    case 4: // a byte repeated many times
      return Buffer.concat([input, Buffer.alloc(rng.int(4096), rng.int(256))]);
    case 5: // random bytes
      return randomBytes(rng, rng.int(1500));
    default: // the seed itself, doubled
      return Buffer.concat([input, input]);
  }
}

function randomBytes(rng: ReturnType<typeof random>, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = rng.int(256);
  return bytes;
}

/** Runs `target` on mutated seeds until the budget is spent; returns how many inputs it took. */
async function fuzz(name: string, seeds: Buffer[], target: (input: Buffer) => unknown, expected: (error: unknown) => boolean = () => false): Promise<number> {
  const rng = random(SEED ^ [...name].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 16777619), 2166136261));
  const heapBefore = process.memoryUsage().heapUsed;
  const deadline = Date.now() + BUDGET_MS;
  let count = 0;
  while (Date.now() < deadline) {
    for (let i = 0; i < 50; i++, count++) {
      const input = mutate(rng, seeds[rng.int(seeds.length)]!);
      const started = performance.now();
      try {
        await target(input);
      } catch (error) {
        if (!expected(error)) throw new Error(`${name} (seed ${SEED}) threw on input ${input.toString('base64')}: ${(error as Error).stack}`);
      }
      const took = performance.now() - started;
      assert.ok(took < MAX_CALL_MS, `${name} (seed ${SEED}) took ${took.toFixed(0)} ms on input ${input.toString('base64').slice(0, 200)}`);
    }
  }
  global.gc?.();
  const grownMiB = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
  assert.ok(grownMiB < 256, `${name}: heap grew by ${grownMiB.toFixed(0)} MiB`);
  return count;
}

const offers = readdirSync(path.join(import.meta.dirname, '../support/fixtures/offers')).map(
  (file) => (JSON.parse(readFileSync(path.join(import.meta.dirname, '../support/fixtures/offers', file), 'utf8')) as { sdpOffer: string }).sdpOffer,
);

describe(`fuzzing the parsers of untrusted input (seed ${SEED}, ${BUDGET_MS} ms each)`, () => {
  test('signaling frames', async () => {
    const seeds = [
      encodeFrame({ type: FrameType.JOIN, join: { protocolVersion: 2, flags: 2 } }, Date.now()),
      encodeFrame({ type: FrameType.SUBSCRIBE, sub: { duplex: 1, sdpOffer: offers[0]!, receiveStreamIds: [1, 2, 3] } }, Date.now()),
      encodeFrame({ type: FrameType.DATA_MESSAGE, dataMessage: { messages: [{ topic: 'chat', data: Buffer.from('hello'), lifetimeMs: 1000 }] } }, Date.now()),
      encodeFrame({ type: FrameType.PRIMARY_MEETING_JOIN, primaryMeetingJoin: { credentials: { attendeeId: 'a', joinToken: 'b' } } }, Date.now()),
    ];
    const count = await fuzz('frames', seeds, (input) => decodeFrame(input), (error) => error instanceof FrameError);
    assert.ok(count > 100);
  });

  test('SDP offers', async () => {
    const seeds = offers.map((offer) => Buffer.from(offer));
    await fuzz('sdp', seeds, (input) => parseOffer(input.toString('utf8')), (error) => error instanceof SdpError);
  });

  test('STUN messages, and binding requests answered', async () => {
    const request = Buffer.from(
      '000100582112a4420102030405060708090a0b0c00060009616263643a656667680000000024000400000001802a000800000000000000010008001401020304050607080910111213141516171819202180280004deadbeef',
      'hex',
    );
    const credentials = { localUfrag: 'abcd', localPassword: 'password-of-twenty-two' };
    await fuzz('stun', [request], (input) => {
      parseStun(input);
      answerBindingRequest(input, credentials, { address: '127.0.0.1', port: 5000 });
    });
  });

  test('RTP and RTCP', async () => {
    const rtp = Buffer.from('9060000100000001000000019000000210ff000000000000deadbeef', 'hex');
    const rtcp = Buffer.from('81c90007000000010000000200000000000000000000000000000000000000008fce0005000000010000000052454d4201015f4000000001', 'hex');
    const visitor = new Proxy({}, { get: () => () => undefined });
    await fuzz('rtp', [rtp, rtcp], (input) => {
      if (isRtcp(input)) visitRtcp(input, visitor as Parameters<typeof visitRtcp>[1]);
      else {
        rtpHeaderLength(input);
        rtpPayloadEnd(input);
        findExtension(input, 1);
        audioLevel(input, 1);
      }
    });
  });

  describe('DTLS', () => {
    let identity: Awaited<ReturnType<typeof getDtlsIdentity>>;
    before(async () => {
      identity = await getDtlsIdentity();
    });

    test('records, handshake fragments, ClientHello', async () => {
      // A ClientHello record as a browser sends it (DTLS 1.2, one fragment).
      const hello = Buffer.from(
        '16fefd000000000000000000a1010000950000000000000095fefd' + '00'.repeat(32) + '000014c02bc02fc00ac009c013c014009c002f0035000a01000057000d0012001004030804040105030805050108060601000b00020100000a000a0008001d00170018001900170000ff01000100000e0009000600010002000500',
        'hex',
      );
      const reassembler = new HandshakeReassembler();
      await fuzz('dtls-parse', [hello], (input) => {
        const { records } = parseRecords(input);
        for (const record of records) {
          const { fragments } = parseHandshakeFragments(record.body);
          for (const fragment of fragments) {
            reassembler.add(fragment, record.epoch);
            decodeClientHello(fragment.data);
          }
        }
      });
    });

    test('a server session fed junk fails cleanly, never throws', async () => {
      const sessions: DtlsServerSession[] = [];
      try {
        const hello = Buffer.from('16fefd000000000000000000a1010000950000000000000095fefd' + '00'.repeat(32) + '000014c02bc02fc00ac009', 'hex');
        let session = new DtlsServerSession({ identity, expectedRemoteFingerprint: identity.fingerprint, send: () => {} });
        sessions.push(session);
        let fed = 0;
        await fuzz('dtls-session', [hello], (input) => {
          // A fresh session now and then, so inputs reach the first flight's parsing too.
          if (++fed % 100 === 0) {
            session.close();
            session = new DtlsServerSession({ identity, expectedRemoteFingerprint: identity.fingerprint, send: () => {} });
            sessions.push(session);
          }
          session.handleDatagram(input);
        });
      } finally {
        for (const session of sessions) session.close();
      }
    });
  });

  describe('the API', () => {
    let server: TestAmphi;
    before(async () => {
      server = await startTestAmphi();
    });
    after(() => server.stop());

    test('JSON bodies and SigV4 headers: every answer is a well-formed HTTP response, the server stays up', async () => {
      const body = Buffer.from(JSON.stringify({ ClientRequestToken: 'fuzz-token-1', MediaRegion: 'us-east-1', ExternalMeetingId: 'fuzz', Tags: [{ Key: 'a', Value: 'b' }] }));
      let answered = 0;
      const budget = Math.min(BUDGET_MS, 1_500);
      const rng = random(SEED);
      const deadline = Date.now() + budget;
      while (Date.now() < deadline) {
        const mutated = mutate(rng, body);
        const signed = rng.int(2) === 0;
        const headers: Record<string, string> = signed ? {} : { authorization: `AWS4-HMAC-SHA256 Credential=${TEST_KEY.accessKeyId}/${mutate(rng, Buffer.from('20261203/us-east-1/chime/aws4_request')).toString('latin1').replace(/[^\x20-\x7e]/g, 'x')}, SignedHeaders=host, Signature=${'0'.repeat(64)}` };
        const response = await rawRequest(server.amphi.url, { method: 'POST', path: '/meetings', body: mutated, headers, sign: signed });
        assert.ok(response.status >= 200 && response.status < 600, `status ${response.status}`);
        answered++;
      }
      assert.ok(answered > 10);
      const health = await fetch(`${server.amphi.url}/healthz`);
      assert.equal(health.status, 200, 'the server is still healthy');
    });
  });
});
