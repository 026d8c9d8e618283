/**
 * Media plane costs, measured side by side in one process (see BENCHMARKS.md):
 *  1. CPU per forwarded video packet through Amphi's forwarder (VideoLayer → VideoDownstream →
 *     SRTP protect → UDP send) at 1, 10 and 50 receivers, against a bare loop that only
 *     rewrites the header, protects and sends the same packets to the same receivers;
 *  2. opus encode and decode per 20 ms frame for each build against the one Amphi used before;
 *  3. the audio mixer's CPU for a 250-attendee meeting with 3 talkers, per 20 ms frame
 *     (mixing, encoding, and packetising + protecting + sending to every listener), per build;
 *  4. frames per second each meeting gets on an overloaded machine: the media clock against
 *     the previous per-mixer timers.
 * Everything goes to a UDP sink on 127.0.0.1. Medians of several rounds.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import { AudioMixer, FRAME_SAMPLES, MIX_ENCODER_SETTINGS, SAMPLE_RATE, type MixerSink } from '../../src/media/audio/audio-mixer.ts';
import { loadOpusBackend } from '../../src/media/audio/opus/backend.ts';
import { OpusCodecPool } from '../../src/media/audio/opus/codec-pool.ts';
import { SRTP_AEAD_AES_128_GCM, SRTP_AES128_CM_HMAC_SHA1_80, SrtpSession, type SrtpProfile } from '../../src/media/protocol/srtp.ts';
import { writeAudioRtpPacket } from '../../src/media/protocol/rtp.ts';
import { FanOutPacer } from '../../src/media/sfu/fan-out-pacer.ts';
import { VideoDownstream, VideoLayer } from '../../src/media/sfu/video-forwarding.ts';
import { measureClockUnderLoad } from './clock.ts';
import { measureCodecs } from './codecs.ts';
import { opusscriptBackend } from './opusscript-backend.ts';
import { cpuMicros, median } from './measure.ts';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 3 : 7;
const PACKETS = quick ? 5_000 : 20_000;

const socket = dgram.createSocket('udp4');
const sink = dgram.createSocket('udp4');
await new Promise<void>((resolve) => sink.bind(0, '127.0.0.1', resolve));
const sinkPort = (sink.address() as AddressInfo).port;
sink.on('message', () => undefined);
await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));

const session = (profile: SrtpProfile) =>
  new SrtpSession(profile, {
    local: { key: randomBytes(profile.keyLength), salt: randomBytes(profile.saltLength) },
    remote: { key: randomBytes(profile.keyLength), salt: randomBytes(profile.saltLength) },
  });

/** What WebRtcTransport.sendRtp does: protect for this receiver, send to its address. */
class ReceiverTransport {
  constructor(private readonly srtp: SrtpSession) {}
  sendRtp(packet: Buffer): void {
    socket.send(this.srtp.protectRtp(packet), sinkPort, '127.0.0.1');
  }
}

function videoPackets(count: number): Buffer[] {
  const packets: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const packet = Buffer.alloc(1200);
    packet[0] = 0x80;
    packet[1] = 96;
    packet.writeUInt16BE(i & 0xffff, 2);
    packet.writeUInt32BE(Math.floor(i / 8) * 3000, 4);
    packet.writeUInt32BE(0x1234, 8);
    packet[12] = i % 8 === 0 ? 0x10 : 0x00; // VP8 descriptor: start of a frame every 8 packets
    packet[13] = i === 0 ? 0x00 : 0x01; // the first frame is a key frame
    randomBytes(1186).copy(packet, 14);
    packets.push(packet);
  }
  return packets;
}

const drain = () => new Promise((resolve) => setTimeout(resolve, 30));

async function forwarding(receivers: number, profile: SrtpProfile) {
  const packets = videoPackets(Math.max(8, Math.floor(PACKETS / receivers)));
  const amphiRounds: number[] = [];
  const bareRounds: number[] = [];
  // Round 0 warms the JIT up and is not counted.
  for (let round = 0; round <= ROUNDS; round++) {
    // Amphi's forwarder.
    // A pacer without a budget: the whole fan-out runs inside the timed loop (the worker's would defer most of it).
    const layer = new VideoLayer(1, 1, () => undefined, undefined, new FanOutPacer<VideoLayer>(Number.MAX_SAFE_INTEGER));
    layer.ssrc = 0x1234;
    for (let r = 0; r < receivers; r++) new VideoDownstream(1000 + r, 96, 3, new ReceiverTransport(session(profile))).attach(layer);
    const amphi = cpuMicros(() => {
      for (const packet of packets) layer.receive(packet, 12, packet.length);
    }) / (packets.length * receivers);
    if (round > 0) amphiRounds.push(amphi);
    layer.close();
    await drain();
    // The bare loop: rewrite SSRC/sequence/timestamp in a copy, protect, send.
    const sessions = Array.from({ length: receivers }, () => session(profile));
    const scratch = Buffer.alloc(1500);
    const bare = cpuMicros(() => {
      for (const packet of packets) {
        for (let r = 0; r < receivers; r++) {
          packet.copy(scratch, 0, 0, packet.length);
          scratch.writeUInt32BE(1000 + r, 8);
          scratch.writeUInt16BE((packet.readUInt16BE(2) + r) & 0xffff, 2);
          scratch.writeUInt32BE((packet.readUInt32BE(4) + r) >>> 0, 4);
          socket.send(sessions[r]!.protectRtp(scratch.subarray(0, packet.length)), sinkPort, '127.0.0.1');
        }
      }
    }) / (packets.length * receivers);
    if (round > 0) bareRounds.push(bare);
    await drain();
  }
  return { receivers, amphi: median(amphiRounds), bare: median(bareRounds) };
}

type MixBackend = 'opusscript' | 'native' | 'wasm';
const mixPools = new Map<MixBackend, OpusCodecPool>();
const poolFor = (backend: MixBackend) =>
  mixPools.get(backend) ?? mixPools.set(backend, new OpusCodecPool(backend === 'opusscript' ? opusscriptBackend() : loadOpusBackend(backend), MIX_ENCODER_SETTINGS)).get(backend)!;

async function mixing(attendees: number, talkers: number, deliver: boolean, backend: MixBackend) {
  const frames = quick ? 100 : 250;
  const codecs = poolFor(backend);
  const encoders = Array.from({ length: talkers }, () => codecs.takeEncoder());
  const tonePcm = (f: number) => {
    const pcm = Buffer.alloc(FRAME_SAMPLES * 2);
    for (let i = 0; i < FRAME_SAMPLES; i++) pcm.writeInt16LE(Math.round(5000 * Math.sin((2 * Math.PI * f * i) / SAMPLE_RATE)), i * 2);
    return pcm;
  };
  const talkerFrames = encoders.map((encoder, i) => Array.from({ length: 50 }, () => encoder.encode(tonePcm(300 + 200 * i))));
  encoders.forEach((encoder) => codecs.giveEncoder(encoder));
  const rounds: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    let now = 0;
    const mixer = new AudioMixer({ codecs, now: () => now });
    const header = Buffer.alloc(1500);
    // Each listener does what MediaPeer.sendAudio does: RTP header, payload, protect, send.
    for (let a = 0; a < attendees; a++) {
      const srtp = session(SRTP_AEAD_AES_128_GCM);
      let seq = 0;
      const listener: MixerSink = {
        deliver(payload) {
          if (!deliver) return;
          seq = (seq + 1) & 0xffff;
          const length = writeAudioRtpPacket(header, 111, seq, seq * FRAME_SAMPLES, 5000 + a, 0, -1, payload);
          socket.send(srtp.protectRtp(header.subarray(0, length)), sinkPort, '127.0.0.1');
        },
      };
      mixer.addSource(`a${a}`);
      mixer.addSink(listener, `a${a}`);
    }
    const tick = (frame: number) => {
      for (let t = 0; t < talkers; t++) mixer.push(`a${t}`, talkerFrames[t]![frame % 50]!, 25);
      for (let a = talkers; a < attendees; a++) mixer.push(`a${a}`, talkerFrames[0]![0]!.subarray(0, 3), 127);
      now += 20;
      mixer.produce(frame + 1);
    };
    for (let f = 0; f < 20; f++) tick(f); // talkers selected and buffered
    await drain();
    const micros = cpuMicros(() => {
      for (let f = 0; f < frames; f++) tick(f);
    });
    rounds.push(micros / frames);
    mixer.close();
    await drain();
  }
  const perFrame = median(rounds);
  return { attendees, talkers, deliver, backend, microsPerFrame: perFrame, coreShare: perFrame / 20_000 };
}

console.log(`# Amphi media benchmarks (${quick ? 'quick' : 'full'}), node ${process.version}, ${ROUNDS} rounds, medians\n`);
for (const profile of [SRTP_AEAD_AES_128_GCM, SRTP_AES128_CM_HMAC_SHA1_80]) {
  console.log(`## Forwarding, ${profile.name}\n`);
  console.log('| receivers | Amphi µs/packet | bare loop µs/packet | ratio |');
  console.log('|---|---|---|---|');
  for (const receivers of [1, 10, 50]) {
    const r = await forwarding(receivers, profile);
    console.log(`| ${receivers} | ${r.amphi.toFixed(2)} | ${r.bare.toFixed(2)} | ${(r.amphi / r.bare).toFixed(2)} |`);
  }
  console.log('');
}
console.log('## Opus codecs\n');
console.log('CPU per 20 ms frame (48 kHz mono, 32 kb/s, complexity 5, FEC), interleaved rounds.\n');
console.log('| build | encode µs | decode µs | encode vs opusscript | decode vs opusscript |');
console.log('|---|---|---|---|---|');
const codecRows = measureCodecs(ROUNDS, quick ? 500 : 2000);
const old = codecRows.find((row) => row.name === 'opusscript')!;
for (const row of codecRows) console.log(`| ${row.name} | ${row.encode.toFixed(1)} | ${row.decode.toFixed(1)} | ${(row.encode / old.encode).toFixed(2)} | ${(row.decode / old.decode).toFixed(2)} |`);
console.log('');
console.log('## Mixing\n');
console.log('"mix" is talker selection, decoding, mixing and encoding (3 mix-minus + 1 shared frame); "mix + delivery" adds');
console.log('the RTP header, AEAD_AES_128_GCM protection and the UDP send to every listener.\n');
console.log('| opus | attendees | talkers | what | µs per 20 ms frame | share of one core |');
console.log('|---|---|---|---|---|---|');
for (const [attendees, talkers] of [[250, 3], [50, 3]] as const) {
  for (const deliver of [false, true]) {
    for (const backend of ['opusscript', 'native', 'wasm'] as const) {
      const m = await mixing(attendees, talkers, deliver, backend);
      console.log(`| ${backend} | ${m.attendees} | ${m.talkers} | ${deliver ? 'mix + delivery' : 'mix'} | ${m.microsPerFrame.toFixed(0)} | ${(m.coreShare * 100).toFixed(1)}% |`);
    }
  }
}
console.log('');
const load = await measureClockUnderLoad(quick ? 1 : 3, quick ? 3 : 8);
console.log(`## Mixer frames on an overloaded machine\n`);
console.log(`10 meetings with 2 talkers each on this thread; ${load.hogs} busy processes on ${availableParallelism()} cores. Per meeting (median over`);
console.log('meetings, then rounds): frames mixed per second (50 keeps time) and packets one listener gets per second; wake-up');
console.log('lateness of the media clock. Late frames are mixed but not sent (see BENCHMARKS.md).\n');
console.log('| scheduling | frames mixed/s | packets sent/s | rounds (sent/s) | clock lateness p50 / p99 / max ms | skipped frames/s |');
console.log('|---|---|---|---|---|---|');
console.log(`| per-mixer timers (before) | ${load.previousFramesPerSecond.toFixed(1)} | ${load.previousFramesPerSecond.toFixed(1)} | ${load.previousRounds.map((r) => r.toFixed(1)).join(', ')} | | |`);
console.log(`| media clock | ${load.clockMixedPerSecond.toFixed(1)} | ${load.clockFramesPerSecond.toFixed(1)} | ${load.clockRounds.map((r) => r.toFixed(1)).join(', ')} | ${load.latenessP50} / ${load.latenessP99} / ${load.latenessMax} | ${load.skippedPerSecond.toFixed(2)} |`);
socket.close();
sink.close();
