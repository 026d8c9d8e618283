/**
 * The delay the primary → replica hop adds to every packet: from the moment the primary's
 * room hands a packet to the pipe (PrimaryPipeEnd) to the moment the replica's room hands it to
 * a viewer's sender (ReplicaPipeEnd → relay or VideoLayer → VideoDownstream), across a real
 * pipe: SRTP (AEAD_AES_128_GCM) over UDP on 127.0.0.1. Audio is the primary's shared mix at
 * 50 packets/s and video a 1200-byte stream at 200 packets/s, paced like real media so each
 * packet meets an idle event loop. Both ends run in this process; see BENCHMARKS.md.
 */
import { randomBytes } from 'node:crypto';
import { AudioRelay } from '../../src/replication/audio-relay.ts';
import type { AudioHub } from '../../src/media/audio/audio-hub.ts';
import type { MixerSink } from '../../src/media/audio/audio-mixer.ts';
import { PipeTransport } from '../../src/media/transport/pipe-transport.ts';
import { PrimaryPipeEnd, ReplicaPipeEnd } from '../../src/replication/pipe-ends.ts';
import { MediaRoom } from '../../src/media/sfu/room.ts';
import { VideoDownstream, VideoLayer } from '../../src/media/sfu/video-forwarding.ts';

const seconds = process.argv.includes('--quick') ? 4 : 15;
const now = () => performance.timeOrigin + performance.now();

// Nothing mixes in the primary room: this bench feeds the sink the pipe end adds for the shared mix itself, with timestamped frames.
const primarySinks: MixerSink[] = [];
const primaryAudio: AudioHub = {
  addSource: () => undefined,
  removeSource: () => undefined,
  push: () => undefined,
  addSink: (sink) => void primarySinks.push(sink),
  removeSink: () => undefined,
  levels: () => [],
  talkerIds: () => [],
  close: () => undefined,
};
const primaryRoom = new MediaRoom('primary', primaryAudio);
const replicaRoom = new MediaRoom('replica', new AudioRelay());
const [primaryPipe, replicaPipe] = await Promise.all([PipeTransport.open('127.0.0.1'), PipeTransport.open('127.0.0.1')]);
const down = { key: randomBytes(16), salt: randomBytes(12) };
const up = { key: randomBytes(16), salt: randomBytes(12) };
primaryPipe.connect({ address: '127.0.0.1', port: replicaPipe.port }, { send: down, receive: up });
replicaPipe.connect({ address: '127.0.0.1', port: primaryPipe.port }, { send: up, receive: down });
const primaryEnd = new PrimaryPipeEnd(primaryRoom, primaryPipe);
primaryRoom.adopt('pipe', primaryEnd);
const replicaEnd = new ReplicaPipeEnd(replicaRoom, replicaPipe);
replicaRoom.adopt('pipe', replicaEnd);
replicaEnd.on('demand', (streamIds) => primaryEnd.sendStreams(streamIds));

// The primary's camera as a layer of the primary room; the replica learns of it and a viewer subscribes.
const camera = new VideoLayer(7, 1, () => undefined);
camera.ssrc = 0x1234;
primaryRoom.addLayer(camera);
replicaEnd.setStreams([{ streamId: 7, groupId: 1 }]);

const audioDelays: number[] = [];
const videoDelays: number[] = [];
const viewer: MixerSink = { deliver: (payload) => payload.length >= 8 && audioDelays.push(now() - payload.readDoubleBE(0)) };
replicaRoom.mixer.addSink(viewer, 'viewer');
const downstream = new VideoDownstream(99, 96, 0, { sendRtp: (packet) => videoDelays.push(now() - packet.readDoubleBE(packet.length - 8)) });
downstream.attach(replicaRoom.layer(7));

const sharedSink = primarySinks[0]!;
let seq = 0;
const videoPacket = (key: boolean) => {
  const packet = Buffer.alloc(1200);
  packet[0] = 0x80;
  packet[1] = 96;
  packet.writeUInt16BE(seq++ & 0xffff, 2);
  packet.writeUInt32BE(seq * 450, 4);
  packet.writeUInt32BE(0x1234, 8);
  packet[12] = 0x10;
  packet[13] = key ? 0x00 : 0x01;
  packet.writeDoubleBE(now(), packet.length - 8);
  return packet;
};

const warmup = Date.now() + 1000;
let audioFrame = 0;
const audioTimer = setInterval(() => {
  const frame = Buffer.alloc(80);
  frame.writeDoubleBE(now(), 0);
  sharedSink.deliver(frame, 30, (++audioFrame * 960) >>> 0);
}, 20);
let packets = 0;
const videoTimer = setInterval(() => {
  const packet = videoPacket(packets++ % 300 === 0);
  camera.receive(packet, 12, packet.length);
}, 5);
await new Promise((resolve) => setTimeout(resolve, 1000));
audioDelays.length = 0;
videoDelays.length = 0;
await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
clearInterval(audioTimer);
clearInterval(videoTimer);
void warmup;

const summary = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { packets: sorted.length, median: at(0.5), p99: at(0.99), max: sorted.at(-1)! };
};
const audio = summary(audioDelays);
const video = summary(videoDelays);
console.log(`# Primary → replica hop, ${seconds} s, node ${process.version}\n`);
console.log('| stream | packets | median ms | p99 ms | max ms |');
console.log('|---|---|---|---|---|');
for (const [name, s] of [['audio (shared mix, 50/s)', audio], ['video (1200 B, 200/s)', video]] as const) {
  console.log(`| ${name} | ${s.packets} | ${s.median.toFixed(3)} | ${s.p99.toFixed(3)} | ${s.max.toFixed(3)} |`);
}
primaryEnd.close();
replicaEnd.close();
primaryRoom.close();
replicaRoom.close();
