import dgram from 'node:dgram';
import { bound, endpointOf, ImpairedLine, type ImpairmentChain, type RelayDirectionStats, type UdpEndpoint } from './impairment-relay.ts';

/** The way a datagram crosses the gateway. */
export type GatewayDirection = 'toServer' | 'toClient';

/** One client's flow through the gateway. */
interface Flow {
  client: UdpEndpoint;
  /** The flow's own socket towards the server: the server sees each client as a distinct peer. */
  upstream: dgram.Socket;
  toServer: ImpairedLine;
  toClient: ImpairedLine;
}

/** A gateway does not grow without bound whoever sends to it. */
const MAX_FLOWS = 64;

/**
 * A user-space stand-in for `tc netem` in front of one UDP server (a media port that many clients
 * share), for kernels without sch_netem. Clients send to the gateway's socket; each client (address
 * and port) gets a socket of its own towards the server, so the server sees one peer per client and
 * its replies go back to the client they answer, from the gateway's socket, as a client of a fixed
 * server address expects. Each datagram is dropped and delayed by what `impairmentOf` says for its
 * client and direction, read per datagram.
 *
 * Limits: UDP only; the server sees the gateway's address, never the clients'; at most 64 flows;
 * the delay has the precision of Node's timers in the process that runs it.
 */
export class ImpairmentGateway {
  private readonly flows = new Map<string, Flow>();
  private closed = false;

  private constructor(
    private readonly facingClients: dgram.Socket,
    private readonly server: UdpEndpoint,
    /** Where the flows' sockets bind: an address the server reaches. */
    private readonly upstreamAddress: string,
    private readonly impairmentOf: (client: UdpEndpoint, direction: GatewayDirection) => ImpairmentChain,
  ) {
    facingClients.on('message', (datagram, from) => this.fromClient(datagram, { address: from.address, port: from.port }));
    facingClients.on('error', () => undefined);
  }

  /**
   * Listens on `listen` (port 0: any) for clients, and forwards to `server` from sockets bound on
   * `upstreamAddress`.
   */
  static async open(
    listen: UdpEndpoint,
    server: UdpEndpoint,
    upstreamAddress: string,
    impairmentOf: (client: UdpEndpoint, direction: GatewayDirection) => ImpairmentChain,
  ): Promise<ImpairmentGateway> {
    return new ImpairmentGateway(await bound(listen.address, listen.port), server, upstreamAddress, impairmentOf);
  }

  /** Where clients send to reach the server. */
  get endpoint(): UdpEndpoint {
    return endpointOf(this.facingClients);
  }

  /** What the gateway did with each client's datagrams, both ways. */
  flowStats(): { client: UdpEndpoint; toServer: RelayDirectionStats; toClient: RelayDirectionStats }[] {
    return [...this.flows.values()].map(({ client, toServer, toClient }) => ({ client, toServer: { ...toServer.stats }, toClient: { ...toClient.stats } }));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const flow of this.flows.values()) {
      flow.toServer.close();
      flow.toClient.close();
      flow.upstream.close();
    }
    this.flows.clear();
    this.facingClients.close();
  }

  private fromClient(datagram: Buffer, client: UdpEndpoint): void {
    if (this.closed) return;
    const flow = this.flowOf(client);
    if (!flow) return;
    flow.toServer.carry(this.impairmentOf(client, 'toServer'), () => flow.upstream.send(datagram, this.server.port, this.server.address));
  }

  private flowOf(client: UdpEndpoint): Flow | undefined {
    const key = `${client.address}:${client.port}`;
    const known = this.flows.get(key);
    if (known || this.flows.size >= MAX_FLOWS) return known;
    // Sends made before the bind completes wait for it (node:dgram queues them).
    const upstream = createUpstream(this.upstreamAddress);
    const flow: Flow = { client, upstream, toServer: new ImpairedLine(), toClient: new ImpairedLine() };
    upstream.on('message', (datagram, from) => {
      if (this.closed || from.address !== this.server.address || from.port !== this.server.port) return;
      flow.toClient.carry(this.impairmentOf(client, 'toClient'), () => this.facingClients.send(datagram, client.port, client.address));
    });
    this.flows.set(key, flow);
    return flow;
  }
}

function createUpstream(address: string): dgram.Socket {
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
  socket.on('error', () => undefined);
  socket.bind(0, address);
  return socket;
}
