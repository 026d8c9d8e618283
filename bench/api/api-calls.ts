/**
 * The calls the API benchmarks send and how their cost is measured: signed CreateAttendee and
 * BatchCreateAttendee(100) from the real AWS SDK client against one server process, with the CPU
 * of the server (and of the Redis it uses, in cluster mode) read from /proc around each stretch.
 * Shared by run.ts (the embedded store) and cluster.ts (the embedded store against Redis).
 */
import http from 'node:http';
import {
  BatchCreateAttendeeCommand,
  ChimeSDKMeetingsClient,
  CreateAttendeeCommand,
  CreateMeetingCommand,
  DeleteMeetingCommand,
} from '@aws-sdk/client-chime-sdk-meetings';
import { runAtFixedRate, runClosedLoop, type FixedRateResult } from './load.ts';
import { machineBusyMs, type CpuTime } from './proc.ts';
import type { ServerProcess } from './server-process.ts';

export const CREDENTIALS = { accessKeyId: 'AKIDAMPHIBENCH000001', secretAccessKey: 'amphi-bench-secret' };
export const ATTENDEES_PER_MEETING = 250; // the service's cap per meeting
export const BATCH_SIZE = 100; // the service's cap per BatchCreateAttendee
export const BATCHES_PER_MEETING = Math.floor(ATTENDEES_PER_MEETING / BATCH_SIZE);

export interface Plan {
  rounds: number;
  warmupAttendees: number;
  warmupBatches: number;
  attendeesPerRound: number;
  batchesPerRound: number;
  createAttendeeInFlight: number;
  batchInFlight: number;
  createAttendeeRate: number;
  batchRate: number;
  /** Fixed-rate runs per operation; a single p99 swings with the machine's scheduling hiccups. */
  fixedRateRuns: number;
  createAttendeeRunMs: number;
  batchRunMs: number;
}

export interface FixedRateSample extends FixedRateResult {
  /** Each request's time inside the server, from its parsed headers to its answer's last byte. */
  inServerMs: number[];
  /** CPU used during the run over its wall time: 1 is one core busy throughout. */
  serverCpuShare: number;
  /** The Redis server's CPU in cluster mode, 0 against the embedded store. */
  redisCpuShare: number;
  clientCpuShare: number;
  restOfMachineShare: number;
}

/** CPU and wall time of one measured stretch of requests. */
export interface CpuSample {
  requests: number;
  attendees: number;
  serverMs: number;
  serverUserMs: number;
  /** CPU of the redis-server process the server stores in (cluster mode); 0 against the embedded store. */
  redisMs: number;
  /** Commands the redis-server ran for these requests (cluster mode); 0 against the embedded store. */
  redisCommands: number;
  clientMs: number;
  /** Busy time of the rest of the machine: loopback networking in the kernel, and other processes that would skew the figures. */
  restOfMachineMs: number;
  elapsedMs: number;
}

export class Bench {
  private meetingSerial = 0;
  private attendeeSerial = 0;

  constructor(
    private readonly client: ChimeSDKMeetingsClient,
    private readonly server: ServerProcess,
    /** The redis-server the server stores in, in cluster mode: it does part of each call's work, so its CPU counts too. */
    private readonly redis?: { cpuTime(): CpuTime; commandsProcessed(): Promise<number> },
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
    // Asked outside the CPU readings; the first INFO counts itself among the commands, so it is taken off.
    const commandsBefore = await this.redis?.commandsProcessed();
    const machineBefore = machineBusyMs();
    const serverBefore = this.server.cpuTime();
    const redisBefore = this.redis?.cpuTime();
    const clientBefore = process.cpuUsage();
    const { elapsedMs } = await work();
    const client = process.cpuUsage(clientBefore);
    const redisAfter = this.redis?.cpuTime();
    const serverAfter = this.server.cpuTime();
    const machineMs = machineBusyMs() - machineBefore;
    const commandsAfter = await this.redis?.commandsProcessed();
    const serverMs = total(serverAfter) - total(serverBefore);
    const redisMs = redisBefore && redisAfter ? total(redisAfter) - total(redisBefore) : 0;
    const clientMs = (client.user + client.system) / 1000;
    return {
      requests,
      attendees,
      serverMs,
      serverUserMs: serverAfter.userMs - serverBefore.userMs,
      redisMs,
      redisCommands: commandsBefore !== undefined && commandsAfter !== undefined ? commandsAfter - commandsBefore - 1 : 0,
      clientMs,
      restOfMachineMs: Math.max(0, machineMs - serverMs - redisMs - clientMs),
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

  /** One open-loop run at `rate`, on fresh meetings, timed by the client and inside the server. */
  async fixedRate(kind: 'createAttendee' | 'batch', rate: number, durationMs: number): Promise<FixedRateSample> {
    const requests = Math.round((rate * durationMs) / 1000);
    const perMeeting = kind === 'batch' ? BATCHES_PER_MEETING : ATTENDEES_PER_MEETING;
    const meetings = await this.createMeetings(Math.ceil(requests / perMeeting));
    const send = (index: number) => (kind === 'batch' ? this.batchCreateAttendee(meetings, index) : this.createAttendee(meetings, index));
    let run: FixedRateResult | undefined;
    this.server.startTiming();
    const cpu = await this.measureCpu(requests, 0, async () => {
      run = await runAtFixedRate(rate, durationMs, send);
      return { elapsedMs: run.elapsedMs };
    });
    const inServerMs = await this.server.stopTiming();
    await this.deleteMeetings(meetings);
    return {
      ...run!,
      inServerMs,
      serverCpuShare: cpu.serverMs / cpu.elapsedMs,
      redisCpuShare: cpu.redisMs / cpu.elapsedMs,
      clientCpuShare: cpu.clientMs / cpu.elapsedMs,
      restOfMachineShare: cpu.restOfMachineMs / cpu.elapsedMs,
    };
  }
}

/** An http.Agent that counts the connections it opens, to show keep-alive is in effect. */
export class CountingAgent extends http.Agent {
  connectionsOpened = 0;
  override createConnection(...args: Parameters<http.Agent['createConnection']>): ReturnType<http.Agent['createConnection']> {
    this.connectionsOpened++;
    return super.createConnection(...args);
  }
}

export const total = (cpu: CpuTime) => cpu.userMs + cpu.systemMs;

/** The control plane benchmark's plan: rounds, warm-up and load; `--quick` checks the benchmark itself. */
export const FULL_PLAN: Plan = {
  rounds: 5,
  // After a 2,000-request warm-up the first rounds still ran hot; the JIT and the heap take longer to settle.
  warmupAttendees: 6_000,
  warmupBatches: 40,
  attendeesPerRound: 3_000,
  batchesPerRound: 200,
  createAttendeeInFlight: 16,
  batchInFlight: 4,
  createAttendeeRate: 500,
  batchRate: 20,
  fixedRateRuns: 3,
  createAttendeeRunMs: 10_000,
  batchRunMs: 5_000,
};

export const QUICK_PLAN: Plan = {
  ...FULL_PLAN,
  rounds: 3,
  warmupAttendees: 500,
  warmupBatches: 6,
  attendeesPerRound: 1_000,
  batchesPerRound: 40,
  fixedRateRuns: 1,
  createAttendeeRunMs: 3_000,
  batchRunMs: 3_000,
};
