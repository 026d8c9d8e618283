/**
 * Node's floor for forwarding one video packet to one viewer, on this machine, now: the header rewrite
 * (writeRtpHeader into a scratch buffer, the payload copied after it), SRTP protect with Amphi's own
 * contexts, and dgram.send to a socket of another process, nothing else (no routing, no RTCP, no timers).
 *
 *   node --import tsx bench/load/floor.ts <sink UDP port> [packets]
 *
 * Runs in its own process so it can be pinned to the server's core (`taskset -c 0`), as bench/load/run.ts
 * does; prints one JSON line: CPU µs per packet for each SRTP profile.
 */
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { writeRtpHeader } from '../../src/media/protocol/rtp.ts';
import { SRTP_PROFILES, SrtpSession, srtpKeyingMaterialLength } from '../../src/media/protocol/srtp.ts';

const sinkPort = Number(process.argv[2]);
const packets = Number(process.argv[3] ?? 200_000);
if (!Number.isInteger(sinkPort) || sinkPort <= 0 || sinkPort > 65535) throw new Error(`usage: floor.ts <sink UDP port> [packets], not ${process.argv[2]}`);
/** Sends per event-loop turn, so libuv's send queue never builds up (most sends complete at once). */
const BATCH = 256;
const PAYLOAD_BYTES = 1150;

const socket = createSocket('udp4');
await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
const received = randomBytes(12 + PAYLOAD_BYTES);
const scratch = Buffer.allocUnsafe(1600);

async function run(session: SrtpSession, count: number): Promise<number> {
  const before = process.cpuUsage();
  let seq = 0;
  while (seq < count) {
    for (let i = 0; i < BATCH && seq < count; i++, seq++) {
      const offset = writeRtpHeader(scratch, 96, seq, seq * 3000, 0x11223344, 2, seq, 3);
      received.copy(scratch, offset, 12);
      socket.send(session.protectRtp(scratch.subarray(0, offset + PAYLOAD_BYTES)), sinkPort, '127.0.0.1');
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  const used = process.cpuUsage(before);
  return (used.user + used.system) / count;
}

const results: Record<string, number> = {};
for (const profile of SRTP_PROFILES) {
  const session = SrtpSession.fromDtls(randomBytes(srtpKeyingMaterialLength(profile)), profile, 'server');
  await run(session, Math.min(20_000, packets)); // warm-up: JIT and socket buffers
  results[profile.name] = await run(session, packets);
}
socket.close();
process.stdout.write(`${JSON.stringify({ microsecondsPerPacket: results })}\n`);
