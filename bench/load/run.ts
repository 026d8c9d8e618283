/**
 * Viewers per core, end to end: `amphi serve` pinned to one core, one presenter in a primary, N headless
 * viewers in its replicas (or, with --room primary, in the primary itself) on the other core, N ramped, with one
 * real-time probe viewer per room (probe.ts) measuring the delay the server adds; see
 * bench/load/README.md.
 *
 *   npm run bench:load -- [--steps 50,100,150,200,250] [--seconds 10] [--workers 1] [--server-cpu 0] [--load-cpu 1] [--room replica|primary] [--simulcast]
 */
import { execFileSync, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { ChimeSDKMeetingsClient, CreateMeetingCommand, type Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import { ServerProcess } from '../api/server-process.ts';
import { DelayHistogram } from './delay-histogram.ts';
import { Publisher } from '../../test/support/replayed-presenter.ts';
import type { ProbeJoin, ProbeMeasured } from './probe.ts';
import { ServerSampler, type ServerInterval } from './server-sampler.ts';
import { AUTHENTICATE_ONE_IN, Viewer } from './viewer.ts';

const { values: flags } = parseArgs({
  options: {
    steps: { type: 'string', default: '50,100,150,200,250' },
    seconds: { type: 'string', default: '10' },
    workers: { type: 'string', default: '1' },
    'server-cpu': { type: 'string', default: '0' },
    'load-cpu': { type: 'string', default: '1' },
    room: { type: 'string', default: 'replica' },
    simulcast: { type: 'boolean', default: false },
  },
});
const steps = flags.steps.split(',').map(Number);
const measureSeconds = Number(flags.seconds);
if (steps.some((n) => !Number.isInteger(n) || n < 1) || !(measureSeconds > 0)) throw new Error('--steps takes positive integers (50,100,…), --seconds a positive number');
if (flags.room !== 'replica' && flags.room !== 'primary') throw new Error('--room takes replica or primary');
const inPrimary = flags.room === 'primary';
/** A meeting's 250 connections; in the primary, the presenter holds one. */
const VIEWERS_PER_ROOM = inPrimary ? 249 : 250;
if (inPrimary && Math.max(...steps) > VIEWERS_PER_ROOM) throw new Error(`--room primary holds at most ${VIEWERS_PER_ROOM} viewers`);
const JOINS_AT_ONCE = 8;
/** The probes' real-time priority (SCHED_FIFO): above the load process, far below the kernel's threads. */
const PROBE_PRIORITY = '20';
const SETTLE_MS = 3000;
const TARGET_CPU_PERCENT = 85;

const log = (line: string) => process.stderr.write(`${line}\n`);
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// The load runs on its own core, every thread of it, so the server's core serves the server alone.
execFileSync('taskset', ['-a', '-p', '-c', flags['load-cpu'], String(process.pid)], { stdio: 'ignore' });

/** The bare floor loop (floor.ts) on the server's core, sending to a socket read on this one. */
async function measureFloor(): Promise<Record<string, number>> {
  const sink = createSocket('udp4');
  await new Promise<void>((resolve) => sink.bind(0, '127.0.0.1', resolve));
  sink.on('message', () => undefined);
  const child = spawn('taskset', ['-c', flags['server-cpu'], process.execPath, '--import', 'tsx', new URL('./floor.ts', import.meta.url).pathname, String(sink.address().port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  sink.close();
  if (code !== 0) throw new Error(`the floor loop failed (${code})`);
  return (JSON.parse(output) as { microsecondsPerPacket: Record<string, number> }).microsecondsPerPacket;
}

/** The probe process (probe.ts) on the load's core, raised to real-time priority when the system allows it. */
class ProbeProcess {
  private readonly child = fork(new URL('./probe.ts', import.meta.url).pathname, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  realTime = false;

  /**
   * Real-time priority for the probe's main thread only, once it has joined: its other threads (V8's, libuv's,
   * the module loader's) stay ordinary, so none can be starved on the shared core by a thread that waits for it.
   */
  raisePriority(): void {
    try {
      execFileSync('chrt', ['-f', '-p', PROBE_PRIORITY, String(this.child.pid)], { stdio: 'ignore' });
      this.realTime = true;
    } catch {
      log('the probes could not get real-time priority (chrt needs CAP_SYS_NICE): their delays include the load process\'s queueing');
    }
  }

  request<T>(command: object, reply?: string): Promise<T | undefined> {
    return new Promise((resolve, reject) => {
      if (!reply) {
        this.child.send(command);
        resolve(undefined);
        return;
      }
      const onExit = (code: number | null) => reject(new Error(`the probe process exited (${code})`));
      this.child.once('exit', onExit);
      const onMessage = (message: { type: string }) => {
        if (message.type !== reply) return;
        this.child.off('message', onMessage);
        this.child.off('exit', onExit);
        resolve(message as T);
      };
      this.child.on('message', onMessage);
      this.child.send(command);
    });
  }

  close(): void {
    if (this.child.connected) this.child.send({ type: 'close' });
    setTimeout(() => this.child.kill(), 2000).unref();
  }
}

function loadCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

interface Row {
  viewers: number;
  server: ServerInterval;
  loadCpuPercent: number;
  lossPercent: number;
  p50DelayMs: number;
  p99DelayMs: number;
  maxDelayMs: number;
  /** The probes' view: what the server adds, the load's own queueing left out. */
  probe: ProbeMeasured;
  nacks: number;
  authFailures: number;
  /** What the presenter sent per second (it should stay ~213: a starved load core thins it). */
  presenterPacketsPerSecond: number;
}

const floor = await measureFloor();
log(`floor loop on cpu ${flags['server-cpu']}: ${JSON.stringify(floor)} µs/packet`);

const credentials = { accessKeyId: `AKIA${randomBytes(8).toString('hex').toUpperCase()}`, secretAccessKey: randomBytes(20).toString('hex') };
const server = await ServerProcess.start({
  ...credentials,
  cpuList: flags['server-cpu'],
  env: { AMPHI_MEDIA_WORKERS: flags.workers, AMPHI_MAX_SOCKETS_PER_ADDRESS: '0', AMPHI_METRICS: 'on' },
});
process.on('exit', () => server.killNow());
const api = new ChimeSDKMeetingsClient({ region: 'us-east-1', endpoint: server.url, credentials, maxAttempts: 1 });
const sampler = new ServerSampler(server.pid, server.url);
const viewers: Viewer[] = [];
let publisher: Publisher | undefined;
let probes: ProbeProcess | undefined;
const rows: Row[] = [];
try {
  const create = async (name: string, primary?: Meeting) =>
    (await api.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: name, ...(primary ? { PrimaryMeetingId: primary.MeetingId } : {}) }))).Meeting!;
  const primary = await create('load-primary');
  const rooms: Meeting[] = inPrimary ? [primary] : [];
  if (!inPrimary) for (let i = 0; i < Math.ceil(Math.max(...steps) / VIEWERS_PER_ROOM); i++) rooms.push(await create(`load-replica-${i}`, primary));
  publisher = await Publisher.join(api, primary, { simulcast: flags.simulcast });
  publisher.start();
  const videoStreamId = publisher.videoStreamId;
  log(`presenter publishing stream ${videoStreamId}${flags.simulcast ? ' (the hi layer of two simulcast layers)' : ''}; viewers in ${inPrimary ? 'the primary' : `${rooms.length} replica(s)`}`);
  const delays = { current: new DelayHistogram() };
  // One probe viewer per room holds that room's first seat; N counts them.
  probes = new ProbeProcess();
  const join: ProbeJoin = { type: 'join', url: server.url, credentials, rooms, videoStreamId };
  await probes.request(join, 'joined');
  probes.raisePriority();
  const probeCount = rooms.length;
  if (steps[0]! < probeCount) throw new Error(`the first step must hold the ${probeCount} probe viewer(s)`);
  /** The room of the load's viewer `index`: rooms fill in order, each with its probe in it. */
  const roomOf = (index: number) => rooms[Math.floor(index / (VIEWERS_PER_ROOM - 1))]!;

  for (const target of steps) {
    while (viewers.length + probeCount < target) {
      const batch = Math.min(JOINS_AT_ONCE, target - probeCount - viewers.length);
      const joined = await Promise.all(
        Array.from({ length: batch }, (_, i) => {
          const index = viewers.length + i;
          return Viewer.join(api, roomOf(index), `viewer-${index}`, videoStreamId, delays);
        }),
      );
      viewers.push(...joined);
    }
    // Every viewer starts at a key frame (its join asked for one): wait until all have video.
    const deadline = Date.now() + 20_000;
    while (viewers.some((v) => v.video.received === 0) && Date.now() < deadline) await delay(200);
    const silent = viewers.filter((v) => v.video.received === 0).length;
    await delay(SETTLE_MS);

    const before = await sampler.read();
    const loadBefore = loadCpuSeconds();
    const presenterBefore = publisher.sent.video + publisher.sent.audio;
    const tallyBefore = viewers.map((v) => ({ expected: v.video.expected + v.audio.expected, lost: v.video.lost + v.audio.lost, nacks: v.nacksSent, failed: v.authentication.failed }));
    delays.current = new DelayHistogram();
    await probes.request({ type: 'start' });
    await delay(measureSeconds * 1000);
    const probeMeasured = probes.request<ProbeMeasured>({ type: 'stop' }, 'measured');
    // Holes need a second to count as lost: wait for it before reading the losses, measuring nothing more.
    const histogram = delays.current;
    delays.current = new DelayHistogram();
    const after = await sampler.read();
    const loadAfter = loadCpuSeconds();
    const presenterSent = publisher.sent.video + publisher.sent.audio - presenterBefore;
    await delay(1100);
    const probe = (await probeMeasured)!;
    let expected = probe.expected;
    let lost = probe.lost;
    let nacks = 0;
    let authFailures = 0;
    viewers.forEach((v, i) => {
      const was = tallyBefore[i]!;
      v.video.settle(performance.now());
      v.audio.settle(performance.now());
      expected += v.video.expected + v.audio.expected - was.expected;
      lost += v.video.lost + v.audio.lost - was.lost;
      nacks += v.nacksSent - was.nacks;
      authFailures += v.authentication.failed - was.failed;
    });
    const interval = ServerSampler.between(before, after);
    const row: Row = {
      viewers: target,
      server: interval,
      loadCpuPercent: (100 * (loadAfter - loadBefore)) / interval.seconds,
      lossPercent: expected > 0 ? (100 * lost) / expected : NaN,
      p50DelayMs: histogram.percentile(50),
      p99DelayMs: histogram.percentile(99),
      maxDelayMs: histogram.maxMs,
      probe,
      nacks,
      authFailures,
      presenterPacketsPerSecond: presenterSent / interval.seconds,
    };
    rows.push(row);
    log(
      `${target} viewers${silent ? ` (${silent} without video)` : ''}: server ${interval.processCpuPercent.toFixed(1)}% (main ${interval.mainThreadCpuPercent.toFixed(1)}%, ` +
        `workers ${[...interval.workerCpuPercent.values()].map((p) => p.toFixed(1)).join('/')}%), ${Math.round(interval.packetsPerSecond)} packets/s, ` +
        `fan-out deferred ${interval.fanOutDeferred} dropped ${interval.fanOutDropped}, presenter ${Math.round(row.presenterPacketsPerSecond)}/s, loss ${row.lossPercent.toFixed(3)}%, p99 ${probe.p99DelayMs.toFixed(1)} ms (probes) ${row.p99DelayMs.toFixed(1)} ms (load), load ${row.loadCpuPercent.toFixed(0)}%`,
    );
    if (row.lossPercent > 5 || interval.processCpuPercent > 98) {
      log('the server is saturated: stopping the ramp');
      break;
    }
  }
} finally {
  for (const viewer of viewers) viewer.close();
  publisher?.close();
  probes?.close();
  await server.stop();
}

// The report: one markdown table, then the floor comparison.
const gcm = floor.SRTP_AEAD_AES_128_GCM!;
const lines = [
  `Amphi ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'}, ${flags.simulcast ? 'simulcast presenter (low + hi, viewers on hi)' : 'presenter without simulcast'}, viewers in ${inPrimary ? 'the primary' : 'replicas'}, server on cpu ${flags['server-cpu']} (${flags.workers} media worker${flags.workers === '1' ? '' : 's'}), load on cpu ${flags['load-cpu']}; load average at the end ${loadavg().map((l) => l.toFixed(1)).join(' ')}`,
  `Floor loop (header rewrite + protect + dgram.send): ${gcm.toFixed(2)} µs/packet with AEAD_AES_128_GCM, ${floor.SRTP_AES128_CM_HMAC_SHA1_80!.toFixed(2)} µs with AES_CM_128_HMAC_SHA1_80; viewers SRTP-authenticated 1 packet in ${AUTHENTICATE_ONE_IN}; probe viewers (one per room) ${probes?.realTime ? 'at real-time priority' : 'at normal priority (chrt refused)'}`,
  '',
  '| viewers | server CPU | main thread | media workers | CPU per viewer | packets/s sent | Mb/s sent | µs CPU per packet | loss | p50 / p99 added delay (probes) | p99 at the load viewers | RSS | viewers per core at 85% | floor: viewers per core | load core | presenter packets/s | fan-out deferred / dropped |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
];
for (const row of rows) {
  const s = row.server;
  const cpuPerViewer = s.processCpuPercent / row.viewers;
  const packetsPerViewer = s.packetsPerSecond / row.viewers;
  const floorViewers = (TARGET_CPU_PERCENT / 100) * 1e6 / (gcm * packetsPerViewer);
  lines.push(
    `| ${row.viewers} | ${s.processCpuPercent.toFixed(1)}% | ${s.mainThreadCpuPercent.toFixed(1)}% | ${[...s.workerCpuPercent.values()].map((p) => `${p.toFixed(1)}%`).join(' / ')} | ` +
      `${(cpuPerViewer * 10).toFixed(2)} ms/s | ${Math.round(s.packetsPerSecond)} | ${s.megabitsPerSecond.toFixed(0)} | ${((s.processCpuPercent * 1e4) / s.packetsPerSecond).toFixed(1)} | ` +
      `${row.lossPercent.toFixed(3)}%${row.nacks ? ` (${row.nacks} NACKs)` : ''} | ${row.probe.p50DelayMs.toFixed(1)} / ${row.probe.p99DelayMs.toFixed(1)} ms | ${row.p99DelayMs.toFixed(1)} ms | ${s.rssMiB.toFixed(0)} MiB | ` +
      `${Math.round((TARGET_CPU_PERCENT * row.viewers) / s.processCpuPercent)} | ${Math.round(floorViewers)} | ${row.loadCpuPercent.toFixed(0)}% | ${Math.round(row.presenterPacketsPerSecond)} | ${s.fanOutDeferred} / ${s.fanOutDropped} |`,
  );
}
const failures = rows.reduce((sum, row) => sum + row.authFailures, 0);
if (failures > 0) lines.push('', `**${failures} sampled SRTP packets failed to unprotect** (forged, damaged, or retransmissions older than the replay window).`);
process.stdout.write(`${lines.join('\n')}\n`);
process.exit(0);
