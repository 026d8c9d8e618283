import { createInterface } from 'node:readline';
import pino from 'pino';
import { MediaWorkerClient } from '../../src/media/worker/client.ts';
import type { PrimaryPipeEndHandle, ReplicaPipeEndHandle } from '../../src/media/worker/pipe-end-handles.ts';
import type { PipeStats } from '../../src/media/worker/protocol.ts';
import { InlinePipeEnd } from './inline-pipe-end.ts';

/**
 * One end of a replication pipe in a process of its own (run inside a lab namespace with
 * `node --import tsx pipe-end-process.ts`), driven by JSON lines on stdin, `{"id","method","params"}`,
 * each answered on stdout by `{"id","result"}` or `{"id","error"}`; events come as `{"event",...}`.
 * The media worker's pino logs (warnings and worse) share stdout: they carry `level` and no `id`.
 *
 * Methods:
 * - `open {role: "primary"|"replica", listenIp, inline?}` → `{port}`. By default a real media worker
 *   thread on that address with one room (mixing for the primary, relaying for the replica) and its
 *   pipe end; `inline: true` builds them in this thread instead (InlinePipeEnd), for video.
 * - `connect {remote: {address, port}, keys: {send, receive}}` with base64 `key` and `salt`.
 * - `watch` → null: from now on, notes the longest time the end's received RTP count stood still.
 * - `report` → `{pipe, longestStallMs, worker?, video?}`: the end's PipeStats, the longest stall
 *   since `watch`, the worker's stats (worker ends) or the video counts (inline ends).
 * - inline only: `publishVideo {streamId, fps}` and `sendStreams {streamIds}` on the primary,
 *   `view {streamId}` on the replica, which then reports `{"event":"demand","streamIds"}`.
 * - `close` → null, then the process exits (as it does when stdin ends).
 */
type Params = Record<string, any>;
const STATS_INTERVAL_MS = 10;

type WorkerEnd = { kind: 'worker'; worker: MediaWorkerClient; end: PrimaryPipeEndHandle | ReplicaPipeEndHandle };
type InlineEnd = { kind: 'inline'; end: InlinePipeEnd };
let opened: WorkerEnd | InlineEnd | undefined;
let watching: { timer: NodeJS.Timeout; lastRtpIn: number; lastChangeAt: number; longestStallMs: number } | undefined;

const print = (message: unknown) => process.stdout.write(`${JSON.stringify(message)}\n`);
const fromBase64 = (key: { key: string; salt: string }) => ({ key: Buffer.from(key.key, 'base64'), salt: Buffer.from(key.salt, 'base64') });
const current = () => {
  if (!opened) throw new Error('no pipe end yet: call open first');
  return opened;
};
const inline = () => {
  const end = current();
  if (end.kind !== 'inline') throw new Error('video needs an inline end');
  return end.end;
};
const pipeStats = async (): Promise<PipeStats> => {
  const end = current();
  const stats = end.kind === 'inline' ? end.end.stats() : await end.end.stats();
  if (!stats) throw new Error('the pipe end closed');
  return stats;
};

const methods: Record<string, (params: Params) => Promise<unknown> | unknown> = {
  async open({ role, listenIp, inline: inThisThread }) {
    if (opened) throw new Error('already open');
    if (role !== 'primary' && role !== 'replica') throw new Error(`role is primary or replica, not ${role}`);
    if (inThisThread) {
      const end = await InlinePipeEnd.open(role, listenIp);
      end.on('demand', (streamIds) => print({ event: 'demand', streamIds }));
      opened = { kind: 'inline', end };
      return { port: end.port };
    }
    const worker = await MediaWorkerClient.start({ listenIp, port: 0, announcedIp: listenIp, logLevel: 'warn', name: role }, pino({ level: 'warn' }));
    const room = worker.createRoom('netem', role === 'replica');
    const end = role === 'primary' ? await room.createPrimaryPipeEnd() : await room.createReplicaPipeEnd();
    opened = { kind: 'worker', worker, end };
    return { port: end.port };
  },
  async connect({ remote, keys }) {
    await current().end.connect(remote, { send: fromBase64(keys.send), receive: fromBase64(keys.receive) });
    return null;
  },
  async watch() {
    if (watching) clearInterval(watching.timer);
    const state = { timer: undefined as unknown as NodeJS.Timeout, lastRtpIn: (await pipeStats()).rtpIn, lastChangeAt: performance.now(), longestStallMs: 0 };
    state.timer = setInterval(() => {
      pipeStats()
        .then(({ rtpIn }) => {
          const now = performance.now();
          state.longestStallMs = Math.max(state.longestStallMs, now - state.lastChangeAt);
          if (rtpIn !== state.lastRtpIn) {
            state.lastRtpIn = rtpIn;
            state.lastChangeAt = now;
          }
        })
        .catch(() => undefined); // closing
    }, STATS_INTERVAL_MS);
    watching = state;
    return null;
  },
  async report() {
    const end = current();
    const pipe = await pipeStats();
    const longestStallMs = watching?.longestStallMs ?? 0;
    if (end.kind === 'inline') return { pipe, longestStallMs, video: end.end.videoReport() };
    return { pipe, longestStallMs, worker: await end.worker.stats() };
  },
  publishVideo({ streamId, fps }) {
    inline().publishVideo(streamId, fps);
    return null;
  },
  sendStreams({ streamIds }) {
    inline().sendStreams(streamIds);
    return null;
  },
  view({ streamId }) {
    inline().view(streamId);
    return null;
  },
  async close() {
    if (watching) clearInterval(watching.timer);
    if (opened?.kind === 'worker') await opened.worker.close();
    else opened?.end.close();
    setImmediate(() => process.exit(0));
    return null;
  },
};

createInterface({ input: process.stdin }).on('line', (line) => {
  let request: { id?: unknown; method?: unknown; params?: Params };
  try {
    request = JSON.parse(line) as typeof request;
  } catch {
    return print({ id: null, error: `not JSON: ${line.slice(0, 80)}` });
  }
  const method = typeof request.method === 'string' && Object.hasOwn(methods, request.method) ? methods[request.method] : undefined;
  if (!method) return print({ id: request.id, error: `no method ${String(request.method)}` });
  Promise.resolve()
    .then(() => method(request.params ?? {}))
    .then(
      (result) => print({ id: request.id, result }),
      (error: unknown) => print({ id: request.id, error: error instanceof Error ? error.message : String(error) }),
    );
});
// The test's end of stdin closing means it is gone: so is this end.
process.stdin.once('end', () => void methods.close!({}));
