import { readFileSync } from 'node:fs';

/**
 * Readings of the server process between two moments: CPU of all its threads (/proc/<pid>/stat), of its main
 * thread (/proc/<pid>/task/<pid>/stat: the API and all signaling), of each media worker thread (its own
 * clock, from GET /metrics, since Node gives its threads no names to tell them apart in /proc), its RSS, and
 * what its workers sent (packets and bytes, from /metrics).
 */

/** USER_HZ: Linux reports thread and process times in ticks of 1/100 s on every architecture. */
const TICKS_PER_SECOND = 100;

export interface ServerReading {
  at: number;
  processCpuSeconds: number;
  mainThreadCpuSeconds: number;
  workers: Map<string, WorkerReading>;
  rssMiB: number;
}

interface WorkerReading {
  cpuSeconds: number;
  packetsSent: number;
  bytesSent: number;
  fanOutDeferred: number;
  fanOutDropped: number;
}

export interface ServerInterval {
  seconds: number;
  /** CPU of the whole process over the interval, as % of one core. */
  processCpuPercent: number;
  mainThreadCpuPercent: number;
  /** Per worker, % of one core. */
  workerCpuPercent: Map<string, number>;
  packetsPerSecond: number;
  megabitsPerSecond: number;
  /** Video packets the fan-out pacer held for a later turn, and dropped after 500 ms, over the interval. */
  fanOutDeferred: number;
  fanOutDropped: number;
  rssMiB: number;
}

function ticksOf(statPath: string): number {
  const stat = readFileSync(statPath, 'utf8');
  // The command name (field 2) may hold spaces; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** The value of each sample of `metric` in a Prometheus text page, by its worker label. */
function samplesByWorker(page: string, metric: string): Map<string, number> {
  const values = new Map<string, number>();
  const pattern = new RegExp(`^${metric}\\{worker="([^"]+)"\\} (\\S+)$`, 'gm');
  for (const match of page.matchAll(pattern)) values.set(match[1]!, Number(match[2]));
  return values;
}

export class ServerSampler {
  constructor(
    private readonly pid: number,
    private readonly baseUrl: string,
  ) {}

  async read(): Promise<ServerReading> {
    const page = await (await fetch(`${this.baseUrl}/metrics`)).text();
    const at = performance.now();
    const processCpuSeconds = ticksOf(`/proc/${this.pid}/stat`) / TICKS_PER_SECOND;
    const mainThreadCpuSeconds = ticksOf(`/proc/${this.pid}/task/${this.pid}/stat`) / TICKS_PER_SECOND;
    const rssKiB = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'))?.[1] ?? NaN);
    const cpu = samplesByWorker(page, 'amphi_media_worker_cpu_seconds_total');
    const packets = samplesByWorker(page, 'amphi_media_packets_sent_total');
    const bytes = samplesByWorker(page, 'amphi_media_bytes_sent_total');
    const deferred = samplesByWorker(page, 'amphi_media_fanout_deferred_packets_total');
    const dropped = samplesByWorker(page, 'amphi_media_fanout_dropped_packets_total');
    const workers = new Map<string, WorkerReading>(
      [...cpu.keys()].map((name) => [
        name,
        { cpuSeconds: cpu.get(name)!, packetsSent: packets.get(name) ?? 0, bytesSent: bytes.get(name) ?? 0, fanOutDeferred: deferred.get(name) ?? 0, fanOutDropped: dropped.get(name) ?? 0 },
      ]),
    );
    return { at, processCpuSeconds, mainThreadCpuSeconds, workers, rssMiB: rssKiB / 1024 };
  }

  static between(from: ServerReading, to: ServerReading): ServerInterval {
    const seconds = (to.at - from.at) / 1000;
    const percent = (cpuSeconds: number) => (100 * cpuSeconds) / seconds;
    const workerCpuPercent = new Map<string, number>();
    let packets = 0;
    let bytes = 0;
    let fanOutDeferred = 0;
    let fanOutDropped = 0;
    for (const [name, end] of to.workers) {
      const start = from.workers.get(name) ?? { cpuSeconds: 0, packetsSent: 0, bytesSent: 0, fanOutDeferred: 0, fanOutDropped: 0 };
      workerCpuPercent.set(name, percent(end.cpuSeconds - start.cpuSeconds));
      packets += end.packetsSent - start.packetsSent;
      bytes += end.bytesSent - start.bytesSent;
      fanOutDeferred += end.fanOutDeferred - start.fanOutDeferred;
      fanOutDropped += end.fanOutDropped - start.fanOutDropped;
    }
    return {
      seconds,
      processCpuPercent: percent(to.processCpuSeconds - from.processCpuSeconds),
      mainThreadCpuPercent: percent(to.mainThreadCpuSeconds - from.mainThreadCpuSeconds),
      workerCpuPercent,
      packetsPerSecond: packets / seconds,
      megabitsPerSecond: (bytes * 8) / seconds / 1e6,
      fanOutDeferred,
      fanOutDropped,
      rssMiB: to.rssMiB,
    };
  }
}
