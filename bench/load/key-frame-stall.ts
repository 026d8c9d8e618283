/**
 * Does a key frame to a full replica stall the worker's other rooms? One thread holds a video layer with 250
 * viewers, each a real send path (header rewrite, SRTP AEAD_AES_128_GCM protect, dgram.send to a socket of
 * another process), and a second UDP socket standing for another room's audio: a process on the other core
 * sends it a packet stamped with CLOCK_MONOTONIC every 2 ms. Twice a second a key frame of 40 packets reaches
 * the layer at once (as a burst arrives from the primary's pipe). The other room's delay is from its packet's
 * stamp to its handling on this thread. Run once unpaced (the whole fan-out in one go, as before the pacer)
 * and once with the worker's pacer (256 sends per event-loop turn).
 *
 *   node --import tsx bench/load/key-frame-stall.ts [seconds per case] [viewers]
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { SRTP_AEAD_AES_128_GCM, SrtpSession, srtpKeyingMaterialLength } from '../../src/media/protocol/srtp.ts';
import { DEFAULT_SENDS_PER_TURN, FanOutPacer } from '../../src/media/sfu/fan-out-pacer.ts';
import { VideoDownstream, VideoLayer } from '../../src/media/sfu/video-forwarding.ts';
import { DelayHistogram } from './delay-histogram.ts';

const seconds = Number(process.argv[2] ?? 10);
const viewers = Number(process.argv[3] ?? 250);
const KEY_FRAME_PACKETS = 40;
const KEY_FRAME_INTERVAL_MS = 500;
const PAYLOAD_BYTES = 1150;
const AUDIO_INTERVAL_MS = 2;

execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });

/** A port the helper process binds for the viewers' packets (free a moment ago). */
const probe = createSocket('udp4');
await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', resolve));
const sinkPort = probe.address().port;
probe.close();
const out = createSocket('udp4');
await new Promise<void>((resolve) => out.bind(0, '127.0.0.1', resolve));
const otherRoom = createSocket('udp4');
await new Promise<void>((resolve) => otherRoom.bind(0, '127.0.0.1', resolve));

// The sink and the other room's sender run in one process on core 1, so this thread does only the worker's part.
const helper = spawn(
  'taskset',
  [
    '-c',
    '1',
    process.execPath,
    '-e',
    `const d=require('dgram');const sink=d.createSocket('udp4');sink.on('message',()=>{});sink.bind(${sinkPort},'127.0.0.1');` +
      `const s=d.createSocket('udp4');const b=Buffer.alloc(100);setInterval(()=>{b.writeBigUInt64BE(process.hrtime.bigint(),0);s.send(b,${otherRoom.address().port},'127.0.0.1')},${AUDIO_INTERVAL_MS});`,
  ],
  { stdio: 'inherit' },
);
await new Promise((resolve) => setTimeout(resolve, 500));

let delays = new DelayHistogram();
otherRoom.on('message', (packet: Buffer) => delays.add(Number(process.hrtime.bigint() - packet.readBigUInt64BE(0)) / 1e6));

/** One viewer's send path: protect with its own SRTP context, send. */
function viewerSink(): { sendRtp: (packet: Buffer) => void } {
  const session = SrtpSession.fromDtls(randomBytes(srtpKeyingMaterialLength(SRTP_AEAD_AES_128_GCM)), SRTP_AEAD_AES_128_GCM, 'server');
  return { sendRtp: (packet) => out.send(session.protectRtp(packet), sinkPort, '127.0.0.1') };
}

async function runCase(name: string, pacer: FanOutPacer<VideoLayer>): Promise<void> {
  const layer = new VideoLayer(1, 1, () => undefined, undefined, pacer);
  const downstreams = Array.from({ length: viewers }, (_, i) => {
    const downstream = new VideoDownstream(1000 + i, 96, 0, viewerSink());
    downstream.attach(layer);
    return downstream;
  });
  let seq = 0;
  const payload = randomBytes(PAYLOAD_BYTES);
  const keyFrame = () => {
    const timestamp = (seq * 3000) >>> 0;
    for (let i = 0; i < KEY_FRAME_PACKETS; i++) {
      const packet = Buffer.alloc(12 + PAYLOAD_BYTES);
      packet[0] = 0x80;
      packet[1] = 96;
      packet.writeUInt16BE(seq++ & 0xffff, 2);
      packet.writeUInt32BE(timestamp, 4);
      payload.copy(packet, 12);
      packet[12] = i === 0 ? 0x10 : 0x00;
      packet[13] = 0x9c; // a key frame's tag on its first packet
      layer.receive(packet, 12, packet.length);
    }
  };
  keyFrame(); // every downstream starts
  await new Promise((resolve) => setTimeout(resolve, 1000));
  delays = new DelayHistogram();
  const before = process.cpuUsage();
  const timer = setInterval(keyFrame, KEY_FRAME_INTERVAL_MS);
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  clearInterval(timer);
  const used = process.cpuUsage(before);
  const measured = delays;
  await new Promise((resolve) => setTimeout(resolve, 500));
  for (const downstream of downstreams) downstream.detach();
  layer.close();
  const forwarded = downstreams.reduce((sum, d) => sum + d.forwarded, 0);
  process.stdout.write(
    `| ${name} | ${viewers} × ${KEY_FRAME_PACKETS} every ${KEY_FRAME_INTERVAL_MS} ms | ${measured.percentile(50).toFixed(1)} | ${measured.percentile(99).toFixed(1)} | ${measured.maxMs.toFixed(1)} | ` +
      `${(((used.user + used.system) / forwarded)).toFixed(1)} µs | ${pacer.deferredPackets} |\n`,
  );
}

process.stdout.write(`| fan-out | key frames | other room's packet delay p50 (ms) | p99 (ms) | max (ms) | CPU per packet sent | packets deferred |\n|---|---|---|---|---|---|---|\n`);
for (let round = 0; round < 2; round++) {
  await runCase('unpaced', new FanOutPacer<VideoLayer>(Number.MAX_SAFE_INTEGER));
  await runCase(`paced (${DEFAULT_SENDS_PER_TURN} per turn)`, new FanOutPacer<VideoLayer>());
}
helper.kill();
out.close();
otherRoom.close();
process.exit(0);
