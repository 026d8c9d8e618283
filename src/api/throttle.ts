import type { Clock } from '../util/clock.ts';

/**
 * Token buckets per (access key, operation), like the service's per-operation API rate
 * quota: `ratePerSecond` sustained, bursts of twice that.
 */
export class Throttle {
  private readonly buckets = new Map<string, { tokens: number; updatedAt: number }>();

  constructor(
    private readonly ratePerSecond: number,
    private readonly clock: Clock,
  ) {}

  get enabled(): boolean {
    return this.ratePerSecond > 0;
  }

  /** Takes one token; false when the caller is over its rate. */
  take(key: string): boolean {
    if (!this.enabled) return true;
    const burst = this.ratePerSecond * 2;
    const now = this.clock.now();
    const bucket = this.buckets.get(key) ?? { tokens: burst, updatedAt: now };
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.updatedAt) / 1000) * this.ratePerSecond);
    bucket.updatedAt = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
}
