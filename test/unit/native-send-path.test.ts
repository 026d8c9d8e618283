import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { rtpHeaderLength } from '../../src/media/protocol/rtp.ts';
import { SRTP_PROFILES, SrtpReceiveContext, SrtpSendContext, type SrtpProfile } from '../../src/media/protocol/srtp.ts';
import { AesCmHmacSha1Transform } from '../../src/media/protocol/srtp/aes-cm-transform.ts';
import { AesGcmTransform } from '../../src/media/protocol/srtp/aes-gcm-transform.ts';
import { deriveSrtpSessionKeys } from '../../src/media/protocol/srtp/key-derivation.ts';
import { DESCRIPTOR_WORDS, DescriptorWord, loadNativeAddon, nativeChoiceFromEnv, type NativeAddon } from '../../src/media/transport/native-addon.ts';
import { NativeRtpSender } from '../../src/media/transport/native-rtp-sender.ts';
import { createRtpSender } from '../../src/media/transport/rtp-send-path.ts';

/*
 * The native send path (native/, built by `npm ci`; alone: `npm run build:native`) against the TypeScript path:
 * the same SRTP bytes for the same packets and keys, through a real socket; the fallback without the addon.
 */

const loaded = loadNativeAddon(undefined, 'auto');
const addon = (): NativeAddon => {
  assert.ok(loaded.addon, `the native addon must be built for these tests (npm run build:native): ${loaded.reason}`);
  return loaded.addon;
};

function rtpPacket(seq: number, payloadLength: number, options: { ssrc?: number; csrcs?: number; extensionWords?: number } = {}): Buffer {
  const csrcs = options.csrcs ?? 0;
  const extensionWords = options.extensionWords ?? 0;
  const headerLength = 12 + csrcs * 4 + (extensionWords > 0 ? 4 + extensionWords * 4 : 0);
  const packet = randomBytes(headerLength + payloadLength);
  packet[0] = 0x80 | csrcs | (extensionWords > 0 ? 0x10 : 0);
  packet[1] = 96;
  packet.writeUInt16BE(seq & 0xffff, 2);
  packet.writeUInt32BE(options.ssrc ?? 0x5eed0001, 8);
  if (extensionWords > 0) {
    const at = 12 + csrcs * 4;
    packet.writeUInt16BE(0xbede, at);
    packet.writeUInt16BE(extensionWords, at + 2);
  }
  return packet;
}

/** Packets that cover what a sealer must get right: header shapes, payload sizes, a sequence wrap, reordering. */
function coveringPackets(): Buffer[] {
  const packets: Buffer[] = [];
  const sizes = [0, 1, 15, 16, 17, 160, 1200];
  let i = 0;
  // From 65530 over the wrap (ROC 0 → 1), with one packet from before the wrap arriving late.
  for (const seq of [65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 65529, 2, 3, 4, 5]) {
    packets.push(rtpPacket(seq, sizes[i % sizes.length]!, { csrcs: i % 3, extensionWords: i % 4 }));
    i++;
  }
  // A second stream on the same context, keeping its own index.
  for (let seq = 100; seq < 110; seq++) packets.push(rtpPacket(seq, 1100, { ssrc: 0x5eed0002, extensionWords: 1 }));
  return packets;
}

function twinContexts(profile: SrtpProfile): { typescript: SrtpSendContext; native: SrtpSendContext; receiver: SrtpReceiveContext } {
  const master = { key: randomBytes(profile.keyLength), salt: randomBytes(profile.saltLength) };
  return {
    typescript: SrtpSendContext.fromMasterKey(profile, master),
    native: SrtpSendContext.fromMasterKey(profile, master),
    receiver: SrtpReceiveContext.fromMasterKey(profile, master),
  };
}

async function boundSocket(): Promise<dgram.Socket> {
  // Room for a whole batch (250 datagrams of 1.1 kB) before the test reads any of it.
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return socket;
}

/** Resolves with the first `count` datagrams `socket` receives, in order. */
function collect(socket: dgram.Socket, count: number): Promise<Buffer[]> {
  const received: Buffer[] = [];
  return new Promise((resolve) => {
    const onMessage = (message: Buffer): void => {
      received.push(message);
      if (received.length === count) {
        socket.off('message', onMessage);
        resolve(received);
      }
    };
    socket.on('message', onMessage);
  });
}

describe('the native send path', () => {
  let sending: dgram.Socket;
  let receiving: dgram.Socket;
  let remote: { address: string; port: number };

  before(async () => {
    [sending, receiving] = await Promise.all([boundSocket(), boundSocket()]);
    remote = { address: '127.0.0.1', port: (receiving.address() as AddressInfo).port };
  });
  after(() => {
    sending.close();
    receiving.close();
  });

  for (const profile of SRTP_PROFILES) {
    test(`${profile.name}: sent natively in one batch, byte for byte what the TypeScript path protects`, async () => {
      const sender = createRtpSender(sending, undefined, loaded);
      assert.equal(sender.path, 'native');
      const { typescript, native, receiver } = twinContexts(profile);
      const packets = coveringPackets();
      const expected = packets.map((packet) => typescript.protectRtp(packet));
      const arriving = collect(receiving, packets.length);
      const lengths = packets.map((packet) => {
        const length = sender.send(native, packet, remote);
        packet.fill(0); // the caller may reuse its buffer at once (the forwarding code's scratch does)
        return length;
      });
      assert.deepEqual(lengths, expected.map((datagram) => datagram.length));
      const received = await arriving;
      assert.deepEqual((sender as NativeRtpSender).stats, { batches: 1, sent: packets.length, dropped: 0 });
      for (let i = 0; i < packets.length; i++) assert.ok(received[i]!.equals(expected[i]!), `datagram ${i} differs`);
      // And a receiver takes them (the late one from before the wrap too).
      assert.ok(received.every((datagram) => receiver.unprotectRtp(datagram) !== undefined));
    });

    test(`${profile.name}: the addon seals any ROC as the TypeScript transform does`, () => {
      const keys = deriveSrtpSessionKeys(profile, { key: randomBytes(profile.keyLength), salt: randomBytes(profile.saltLength) });
      const transform = profile.authTagLength === 16 ? new AesGcmTransform(keys) : new AesCmHmacSha1Transform(keys);
      const sealer = addon().createSealer(profile.id, keys.rtpKey, keys.rtpSalt, keys.rtpAuthKey);
      assert.equal(sealer.tagLength, profile.authTagLength);
      const rocs = [0, 1, 0xffff, 0x10000, 0x12345678, 0xfffffffe, 0xffffffff];
      const packets = rocs.map((_, i) => rtpPacket(0xfff0 + i, 300 + i, { csrcs: 1, extensionWords: 2 }));
      const arena = Buffer.alloc(8192);
      const descriptors = new Uint32Array(rocs.length * DESCRIPTOR_WORDS);
      let offset = 0;
      packets.forEach((packet, i) => {
        packet.copy(arena, offset);
        const at = i * DESCRIPTOR_WORDS;
        descriptors[at + DescriptorWord.sealerSlot] = sealer.slot;
        descriptors[at + DescriptorWord.offset] = offset;
        descriptors[at + DescriptorWord.length] = packet.length;
        descriptors[at + DescriptorWord.headerLength] = rtpHeaderLength(packet, 0);
        descriptors[at + DescriptorWord.roc] = rocs[i]!;
        descriptors[at + DescriptorWord.port] = 9;
        offset += packet.length + sealer.tagLength;
      });
      assert.equal(addon().sealBatch(-1, arena, descriptors, rocs.length), rocs.length);
      offset = 0;
      packets.forEach((packet, i) => {
        const expected = transform.sealRtp(packet, rtpHeaderLength(packet, 0), packet.readUInt32BE(8), rocs[i]!, packet.readUInt16BE(2));
        assert.ok(arena.subarray(offset, offset + expected.length).equals(expected), `ROC ${rocs[i]} differs`);
        assert.equal(descriptors[i * DESCRIPTOR_WORDS + DescriptorWord.status], 0);
        offset += expected.length;
      });
    });
  }

  test('a stream may move between the two paths: the context keeps one index for both', async () => {
    const nativeSender = createRtpSender(sending, undefined, loaded);
    const typescriptSender = createRtpSender(sending, undefined, loadNativeAddon(undefined, 'off'));
    assert.deepEqual([nativeSender.path, typescriptSender.path], ['native', 'typescript']);
    const { typescript, native, receiver } = twinContexts(SRTP_PROFILES[1]!);
    // Over a wrap, so a path that kept its own index would seal the packets after it under ROC 0.
    const sequence = [65534, 65535, 0, 1, 2, 3];
    const expected: Buffer[] = [];
    const arriving = collect(receiving, sequence.length);
    sequence.forEach((seq, i) => {
      const packet = rtpPacket(seq, 50);
      expected.push(typescript.protectRtp(packet));
      (i % 2 === 0 ? nativeSender : typescriptSender).send(native, packet, remote);
      nativeSender.flush();
    });
    // dgram sends on a later tick, so the two paths' packets may interleave otherwise: match them by sequence number.
    const received = new Map((await arriving).map((datagram) => [datagram.readUInt16BE(2), datagram]));
    sequence.forEach((seq, i) => assert.ok(received.get(seq)?.equals(expected[i]!), `packet ${seq} differs`));
    assert.ok([...received.values()].every((datagram) => receiver.unprotectRtp(datagram) !== undefined));
  });

  test('one turn is one batch: 250 viewers of one packet leave in one call, 300 in two', async () => {
    for (const viewers of [250, 300]) {
      const sender = createRtpSender(sending, undefined, loaded) as NativeRtpSender;
      const contexts = Array.from({ length: viewers }, () => twinContexts(SRTP_PROFILES[0]!));
      const arriving = collect(receiving, viewers);
      const packet = rtpPacket(7, 1100);
      for (const { native } of contexts) sender.send(native, packet, remote);
      const received = await arriving;
      assert.deepEqual(sender.stats, { batches: viewers <= 256 ? 1 : 2, sent: viewers, dropped: 0 });
      // Each viewer's datagram opens under its own keys only.
      received.forEach((datagram, i) => assert.ok(contexts[i]!.receiver.unprotectRtp(datagram), `viewer ${i}`));
    }
  });

  test("a pipe's sender carries 16 packets a batch: 40 leave in three calls", async () => {
    const sender = createRtpSender(sending, undefined, loaded, 16) as NativeRtpSender;
    const { native, receiver } = twinContexts(SRTP_PROFILES[0]!);
    const arriving = collect(receiving, 40);
    for (let seq = 0; seq < 40; seq++) sender.send(native, rtpPacket(seq, 1100), remote);
    const received = await arriving;
    assert.deepEqual(sender.stats, { batches: 3, sent: 40, dropped: 0 });
    assert.ok(received.every((datagram) => receiver.unprotectRtp(datagram) !== undefined));
  });

  test('nothing is sent on a descriptor once its socket closed, even from a batch gathered before', async () => {
    const socket = await boundSocket();
    const sender = createRtpSender(socket, undefined, loaded) as NativeRtpSender;
    assert.equal(sender.path, 'native');
    sender.send(twinContexts(SRTP_PROFILES[0]!).native, rtpPacket(1, 100), remote);
    socket.close(); // without sender.close(): the flush at the end of this turn must notice by itself
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(sender.stats, { batches: 1, sent: 0, dropped: 1 });
  });

  test('bad arguments to the addon are TypeErrors, a bad descriptor an error status; the thread goes on', () => {
    const native = addon();
    assert.throws(() => native.createSealer(0x99, randomBytes(16), randomBytes(12), Buffer.alloc(0)), TypeError);
    assert.throws(() => native.createSealer(7, randomBytes(15), randomBytes(12), Buffer.alloc(0)), TypeError);
    assert.throws(() => native.sealBatch(-1, Buffer.alloc(10), new Uint32Array(8), 2), /count exceeds/);
    assert.throws(() => native.sealBatch(-1, Buffer.alloc(10), new Int32Array(8) as unknown as Uint32Array, 1), TypeError);
    const sealer = native.createSealer(7, randomBytes(16), randomBytes(12), Buffer.alloc(0));
    const descriptors = new Uint32Array(3 * DESCRIPTOR_WORDS);
    const set = (i: number, slot: number, offset: number, length: number, headerLength: number): void => {
      descriptors.set([slot, offset, length, headerLength, 0, 0x7f000001, 9, 0], i * DESCRIPTOR_WORDS);
    };
    set(0, sealer.slot + 1000, 0, 100, 12); // no such sealer
    set(1, sealer.slot, 4000, 100, 12); // outside the arena
    set(2, sealer.slot, 0, 100, 101); // header longer than the packet
    assert.equal(native.sealBatch(-1, Buffer.alloc(4096), descriptors, 3), 0);
    for (let i = 0; i < 3; i++) assert.equal(descriptors[i * DESCRIPTOR_WORDS + DescriptorWord.status], 22 /* EINVAL */);
  });
});

describe('the TypeScript fallback', () => {
  test('without the addon (its path pointed at nothing) a socket gets the TypeScript sender, which still sends SRTP', async () => {
    const missing = loadNativeAddon('/nonexistent/amphi_native.node', 'auto');
    assert.equal(missing.addon, undefined);
    assert.match(missing.reason!, /not built/);
    const [sending, receiving] = await Promise.all([boundSocket(), boundSocket()]);
    try {
      const sender = createRtpSender(sending, undefined, missing);
      assert.equal(sender.path, 'typescript');
      const { typescript, native, receiver } = twinContexts(SRTP_PROFILES[1]!);
      const packet = rtpPacket(42, 500);
      const arriving = collect(receiving, 1);
      sender.send(native, packet, { address: '127.0.0.1', port: (receiving.address() as AddressInfo).port });
      const [datagram] = await arriving;
      assert.ok(datagram!.equals(typescript.protectRtp(packet)));
      assert.ok(receiver.unprotectRtp(datagram!)?.equals(packet));
    } finally {
      sending.close();
      receiving.close();
    }
  });

  test('AMPHI_NATIVE: off forces the fallback, on makes a missing addon an error, anything else is reported', () => {
    assert.deepEqual(loadNativeAddon(undefined, 'off'), { addon: undefined, reason: 'AMPHI_NATIVE=off' });
    assert.throws(() => loadNativeAddon('/nonexistent/amphi_native.node', 'on'), /AMPHI_NATIVE=on but the native addon is not built/);
    assert.equal(nativeChoiceFromEnv('off'), 'off');
    assert.equal(nativeChoiceFromEnv(undefined), 'auto');
    assert.equal(nativeChoiceFromEnv('yes please'), undefined);
  });

  test('a file that is not this addon, or no addon at all, is refused with its reason', () => {
    const directory = mkdtempSync(join(tmpdir(), 'amphi-native-'));
    try {
      const otherModule = join(directory, 'other.cjs');
      writeFileSync(otherModule, 'module.exports = { descriptorWords: 4 };');
      assert.match(loadNativeAddon(otherModule, 'auto').reason!, /is not this version's native addon/);
      const garbage = join(directory, 'garbage.node');
      writeFileSync(garbage, randomBytes(64));
      assert.match(loadNativeAddon(garbage, 'auto').reason!, /^the native addon failed to load/);
    } finally {
      rmSync(directory, { recursive: true });
    }
  });
});
