import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

/** A node as the others see it: where its clients and its media are reached, what it hosts, how busy it is. */
export interface NodeInfo {
  id: string;
  /** Base URL of its API and signaling (MediaPlacement URLs point here). */
  publicUrl: string;
  /**
   * Base URL the other nodes reach this very node at (the public URL may be a front shared by several nodes): for
   * relayed signaling and replica bridges. Absent in entries of older nodes: the public URL is used.
   */
  internalUrl?: string;
  /** IPv4 address other nodes' pipes reach its media workers at. */
  mediaAddress: string;
  /** MediaRegions it hosts; '*': any. */
  regions: readonly string[] | '*';
  /** Live media sessions on it (its load). */
  sessions: number;
  /** When it last said it was alive (ms since the epoch, its own clock). */
  heartbeatAt: number;
}

export interface NodeRegistryOptions {
  /** How often a node refreshes its entry. */
  heartbeatMs: number;
  /** A node silent for this long is dead: its entry expires. */
  deadAfterMs: number;
  prefix: string;
}

export const DEFAULT_NODE_REGISTRY: NodeRegistryOptions = { heartbeatMs: 2_000, deadAfterMs: 10_000, prefix: 'amphi:' };

/**
 * The live nodes of a cluster, in Redis: each node keeps `<prefix>node:<id>` (its NodeInfo as JSON) alive by
 * rewriting it every heartbeat with an expiry of `deadAfterMs`, so a node that stops (crash, partition, Redis lost
 * from its side) disappears by itself; `<prefix>nodes` indexes the ids and is pruned by readers.
 */
export interface NodeRegistryEvents {
  /**
   * A heartbeat found this node's entry gone (it expired: the node could not write it for `deadAfterMs`, so the
   * others took it for dead and may have re-homed its meetings) and wrote it again.
   */
  rejoined: [];
}

export class RedisNodeRegistry extends EventEmitter<NodeRegistryEvents> {
  private timer: NodeJS.Timeout | undefined;
  private readonly options: NodeRegistryOptions;

  constructor(
    private readonly redis: Redis,
    private readonly logger: Logger,
    options: Partial<NodeRegistryOptions> = {},
  ) {
    super();
    this.options = { ...DEFAULT_NODE_REGISTRY, ...options };
  }

  /** Announces this node and keeps it alive; `describe` is read at every heartbeat (its load changes). */
  async join(describe: () => Omit<NodeInfo, 'heartbeatAt'>): Promise<void> {
    await this.beat(describe);
    this.timer ??= setInterval(() => {
      this.beat(describe).then(
        (wasAlive) => {
          if (wasAlive || !this.timer) return;
          this.logger.warn('this node was missing from the registry (taken for dead by the others); announced again');
          this.emit('rejoined');
        },
        (error: unknown) => this.logger.warn({ err: error }, 'node heartbeat failed'),
      );
    }, this.options.heartbeatMs);
    this.timer.unref();
  }

  /** Leaves the cluster at once (a clean stop); the others stop placing meetings here. */
  async leave(nodeId: string): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    checked(await this.redis.multi().del(this.nodeKey(nodeId)).srem(this.indexKey(), nodeId).exec(), 'leave the cluster');
  }

  /** Stops the heartbeat without leaving: the entry expires as a dead node's would. */
  stopHeartbeat(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  async liveNodes(): Promise<NodeInfo[]> {
    const ids = await this.redis.smembers(this.indexKey());
    if (ids.length === 0) return [];
    const values = await this.redis.mget(ids.map((id) => this.nodeKey(id)));
    const live: NodeInfo[] = [];
    const gone: string[] = [];
    values.forEach((value, i) => {
      const info = value === null ? undefined : parseNodeInfo(value);
      if (info) live.push(info);
      else gone.push(ids[i]!);
    });
    if (gone.length > 0) await this.redis.srem(this.indexKey(), ...gone);
    return live.sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Writes this node's entry; resolves whether it was still there (false: it had expired, or never existed). */
  private async beat(describe: () => Omit<NodeInfo, 'heartbeatAt'>): Promise<boolean> {
    const info: NodeInfo = { ...describe(), heartbeatAt: Date.now() };
    const results = await this.redis
      .multi()
      .set(this.nodeKey(info.id), JSON.stringify(info), 'PX', this.options.deadAfterMs, 'GET')
      .sadd(this.indexKey(), info.id)
      .exec();
    checked(results, 'announce this node');
    return results![0]![1] !== null;
  }

  private nodeKey(id: string): string {
    return `${this.options.prefix}node:${id}`;
  }

  private indexKey(): string {
    return `${this.options.prefix}nodes`;
  }
}

function checked(results: [Error | null, unknown][] | null, what: string): void {
  const failed = results?.find(([error]) => error);
  if (!results || failed) throw new Error(`could not ${what}: ${failed?.[0]?.message ?? 'transaction aborted'}`);
}

function parseNodeInfo(value: string): NodeInfo | undefined {
  try {
    const info = JSON.parse(value) as NodeInfo;
    const regionsOk = info.regions === '*' || (Array.isArray(info.regions) && info.regions.every((r) => typeof r === 'string'));
    if (typeof info.id !== 'string' || typeof info.publicUrl !== 'string' || typeof info.sessions !== 'number' || !regionsOk) return undefined;
    if (info.internalUrl !== undefined && typeof info.internalUrl !== 'string') return undefined;
    return info;
  } catch {
    return undefined;
  }
}

/**
 * Where a new meeting's media session goes: the least-loaded live node naming its region; else the least-loaded
 * node serving any region; else, when no node serves it, the least-loaded live node of all (so a meeting is never
 * refused while a node is alive). Ties go to the lowest id, so every node decides alike.
 */
export function placeMeeting(nodes: readonly NodeInfo[], region: string): NodeInfo | undefined {
  const leastLoaded = (candidates: readonly NodeInfo[]) =>
    [...candidates].sort((a, b) => a.sessions - b.sessions || a.id.localeCompare(b.id))[0];
  return (
    leastLoaded(nodes.filter((node) => node.regions !== '*' && node.regions.includes(region))) ??
    leastLoaded(nodes.filter((node) => node.regions === '*')) ??
    leastLoaded(nodes)
  );
}
