import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { KeyedLock } from '../util/keyed-lock.ts';
import { RELEASE_LOCK, RENEW_LOCK } from './redis-scripts.ts';

export interface RedisLockOptions {
  /** How long a lock outlives its holder's last renewal: a node that dies frees its locks after this. */
  ttlMs: number;
  /** How long a caller waits for a key before giving up with a LockTimeoutError. */
  waitMs: number;
}

/** The section ran, but its lease ran out meanwhile (Redis unreachable or the process stalled): another may have held the key too. */
export class LockLostError extends Error {
  override name = 'LockLostError';
}

/** The key stayed held by someone else for longer than the caller may wait. */
export class LockTimeoutError extends Error {
  override name = 'LockTimeoutError';
}

/** The lock could not be asked for: Redis did not answer (the section did not run). */
export class LockUnavailableError extends Error {
  override name = 'LockUnavailableError';
}

const FIRST_RETRY_MS = 2;
const LAST_RETRY_MS = 50;

/**
 * A lock per key shared by every process using the same Redis: `SET key token NX PX ttl` with a
 * random token, renewed every third of the TTL while the section runs, released by a Lua
 * compare-and-delete so that a holder never frees a lock that expired and went to someone else.
 * Waiters poll with a short, growing, jittered backoff.
 */
export class RedisLock {
  /** Callers of this process queue here first: they take a key in the order they asked, and only the head polls Redis. */
  private readonly local = new KeyedLock();
  private closed = false;

  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    private readonly options: RedisLockOptions,
  ) {}

  run<T>(key: string, section: () => Promise<T>): Promise<T> {
    return this.local.run(key, () => this.hold(this.keyPrefix + key, section));
  }

  /** Stops waiting callers (they reject); sections already running finish. */
  close(): void {
    this.closed = true;
  }

  private async hold<T>(lockKey: string, section: () => Promise<T>): Promise<T> {
    const { ttlMs } = this.options;
    const token = randomUUID();
    let validUntil = (await this.acquire(lockKey, token)) + ttlMs;
    let lost = false;
    let renewing = false;
    const renew = async () => {
      if (renewing) return;
      renewing = true;
      const sentAt = Date.now();
      try {
        if ((await RENEW_LOCK.run(this.redis, [lockKey], [token, ttlMs])) === 1) validUntil = sentAt + ttlMs;
        else lost = true;
      } catch {
        // Redis unreachable for now: validUntil tells whether the lease outlived it.
      } finally {
        renewing = false;
      }
    };
    const timer = setInterval(() => void renew(), Math.max(1, Math.floor(ttlMs / 3)));
    timer.unref();
    let outcome: { value: T } | { error: unknown };
    try {
      outcome = { value: await section() };
    } catch (error) {
      outcome = { error };
    } finally {
      clearInterval(timer);
    }
    await RELEASE_LOCK.run(this.redis, [lockKey], [token]).catch(() => undefined); // else it expires with its TTL
    if ('error' in outcome) throw outcome.error;
    if (lost || Date.now() > validUntil) {
      throw new LockLostError(`The lock ${lockKey} expired while its section ran; its changes may have raced another node's`);
    }
    return outcome.value;
  }

  /** Takes the key; returns the time just before the successful attempt (the lease counts from there). */
  private async acquire(lockKey: string, token: string): Promise<number> {
    const deadline = Date.now() + this.options.waitMs;
    let retryMs = FIRST_RETRY_MS;
    for (;;) {
      if (this.closed) throw new Error('store is closed');
      const attemptedAt = Date.now();
      let taken: string | null;
      try {
        taken = await this.redis.set(lockKey, token, 'PX', this.options.ttlMs, 'NX');
      } catch (error) {
        throw new LockUnavailableError(`The lock ${lockKey} could not be asked for: ${(error as Error).message}`, { cause: error });
      }
      if (taken === 'OK') return attemptedAt;
      if (attemptedAt >= deadline) {
        throw new LockTimeoutError(`The lock ${lockKey} stayed held for more than ${this.options.waitMs} ms`);
      }
      await sleep(retryMs * (0.5 + Math.random()));
      retryMs = Math.min(LAST_RETRY_MS, retryMs * 2);
    }
  }
}
