/**
 * A token bucket counted in bytes: `bytesPerSecond` sustained, up to `burstBytes` at once. A charge
 * may take the bucket below zero (a frame has already arrived when it is counted); the debt is the
 * time the sender must wait before more of its bytes are read.
 */
export class ByteBudget {
  private tokens: number;
  private refilledAt: number;

  constructor(
    readonly bytesPerSecond: number,
    readonly burstBytes: number,
    /** Monotonic milliseconds. */
    private readonly now: () => number,
  ) {
    if (!(bytesPerSecond > 0) || !(burstBytes > 0)) throw new RangeError('a byte budget needs a positive rate and burst');
    this.tokens = burstBytes;
    this.refilledAt = now();
  }

  /** Counts `bytes` received; returns how long (ms) to stop reading so the budget is back to zero, 0 if within it. */
  charge(bytes: number): number {
    this.refill();
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.bytesPerSecond) * 1000);
  }

  /** Bytes that may arrive now without a wait. */
  get available(): number {
    this.refill();
    return Math.max(0, this.tokens);
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.burstBytes, this.tokens + ((now - this.refilledAt) / 1000) * this.bytesPerSecond);
    this.refilledAt = now;
  }
}
