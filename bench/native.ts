/**
 * The RTP send path, TypeScript against native, per packet of a fan-out: one incoming video packet rewritten for
 * each of N viewers (their own SSRC, sequence number, timestamp, abs-send-time), protected under each viewer's own
 * SRTP keys and sent to them, one turn of the event loop per incoming packet, as a replica's worker does.
 *
 *   npm run bench:native [-- viewers turnsPerRound rounds payloadBytes]     (defaults 250 40 9 1100)
 *
 * Cases, interleaved within each round so a shared machine's changing speed affects them alike:
 * - floor: header rewrite + node's bare AES-128-GCM (a Cipher per packet) + dgram.send, nothing else: the least
 *   any TypeScript path can cost per packet;
 * - protect only: header rewrite + SRTP protection, TypeScript (SrtpSendContext.protectRtp) or native (the batch
 *   sealed once per turn, nothing sent);
 * - protect + send: the real RtpSenders (DgramRtpSender, NativeRtpSender: sendmmsg at the end of the turn);
 * - through the forwarder: Amphi's VideoLayer.receive and a VideoDownstream per viewer (its own rewrite, key-frame
 *   gate, abs-send-time) in front of each sender, as in a room.
 * Datagrams go to a UDP socket on 127.0.0.1 held by a python3 process that never reads it (the kernel drops what
 * overflows), so no receiver runs in this process. Figures are this process's CPU time (user + system, every
 * thread) per packet: medians and best of the rounds after two warm-up rounds.
 */
import { spawn } from 'node:child_process';
import { createCipheriv, createSecretKey, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { rtpHeaderLength, writeRtpHeader } from '../src/media/protocol/rtp.ts';
import { VideoDownstream, VideoLayer } from '../src/media/sfu/video-forwarding.ts';
import { SRTP_AEAD_AES_128_GCM, SRTP_AES128_CM_HMAC_SHA1_80, SrtpSendContext, type SrtpProfile } from '../src/media/protocol/srtp.ts';
import { DgramRtpSender } from '../src/media/transport/dgram-rtp-sender.ts';
import { loadNativeAddon } from '../src/media/transport/native-addon.ts';
import { NativeRtpSender } from '../src/media/transport/native-rtp-sender.ts';
import { createRtpSender } from '../src/media/transport/rtp-send-path.ts';
import type { RemoteAddress, RtpSender } from '../src/media/transport/rtp-sender.ts';

const [viewers, turnsPerRound, rounds, payloadBytes] = [250, 40, 9, 1100].map((fallback, i) => Number(process.argv[2 + i] ?? fallback)) as [number, number, number, number];
const WARM_UP_ROUNDS = 2;
const ABS_SEND_TIME_ID = 3;

const load = loadNativeAddon(undefined, 'on');
const nativeAddon = load.addon!;

/** A python3 process holding a UDP port it never reads: a destination that costs this process nothing to receive. */
async function silentSink(): Promise<{ port: number; stop: () => void }> {
  const sink = spawn('python3', ['-c', "import socket,sys,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('127.0.0.1',0))\nprint(s.getsockname()[1],flush=True)\nsys.stdin.read()"], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const [line] = (await once(sink.stdout!, 'data')) as [Buffer];
  return { port: Number(line.toString().trim()), stop: () => sink.stdin!.end() };
}

async function boundSocket(): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type: 'udp4', sendBufferSize: 4 * 1024 * 1024 });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return socket;
}

const incoming = randomBytes(12 + payloadBytes);
const scratch = Buffer.allocUnsafe(1600);

/** What VideoDownstream.send does per viewer: its header, the publisher's payload after it. */
function rewrite(viewer: number, turn: number): Buffer {
  const absSendTime = Math.floor((performance.timeOrigin + performance.now()) * 262.144) & 0xffffff;
  const offset = writeRtpHeader(scratch, 96, turn + viewer, turn * 3000, 0x10000 + viewer, ABS_SEND_TIME_ID, absSendTime, 3);
  incoming.copy(scratch, offset, 12);
  return scratch.subarray(0, offset + payloadBytes);
}

interface Case {
  name: string;
  /** One turn: the incoming packet to every viewer. */
  turn: (turn: number) => void;
}

const sink = await silentSink();
const remote: RemoteAddress = { address: '127.0.0.1', port: sink.port };
const sockets = await Promise.all([boundSocket(), boundSocket(), boundSocket()]);
const [floorSocket, typescriptSocket, nativeSocket] = sockets as [dgram.Socket, dgram.Socket, dgram.Socket];
const typescriptSender = new DgramRtpSender(typescriptSocket);
const nativeSender = createRtpSender(nativeSocket, undefined, load);
if (nativeSender.path !== 'native') throw new Error('the native sender did not take the socket');
const sealOnly = new NativeRtpSender(nativeAddon, undefined, typescriptSender);

const contextsFor = (profile: SrtpProfile): SrtpSendContext[] =>
  Array.from({ length: viewers }, () => SrtpSendContext.fromMasterKey(profile, { key: randomBytes(profile.keyLength), salt: randomBytes(profile.saltLength) }));

const floorKeys = Array.from({ length: viewers }, () => createSecretKey(randomBytes(16)));
const floorIv = randomBytes(12);
const cases: Case[] = [
  {
    name: 'floor: rewrite + bare node AES-GCM + dgram.send',
    turn: (turn) => {
      for (let v = 0; v < viewers; v++) {
        const packet = rewrite(v, turn);
        const cipher = createCipheriv('aes-128-gcm', floorKeys[v]!, floorIv);
        cipher.setAAD(packet.subarray(0, 20));
        const body = cipher.update(packet.subarray(20));
        cipher.final();
        floorSocket.send([packet.subarray(0, 20), body, cipher.getAuthTag()], remote.port, remote.address);
      }
    },
  },
];
for (const profile of [SRTP_AEAD_AES_128_GCM, SRTP_AES128_CM_HMAC_SHA1_80]) {
  const short = profile === SRTP_AEAD_AES_128_GCM ? 'GCM' : 'CM-HMAC';
  const sendingCase = (path: string, contexts: SrtpSendContext[], sender: RtpSender): Case => ({
    name: `${short} ${path}`,
    turn: (turn) => {
      for (let v = 0; v < viewers; v++) sender.send(contexts[v]!, rewrite(v, turn), remote);
    },
  });
  const protectContexts = contextsFor(profile);
  cases.push(
    {
      name: `${short} protect only, TypeScript`,
      turn: (turn) => {
        for (let v = 0; v < viewers; v++) protectContexts[v]!.protectRtp(rewrite(v, turn));
      },
    },
    sendingCase('protect only, native', contextsFor(profile), sealOnly),
    sendingCase('protect + send, TypeScript', contextsFor(profile), typescriptSender),
    sendingCase('protect + send, native', contextsFor(profile), nativeSender),
  );
}

/** A VP8 key frame's first packet, so every downstream starts at once; later turns count up from it. */
function forwardedPacket(turn: number): Buffer {
  const packet = Buffer.from(incoming);
  packet[0] = 0x80;
  packet[1] = 96;
  packet.writeUInt16BE(turn & 0xffff, 2);
  packet.writeUInt32BE(turn * 3000, 4);
  packet.writeUInt32BE(0xabcdef, 8);
  // VP8 payload descriptor (S=1, partition 0) and a key-frame payload header (P bit clear).
  packet[12] = 0x10;
  packet[13] = 0x00;
  return packet;
}

for (const [path, sender] of [['TypeScript', typescriptSender], ['native', nativeSender]] as const) {
  const layer = new VideoLayer(1, 1, () => undefined);
  contextsFor(SRTP_AEAD_AES_128_GCM).forEach((context, v) => {
    new VideoDownstream(0x20000 + v, 96, ABS_SEND_TIME_ID, { sendRtp: (packet) => sender.send(context, packet, remote) }).attach(layer);
  });
  cases.push({
    name: `GCM through the forwarder, ${path}`,
    turn: (turn) => {
      const packet = forwardedPacket(turn);
      layer.receive(packet, rtpHeaderLength(packet, 0), packet.length);
    },
  });
}

/** Runs `turns` turns of `body`, each on its own turn of the event loop (the native path flushes at its end). */
async function round(body: Case['turn'], turns: number, firstTurn: number): Promise<number> {
  const start = process.cpuUsage();
  for (let t = 0; t < turns; t++) {
    body(firstTurn + t);
    await new Promise((resolve) => setImmediate(resolve));
  }
  const used = process.cpuUsage(start);
  return (used.user + used.system) / (turns * viewers);
}

const samples = new Map<string, number[]>(cases.map((c) => [c.name, []]));
for (let r = 0; r < WARM_UP_ROUNDS + rounds; r++) {
  for (const c of cases) {
    const perPacket = await round(c.turn, turnsPerRound, r * turnsPerRound);
    if (r >= WARM_UP_ROUNDS) samples.get(c.name)!.push(perPacket);
  }
}
const nativeStats = (nativeSender as NativeRtpSender).stats;

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const medians = new Map([...samples].map(([name, values]) => [name, median(values)]));
console.log(
  `${viewers} viewers per incoming packet, ${12 + payloadBytes}-byte packets (20-byte header after rewrite), ${turnsPerRound} turns per round, ` +
    `median of ${rounds} rounds; CPU µs per packet sent (node ${process.version}, ${process.arch})`,
);
console.log(`| case | µs/packet (median) | best | against the floor |`);
console.log(`|---|---:|---:|---:|`);
const floor = medians.get(cases[0]!.name)!;
for (const [name, values] of samples) {
  const value = medians.get(name)!;
  console.log(`| ${name} | ${value.toFixed(2)} | ${Math.min(...values).toFixed(2)} | ${(value / floor).toFixed(2)}× |`);
}
for (const short of ['GCM', 'CM-HMAC']) {
  const ts = medians.get(`${short} protect + send, TypeScript`)!;
  const native = medians.get(`${short} protect + send, native`)!;
  console.log(`${short}: native protect + send is ${(ts / native).toFixed(1)}× cheaper than TypeScript (${ts.toFixed(2)} → ${native.toFixed(2)} µs)`);
}
console.log(`native sender: ${nativeStats.batches} batches, ${nativeStats.sent} sent, ${nativeStats.dropped} refused by the kernel`);

for (const socket of sockets) socket.close();
sealOnly.close();
sink.stop();
