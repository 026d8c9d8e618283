import type { Histogram, Registry } from 'prom-client';
import type { HistogramSnapshot } from '../util/histogram-counts.ts';

type Labels = Record<string, string>;

/**
 * A histogram whose buckets are counted elsewhere (a media worker's thread) and handed over as snapshots: it
 * renders the latest snapshot of each label set as prom-client renders its own histograms (cumulative `_bucket`
 * series with `le`, `_sum`, `_count`). prom-client's Histogram can only count observations itself.
 */
export class SnapshotHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly snapshots = new Map<string, { labels: Labels; snapshot: HistogramSnapshot }>();

  constructor(
    readonly name: string,
    readonly help: string,
    registry: Registry,
  ) {
    // The registry renders any metric that answers get() as prom-client's own do.
    registry.registerMetric(this as unknown as Histogram);
  }

  /** The latest counts for these labels; replaces what was set before. */
  set(labels: Labels, snapshot: HistogramSnapshot): void {
    this.snapshots.set(JSON.stringify(labels), { labels, snapshot });
  }

  /** Forgets every label set (a worker that doesn't answer is left out rather than shown stale). */
  reset(): void {
    this.snapshots.clear();
  }

  async get() {
    const values: { metricName: string; labels: Labels; value: number }[] = [];
    for (const { labels, snapshot } of this.snapshots.values()) {
      let cumulative = 0;
      snapshot.bounds.forEach((bound, i) => {
        cumulative += snapshot.counts[i] ?? 0;
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: String(bound) }, value: cumulative });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: snapshot.count });
      values.push({ metricName: `${this.name}_sum`, labels, value: snapshot.sum });
      values.push({ metricName: `${this.name}_count`, labels, value: snapshot.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
