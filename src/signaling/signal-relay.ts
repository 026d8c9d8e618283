import { EventEmitter } from 'node:events';
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import { MAX_FRAME_BYTES } from './frames.ts';
import { RelayLink, type RelayLeg } from './relay-link.ts';
import { RELAYED_CLIENT_ADDRESS_HEADER } from './address-limits.ts';

/**
 * Set on the relay's handshake to the hosting node. A node that receives it must serve the
 * meeting itself or refuse: relaying again could loop between nodes that disagree on placement.
 */
export const RELAYED_HEADER = 'x-amphi-relayed';

/** Whether this upgrade request was sent by another node's relay. */
export function isRelayed(request: IncomingMessage): boolean {
  return request.headers[RELAYED_HEADER] !== undefined;
}

/**
 * Frames from the hosting node aren't limited on a direct connection; this cap only bounds what
 * a faulty peer node could make this process hold. Client frames keep the gateway's limit.
 */
const UPSTREAM_MAX_FRAME_BYTES = 4 * MAX_FRAME_BYTES;
const SEC_WEBSOCKET_KEY = /^[+/0-9A-Za-z]{22}==$/;

export interface SignalRelayOptions {
  logger: Logger;
  /** How long the hosting node has to accept the WebSocket before the client gets 504. Default 10 s. */
  handshakeTimeoutMs?: number;
  /** Every leg is pinged this often; one that misses a round is dropped. Default 15 s. */
  keepAliveIntervalMs?: number;
  /** A leg stops being read while the other leg has more than this queued to send. Default 1 MiB. */
  highWaterBytes?: number;
}

export interface SignalRelayEvents {
  /** Both legs are open and frames flow; `upstreamUrl` is the hosting node's WebSocket URL. */
  opened: [upstreamUrl: string];
  /** A relay that was open is over, both legs closed. */
  ended: [upstreamUrl: string];
  /** The client's handshake was answered with this HTTP status instead of a relay. */
  refused: [status: number, upstreamUrl: string];
  /** A leg stopped being read because its partner is slow (see RelayLink). */
  paused: [leg: RelayLeg];
}

/**
 * Carries a client's signaling WebSocket to the node hosting its meeting, for a client whose
 * connection landed on another node (a load balancer in front of a region). The SDK follows no
 * redirect on its WebSocket, so the bytes go through this node: the client's upgrade completes
 * only once the hosting node accepted the same handshake (same subprotocols, which carry the
 * JoinToken, and query), so a refusal there reaches the client as the same HTTP status.
 */
export class SignalRelay extends EventEmitter<SignalRelayEvents> {
  private readonly links = new Set<RelayLink>();
  /** Handshakes waiting on the hosting node, each with its way to give up. */
  private readonly pending = new Set<() => void>();
  /** The subprotocol the hosting node chose, per client request, for the client's 101. */
  private readonly chosenProtocols = new WeakMap<IncomingMessage, string>();
  private readonly server = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    maxPayload: MAX_FRAME_BYTES,
    perMessageDeflate: false,
    handleProtocols: (_offered, request) => this.chosenProtocols.get(request) ?? false,
  });
  private readonly keepAliveTimer: NodeJS.Timeout;
  private readonly logger: Logger;
  private readonly handshakeTimeoutMs: number;
  private readonly highWaterBytes: number;
  private closed = false;

  constructor(options: SignalRelayOptions) {
    super();
    this.logger = options.logger;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? 10_000;
    this.highWaterBytes = options.highWaterBytes ?? 1024 * 1024;
    this.keepAliveTimer = setInterval(() => {
      for (const link of this.links) link.keepAlive();
    }, options.keepAliveIntervalMs ?? 15_000);
    this.keepAliveTimer.unref();
  }

  /** Relays that are open (both legs up, or closing). */
  get count(): number {
    return this.links.size;
  }

  /** Client handshakes waiting on their hosting node. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * Relays an upgrade request the gateway has authenticated to the hosting node at
   * `hostBaseUrl` (http(s)://host:port, as in its public URL), on `path` (/control/<MeetingId>),
   * keeping the request's query. Answers the client itself in every case but one, and never throws: when nothing
   * listens at the hosting node's address (its process is gone) and `onHostDown` is given, the client's handshake is
   * left unanswered and `onHostDown` called, so the caller can serve it (re-homing the meeting).
   */
  relay(request: IncomingMessage, socket: Duplex, head: Buffer, hostBaseUrl: string, path: string, onHostDown?: () => void): void {
    socket.on('error', (error) => this.logger.debug({ err: error }, 'relayed client socket error'));
    if (this.closed) return refuse(socket, 503);
    if (isRelayed(request)) {
      this.logger.warn({ url: request.url }, 'a relayed signaling connection was to be relayed again; refused');
      return refuse(socket, 508);
    }
    if (!isValidHandshake(request)) return refuse(socket, 400);
    let url: string;
    try {
      url = upstreamUrl(hostBaseUrl, path, request.url ?? '');
    } catch (error) {
      this.logger.error({ err: error, hostBaseUrl, path }, 'bad hosting node URL for the signaling relay');
      return refuse(socket, 500);
    }
    const offered = String(request.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((protocol) => protocol.trim())
      .filter(Boolean);
    let upstream: WebSocket;
    try {
      upstream = new WebSocket(url, offered, {
        // The hosting node counts the client's address against its per-address cap, not this node's.
        headers: { [RELAYED_HEADER]: '1', [RELAYED_CLIENT_ADDRESS_HEADER]: request.socket.remoteAddress ?? 'unknown' },
        maxPayload: UPSTREAM_MAX_FRAME_BYTES,
        perMessageDeflate: false,
        followRedirects: false,
      });
    } catch (error) {
      // ws refuses subprotocols that aren't HTTP tokens or are offered twice.
      this.logger.debug({ err: error }, 'relayed handshake not acceptable');
      return refuse(socket, 400);
    }
    this.connect(request, socket, head, upstream, url, onHostDown);
  }

  /** Waits for the hosting node's answer, then completes or refuses the client's handshake. */
  private connect(request: IncomingMessage, socket: Duplex, head: Buffer, upstream: WebSocket, url: string, onHostDown?: () => void): void {
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      socket.off('data', spokeEarly);
      socket.off('end', clientLeft);
      socket.off('close', clientLeft);
      this.pending.delete(giveUp);
      return true;
    };
    const fail = (status: number | undefined, why: string, error?: unknown): void => {
      if (!settle()) return;
      this.logger.info({ err: error, url, status }, `signaling relay not established: ${why}`);
      upstream.terminate();
      if (status === undefined) socket.destroy();
      else {
        refuse(socket, status);
        this.emit('refused', status, url);
      }
    };
    const giveUp = () => fail(503, 'relay closing');
    const clientLeft = () => fail(undefined, 'the client left during the handshake');
    // A client may not send before the 101 (RFC 6455 4.1); reading meanwhile is how its leaving is seen.
    const spokeEarly = () => fail(400, 'the client sent data before the handshake completed');
    const timer = setTimeout(() => fail(504, 'the hosting node did not answer in time'), this.handshakeTimeoutMs);
    this.pending.add(giveUp);
    socket.on('data', spokeEarly);
    socket.once('end', clientLeft);
    socket.once('close', clientLeft);

    // Later errors belong to the link; this listener stays so none is ever unhandled.
    upstream.on('error', (error) => {
      if (onHostDown && isConnectionRefused(error)) {
        if (!settle()) return;
        this.logger.info({ url }, 'the hosting node refuses connections: handed back');
        upstream.terminate();
        onHostDown();
        return;
      }
      fail(502, 'the hosting node is unreachable', error);
    });
    upstream.once('unexpected-response', (_request, response) => {
      const status = response.statusCode ?? 502;
      // Only the hosting node's refusals are passed on; anything else from it is a bad gateway.
      fail(status >= 400 && status <= 599 ? status : 502, `the hosting node answered ${status}`);
    });
    upstream.once('open', () => {
      if (!settle()) return;
      if (upstream.protocol) this.chosenProtocols.set(request, upstream.protocol);
      let client = undefined as WebSocket | undefined;
      // Synchronous here (no verifyClient), so no byte is read between settle() and ws taking the
      // socket; no callback means ws refused the request or found the socket gone.
      this.server.handleUpgrade(request, socket, head, (ws) => (client = ws));
      if (!client) {
        this.logger.info({ url }, 'client handshake failed after the hosting node accepted; closing upstream');
        upstream.close(1001, 'client gone');
        return;
      }
      this.link(client, upstream, url);
    });
  }

  private link(client: WebSocket, upstream: WebSocket, url: string): void {
    const link = new RelayLink(client, upstream, this.highWaterBytes, this.logger.child({ relay: url }));
    this.links.add(link);
    link.on('paused', (leg) => this.emit('paused', leg));
    link.once('closed', () => {
      this.links.delete(link);
      this.emit('ended', url);
    });
    this.emit('opened', url);
  }

  /** Refuses handshakes still waiting (503) and closes every relay; clients reconnect. */
  close(): void {
    this.closed = true;
    clearInterval(this.keepAliveTimer);
    for (const giveUp of [...this.pending]) giveUp();
    for (const link of this.links) link.close('relay closing');
    this.server.close();
  }
}

/** The hosting node's WebSocket URL: its base URL as ws(s)://, the path, the client's query. */
function upstreamUrl(hostBaseUrl: string, path: string, requestUrl: string): string {
  const base = new URL(hostBaseUrl);
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new Error(`not an http(s) URL: ${hostBaseUrl}`);
  if (!path.startsWith('/')) throw new Error(`not an absolute path: ${path}`);
  const queryAt = requestUrl.indexOf('?');
  const query = queryAt === -1 ? '' : requestUrl.slice(queryAt);
  const ws = base.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${ws}//${base.host}${base.pathname.replace(/\/+$/, '')}${path}${query}`;
}

/** Nothing listens at the address: the process is gone (a machine that is down times out instead). */
function isConnectionRefused(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ECONNREFUSED';
}

/** The checks ws makes before a 101, made before the hosting node is asked, so it isn't asked in vain. */
function isValidHandshake(request: IncomingMessage): boolean {
  const version = request.headers['sec-websocket-version'];
  return (
    request.method === 'GET' &&
    request.headers.upgrade?.toLowerCase() === 'websocket' &&
    SEC_WEBSOCKET_KEY.test(request.headers['sec-websocket-key'] ?? '') &&
    (version === '13' || version === '8')
  );
}

function refuse(socket: Duplex, status: number): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.once('finish', () => socket.destroy());
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}
