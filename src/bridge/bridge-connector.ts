import type { Logger } from 'pino';
import WebSocket from 'ws';
import { internalUrlOf, type NodeDirectory } from '../cluster/node-directory.ts';
import type { MeetingRecord } from '../meetings/model.ts';
import type { PrimaryHandle, RemotePrimaries } from '../signaling/primary-handle.ts';
import type { Clock } from '../util/clock.ts';
import { bridgePath } from './bridge-server.ts';
import { BridgeChannel } from './channel.ts';
import { toReplica, type ToPrimary, type ToReplica } from './messages.ts';
import { NODE_AUTH_HEADER, signNodeCall } from './node-auth.ts';
import { RemotePrimary } from './remote-primary.ts';

const CONNECT_TIMEOUT_MS = 5_000;

export interface BridgeConnectorOptions {
  secret: string;
  /** Where other nodes reach this node's media workers. */
  mediaAddress: string;
  /** This node (its id) and where the others are reached. */
  nodes: NodeDirectory;
  clock: Clock;
  logger: Logger;
}

/**
 * The replica's side of bridges: for a replica whose primary is hosted on another node, opens a bridge to that
 * node and hands back the primary as a PrimaryHandle.
 */
export class BridgeConnector implements RemotePrimaries {
  constructor(private readonly options: BridgeConnectorOptions) {}

  async connect(primary: MeetingRecord, replicaMeetingId: string): Promise<PrimaryHandle | undefined> {
    const { secret, nodes, mediaAddress, clock, logger } = this.options;
    const log = logger.child({ meetingId: replicaMeetingId, primaryMeetingId: primary.MeetingId, primaryNode: primary.MediaNodeId });
    const base = internalUrlOf(await nodes.node(primary.MediaNodeId));
    if (!base) {
      log.warn('the primary meeting is on a node that is not alive');
      return undefined;
    }
    const path = bridgePath(primary.MeetingId, replicaMeetingId);
    const ws = new WebSocket(base.replace(/^http/, 'ws').replace(/\/+$/, '') + path, {
      headers: { [NODE_AUTH_HEADER]: signNodeCall(secret, nodes.localNodeId, path) },
      handshakeTimeout: CONNECT_TIMEOUT_MS,
      perMessageDeflate: false,
    });
    try {
      await new Promise<void>((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
        ws.once('unexpected-response', (_request, response) => reject(new Error(`the primary node answered ${response.statusCode}`)));
      });
    } catch (error) {
      ws.terminate();
      // Nothing listens there: the node is gone, and the next link re-homes the primary rather than wait for its
      // registry entry to expire.
      if ((error as NodeJS.ErrnoException).code === 'ECONNREFUSED') nodes.markUnreachable(primary.MediaNodeId);
      log.warn({ err: error }, 'could not open a bridge to the primary node');
      return undefined;
    }
    const channel = new BridgeChannel<ToReplica, ToPrimary>(ws, toReplica, (problem) => log.warn({ problem }, 'bridge message dropped'));
    return new RemotePrimary(primary.MeetingId, channel, mediaAddress, clock, log);
  }
}
