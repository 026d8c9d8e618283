import { Redis, type RedisOptions } from 'ioredis';

/**
 * Connects to `url` (e.g. `redis://127.0.0.1:6379`) the way every part of a node talks to Redis; rejects if Redis
 * cannot be reached. While Redis is unreachable calls fail at once (no offline queue, one try, short timeouts), so
 * the API answers 503 instead of hanging; the connection keeps reconnecting in the background and calls work again
 * after.
 */
export async function connectRedis(url: string, options: RedisOptions = {}): Promise<Redis> {
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    commandTimeout: 2_000,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
    ...options,
    lazyConnect: true,
  });
  // ioredis reports connection trouble as events; the calls that meet it reject on their own.
  let lastError: Error | undefined;
  redis.on('error', (error: Error) => (lastError = error));
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    // The event says why (e.g. ECONNREFUSED); the rejection only that the connection closed.
    throw lastError ?? error;
  }
  return redis;
}
