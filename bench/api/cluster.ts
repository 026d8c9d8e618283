/**
 * Control plane in cluster mode against the embedded store: the same signed CreateAttendee and
 * BatchCreateAttendee(100) as run.ts, sent to three Amphi servers side by side in one run:
 *
 * - embedded: `amphi serve` with its journal (FileStore), as run.ts measures it;
 * - Redis, appendfsync everysec: meetings in a redis-server of its own (RedisMeetingStore);
 * - Redis, appendfsync always: the same with an fsync before every answer.
 *
 *   npm run bench:cluster                                   # this, then the cross-node replica hop
 *   node --import tsx bench/api/cluster.ts [--quick]        # this alone
 *
 * Cluster mode moves part of each call's work into redis-server, so its CPU is read from /proc too,
 * reported beside the Amphi server's and summed. Rounds alternate between the three servers (their
 * order rotating) so drift falls on all alike; ratios to the embedded store are medians of per-round
 * ratios. A server waiting on Redis uses less CPU but takes longer: the latency table shows that part.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { ChimeSDKMeetingsClient } from '@aws-sdk/client-chime-sdk-meetings';
import { ATTENDEES_PER_MEETING, BATCH_SIZE, Bench, CountingAgent, CREDENTIALS, FULL_PLAN, QUICK_PLAN, type CpuSample, type FixedRateSample, type Plan } from './api-calls.ts';
import { median, percentile, runClosedLoop } from './load.ts';
import { RedisProcess, type AppendFsync } from './redis-process.ts';
import { ServerProcess } from './server-process.ts';

/** Above this share of a core, something besides this benchmark was busy. */
const NOISY_MACHINE_SHARE = 0.25;

/** The control plane benchmark's plan, with shorter fixed-rate runs: three servers take turns. */
const FULL: Plan = { ...FULL_PLAN, createAttendeeRunMs: 5_000 };

const QUICK: Plan = { ...QUICK_PLAN, createAttendeeRunMs: 2_000, batchRunMs: 2_000 };

/** One server under test, with the redis-server it stores in (none for the embedded store). */
interface Contender {
  name: string;
  server: ServerProcess;
  redis?: RedisProcess;
  client: ChimeSDKMeetingsClient;
  agent: CountingAgent;
  bench: Bench;
  creates: CpuSample[];
  batches: CpuSample[];
  createRuns: FixedRateSample[];
  batchRuns: FixedRateSample[];
}

const ms = (value: number, digits = 3) => `${value.toFixed(digits)} ms`;
const percent = (share: number) => `${(share * 100).toFixed(0)}%`;
const ratio = (value: number) => `${value.toFixed(2)}×`;
const log = (line: string) => process.stderr.write(`${line}\n`);

async function startContender(name: string, appendFsync?: AppendFsync): Promise<Contender> {
  const redis = appendFsync ? await RedisProcess.start(appendFsync) : undefined;
  let server: ServerProcess;
  try {
    server = await ServerProcess.start({ ...CREDENTIALS, redisUrl: redis?.url });
  } catch (error) {
    await redis?.stop();
    throw error;
  }
  const agent = new CountingAgent({ keepAlive: true, maxSockets: 64 });
  const client = new ChimeSDKMeetingsClient({
    region: 'us-east-1',
    endpoint: server.url,
    credentials: CREDENTIALS,
    maxAttempts: 1, // a retry would hide a failure and double-count a request
    requestHandler: { httpAgent: agent, requestTimeout: 10_000, throwOnRequestTimeout: true },
  });
  return { name, server, redis, client, agent, bench: new Bench(client, server, redis), creates: [], batches: [], createRuns: [], batchRuns: [] };
}

async function stopContender(contender: Contender): Promise<void> {
  contender.client.destroy();
  contender.agent.destroy();
  await contender.server.stop();
  await contender.redis?.stop();
}

async function warmUp({ bench }: Contender, plan: Plan): Promise<void> {
  const forBatches = await bench.createMeetings(plan.warmupBatches);
  const forSingles = await bench.createMeetings(Math.ceil(plan.warmupAttendees / ATTENDEES_PER_MEETING));
  await runClosedLoop(plan.warmupAttendees, plan.createAttendeeInFlight, (index) => bench.createAttendee(forSingles, index));
  await runClosedLoop(plan.warmupBatches, plan.batchInFlight, (index) => bench.batchCreateAttendee(forBatches, index));
  await bench.deleteMeetings([...forBatches, ...forSingles]);
}

/** The contenders in the order of round `round`: rotated, so none is always first after the others' work. */
const rotated = <T>(items: readonly T[], round: number): T[] => items.map((_, i) => items[(i + round) % items.length]!);

const perRequest = (samples: readonly CpuSample[], cpu: (s: CpuSample) => number) => median(samples.map((s) => cpu(s) / s.requests));
const serverCpu = (s: CpuSample) => s.serverMs;
const redisCpu = (s: CpuSample) => s.redisMs;
const bothCpu = (s: CpuSample) => s.serverMs + s.redisMs;

/** Median over rounds of this contender's CPU per request divided by the embedded store's in the same round. */
function roundRatio(samples: readonly CpuSample[], baseline: readonly CpuSample[], cpu: (s: CpuSample) => number): number {
  return median(samples.map((s, i) => cpu(s) / s.requests / (serverCpu(baseline[i]!) / baseline[i]!.requests)));
}

function cpuRows(operation: string, pick: (c: Contender) => CpuSample[], contenders: readonly Contender[]): string[] {
  const baseline = pick(contenders[0]!);
  return contenders.map((contender) => {
    const samples = pick(contender);
    const sums = samples.map((s) => bothCpu(s) / s.requests);
    const hasRedis = contender.redis !== undefined;
    const cells = [
      operation,
      contender.name,
      ms(perRequest(samples, serverCpu)),
      hasRedis ? ms(perRequest(samples, redisCpu)) : '–',
      `**${ms(median(sums))}**`,
      `${ms(Math.min(...sums))} – ${ms(Math.max(...sums))}`,
      hasRedis ? ratio(roundRatio(samples, baseline, serverCpu)) : '1',
      hasRedis ? `**${ratio(roundRatio(samples, baseline, bothCpu))}**` : '1',
      hasRedis ? median(samples.map((s) => s.redisCommands / s.requests)).toFixed(1) : '–',
      `${median(samples.map((s) => (s.requests * 1000) / s.elapsedMs)).toFixed(0)}/s`,
      percent(median(samples.map((s) => s.restOfMachineMs / s.elapsedMs))),
    ];
    return `| ${cells.join(' | ')} |`;
  });
}

function latencyRows(operation: string, rate: number, pick: (c: Contender) => FixedRateSample[], contenders: readonly Contender[]): string[] {
  return contenders.map((contender) => {
    const runs = pick(contender);
    const cells = [
      operation,
      contender.name,
      `${rate}/s`,
      ms(median(runs.map((run) => percentile(run.latenciesMs, 50))), 2),
      `**${ms(median(runs.map((run) => percentile(run.latenciesMs, 99))), 2)}**`,
      `${ms(median(runs.map((run) => percentile(run.inServerMs, 50))), 2)} / ${ms(median(runs.map((run) => percentile(run.inServerMs, 99))), 2)}`,
      percent(median(runs.map((run) => run.serverCpuShare))),
      contender.redis ? percent(median(runs.map((run) => run.redisCpuShare))) : '–',
      `${runs.reduce((sum, run) => sum + run.failures, 0)} / ${runs.reduce((sum, run) => sum + run.skipped, 0)}`,
    ];
    return `| ${cells.join(' | ')} |`;
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } }, strict: true });
  const plan = values.quick ? QUICK : FULL;
  const contenders: Contender[] = [];
  // No server or redis-server may outlive the benchmark, whatever ends it.
  const killAll = () => contenders.forEach((c) => (c.server.killNow(), c.redis?.killNow()));
  const stopOnSignal = (signal: NodeJS.Signals) => {
    killAll();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('exit', killAll);
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);

  try {
    contenders.push(await startContender('embedded (journal)'));
    contenders.push(await startContender('Redis, everysec', 'everysec'));
    contenders.push(await startContender('Redis, always', 'always'));
    for (const c of contenders) log(`${c.name}: server pid ${c.server.pid}${c.redis ? `, redis-server pid ${c.redis.pid} at ${c.redis.url}` : ''}`);
    for (const c of contenders) {
      log(`warming up ${c.name}`);
      await warmUp(c, plan);
    }

    for (let round = 0; round < plan.rounds; round++) {
      for (const c of rotated(contenders, round)) {
        c.creates.push(await c.bench.createAttendeeRound(plan));
        c.batches.push(await c.bench.batchRound(plan));
      }
      log(
        `round ${round + 1}/${plan.rounds}: ` +
          contenders
            .map((c) => `${c.name} ${ms(bothCpu(c.creates.at(-1)!) / plan.attendeesPerRound)} / ${ms(bothCpu(c.batches.at(-1)!) / plan.batchesPerRound, 2)}`)
            .join(', '),
      );
    }
    for (let run = 0; run < plan.fixedRateRuns; run++) {
      for (const c of rotated(contenders, run)) {
        c.createRuns.push(await c.bench.fixedRate('createAttendee', plan.createAttendeeRate, plan.createAttendeeRunMs));
        c.batchRuns.push(await c.bench.fixedRate('batch', plan.batchRate, plan.batchRunMs));
      }
      log(`fixed rate ${run + 1}/${plan.fixedRateRuns} done`);
    }

    const redisFs = contenders.find((c) => c.redis)!.redis!.dataFileSystem();
    const report = [
      `bench/api/cluster.ts${values.quick ? ' --quick' : ''} — Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}, ` +
        `${new Date().toISOString().slice(0, 10)}; journal on ${contenders[0]!.server.dataFileSystem()}, append-only files on ${redisFs}`,
      '',
      `CPU per request, closed loop (${plan.createAttendeeInFlight} in flight, ${plan.batchInFlight} for batches), ` +
        `median of ${plan.rounds} rounds of ${plan.attendeesPerRound} CreateAttendee and ${plan.batchesPerRound} BatchCreateAttendee(${BATCH_SIZE}), servers interleaved:`,
      '',
      '| operation | store | Amphi server CPU/request | redis-server CPU/request | sum | sum range over rounds | server ÷ embedded | sum ÷ embedded | Redis commands/request | throughput | rest of machine |',
      '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...cpuRows('CreateAttendee', (c) => c.creates, contenders),
      ...cpuRows(`BatchCreateAttendee(${BATCH_SIZE})`, (c) => c.batches, contenders),
      '',
      `Latency at a fixed rate, open loop, from each request's scheduled send to its parsed answer; median of ${plan.fixedRateRuns} runs ` +
        `(${plan.createAttendeeRunMs / 1000} s of CreateAttendee, ${plan.batchRunMs / 1000} s of batches):`,
      '',
      '| operation | store | rate | p50 | p99 | inside server p50 / p99 | server CPU | redis-server CPU | failed / skipped |',
      '|---|---|---:|---:|---:|---:|---:|---:|---:|',
      ...latencyRows('CreateAttendee', plan.createAttendeeRate, (c) => c.createRuns, contenders),
      ...latencyRows(`BatchCreateAttendee(${BATCH_SIZE})`, plan.batchRate, (c) => c.batchRuns, contenders),
      '',
      'Ratios: median over rounds of each round\'s figure divided by the embedded store\'s in the same round. CPU shares in',
      'the latency table are of one core over the run. Rest of machine: busy time of everything but the servers, the',
      'redis-servers and the generator (loopback TCP in the kernel, other processes).',
      `Keep-alive connections opened: ${contenders.map((c) => `${c.name} ${c.agent.connectionsOpened}`).join(', ')}. ` +
        `Server peak RSS: ${contenders.map((c) => `${c.name} ${c.server.peakMemoryMiB().toFixed(0)} MiB`).join(', ')}.`,
    ];
    for (const c of contenders) {
      for (const run of [...c.createRuns, ...c.batchRuns]) if (run.firstFailure) report.push(`A fixed-rate request to ${c.name} failed: ${run.firstFailure}`);
    }
    const restOfMachine = contenders.flatMap((c) => [...c.creates, ...c.batches].map((s) => s.restOfMachineMs / s.elapsedMs));
    if (Math.max(...restOfMachine) > NOISY_MACHINE_SHARE) {
      report.push(
        `**Warning:** other work kept up to ${percent(Math.max(...restOfMachine))} of a core busy during a measurement; ` +
          'these figures are unreliable, rerun on a quiet machine.',
      );
    }
    process.stdout.write(`${report.join('\n')}\n`);
  } catch (error) {
    for (const c of contenders) log(`${c.name} server output:\n${c.server.recentOutput()}`);
    throw error;
  } finally {
    for (const c of contenders) await stopContender(c);
    process.off('exit', killAll);
    process.off('SIGINT', stopOnSignal);
    process.off('SIGTERM', stopOnSignal);
  }
}

await main();
