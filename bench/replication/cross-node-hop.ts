/**
 * The primary → replica hop across a process boundary, as between two nodes, next to the same hop inside one
 * process, in one run. Each layout runs the same code (hop-sides.ts) in child processes (hop-node.ts):
 *
 * - one process: the primary's room and the replica's room in one process, as hop.ts measures it;
 * - two processes: the primary's room in one process and the replica's in another, the pipe between them the
 *   real one (SRTP AEAD_AES_128_GCM over UDP on 127.0.0.1), its keys handed to both by this parent as a node
 *   would get them from the other, and the replica's demand for video relayed by this parent as the bridge does.
 *
 *   npm run bench:cluster                                            # the API in cluster mode, then this
 *   node --import tsx bench/replication/cross-node-hop.ts [--quick]  # this alone
 *
 * Rounds alternate between the layouts (order rotating); each round sends for a fixed time after a warm-up
 * second. Figures are medians over rounds of each round's median and p99, per stream.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { machineBusyMs, processCpuTime } from '../api/proc.ts';
import { summarizeDelays, type DelaySummary } from './delays.ts';
import type { FromHopNode, HopRole, ToHopNode } from './hop-node.ts';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 2 : 6;
const SECONDS_PER_ROUND = quick ? 3 : 10;
const WARMUP_MS = 1_000;
const REPLY_TIMEOUT_MS = 10_000;
const HOP_NODE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'hop-node.ts');

/** A hop-node.ts child and the replies it sends. */
class HopNode {
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  private readonly waiting = new Map<FromHopNode['type'], (message: FromHopNode) => void>();
  onDemand?: (streamIds: number[]) => void;

  constructor(role: HopRole) {
    this.child = fork(HOP_NODE, [role], { execArgv: ['--import', 'tsx'], serialization: 'advanced', env: { ...process.env, NODE_OPTIONS: '' } });
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    this.child.on('message', (message: FromHopNode) => {
      if (message.type === 'demand') this.onDemand?.(message.streamIds);
      const waiter = this.waiting.get(message.type);
      this.waiting.delete(message.type);
      waiter?.(message);
    });
  }

  /** CPU this node has used so far, in milliseconds. */
  cpuMs(): number {
    const { userMs, systemMs } = processCpuTime(this.child.pid!);
    return userMs + systemMs;
  }

  send(message: ToHopNode): void {
    this.child.send(message);
  }

  /** The next message of `type`, sending `message` first if given. */
  next<T extends FromHopNode['type']>(type: T, message?: ToHopNode): Promise<Extract<FromHopNode, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`hop node sent no '${type}' within ${REPLY_TIMEOUT_MS} ms`)), REPLY_TIMEOUT_MS);
      this.child.once('exit', (code) => reject(new Error(`hop node exited (${code}) before '${type}'`)));
      this.waiting.set(type, (reply) => {
        clearTimeout(timer);
        resolve(reply as Extract<FromHopNode, { type: T }>);
      });
      if (message) this.send(message);
    });
  }

  async close(): Promise<void> {
    if (this.child.exitCode === null && this.child.connected) this.send({ type: 'close' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
  }

  killNow(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

type Layout = 'one process' | 'two processes';

interface RoundResult {
  audio: DelaySummary;
  video: DelaySummary;
  sent: { audio: number; video: number };
  /** The hop's processes' CPU over the measured stretch, as a share of one core. */
  hopCpuShare: number;
  /** Everything else the machine did meanwhile (other processes, kernel), as a share of one core. */
  restOfMachineShare: number;
}

const alive = new Set<HopNode>();

async function runRound(layout: Layout): Promise<RoundResult> {
  const nodes: HopNode[] = [];
  const start = (role: HopRole) => {
    const node = new HopNode(role);
    nodes.push(node);
    alive.add(node);
    return node;
  };
  try {
    let primary: HopNode;
    let replica: HopNode;
    if (layout === 'one process') {
      primary = replica = start('both');
      await primary.next('ready');
    } else {
      primary = start('primary');
      replica = start('replica');
      let demand: number[] | undefined;
      replica.onDemand = (streamIds) => (demand = streamIds);
      const [primaryReady, replicaReady] = await Promise.all([primary.next('ready'), replica.next('ready')]);
      const down = { key: randomBytes(16), salt: randomBytes(12) };
      const up = { key: randomBytes(16), salt: randomBytes(12) };
      primary.send({ type: 'connect', remote: { address: '127.0.0.1', port: replicaReady.port! }, keys: { send: down, receive: up } });
      replica.send({ type: 'connect', remote: { address: '127.0.0.1', port: primaryReady.port! }, keys: { send: up, receive: down } });
      // The replica's demand may come before the primary listens: hold it until then, relay the rest as they come.
      if (demand) primary.send({ type: 'demand', streamIds: demand });
      replica.onDemand = (streamIds) => primary.send({ type: 'demand', streamIds });
    }
    primary.send({ type: 'start' });
    await sleep(WARMUP_MS);
    replica.send({ type: 'reset' });
    if (primary !== replica) primary.send({ type: 'reset' });
    const hopCpu = () => nodes.reduce((sum, node) => sum + node.cpuMs(), 0);
    const [machineBefore, hopBefore, startedAt] = [machineBusyMs(), hopCpu(), performance.now()];
    await sleep(SECONDS_PER_ROUND * 1000);
    const { sent } = await primary.next('stopped', { type: 'stop' });
    const [machineMs, hopMs, elapsedMs] = [machineBusyMs() - machineBefore, hopCpu() - hopBefore, performance.now() - startedAt];
    await sleep(100); // the last packets in flight
    const delays = await replica.next('delays', { type: 'report' });
    return {
      audio: summarizeDelays(delays.audio),
      video: summarizeDelays(delays.video),
      sent,
      hopCpuShare: hopMs / elapsedMs,
      restOfMachineShare: Math.max(0, machineMs - hopMs) / elapsedMs,
    };
  } finally {
    for (const node of nodes) {
      await node.close();
      alive.delete(node);
    }
  }
}

const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};
const fixed = (value: number) => value.toFixed(3);
const percent = (share: number) => `${(share * 100).toFixed(0)}%`;

async function main(): Promise<void> {
  const killAll = () => alive.forEach((node) => node.killNow());
  process.once('exit', killAll);
  const layouts: Layout[] = ['one process', 'two processes'];
  const results = new Map<Layout, RoundResult[]>(layouts.map((layout) => [layout, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const layout of round % 2 ? [...layouts].reverse() : layouts) {
      const result = await runRound(layout);
      results.get(layout)!.push(result);
      process.stderr.write(
        `round ${round + 1}/${ROUNDS}, ${layout}: audio p50 ${fixed(result.audio.median)} p99 ${fixed(result.audio.p99)} ms, ` +
          `video p50 ${fixed(result.video.median)} p99 ${fixed(result.video.p99)} ms\n`,
      );
    }
  }

  const lines = [
    `bench/replication/cross-node-hop.ts${quick ? ' --quick' : ''} — Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}, ` +
      `${new Date().toISOString().slice(0, 10)}; ${ROUNDS} rounds of ${SECONDS_PER_ROUND} s per layout, alternating`,
    '',
    '| stream | layout | packets received / sent | p50 ms | p99 ms | p99 range over rounds | max ms | hop processes CPU | rest of machine |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const medians = new Map<string, { p50: number; p99: number }>();
  for (const stream of ['audio', 'video'] as const) {
    for (const layout of layouts) {
      const rounds = results.get(layout)!;
      const received = rounds.reduce((sum, r) => sum + r[stream].packets, 0);
      const sent = rounds.reduce((sum, r) => sum + r.sent[stream], 0);
      const p50 = median(rounds.map((r) => r[stream].median));
      const p99s = rounds.map((r) => r[stream].p99);
      medians.set(`${stream}/${layout}`, { p50, p99: median(p99s) });
      const name = stream === 'audio' ? 'audio (shared mix, 50/s)' : 'video (1,200 B, 200/s)';
      lines.push(
        `| ${name} | ${layout} | ${received} / ${sent} | ${fixed(p50)} | **${fixed(median(p99s))}** | ${fixed(Math.min(...p99s))} – ${fixed(Math.max(...p99s))} | ${fixed(Math.max(...rounds.map((r) => r[stream].max)))} | ${percent(median(rounds.map((r) => r.hopCpuShare)))} | ${percent(median(rounds.map((r) => r.restOfMachineShare)))} |`,
      );
    }
  }
  lines.push('');
  for (const stream of ['audio', 'video'] as const) {
    const one = medians.get(`${stream}/one process`)!;
    const two = medians.get(`${stream}/two processes`)!;
    lines.push(`Two processes ÷ one, ${stream}: p50 ${(two.p50 / one.p50).toFixed(2)}, p99 ${(two.p99 / one.p99).toFixed(2)}.`);
  }
  lines.push(
    'CPU columns: medians over rounds, shares of one core; rest of machine is everything but the hop\'s processes (other',
    'work on the machine delays the wake-up of a second process, not the next turn of a process already running).',
  );
  process.stdout.write(`${lines.join('\n')}\n`);
  process.off('exit', killAll);
}

await main();
