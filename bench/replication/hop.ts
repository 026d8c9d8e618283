/**
 * The delay the primary → replica hop adds to every packet: from the moment the primary's
 * room hands a packet to the pipe (PrimaryPipeEnd) to the moment the replica's room hands it to
 * a viewer's sender (ReplicaPipeEnd → relay or VideoLayer → VideoDownstream), across a real
 * pipe: SRTP (AEAD_AES_128_GCM) over UDP on 127.0.0.1. Audio is the primary's shared mix at
 * 50 packets/s and video a 1200-byte stream at 200 packets/s, paced like real media so each
 * packet meets an idle event loop (hop-sides.ts). Both ends run in this process; cross-node-hop.ts
 * puts them in two. See BENCHMARKS.md.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { PrimarySide, ReplicaSide } from './hop-sides.ts';
import { summarizeDelays } from './delays.ts';

const seconds = process.argv.includes('--quick') ? 4 : 15;

const [primary, replica] = await Promise.all([PrimarySide.open(), ReplicaSide.open()]);
const down = { key: randomBytes(16), salt: randomBytes(12) };
const up = { key: randomBytes(16), salt: randomBytes(12) };
primary.connect({ address: '127.0.0.1', port: replica.port }, { send: down, receive: up });
replica.connect({ address: '127.0.0.1', port: primary.port }, { send: up, receive: down });
replica.on('demand', (streamIds) => primary.sendStreams(streamIds));
replica.subscribe();

primary.start();
await sleep(1000);
replica.reset();
primary.resetCounts();
await sleep(seconds * 1000);
primary.stop();

const { audio, video } = replica.delays();
console.log(`# Primary → replica hop, ${seconds} s, node ${process.version}\n`);
console.log('| stream | packets | median ms | p99 ms | max ms |');
console.log('|---|---|---|---|---|');
for (const [name, delays] of [['audio (shared mix, 50/s)', audio], ['video (1200 B, 200/s)', video]] as const) {
  const s = summarizeDelays(delays);
  console.log(`| ${name} | ${s.packets} | ${s.median.toFixed(3)} | ${s.p99.toFixed(3)} | ${s.max.toFixed(3)} |`);
}
primary.close();
replica.close();
