/**
 * Which media nodes serve which regions. A node is where a meeting's media session lives;
 * its public URL is what MediaPlacement hands to clients. By default one node, this
 * process, serves every region.
 */
export interface MediaNode {
  readonly id: string;
  /** Base URL clients reach the node at, e.g. https://media-eu.example.com */
  readonly publicUrl: string;
  /** Regions served; '*' serves every region. */
  readonly regions: readonly string[] | '*';
}

/** The id of the only node of a single-node topology. */
export const LOCAL_NODE_ID = 'local';

export class Topology {
  private nodeList: readonly MediaNode[];

  /** `localNodeId`: the node this process is, one of `nodes`. */
  constructor(
    nodes: readonly MediaNode[],
    readonly localNodeId: string,
  ) {
    if (nodes.length === 0) throw new Error('the topology needs at least one media node');
    const ids = new Set(nodes.map((node) => node.id));
    if (ids.size !== nodes.length) throw new Error('media node ids must be unique');
    if (!ids.has(localNodeId)) throw new Error(`the topology has no media node ${localNodeId} for this process`);
    this.nodeList = [...nodes];
  }

  static singleNode(publicUrl: string): Topology {
    return new Topology([{ id: LOCAL_NODE_ID, publicUrl, regions: '*' }], LOCAL_NODE_ID);
  }

  get nodes(): readonly MediaNode[] {
    return this.nodeList;
  }

  /** This process's node. */
  get localNode(): MediaNode {
    return this.node(this.localNodeId)!;
  }

  /** Whether a meeting placed on `nodeId` has its media here. */
  isLocal(nodeId: string): boolean {
    return nodeId === this.localNodeId;
  }

  /**
   * Sets the URL clients reach this process at. It may be known only once the port is bound
   * (port 0), after the topology was handed to the services that render MediaPlacement.
   */
  setLocalPublicUrl(publicUrl: string): void {
    this.nodeList = this.nodeList.map((node) => (node.id === this.localNodeId ? { ...node, publicUrl } : node));
  }

  /** Nodes that serve the region, most specific first (nodes naming it before catch-all nodes). */
  nodesForRegion(region: string): MediaNode[] {
    const named = this.nodeList.filter((node) => node.regions !== '*' && node.regions.includes(region));
    const catchAll = this.nodeList.filter((node) => node.regions === '*');
    return [...named, ...catchAll];
  }

  /** Picks the node for a new meeting in the region; `seed` spreads meetings over equal nodes. */
  placeMeeting(region: string, seed: number): MediaNode | undefined {
    const candidates = this.nodesForRegion(region);
    const specific = candidates.filter((node) => node.regions !== '*');
    const pool = specific.length > 0 ? specific : candidates;
    return pool.length === 0 ? undefined : pool[Math.abs(seed) % pool.length];
  }

  node(id: string): MediaNode | undefined {
    return this.nodeList.find((node) => node.id === id);
  }
}
