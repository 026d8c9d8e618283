/** Delays in 0.1 ms bins up to 5 s (the last bin holds everything above): percentiles without keeping samples. */
const BIN_MS = 0.1;
const BINS = 50_000;

export class DelayHistogram {
  private readonly bins = new Uint32Array(BINS);
  count = 0;
  maxMs = 0;

  add(ms: number): void {
    const bin = Math.min(BINS - 1, Math.max(0, Math.floor(ms / BIN_MS)));
    this.bins[bin]!++;
    this.count++;
    if (ms > this.maxMs) this.maxMs = ms;
  }

  /** The upper edge of the bin holding the `p`-th percentile (0–100), in ms; NaN when empty. */
  percentile(p: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let bin = 0; bin < BINS; bin++) {
      seen += this.bins[bin]!;
      if (seen >= rank) return (bin + 1) * BIN_MS;
    }
    return this.maxMs;
  }
}
