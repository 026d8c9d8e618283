import { Counter, Gauge, type Registry } from 'prom-client';
import type { WorkerStats } from '../media/worker/protocol.ts';
import { SnapshotHistogram } from './snapshot-histogram.ts';

/** What the metrics need of a media worker: its name and its statistics, asked for at scrape time. */
export interface StatsSource {
  readonly name: string;
  stats(): Promise<WorkerStats>;
}

/** A worker that doesn't answer within this is left out of the scrape rather than holding it up. */
const STATS_TIMEOUT_MS = 2_000;

/**
 * The media workers' counters. Workers keep plain numbers on their packet path and hand them over only when
 * asked: `refresh()` asks every worker once per scrape (the `workerStats` call), and each metric renders the
 * answers it got, labelled by worker. A worker that restarted starts its counters again from zero, which
 * Prometheus reads as a counter reset.
 */
export class WorkerMetrics {
  private latest: { worker: string; stats: WorkerStats }[] = [];
  private readonly latenessHistogram: SnapshotHistogram;

  constructor(
    registry: Registry,
    private readonly workers: readonly StatsSource[],
  ) {
    const latest = () => this.latest;
    const counter = (name: string, help: string, value: (stats: WorkerStats) => number | undefined) =>
      new Counter({
        name,
        help,
        labelNames: ['worker'],
        registers: [registry],
        collect() {
          this.reset();
          for (const { worker, stats } of latest()) {
            const total = value(stats);
            if (total !== undefined) this.inc({ worker }, total);
          }
        },
      });
    counter('amphi_media_packets_sent_total', 'RTP packets sent by the media worker, to clients and through pipes', (s) => s.traffic.packetsSent);
    counter('amphi_media_bytes_sent_total', 'Bytes of RTP sent by the media worker (SRTP payloads, without UDP and IP headers)', (s) => s.traffic.bytesSent);
    counter('amphi_media_packets_lost_total', "Packets the media worker sent that clients reported lost (RTCP receiver reports)", (s) => s.traffic.packetsLost);
    counter('amphi_media_fanout_deferred_packets_total', 'Video packets the media worker handed to some receivers in a later event-loop turn (fan-out pacing)', (s) => s.fanOut.deferredPackets);
    counter('amphi_media_fanout_dropped_packets_total', 'Video packets the media worker dropped for some receivers after they waited over 500 ms to be sent', (s) => s.fanOut.droppedPackets);
    counter('amphi_media_worker_cpu_seconds_total', "CPU time used by the media worker's thread", (s) => s.thread.cpuSeconds);
    new Gauge({
      name: 'amphi_media_worker_event_loop_lag_seconds',
      help: "How late the media worker's event loop ran its timers: 99th percentile over the last 10 s",
      labelNames: ['worker'],
      registers: [registry],
      collect() {
        this.reset();
        for (const { worker, stats } of latest()) this.set({ worker }, stats.thread.eventLoopLagSeconds);
      },
    });
    this.latenessHistogram = new SnapshotHistogram(
      'amphi_mixer_tick_lateness_seconds',
      "How late the media worker's 20 ms audio clock woke up to mix each frame",
      registry,
    );
  }

  /** Asks every worker for its statistics; called before each scrape is rendered. */
  async refresh(): Promise<void> {
    const answers = await Promise.all(
      this.workers.map(async (worker) => {
        const stats = await withTimeout(worker.stats(), STATS_TIMEOUT_MS).catch(() => undefined);
        return stats && { worker: worker.name, stats };
      }),
    );
    this.latest = answers.filter((answer) => answer !== undefined);
    this.latenessHistogram.reset();
    for (const { worker, stats } of this.latest) this.latenessHistogram.set({ worker }, stats.clock.latenessSeconds);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
