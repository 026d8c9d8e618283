import { placeMeeting, type NodeInfo, type RedisNodeRegistry } from './node-registry.ts';

/**
 * The media nodes as this process sees them: which one it is, where a live node is reached, and where a new
 * meeting's media session goes. The service places meetings and the signaling gateway recognises its own meetings
 * through it, the same way on one node and in a cluster.
 */
export interface NodeDirectory {
  readonly localNodeId: string;
  isLocal(nodeId: string): boolean;
  /** A live node's entry (undefined: unknown or dead). Local node always answers. */
  node(nodeId: string): Promise<NodeInfo | undefined>;
  /** The node for a new meeting's media session in `region` (throws a ServiceUnavailable-mapped error if none is alive). */
  placeMeeting(region: string): Promise<NodeInfo>;
  /**
   * A connection to `nodeId` was refused (nothing listens at its address: the process is gone): this process counts
   * it dead until its registry entry is written again, rather than for the rest of its expiry.
   */
  markUnreachable(nodeId: string): void;
}

/** Where the other nodes reach `node` itself, or undefined for no node. */
export function internalUrlOf(node: NodeInfo | undefined): string | undefined {
  return node ? (node.internalUrl ?? node.publicUrl) : undefined;
}

/**
 * No node can be named now (none alive, or the registry can't be read): nothing was changed, and the same call may
 * succeed when retried. The API answers ServiceUnavailableException (503).
 */
export class NodesUnavailableError extends Error {
  override name = 'NodesUnavailableError';
}

/** This process as a node, described afresh at each call: its public URL is known once the port is bound, its load changes. */
export type LocalNodeDescription = () => Omit<NodeInfo, 'heartbeatAt'>;

/** The id of the embedded single node; the meetings it ever created carry it as their MediaNodeId. */
export const EMBEDDED_NODE_ID = 'local';

/** The embedded single node: this process hosts every region's media and is the only node there is. */
export class EmbeddedNodeDirectory implements NodeDirectory {
  readonly localNodeId = EMBEDDED_NODE_ID;

  constructor(private readonly describeLocal: LocalNodeDescription) {}

  isLocal(nodeId: string): boolean {
    return nodeId === this.localNodeId;
  }

  async node(nodeId: string): Promise<NodeInfo | undefined> {
    return this.isLocal(nodeId) ? this.local() : undefined;
  }

  async placeMeeting(_region: string): Promise<NodeInfo> {
    return this.local();
  }

  markUnreachable(_nodeId: string): void {
    // The only node is this process.
  }

  private local(): NodeInfo {
    return { ...this.describeLocal(), id: this.localNodeId, regions: '*', heartbeatAt: Date.now() };
  }
}

/** A lookup of a node missing from the cached list reads the registry again if the list is older than this. */
const MISS_REFRESH_MS = 250;

export interface RedisNodeDirectoryOptions {
  /** How long a read of the live nodes is reused; a heartbeat's worth keeps it as fresh as the registry itself. */
  cacheMs: number;
}

/**
 * The nodes of a cluster, read from the Redis node registry. The live list is reused for `cacheMs`, so placement
 * costs one Redis round trip per heartbeat at most; a lookup of a node the list lacks reads it again (at most every
 * 250 ms), so a node that just joined is found at once. This node always sees itself alive, with its current load.
 */
export class RedisNodeDirectory implements NodeDirectory {
  private cached: { nodes: Promise<NodeInfo[]>; readAt: number } | undefined;
  /** Nodes found unreachable, with the heartbeat their entry had then: they count as dead until it changes. */
  private readonly unreachable = new Map<string, number | undefined>();

  constructor(
    private readonly registry: RedisNodeRegistry,
    private readonly describeLocal: LocalNodeDescription,
    private readonly options: RedisNodeDirectoryOptions,
  ) {}

  get localNodeId(): string {
    return this.describeLocal().id;
  }

  isLocal(nodeId: string): boolean {
    return nodeId === this.localNodeId;
  }

  async node(nodeId: string): Promise<NodeInfo | undefined> {
    const found = (await this.liveNodes()).find((node) => node.id === nodeId);
    if (found || !this.cached || Date.now() - this.cached.readAt < MISS_REFRESH_MS) return found;
    // A node that joined since the last read is not dead: ask Redis again rather than wait for the cache to expire.
    this.cached = undefined;
    return (await this.liveNodes()).find((node) => node.id === nodeId);
  }

  async placeMeeting(region: string): Promise<NodeInfo> {
    const chosen = placeMeeting(await this.liveNodes(), region);
    if (!chosen) throw new NodesUnavailableError(`No media node is alive to host a meeting in ${region}`);
    return chosen;
  }

  markUnreachable(nodeId: string): void {
    if (this.isLocal(nodeId) || this.unreachable.has(nodeId)) return;
    this.unreachable.set(nodeId, undefined);
    // The next read learns which heartbeat no longer counts: read afresh rather than reuse the cache.
    this.cached = undefined;
  }

  /** The live nodes, this one included and described as it is now. */
  async liveNodes(): Promise<NodeInfo[]> {
    const now = Date.now();
    let cached = this.cached;
    if (!cached || now - cached.readAt >= this.options.cacheMs) {
      const nodes = this.registry.liveNodes();
      this.cached = cached = { nodes, readAt: now };
      // A failed read is not reused: the next call asks Redis again.
      nodes.catch(() => {
        if (this.cached?.nodes === nodes) this.cached = undefined;
      });
    }
    let registered: NodeInfo[];
    try {
      registered = await cached.nodes;
    } catch (error) {
      throw new NodesUnavailableError(`The node registry cannot be read: ${(error as Error).message}`, { cause: error });
    }
    const local: NodeInfo = { ...this.describeLocal(), heartbeatAt: now };
    // A node that left the registry for good is no longer worth remembering as unreachable.
    for (const id of this.unreachable.keys()) if (!registered.some((node) => node.id === id)) this.unreachable.delete(id);
    return [local, ...registered.filter((node) => node.id !== local.id && this.reachable(node))].sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Whether a registered node is not one found unreachable since its last heartbeat. */
  private reachable(node: NodeInfo): boolean {
    if (!this.unreachable.has(node.id)) return true;
    const seen = this.unreachable.get(node.id);
    if (seen === undefined) {
      // The first read since it was found unreachable: the heartbeat it shows is the one that no longer counts.
      this.unreachable.set(node.id, node.heartbeatAt);
      return false;
    }
    if (node.heartbeatAt === seen) return false;
    // Written since: the node (or one restarted under its id) is alive again.
    this.unreachable.delete(node.id);
    return true;
  }
}
