/**
 * Per-packet cost of SRTP protect/unprotect for 1200-byte RTP packets, both profiles.
 *
 *   node --import tsx bench/srtp.ts [packets per run] [runs]
 *
 * Prints CPU µs per packet, median (and best) over runs after a warm-up. The cases are interleaved
 * within each run so that a shared machine's changing speed affects all of them alike. Two baselines
 * give scale: node's AES-128-GCM on the same packet with nothing around it, and allocating plus
 * copying one output packet (what returning a fresh Buffer costs).
 */
import { createCipheriv, createSecretKey, randomBytes } from 'node:crypto';
import { SRTP_PROFILES, SrtpSession, srtpKeyingMaterialLength } from '../src/media/protocol/srtp.ts';

const PACKET_LENGTH = 1200;
const packetsPerRun = Number(process.argv[2] ?? 20000);
const runs = Number(process.argv[3] ?? 9);
const WARM_UP_RUNS = 2;

function rtpPacket(seq: number): Buffer {
  const packet = randomBytes(PACKET_LENGTH);
  packet[0] = 0x80;
  packet[1] = 96;
  packet.writeUInt16BE(seq & 0xffff, 2);
  packet.writeUInt32BE(0x01020304, 8);
  return packet;
}

interface Case {
  name: string;
  /** Called before each run, outside the timing. */
  prepare: () => void;
  body: (i: number) => number;
}

const packets = Array.from({ length: 256 }, (_, i) => rtpPacket(i));
const cases: Case[] = [];

for (const profile of SRTP_PROFILES) {
  const material = randomBytes(srtpKeyingMaterialLength(profile));
  let sender = SrtpSession.fromDtls(material, profile, 'server');
  let receiver = SrtpSession.fromDtls(material, profile, 'client');
  // Unprotect needs packets the receiver has not seen yet, so every run gets a fresh receiver.
  const sealedSender = SrtpSession.fromDtls(material, profile, 'server');
  const sealed = Array.from({ length: packetsPerRun }, (_, i) => {
    const packet = packets[i & 255]!;
    packet.writeUInt16BE(i & 0xffff, 2);
    return sealedSender.protectRtp(packet);
  });
  cases.push(
    {
      name: `${profile.name} protect`,
      prepare: () => (sender = SrtpSession.fromDtls(material, profile, 'server')),
      body: (i) => {
        const packet = packets[i & 255]!;
        packet.writeUInt16BE(i & 0xffff, 2);
        return sender.protectRtp(packet).length;
      },
    },
    {
      name: `${profile.name} unprotect`,
      prepare: () => (receiver = SrtpSession.fromDtls(material, profile, 'client')),
      body: (i) => receiver.unprotectRtp(sealed[i]!)?.length ?? 0,
    },
  );
}

const baselineKey = createSecretKey(randomBytes(16));
const baselineIv = randomBytes(12);
cases.push(
  {
    name: 'baseline: bare node AES-128-GCM',
    prepare: () => undefined,
    body: (i) => {
      const packet = packets[i & 255]!;
      const cipher = createCipheriv('aes-128-gcm', baselineKey, baselineIv);
      cipher.setAAD(packet.subarray(0, 12));
      const length = cipher.update(packet.subarray(12)).length;
      cipher.final();
      return length + cipher.getAuthTag().length;
    },
  },
  {
    name: 'baseline: allocate + copy a packet',
    prepare: () => undefined,
    body: (i) => {
      const out = Buffer.allocUnsafe(PACKET_LENGTH + 16);
      return packets[i & 255]!.copy(out);
    },
  },
);

const samples = new Map<string, number[]>(cases.map((c) => [c.name, []]));
let sink = 0;
for (let run = 0; run < WARM_UP_RUNS + runs; run++) {
  for (const c of cases) {
    c.prepare();
    // CPU time rather than wall time, so other processes on a shared machine skew it less.
    const start = process.cpuUsage();
    for (let i = 0; i < packetsPerRun; i++) sink += c.body(i);
    const used = process.cpuUsage(start);
    if (run >= WARM_UP_RUNS) samples.get(c.name)!.push((used.user + used.system) / packetsPerRun);
  }
}

console.log(`${PACKET_LENGTH}-byte RTP packets, ${packetsPerRun} per run, median of ${runs} runs, CPU µs per packet (node ${process.version})`);
for (const [name, values] of samples) {
  const sorted = [...values].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  console.log(`${name.padEnd(40)} ${median.toFixed(2).padStart(6)} µs   (best ${sorted[0]!.toFixed(2)})`);
}
if (sink === 0) console.log('(nothing measured)');
