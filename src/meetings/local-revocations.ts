import type { Clock } from '../util/clock.ts';
import type { RevocationReason, TokenRevocations } from './revocations.ts';

export interface RevocationLimits {
  /** How long a revocation is remembered: long enough for a client's retries. */
  memoryMs: number;
  /** Revocations kept at most; the oldest are forgotten first. */
  maxEntries: number;
}

export const DEFAULT_REVOCATION_LIMITS: RevocationLimits = { memoryMs: 10 * 60_000, maxEntries: 100_000 };

/** Revocations in this process's memory: bounded in count and in time. */
export class LocalTokenRevocations implements TokenRevocations {
  /** In order of revocation (a token revoked again moves to the end), so the oldest come first. */
  private readonly revoked = new Map<string, { reason: RevocationReason; at: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly limits: RevocationLimits = DEFAULT_REVOCATION_LIMITS,
  ) {}

  get size(): number {
    return this.revoked.size;
  }

  async revoke(joinTokens: readonly string[], reason: RevocationReason): Promise<void> {
    const at = this.clock.now();
    this.forgetExpired(at);
    for (const token of joinTokens) {
      this.revoked.delete(token);
      this.revoked.set(token, { reason, at });
    }
    for (const oldest of this.revoked.keys()) {
      if (this.revoked.size <= this.limits.maxEntries) break;
      this.revoked.delete(oldest);
    }
  }

  async reasonFor(joinToken: string): Promise<RevocationReason | undefined> {
    const revocation = this.revoked.get(joinToken);
    if (!revocation) return undefined;
    if (this.isExpired(revocation.at, this.clock.now())) {
      this.revoked.delete(joinToken);
      return undefined;
    }
    return revocation.reason;
  }

  private forgetExpired(now: number): void {
    for (const [token, { at }] of this.revoked) {
      if (!this.isExpired(at, now)) break;
      this.revoked.delete(token);
    }
  }

  private isExpired(at: number, now: number): boolean {
    return now - at > this.limits.memoryMs;
  }
}
