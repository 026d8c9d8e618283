/** Bucket counts of a histogram as plain numbers: what a thread hands to another to be rendered. */
export interface HistogramSnapshot {
  /** Upper bounds of the buckets, ascending; a last bucket above the highest bound is implied. */
  bounds: number[];
  /** Observations per bucket (not cumulative): one per bound, then one for those above every bound. */
  counts: number[];
  sum: number;
  count: number;
}

/**
 * A histogram kept as an array of counters, cheap enough to observe on a media thread (a few
 * comparisons, no allocation, no labels); another thread renders its snapshots.
 */
export class HistogramCounts {
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(private readonly bounds: readonly number[]) {
    for (let i = 1; i < bounds.length; i++) {
      if (!(bounds[i]! > bounds[i - 1]!)) throw new Error('histogram bounds must be ascending');
    }
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    let bucket = 0;
    while (bucket < this.bounds.length && value > this.bounds[bucket]!) bucket++;
    this.counts[bucket]!++;
    this.sum += value;
    this.count++;
  }

  snapshot(): HistogramSnapshot {
    return { bounds: [...this.bounds], counts: [...this.counts], sum: this.sum, count: this.count };
  }
}
