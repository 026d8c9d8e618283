import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { AccessKey } from './api/sigv4.ts';
import type { AmphiConfig } from './config.ts';
import { resolveClusterAccessKeys } from './credentials.ts';
import { connectRedis } from './store/redis-connection.ts';
import { RedisMeetingEventBus } from './store/redis-event-bus.ts';
import { RedisTokenRevocations } from './store/redis-revocations.ts';
import { RedisMeetingStore } from './store/redis-store.ts';
import { DEFAULT_NODE_REGISTRY, RedisNodeRegistry, type NodeRegistryOptions } from './cluster/node-registry.ts';

/** Every key a cluster keeps in Redis starts with this. */
export const CLUSTER_KEY_PREFIX = 'amphi:';

/** The state a cluster node shares with the others through one Redis. */
export interface ClusterState {
  store: RedisMeetingStore;
  events: RedisMeetingEventBus;
  revocations: RedisTokenRevocations;
  registry: RedisNodeRegistry;
  registryOptions: NodeRegistryOptions;
  keys: AccessKey[];
  generatedKeys: boolean;
  /** Closes the connections other than the store's (the store closes itself). */
  disconnect(): Promise<void>;
}

/**
 * Connects a node to its cluster's Redis: the store, the control-plane events (on a connection of their own, in
 * subscriber mode), token revocations, the node registry and the access keys all nodes accept. Rejects, leaving
 * nothing open, if Redis cannot be reached.
 */
export async function connectCluster(
  config: AmphiConfig,
  redisUrl: string,
  logger: Logger,
  registry: Partial<Omit<NodeRegistryOptions, 'prefix'>> = {},
): Promise<ClusterState> {
  const opened: Redis[] = [];
  let store: RedisMeetingStore | undefined;
  try {
    store = await RedisMeetingStore.open(redisUrl, { keyPrefix: CLUSTER_KEY_PREFIX });
    const commands = await connectRedis(redisUrl);
    opened.push(commands);
    // Subscriptions are kept across reconnections by ioredis; its queue only ever holds them.
    const subscriber = await connectRedis(redisUrl, { enableOfflineQueue: true, commandTimeout: undefined });
    opened.push(subscriber);
    const events = new RedisMeetingEventBus(commands, subscriber, logger.child({ component: 'events' }), CLUSTER_KEY_PREFIX);
    await events.whenReady();
    const { keys, generated } = await resolveClusterAccessKeys(config, commands, CLUSTER_KEY_PREFIX);
    const registryOptions = { ...DEFAULT_NODE_REGISTRY, ...registry, prefix: CLUSTER_KEY_PREFIX };
    return {
      store,
      events,
      revocations: new RedisTokenRevocations(commands, CLUSTER_KEY_PREFIX),
      registry: new RedisNodeRegistry(commands, logger.child({ component: 'nodes' }), registryOptions),
      registryOptions,
      keys,
      generatedKeys: generated,
      disconnect: () => quitAll(opened),
    };
  } catch (error) {
    await store?.close();
    await quitAll(opened);
    throw new Error(`could not join the cluster through Redis at ${withoutPassword(redisUrl)}: ${(error as Error).message}`, { cause: error });
  }
}

/** The URL as it may be logged: without the password it may carry. */
function withoutPassword(redisUrl: string): string {
  const url = new URL(redisUrl);
  if (url.password) url.password = '***';
  return url.toString();
}

async function quitAll(connections: readonly Redis[]): Promise<void> {
  await Promise.all(
    connections.map((connection) =>
      connection.quit().then(
        () => undefined,
        () => connection.disconnect(),
      ),
    ),
  );
}
