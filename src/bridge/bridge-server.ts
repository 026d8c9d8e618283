import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import { BridgeChannel } from './channel.ts';
import { toPrimary, type ToPrimary, type ToReplica } from './messages.ts';
import { NODE_AUTH_HEADER, verifyNodeCall } from './node-auth.ts';
import { RemoteReplica, type PrimaryNode } from './remote-replica.ts';

const UUID = '[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}';
/** `/_amphi/bridge/<primary MeetingId>/<replica MeetingId>`: a replica's node asks to be fed. */
export const BRIDGE_PATH = new RegExp(`^/_amphi/bridge/(${UUID})/(${UUID})$`);
export const bridgePath = (primaryMeetingId: string, replicaMeetingId: string) => `/_amphi/bridge/${primaryMeetingId}/${replicaMeetingId}`;
/** Far above any message a bridge carries (a state of 250 participants is some 60 kB). */
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * The primary's side of bridges: other nodes that host replicas of this node's primaries connect here, prove they
 * belong to the cluster, and each gets a RemoteReplica that the primary feeds as it feeds a local one.
 */
export class BridgeServer {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES, perMessageDeflate: false });
  private readonly channels = new Set<BridgeChannel<ToPrimary, ToReplica>>();

  constructor(
    private readonly node: PrimaryNode,
    private readonly secret: string,
    private readonly logger: Logger,
  ) {}

  /** Whether an upgrade request is for a bridge (the rest is signaling's). */
  handles(request: IncomingMessage): boolean {
    return (request.url ?? '').startsWith('/_amphi/bridge/');
  }

  get bridgeCount(): number {
    return this.channels.size;
  }

  upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const path = (request.url ?? '').split('?')[0] ?? '';
    const match = BRIDGE_PATH.exec(path);
    if (!match) return refuse(socket, 404, 'Not Found');
    const header = request.headers[NODE_AUTH_HEADER];
    const caller = verifyNodeCall(this.secret, typeof header === 'string' ? header : undefined, path);
    if (!caller) {
      this.logger.warn({ path }, 'bridge refused: not a node of this cluster');
      return refuse(socket, 401, 'Unauthorized');
    }
    const [, primaryMeetingId, replicaMeetingId] = match as unknown as [string, string, string];
    this.wss.handleUpgrade(request, socket, head, (ws) => {
      const log = this.logger.child({ meetingId: primaryMeetingId, replicaMeetingId, replicaNode: caller });
      const channel = new BridgeChannel<ToPrimary, ToReplica>(ws, toPrimary, (problem) => log.warn({ problem }, 'bridge message dropped'));
      this.channels.add(channel);
      channel.once('closed', () => this.channels.delete(channel));
      new RemoteReplica(replicaMeetingId, primaryMeetingId, channel, this.node, log);
      log.info('replica bridge opened');
    });
  }

  close(): void {
    for (const channel of [...this.channels]) channel.close('node stopping');
    this.wss.close();
  }
}

function refuse(socket: Duplex, status: number, text: string): void {
  if (socket.writable) socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  socket.destroy();
}
