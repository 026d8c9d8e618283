import { collectDefaultMetrics, Registry } from 'prom-client';
import type { Conference } from '../signaling/conference.ts';
import { ApiMetrics } from './api-metrics.ts';
import { ConferenceMetrics } from './conference-metrics.ts';
import { WorkerMetrics, type StatsSource } from './worker-metrics.ts';

/**
 * prom-client's process metrics (CPU, memory, heap, event-loop lag, GC) belong to the process, and collecting them
 * starts monitors that can't be stopped: one registry per process, shared by every node in it.
 */
let processRegistry: Registry | undefined;
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/**
 * One node's metrics for GET /metrics, in its own registry (so that several Amphis in one process, as in the
 * tests, each count their own): the API's calls, signaling's conferences and promotions and the media workers'
 * counters, served with the process's metrics. In a cluster each node serves its own.
 */
export class NodeMetrics {
  private readonly registry = new Registry();
  readonly api: ApiMetrics;
  readonly conferences: ConferenceMetrics;
  private workers: WorkerMetrics | undefined;

  constructor() {
    this.api = new ApiMetrics(this.registry);
    this.conferences = new ConferenceMetrics(this.registry);
  }

  /** The parts created after the API: the signaling gateway's live conferences and the media workers. */
  observe(parts: { conferences: () => Iterable<Conference>; workers: readonly StatsSource[] }): void {
    this.conferences.observe(parts.conferences);
    this.workers = new WorkerMetrics(this.registry, parts.workers);
  }

  /** The Prometheus text exposition, the workers asked for their counters first. */
  async render(): Promise<{ contentType: string; body: string }> {
    await this.workers?.refresh();
    const exposition = Registry.merge([processMetrics(), this.registry]);
    return { contentType: exposition.contentType, body: await exposition.metrics() };
  }
}
