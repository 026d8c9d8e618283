/**
 * Which media nodes serve which regions. A node is where a meeting's media session lives;
 * its public URL is what MediaPlacement hands to clients. By default one node, this
 * process, serves every region.
 */
export interface MediaNode {
  id: string;
  /** Base URL clients reach the node at, e.g. https://media-eu.example.com */
  publicUrl: string;
  /** Regions served; '*' serves every region. */
  regions: readonly string[] | '*';
}

export class Topology {
  constructor(readonly nodes: readonly MediaNode[]) {
    if (nodes.length === 0) throw new Error('the topology needs at least one media node');
  }

  static singleNode(publicUrl: string): Topology {
    return new Topology([{ id: 'local', publicUrl, regions: '*' }]);
  }

  /** Nodes that serve the region, most specific first (nodes naming it before catch-all nodes). */
  nodesForRegion(region: string): MediaNode[] {
    const named = this.nodes.filter((node) => node.regions !== '*' && node.regions.includes(region));
    const catchAll = this.nodes.filter((node) => node.regions === '*');
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
    return this.nodes.find((node) => node.id === id);
  }
}
