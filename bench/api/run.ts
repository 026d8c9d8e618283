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
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ChimeSDKMeetingsClient } from '@aws-sdk/client-chime-sdk-meetings';
import {
  ATTENDEES_PER_MEETING,
  BATCH_SIZE,
  Bench,
  CountingAgent,
  CREDENTIALS,
  FULL_PLAN,
  QUICK_PLAN,
  type CpuSample,
  type FixedRateSample,
} from './api-calls.ts';
import { summarizeCpuProfile } from './cpu-profile.ts';
import { median, percentile, runClosedLoop } from './load.ts';
import { ServerProcess } from './server-process.ts';

const TARGET_CPU_MS_PER_CREATE_ATTENDEE = 0.5;
const TARGET_P99_MS = 20;
/** Above this share of a core, something besides this benchmark was busy (a quiet 2-core VM shows under 15%). */
const NOISY_MACHINE_SHARE = 0.25;



const ms = (value: number, digits = 2) => `${value.toFixed(digits)} ms`;
const percent = (share: number) => `${(share * 100).toFixed(0)}%`;

function cpuRow(name: string, inFlight: number, samples: readonly CpuSample[]): string {
  const perRequest = samples.map((s) => s.serverMs / s.requests);
  const perAttendee = samples.map((s) => s.serverMs / s.attendees);
  const clientPerRequest = samples.map((s) => s.clientMs / s.requests);
  const userShare = samples.map((s) => s.serverUserMs / s.serverMs);
  const throughput = samples.map((s) => (s.requests * 1000) / s.elapsedMs);
  const restOfMachine = samples.map((s) => s.restOfMachineMs / s.elapsedMs);
  const range = `${ms(Math.min(...perRequest), 3)} – ${ms(Math.max(...perRequest), 3)}`;
  return `| ${name} | ${inFlight} | ${samples[0]!.requests} | **${ms(median(perRequest), 3)}** | ${range} | ${ms(median(perAttendee), 3)} | ${percent(median(userShare))} | ${ms(median(clientPerRequest), 3)} | ${median(throughput).toFixed(0)}/s | ${percent(median(restOfMachine))} |`;
}

function latencyRow(name: string, rate: number, runs: readonly FixedRateSample[]): string {
  const p99s = runs.map((run) => percentile(run.latenciesMs, 99));
  const cells = [
    name,
    `${rate}/s`,
    `${runs.length} × ${runs[0]!.latenciesMs.length + runs[0]!.failures + runs[0]!.skipped}`,
    ms(median(runs.map((run) => percentile(run.latenciesMs, 50)))),
    `**${ms(median(p99s))}**`,
    `${ms(Math.min(...p99s))} – ${ms(Math.max(...p99s))}`,
    ms(Math.max(...runs.map((run) => Math.max(...run.latenciesMs)))),
    `${ms(median(runs.map((run) => percentile(run.inServerMs, 50))))} / ${ms(median(runs.map((run) => percentile(run.inServerMs, 99))))}`,
    percent(median(runs.map((run) => run.serverCpuShare))),
    percent(median(runs.map((run) => run.clientCpuShare))),
    percent(median(runs.map((run) => run.restOfMachineShare))),
    ms(median(runs.map((run) => percentile(run.sendLagMs, 99)))),
    `${runs.reduce((sum, run) => sum + run.failures, 0)} / ${runs.reduce((sum, run) => sum + run.skipped, 0)}`,
  ];
  return `| ${cells.join(' | ')} |`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean', default: false }, 'cpu-prof': { type: 'string' } },
    strict: true,
  });
  const plan = values.quick ? QUICK_PLAN : FULL_PLAN;
  const cpuProfileDir = values['cpu-prof'] ? path.resolve(values['cpu-prof']) : undefined;

  const server = await ServerProcess.start({
    ...CREDENTIALS,
    nodeFlags: cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', cpuProfileDir] : [],
  });
  // The server must not outlive the benchmark, whatever ends it.
  const killServer = () => server.killNow();
  const stopOnSignal = (signal: NodeJS.Signals) => {
    server.killNow();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('exit', killServer);
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
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
    const warmupForBatches = await bench.createMeetings(plan.warmupBatches);
    const warmupForSingles = await bench.createMeetings(Math.ceil(plan.warmupAttendees / ATTENDEES_PER_MEETING));
    await runClosedLoop(plan.warmupAttendees, plan.createAttendeeInFlight, (index) => bench.createAttendee(warmupForSingles, index));
    await runClosedLoop(plan.warmupBatches, plan.batchInFlight, (index) => bench.batchCreateAttendee(warmupForBatches, index));
    await bench.deleteMeetings([...warmupForBatches, ...warmupForSingles]);

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

    const createRuns: FixedRateSample[] = [];
    const batchRuns: FixedRateSample[] = [];
    for (let run = 1; run <= plan.fixedRateRuns; run++) {
      createRuns.push(await bench.fixedRate('createAttendee', plan.createAttendeeRate, plan.createAttendeeRunMs));
      batchRuns.push(await bench.fixedRate('batch', plan.batchRate, plan.batchRunMs));
      const c = createRuns.at(-1)!;
      const b = batchRuns.at(-1)!;
      log(
        `fixed rate ${run}/${plan.fixedRateRuns}: CreateAttendee at ${plan.createAttendeeRate}/s p99 ${ms(percentile(c.latenciesMs, 99))}, ` +
          `BatchCreateAttendee(100) at ${plan.batchRate}/s p99 ${ms(percentile(b.latenciesMs, 99))}`,
      );
    }

    const perAttendeeRatio = median(
      createSamples.map((c, i) => batchSamples[i]!.serverMs / batchSamples[i]!.attendees / (c.serverMs / c.requests)),
    );
    const createCpu = median(createSamples.map((s) => s.serverMs / s.requests));
    const createP99 = median(createRuns.map((run) => percentile(run.latenciesMs, 99)));
    const createFailures = createRuns.reduce((sum, run) => sum + run.failures + run.skipped, 0);
    const verdict = (met: boolean) => (met ? 'met' : '**missed**');

    const report = [
      `bench/api${values.quick ? ' --quick' : ''} — Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}, ${new Date().toISOString().slice(0, 10)}`,
      '',
      `Server CPU per request, closed loop, median of ${plan.rounds} rounds (alternating operations):`,
      '',
      '| operation | in flight | requests/round | server CPU/request | range over rounds | server CPU/attendee | in user mode | load generator CPU/request | throughput | rest of machine |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      cpuRow('CreateAttendee', plan.createAttendeeInFlight, createSamples),
      cpuRow(`BatchCreateAttendee(${BATCH_SIZE})`, plan.batchInFlight, batchSamples),
      '',
      `Batch/single server CPU per attendee: ${perAttendeeRatio.toFixed(2)} (median of per-round ratios).`,
      '',
      `Latency at a fixed rate, open loop, from each request's scheduled send to its parsed answer; median of ${plan.fixedRateRuns} runs:`,
      '',
      '| operation | rate | runs × requests | p50 | p99 | p99 range | max | inside server p50 / p99 | server CPU | load generator CPU | rest of machine | send lag p99 | failed / skipped |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      latencyRow('CreateAttendee', plan.createAttendeeRate, createRuns),
      latencyRow(`BatchCreateAttendee(${BATCH_SIZE})`, plan.batchRate, batchRuns),
      '',
      'CPU columns are shares of one core over the run. Rest of machine: busy time of everything but the server and the',
      'generator (loopback TCP in the kernel, other processes: if large, rerun on a quiet machine). Send lag: how late the',
      'generator itself started a request; inside server: from parsed request headers to the answer\'s last byte. In user mode:',
      'the share of the server\'s CPU outside the kernel. Skipped: not sent because 1,000 requests were already waiting.',
      '',
      `Targets: ≤ ${TARGET_CPU_MS_PER_CREATE_ATTENDEE} ms server CPU per CreateAttendee: ${verdict(createCpu <= TARGET_CPU_MS_PER_CREATE_ATTENDEE)} (${ms(createCpu, 3)}); ` +
        `p99 < ${TARGET_P99_MS} ms at ${plan.createAttendeeRate}/s: ${verdict(createP99 < TARGET_P99_MS && createFailures === 0)} (${ms(createP99)}).`,
      `Keep-alive: ${agent.connectionsOpened} connections opened for the whole run. Server peak RSS ${server.peakMemoryMiB().toFixed(0)} MiB; ` +
        `journal on ${server.dataFileSystem()} (${server.dataDir}).`,
    ];
    for (const run of [...createRuns, ...batchRuns]) {
      if (run.firstFailure) report.push(`A fixed-rate request failed: ${run.firstFailure}`);
    }
    const restOfMachine = [
      ...[...createSamples, ...batchSamples].map((sample) => sample.restOfMachineMs / sample.elapsedMs),
      ...[...createRuns, ...batchRuns].map((run) => run.restOfMachineShare),
    ];
    if (Math.max(...restOfMachine) > NOISY_MACHINE_SHARE) {
      report.push(
        `**Warning:** other work kept up to ${percent(Math.max(...restOfMachine))} of a core busy during a measurement; ` +
          'these figures are unreliable, rerun on a quiet machine.',
      );
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
    process.off('SIGINT', stopOnSignal);
    process.off('SIGTERM', stopOnSignal);
  }
  if (cpuProfileDir) {
    // The profiler itself slows the server, so a profiled run's figures are not comparable to others.
    process.stdout.write(`\n(profiled run: the figures above include the profiler's overhead)\n${summarizeCpuProfile(cpuProfileDir, server.pid)}\n`);
  }
}

await main();
