import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';

/**
 * A tiny UDP tool run inside a lab namespace (`node --import tsx udp-probe.ts <mode>`); it speaks
 * JSON lines on stdout.
 *
 * - `echo`: sends every datagram back where it came from. Prints `{"port"}` once bound.
 * - `ping`: prints `{"port"}` once bound, then reads one line `{"address","port","count","intervalMs"}`
 *   on stdin, sends `count` numbered datagrams to it, waits a second for late answers and prints
 *   `{"sent","received","rtts"}` (round-trip times in ms of the answers, in arrival order).
 */
const mode = process.argv[2];
const socket = dgram.createSocket('udp4');
await new Promise<void>((resolve) => socket.bind(0, '0.0.0.0', resolve));
const print = (message: unknown) => process.stdout.write(`${JSON.stringify(message)}\n`);

if (mode === 'echo') {
  socket.on('message', (datagram, from) => socket.send(datagram, from.port, from.address));
  print({ port: (socket.address() as AddressInfo).port });
} else if (mode === 'ping') {
  print({ port: (socket.address() as AddressInfo).port });
  const lines = createInterface({ input: process.stdin });
  const line = await new Promise<string>((resolve) => lines.once('line', resolve));
  lines.close();
  const target = JSON.parse(line) as { address: string; port: number; count: number; intervalMs: number };
  const sentAt: number[] = [];
  const rtts: number[] = [];
  socket.on('message', (datagram) => {
    if (datagram.length !== 8) return;
    const seq = datagram.readUInt32BE(0);
    const at = sentAt[seq];
    if (at !== undefined) rtts.push(performance.now() - at);
  });
  for (let seq = 0; seq < target.count; seq++) {
    const datagram = Buffer.alloc(8);
    datagram.writeUInt32BE(seq, 0);
    sentAt[seq] = performance.now();
    socket.send(datagram, target.port, target.address);
    await new Promise((resolve) => setTimeout(resolve, target.intervalMs));
  }
  await new Promise((resolve) => setTimeout(resolve, 1000));
  print({ sent: target.count, received: rtts.length, rtts });
  socket.close();
} else {
  process.stderr.write(`usage: udp-probe.ts echo|ping (not ${mode})\n`);
  process.exit(2);
}
