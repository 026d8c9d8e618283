/**
 * Control plane benchmark: signed CreateAttendee and BatchCreateAttendee(100) sent by the real
 * AWS SDK client over keep-alive to `amphi serve` running in its own process.
 *
 *   npm run bench:api                      # full run, about a minute and a half on 2 cores
 *   npm run bench:api -- --quick           # short run, to check the benchmark itself
 *   npm run bench:api -- --cpu-prof DIR    # also profiles the server and prints where its CPU goes
 *
 * Two measurements, because they answer different questions:
 * - server CPU per request, closed loop at full speed: the server's own utime+stime from
 *   /proc around each round, so the load generator sharing the machine does not blur it;
 * - latency at a fixed rate, open loop: p50/p99/max a caller sees at 500 requests per second.
 */
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  BatchCreateAttendeeCommand,
  ChimeSDKMeetingsClient,
  CreateAttendeeCommand,
  CreateMeetingCommand,
  DeleteMeetingCommand,
} from '@aws-sdk/client-chime-sdk-meetings';
import { summarizeCpuProfile } from './cpu-profile.ts';
import { median, percentile, runAtFixedRate, runClosedLoop, type FixedRateResult } from './load.ts';
import { ServerProcess, type CpuTime } from './server-process.ts';

const CREDENTIALS = { accessKeyId: 'AKIDAMPHIBENCH000001', secretAccessKey: 'amphi-bench-secret' };
const ATTENDEES_PER_MEETING = 250; // the service's cap per meeting
const BATCH_SIZE = 100; // the service's cap per BatchCreateAttendee
const BATCHES_PER_MEETING = Math.floor(ATTENDEES_PER_MEETING / BATCH_SIZE);
const TARGET_CPU_MS_PER_CREATE_ATTENDEE = 0.5;
const TARGET_P99_MS = 20;

interface Plan {
  rounds: number;
  warmupAttendees: number;
  warmupBatches: number;
  attendeesPerRound: number;
  batchesPerRound: number;
  createAttendeeInFlight: number;
  batchInFlight: number;
  createAttendeeRate: number;
  batchRate: number;
  fixedRateDurationMs: number;
}

const FULL: Plan = {
  rounds: 5,
  warmupAttendees: 2_000,
  warmupBatches: 20,
  attendeesPerRound: 3_000,
  batchesPerRound: 40,
  createAttendeeInFlight: 16,
  batchInFlight: 4,
  createAttendeeRate: 500,
  batchRate: 20,
  fixedRateDurationMs: 10_000,
};

const QUICK: Plan = {
  ...FULL,
  rounds: 3,
  warmupAttendees: 500,
  warmupBatches: 6,
  attendeesPerRound: 1_000,
  batchesPerRound: 10,
  fixedRateDurationMs: 3_000,
};

/** CPU and wall time of one measured stretch of requests. */
interface CpuSample {
  requests: number;
  attendees: number;
  serverMs: number;
  serverUserMs: number;
  clientMs: number;
  elapsedMs: number;
}

class Bench {
  private meetingSerial = 0;
  private attendeeSerial = 0;

  constructor(
    private readonly client: ChimeSDKMeetingsClient,
    private readonly server: ServerProcess,
  ) {}

  /** Meetings are made and removed outside the measured stretches, a few at a time. */
  async createMeetings(count: number): Promise<string[]> {
    const ids: string[] = [];
    await runClosedLoop(count, 8, async () => {
      const serial = ++this.meetingSerial;
      const { Meeting } = await this.client.send(
        new CreateMeetingCommand({
          ClientRequestToken: `bench-meeting-${serial}`,
          ExternalMeetingId: `bench-meeting-${serial}`,
          MediaRegion: 'us-east-1',
        }),
      );
      ids.push(Meeting!.MeetingId!);
    });
    return ids;
  }

  async deleteMeetings(ids: readonly string[]): Promise<void> {
    await runClosedLoop(ids.length, 8, (index) => this.client.send(new DeleteMeetingCommand({ MeetingId: ids[index]! })).then(() => undefined));
  }

  /** CreateAttendee number `index` spreads over `meetings` round-robin, as joins to many meetings would. */
  createAttendee(meetings: readonly string[], index: number): Promise<void> {
    const meetingId = meetings[index % meetings.length]!;
    return this.client
      .send(new CreateAttendeeCommand({ MeetingId: meetingId, ExternalUserId: `bench-user-${++this.attendeeSerial}` }))
      .then(({ Attendee }) => {
        if (!Attendee?.JoinToken) throw new Error('CreateAttendee answered without a JoinToken');
      });
  }

  batchCreateAttendee(meetings: readonly string[], index: number): Promise<void> {
    const meetingId = meetings[index % meetings.length]!;
    const Attendees = Array.from({ length: BATCH_SIZE }, () => ({ ExternalUserId: `bench-user-${++this.attendeeSerial}` }));
    return this.client.send(new BatchCreateAttendeeCommand({ MeetingId: meetingId, Attendees })).then(({ Attendees: created, Errors }) => {
      if (Errors?.length) throw new Error(`BatchCreateAttendee refused ${Errors.length} attendees: ${Errors[0]!.ErrorCode} ${Errors[0]!.ErrorMessage}`);
      if (created?.length !== BATCH_SIZE) throw new Error(`BatchCreateAttendee created ${created?.length ?? 0} of ${BATCH_SIZE}`);
    });
  }

  /** Runs `work` between two readings of the server's and this process's CPU time. */
  async measureCpu(requests: number, attendees: number, work: () => Promise<{ elapsedMs: number }>): Promise<CpuSample> {
    const serverBefore = this.server.cpuTime();
    const clientBefore = process.cpuUsage();
    const { elapsedMs } = await work();
    const client = process.cpuUsage(clientBefore);
    const serverAfter = this.server.cpuTime();
    return {
      requests,
      attendees,
      serverMs: total(serverAfter) - total(serverBefore),
      serverUserMs: serverAfter.userMs - serverBefore.userMs,
      clientMs: (client.user + client.system) / 1000,
      elapsedMs,
    };
  }

  async createAttendeeRound(plan: Plan): Promise<CpuSample> {
    const meetings = await this.createMeetings(Math.ceil(plan.attendeesPerRound / ATTENDEES_PER_MEETING));
    const sample = await this.measureCpu(plan.attendeesPerRound, plan.attendeesPerRound, () =>
      runClosedLoop(plan.attendeesPerRound, plan.createAttendeeInFlight, (index) => this.createAttendee(meetings, index)),
    );
    await this.deleteMeetings(meetings);
    return sample;
  }

  async batchRound(plan: Plan): Promise<CpuSample> {
    const meetings = await this.createMeetings(Math.ceil(plan.batchesPerRound / BATCHES_PER_MEETING));
    const sample = await this.measureCpu(plan.batchesPerRound, plan.batchesPerRound * BATCH_SIZE, () =>
      runClosedLoop(plan.batchesPerRound, plan.batchInFlight, (index) => this.batchCreateAttendee(meetings, index)),
    );
    await this.deleteMeetings(meetings);
    return sample;
  }

  async fixedRate(
    kind: 'createAttendee' | 'batch',
    rate: number,
    durationMs: number,
  ): Promise<{ result: FixedRateResult; serverCpuShare: number }> {
    const requests = Math.round((rate * durationMs) / 1000);
    const perMeeting = kind === 'batch' ? BATCHES_PER_MEETING : ATTENDEES_PER_MEETING;
    const meetings = await this.createMeetings(Math.ceil(requests / perMeeting));
    const send = (index: number) => (kind === 'batch' ? this.batchCreateAttendee(meetings, index) : this.createAttendee(meetings, index));
    let result: FixedRateResult | undefined;
    const sample = await this.measureCpu(requests, 0, async () => {
      result = await runAtFixedRate(rate, durationMs, send);
      return { elapsedMs: result.elapsedMs };
    });
    await this.deleteMeetings(meetings);
    return { result: result!, serverCpuShare: sample.serverMs / sample.elapsedMs };
  }
}

/** An http.Agent that counts the connections it opens, to show keep-alive is in effect. */
class CountingAgent extends http.Agent {
  connectionsOpened = 0;
  override createConnection(...args: Parameters<http.Agent['createConnection']>): ReturnType<http.Agent['createConnection']> {
    this.connectionsOpened++;
    return super.createConnection(...args);
  }
}

const total = (cpu: CpuTime) => cpu.userMs + cpu.systemMs;
const ms = (value: number, digits = 2) => `${value.toFixed(digits)} ms`;

function cpuRow(name: string, inFlight: number, samples: readonly CpuSample[]): string {
  const perRequest = samples.map((s) => s.serverMs / s.requests);
  const perAttendee = samples.map((s) => s.serverMs / s.attendees);
  const clientPerRequest = samples.map((s) => s.clientMs / s.requests);
  const userShare = samples.map((s) => s.serverUserMs / s.serverMs);
  const throughput = samples.map((s) => (s.requests * 1000) / s.elapsedMs);
  const range = `${ms(Math.min(...perRequest), 3)} – ${ms(Math.max(...perRequest), 3)}`;
  return `| ${name} | ${inFlight} | ${samples[0]!.requests} | **${ms(median(perRequest), 3)}** | ${range} | ${ms(median(perAttendee), 3)} | ${(median(userShare) * 100).toFixed(0)}% | ${ms(median(clientPerRequest), 3)} | ${median(throughput).toFixed(0)}/s |`;
}

function latencyRow(name: string, rate: number, { result, serverCpuShare }: { result: FixedRateResult; serverCpuShare: number }): string {
  const { latenciesMs, sendLagMs, failures, skipped } = result;
  return `| ${name} | ${rate}/s | ${latenciesMs.length} | ${ms(percentile(latenciesMs, 50))} | **${ms(percentile(latenciesMs, 99))}** | ${ms(Math.max(...latenciesMs))} | ${(serverCpuShare * 100).toFixed(0)}% | ${failures + skipped} | ${ms(percentile(sendLagMs, 99))} |`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean', default: false }, 'cpu-prof': { type: 'string' } },
    strict: true,
  });
  const plan = values.quick ? QUICK : FULL;
  const cpuProfileDir = values['cpu-prof'] ? path.resolve(values['cpu-prof']) : undefined;

  const server = await ServerProcess.start({
    ...CREDENTIALS,
    nodeFlags: cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', cpuProfileDir] : [],
  });
  const killServer = () => server.killNow();
  process.once('exit', killServer);
  const agent = new CountingAgent({ keepAlive: true, maxSockets: 64 });
  const client = new ChimeSDKMeetingsClient({
    region: 'us-east-1',
    endpoint: server.url,
    credentials: CREDENTIALS,
    maxAttempts: 1, // a retry would hide a failure and double-count a request
    requestHandler: { httpAgent: agent, requestTimeout: 10_000, throwOnRequestTimeout: true },
  });
  const bench = new Bench(client, server);
  const log = (line: string) => process.stderr.write(`${line}\n`);

  try {
    log(`amphi serve pid ${server.pid} at ${server.url}; warming up`);
    const warmup = await bench.createMeetings(Math.ceil(plan.warmupAttendees / ATTENDEES_PER_MEETING) + plan.warmupBatches);
    await runClosedLoop(plan.warmupAttendees, plan.createAttendeeInFlight, (index) =>
      bench.createAttendee(warmup.slice(plan.warmupBatches), index),
    );
    await runClosedLoop(plan.warmupBatches, plan.batchInFlight, (index) => bench.batchCreateAttendee(warmup.slice(0, plan.warmupBatches), index));
    await bench.deleteMeetings(warmup);

    // The two operations alternate round by round so that drift (heap growth, a noisy
    // neighbour) falls on both alike and their ratio is measured side by side.
    const createSamples: CpuSample[] = [];
    const batchSamples: CpuSample[] = [];
    for (let round = 1; round <= plan.rounds; round++) {
      createSamples.push(await bench.createAttendeeRound(plan));
      batchSamples.push(await bench.batchRound(plan));
      const c = createSamples.at(-1)!;
      const b = batchSamples.at(-1)!;
      log(
        `round ${round}/${plan.rounds}: CreateAttendee ${ms(c.serverMs / c.requests, 3)} server CPU/request, ` +
          `BatchCreateAttendee(100) ${ms(b.serverMs / b.requests, 2)}`,
      );
    }

    log(`CreateAttendee at ${plan.createAttendeeRate}/s for ${plan.fixedRateDurationMs / 1000} s`);
    const createLatency = await bench.fixedRate('createAttendee', plan.createAttendeeRate, plan.fixedRateDurationMs);
    log(`BatchCreateAttendee(100) at ${plan.batchRate}/s for ${plan.fixedRateDurationMs / 1000} s`);
    const batchLatency = await bench.fixedRate('batch', plan.batchRate, plan.fixedRateDurationMs);

    const perAttendeeRatio = median(
      createSamples.map((c, i) => batchSamples[i]!.serverMs / batchSamples[i]!.attendees / (c.serverMs / c.requests)),
    );
    const createCpu = median(createSamples.map((s) => s.serverMs / s.requests));
    const createP99 = percentile(createLatency.result.latenciesMs, 99);
    const createFailures = createLatency.result.failures + createLatency.result.skipped;
    const verdict = (met: boolean) => (met ? 'met' : '**missed**');

    const report = [
      `amphi ${values.quick ? '--quick ' : ''}bench/api — Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}, ${new Date().toISOString().slice(0, 10)}`,
      '',
      `Server CPU per request, closed loop, median of ${plan.rounds} rounds (alternating operations):`,
      '',
      '| operation | in flight | requests/round | server CPU/request | range over rounds | server CPU/attendee | user share | load generator CPU/request | throughput |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
      cpuRow('CreateAttendee', plan.createAttendeeInFlight, createSamples),
      cpuRow(`BatchCreateAttendee(${BATCH_SIZE})`, plan.batchInFlight, batchSamples),
      '',
      `Batch/single server CPU per attendee: ${perAttendeeRatio.toFixed(2)} (median of per-round ratios).`,
      '',
      'Latency at a fixed rate, open loop, timed from each request\'s scheduled send to its parsed answer:',
      '',
      '| operation | rate | answered | p50 | p99 | max | server CPU (of one core) | failed or skipped | send lag p99 |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
      latencyRow('CreateAttendee', plan.createAttendeeRate, createLatency),
      latencyRow(`BatchCreateAttendee(${BATCH_SIZE})`, plan.batchRate, batchLatency),
      '',
      `Targets: ≤ ${TARGET_CPU_MS_PER_CREATE_ATTENDEE} ms server CPU per CreateAttendee: ${verdict(createCpu <= TARGET_CPU_MS_PER_CREATE_ATTENDEE)} (${ms(createCpu, 3)}); ` +
        `p99 < ${TARGET_P99_MS} ms at ${plan.createAttendeeRate}/s: ${verdict(createP99 < TARGET_P99_MS && createFailures === 0)} (${ms(createP99)}).`,
      `Keep-alive: ${agent.connectionsOpened} connections opened for the whole run; server peak RSS ${server.peakMemoryMiB().toFixed(0)} MiB.`,
    ];
    for (const [name, { result }] of [['CreateAttendee', createLatency], ['BatchCreateAttendee', batchLatency]] as const) {
      if (result.firstFailure) report.push(`${name} at a fixed rate: first failure: ${result.firstFailure}`);
    }
    process.stdout.write(`${report.join('\n')}\n`);
  } catch (error) {
    log(`server output:\n${server.recentOutput()}`);
    throw error;
  } finally {
    client.destroy();
    agent.destroy();
    await server.stop();
    process.off('exit', killServer);
  }
  if (cpuProfileDir) process.stdout.write(`\n${summarizeCpuProfile(cpuProfileDir)}\n`);
}

await main();
