import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import { AudioRelay } from '../../src/replication/audio-relay.ts';
import { AudioMixer, MIX_ENCODER_SETTINGS } from '../../src/media/audio/audio-mixer.ts';
import { FrameClock } from '../../src/media/audio/frame-clock.ts';
import { loadOpusBackend } from '../../src/media/audio/opus/backend.ts';
import { OpusCodecPool } from '../../src/media/audio/opus/codec-pool.ts';
import { PipeTransport } from '../../src/media/transport/pipe-transport.ts';
import { PipeSsrc, PrimaryPipeEnd, ReplicaPipeEnd } from '../../src/replication/pipe-ends.ts';
import { MediaRoom } from '../../src/media/sfu/room.ts';
import { rtp } from '../../src/media/protocol/rtp.ts';
import { VideoDownstream, VideoLayer } from '../../src/media/sfu/video-forwarding.ts';

const until = async (predicate: () => boolean, ms = 2000) => {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};
const vp8 = (seq: number, key: boolean) => {
  const packet = Buffer.alloc(200);
  packet[0] = 0x80;
  packet[1] = 96;
  packet.writeUInt16BE(seq, 2);
  packet.writeUInt32BE(seq * 3000, 4);
  packet.writeUInt32BE(0x1234, 8);
  packet[12] = 0x10;
  packet[13] = key ? 0 : 1;
  return packet;
};

let primaryRoom: MediaRoom<AudioMixer>;
let replicaRoom: MediaRoom<AudioRelay>;
let primaryEnd: PrimaryPipeEnd;
let replicaEnd: ReplicaPipeEnd;
let primaryPipe: PipeTransport;
let replicaPipe: PipeTransport;
const demands: number[][] = [];
const clock = new FrameClock();
const codecs = new OpusCodecPool(loadOpusBackend(), MIX_ENCODER_SETTINGS);

before(async () => {
  clock.start();
  primaryRoom = new MediaRoom('primary', new AudioMixer({ codecs }));
  clock.add(primaryRoom.mixer);
  replicaRoom = new MediaRoom('replica', new AudioRelay());
  [primaryPipe, replicaPipe] = await Promise.all([PipeTransport.open('127.0.0.1'), PipeTransport.open('127.0.0.1')]);
  const down = { key: randomBytes(16), salt: randomBytes(12) };
  const up = { key: randomBytes(16), salt: randomBytes(12) };
  primaryPipe.connect({ address: '127.0.0.1', port: replicaPipe.port }, { send: down, receive: up });
  replicaPipe.connect({ address: '127.0.0.1', port: primaryPipe.port }, { send: up, receive: down });
  primaryEnd = new PrimaryPipeEnd(primaryRoom, primaryPipe);
  primaryRoom.adopt('pipe', primaryEnd);
  replicaEnd = new ReplicaPipeEnd(replicaRoom, replicaPipe);
  replicaRoom.adopt('pipe', replicaEnd);
  replicaEnd.on('demand', (streamIds) => {
    demands.push(streamIds);
    primaryEnd.sendStreams(streamIds);
  });
});
after(() => {
  clock.stop();
  clock.remove(primaryRoom.mixer);
  primaryEnd.close();
  replicaEnd.close();
  primaryRoom.close();
  replicaRoom.close();
});

describe('the primary → replica pipe', () => {
  test("the primary's mix reaches every replica listener once through the pipe", async () => {
    const heard: Buffer[][] = [[], []];
    replicaRoom.mixer.addSink({ deliver: (payload) => heard[0]!.push(Buffer.from(payload)) }, 'viewer-a');
    replicaRoom.mixer.addSink({ deliver: (payload) => heard[1]!.push(Buffer.from(payload)) }, 'viewer-b');
    const before = primaryPipe.stats.rtpOut;
    await until(() => heard[0]!.length >= 10 && heard[1]!.length >= 10);
    // The primary's mixer ticks every 20 ms: one packet per frame in the pipe, whatever the number of viewers.
    const frames = heard[0]!.length;
    assert.ok(primaryPipe.stats.rtpOut - before <= frames + 3, `${primaryPipe.stats.rtpOut - before} packets for ${frames} frames`);
    assert.deepEqual(heard[0]!.at(-1), heard[1]!.at(-1));
  });

  test("a video stream crosses only while a viewer wants it; viewers' key-frame requests reach the publisher merged", async () => {
    const keyFrameRequests: number[] = [];
    const camera = new VideoLayer(7, 1, (ssrc) => keyFrameRequests.push(ssrc));
    camera.ssrc = 0x1234;
    primaryRoom.addLayer(camera);
    replicaEnd.setStreams([{ streamId: 7, groupId: 1 }]);
    assert.deepEqual(demands, [], 'nothing is fetched before anyone subscribes');
    const received: Buffer[] = [];
    const viewers = [1, 2, 3].map((n) => new VideoDownstream(100 + n, 96, 0, { sendRtp: (packet) => n === 1 && received.push(Buffer.from(packet)) }));
    for (const viewer of viewers) viewer.attach(replicaRoom.layer(7));
    assert.deepEqual(demands.at(-1), [7], 'the first subscriber asks for the stream');
    await until(() => keyFrameRequests.length >= 1);
    for (let seq = 0; seq < 20; seq++) camera.receive(vp8(seq, seq === 0), 12, 200);
    await until(() => received.length === 20);
    assert.equal(rtp.ssrc(received[0]!), 101, 'rewritten for the viewer');
    for (const viewer of viewers) viewer.requestKeyFrame();
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.ok(keyFrameRequests.length <= 2, `merged: ${keyFrameRequests.length} requests reached the publisher`);
    for (const viewer of viewers) viewer.detach();
    assert.deepEqual(demands.at(-1), [], 'the last one leaving stops the stream');
    const arrived = replicaRoom.layer(7)!.packets;
    for (let seq = 20; seq < 30; seq++) camera.receive(vp8(seq, seq === 20), 12, 200);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(replicaRoom.layer(7)!.packets, arrived, 'no video crosses without demand');
  });

  test("a promoted attendee's voice goes up into the primary's mixer; other replica microphones don't", async () => {
    const relay = replicaRoom.mixer;
    relay.addSource('local-v1');
    relay.addSource('local-x');
    replicaEnd.promote(1, 'local-v1');
    primaryEnd.promote(1, 'primary-v1');
    const before = replicaPipe.stats.rtpOut;
    for (let i = 0; i < 10; i++) {
      relay.push('local-v1', Buffer.from([0x78, 1, 2, 3]), 20);
      relay.push('local-x', Buffer.from([0x78, 1, 2, 3]), 20);
    }
    await until(() => primaryRoom.mixer.levels().some((l) => l.id === 'primary-v1'));
    assert.equal(replicaPipe.stats.rtpOut - before, 10, "only the promoted attendee's packets went up");
    replicaEnd.demote('local-v1');
    primaryEnd.demote(1);
    const after = replicaPipe.stats.rtpOut;
    relay.push('local-v1', Buffer.from([0x78, 1, 2, 3]), 20);
    assert.equal(replicaPipe.stats.rtpOut, after, 'after demotion its voice stays home');
  });

  test("a newly promoted attendee's last two frames go up at once, so the primary's mixer can start it without waiting", async () => {
    const relay = replicaRoom.mixer;
    relay.addSource('local-v2');
    for (let i = 0; i < 5; i++) relay.push('local-v2', Buffer.from([0x78, 1, 2, i]), 20);
    const before = replicaPipe.stats.rtpOut;
    primaryEnd.promote(2, 'primary-v2');
    replicaEnd.promote(2, 'local-v2');
    assert.equal(replicaPipe.stats.rtpOut - before, 2);
    await until(() => primaryRoom.mixer.levels().some((l) => l.id === 'primary-v2'));
    replicaEnd.demote('local-v2');
    primaryEnd.demote(2);
    relay.removeSource('local-v2');
  });

  test('packets from anyone but the other end, or under other keys, are dropped', async () => {
    const stranger = dgram.createSocket('udp4');
    const rejected = replicaPipe.stats.rejected;
    const received = replicaPipe.stats.rtpIn;
    for (let i = 0; i < 50; i++) stranger.send(randomBytes(100 + i), replicaPipe.port, '127.0.0.1');
    const forger = await PipeTransport.open('127.0.0.1');
    forger.connect({ address: '127.0.0.1', port: replicaPipe.port }, { send: { key: randomBytes(16), salt: randomBytes(12) }, receive: { key: randomBytes(16), salt: randomBytes(12) } });
    const packet = Buffer.alloc(40);
    packet[0] = 0x80;
    packet[1] = 111;
    packet.writeUInt32BE(PipeSsrc.sharedMix, 8);
    forger.sendRtp(packet);
    await until(() => replicaPipe.stats.rejected >= rejected + 51);
    assert.ok(replicaPipe.stats.rtpIn - received < 60, 'the mix goes on; nothing forged got in');
    stranger.close();
    forger.close();
  });
});
