/**
 * Keeps a repeating failure from flooding the log: the first report of a key is let through,
 * later ones within `windowMs` are only counted, and the next one after the window is let
 * through with that count.
 */
export class BurstLimiter {
  private readonly bursts = new Map<string, { loggedAt: number; suppressed: number }>();

  constructor(
    private readonly windowMs = 10_000,
    private readonly now: () => number = () => Date.now(),
    private readonly maxKeys = 1_000,
  ) {}

  /** The number of reports suppressed since the last admitted one, or -1 to suppress this one. */
  admit(key: string): number {
    const now = this.now();
    const burst = this.bursts.get(key);
    if (burst && now - burst.loggedAt < this.windowMs) {
      burst.suppressed++;
      return -1;
    }
    if (!burst && this.bursts.size >= this.maxKeys) this.forgetQuietKeys(now);
    const suppressed = burst?.suppressed ?? 0;
    this.bursts.set(key, { loggedAt: now, suppressed: 0 });
    return suppressed;
  }

  private forgetQuietKeys(now: number): void {
    for (const [key, burst] of this.bursts) if (now - burst.loggedAt >= this.windowMs) this.bursts.delete(key);
    if (this.bursts.size >= this.maxKeys) this.bursts.clear();
  }
}
