/** Where another node of the cluster is reached, by its id. */
export interface NodeLocator {
  /** Base URL other nodes reach the node's API and signaling at (undefined: unknown or dead). */
  internalUrlOf(nodeId: string): Promise<string | undefined>;
}
