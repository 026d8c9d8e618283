import type { Redis } from 'ioredis';
import { DEFAULT_REVOCATION_LIMITS, type RevocationLimits } from '../meetings/local-revocations.ts';
import type { RevocationReason, TokenRevocations } from '../meetings/revocations.ts';

const REASONS: ReadonlySet<string> = new Set<RevocationReason>(['meetingEnded', 'attendeeRemoved']);

/**
 * Revocations shared by every node on one Redis: a key per revoked JoinToken (`<prefix>revoked:<token>`) holding
 * its reason, expiring after the memory time. Redis's own expiry bounds them in time (and so in number), so no node
 * has to sweep; the time is Redis's clock, not a node's.
 */
export class RedisTokenRevocations implements TokenRevocations {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'amphi:',
    private readonly limits: Pick<RevocationLimits, 'memoryMs'> = DEFAULT_REVOCATION_LIMITS,
  ) {}

  async revoke(joinTokens: readonly string[], reason: RevocationReason): Promise<void> {
    if (joinTokens.length === 0) return;
    const batch = this.redis.multi();
    for (const token of joinTokens) batch.set(this.key(token), reason, 'PX', this.limits.memoryMs);
    const results = await batch.exec();
    const failed = results?.find(([error]) => error);
    if (!results || failed) throw new Error(`could not record revoked tokens: ${failed?.[0]?.message ?? 'transaction aborted'}`);
  }

  async reasonFor(joinToken: string): Promise<RevocationReason | undefined> {
    const reason = await this.redis.get(this.key(joinToken));
    return reason !== null && REASONS.has(reason) ? (reason as RevocationReason) : undefined;
  }

  private key(token: string): string {
    return `${this.prefix}revoked:${token}`;
  }
}
