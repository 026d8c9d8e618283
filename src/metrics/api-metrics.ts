import { Counter, Histogram, type Registry } from 'prom-client';
import type { ApiRequestObserver } from '../api/server.ts';

/** API calls are answered in milliseconds; the slowest wait on a journal fsync or Redis. */
const DURATION_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

/** The control plane's calls: how many per operation and HTTP status, and how long they took. */
export class ApiMetrics implements ApiRequestObserver {
  private readonly requests: Counter<'operation' | 'code'>;
  private readonly durations: Histogram<'operation'>;

  constructor(registry: Registry) {
    this.requests = new Counter({
      name: 'amphi_api_requests_total',
      help: 'API calls answered, by operation and HTTP status code',
      labelNames: ['operation', 'code'],
      registers: [registry],
    });
    this.durations = new Histogram({
      name: 'amphi_api_request_duration_seconds',
      help: 'Time from receiving an API call to having sent its answer, by operation',
      labelNames: ['operation'],
      buckets: DURATION_BUCKETS_SECONDS,
      registers: [registry],
    });
  }

  requestAnswered(operation: string, status: number, seconds: number): void {
    this.requests.inc({ operation, code: String(status) });
    this.durations.observe({ operation }, seconds);
  }
}
