import { encodeFrame, FrameType, SdkStreamServiceType } from '../../src/signaling/frames.ts';
import { RawClient } from './raw-signaling.ts';

/**
 * A signaling flood from a process of its own (`node --import tsx signaling-flooder.ts <url> <token>...`):
 * one socket per JoinToken, each JOINs and then sends as much as the server reads, in frames it
 * accepts: 60 KiB CLIENT_METRIC frames and 250 KiB SUBSCRIBEs with the costliest junk offers the SDP parser takes
 * (as many unknown attribute lines as it allows), kept under the
 * frame-rate limit so the flood is slowed by the byte budget rather than cut off. Prints
 * `{"ready":true}` once every socket has joined, then `{"sentBytes","open"}` every second; stops
 * when stdin ends.
 */
const [url, ...tokens] = process.argv.slice(2);
if (!url || tokens.length === 0) throw new Error('usage: signaling-flooder.ts <signaling url> <join token>...');

const FRAMES_PER_TICK = 1;
const TICK_MS = 10; // at most 100 frames/s per socket, half the frame-rate limit
/** What a socket may have queued before it waits for the server to read more. */
const QUEUE_BYTES = 2 * 1024 * 1024;
const metric = encodeFrame({ type: FrameType.CLIENT_METRIC, clientMetric: { globalMetrics: [] }, error: { description: 'm'.repeat(60 * 1024) } }, Date.now());
const subscribe = encodeFrame({ type: FrameType.SUBSCRIBE, sub: { duplex: SdkStreamServiceType.RX, sdpOffer: `v=0\r\n${'a=junk-0123456789abcdef\r\n'.repeat(9_990)}` } }, Date.now());

const clients = await Promise.all(tokens.map((token) => RawClient.connect(url, token)));
await Promise.all(clients.map((client) => client.join()));
let sentBytes = 0;
let tick = 0;
const flood = setInterval(() => {
  tick++;
  for (const client of clients) {
    if (client.closeCode !== undefined) continue;
    for (let i = 0; i < FRAMES_PER_TICK && client.ws.bufferedAmount < QUEUE_BYTES; i++) {
      const frame = tick % 4 === 0 && process.env.NO_SDP === undefined ? subscribe : metric;
      client.ws.send(frame);
      sentBytes += frame.length;
    }
    client.frames.length = 0; // answers are not kept
  }
}, TICK_MS);
const report = setInterval(() => {
  process.stdout.write(`${JSON.stringify({ sentBytes, open: clients.filter((c) => c.closeCode === undefined).length })}\n`);
}, 1000);
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
process.stdin.resume();
process.stdin.on('end', () => {
  clearInterval(flood);
  clearInterval(report);
  for (const client of clients) client.ws.close();
  setTimeout(() => process.exit(0), 200).unref();
});
