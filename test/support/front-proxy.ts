import { connect, createServer, type Server, type Socket } from 'node:net';

/** Where a connection went, for the tests' checks. */
export interface FrontStats {
  /** Connections passed to each backend, by its base URL. */
  served: Map<string, number>;
  /** Backends that refused a connection (nothing listening) and were passed over. */
  refused: Map<string, number>;
}

/**
 * The front of a region, as a load balancer would be: one address (the nodes' shared `--public-url`) in front of
 * the region's nodes. It is a TCP proxy on 127.0.0.1: each connection goes to the first backend that accepts it, so
 * a dead node (its port refuses) is passed over at once, as a load balancer's health check would do, only sooner.
 * Bytes are copied untouched both ways (HTTP, WebSocket upgrades and frames alike).
 */
export class FrontProxy {
  readonly stats: FrontStats = { served: new Map(), refused: new Map() };
  private backends: string[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {
    server.on('connection', (client) => this.accept(client));
  }

  static async start(): Promise<FrontProxy> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const { port } = server.address() as { port: number };
    return new FrontProxy(server, `http://127.0.0.1:${port}`);
  }

  /** The nodes behind the front, as http://host:port, in the order they are tried. */
  setBackends(urls: string[]): void {
    this.backends = urls.map((url) => new URL(url).origin);
  }

  private accept(client: Socket): void {
    this.track(client);
    client.pause();
    client.on('error', () => client.destroy());
    this.tryBackend(client, 0);
  }

  private tryBackend(client: Socket, index: number): void {
    const backend = this.backends[index];
    if (!backend || client.destroyed) {
      client.destroy();
      return;
    }
    const { hostname, port } = new URL(backend);
    const upstream = connect({ host: hostname, port: Number(port) });
    this.track(upstream);
    let connected = false;
    upstream.once('error', (error: NodeJS.ErrnoException) => {
      upstream.destroy();
      if (error.code === 'ECONNREFUSED' && !connected) {
        this.stats.refused.set(backend, (this.stats.refused.get(backend) ?? 0) + 1);
        this.tryBackend(client, index + 1);
      } else client.destroy();
    });
    upstream.once('connect', () => {
      connected = true;
      if (client.destroyed) {
        upstream.destroy();
        return;
      }
      this.stats.served.set(backend, (this.stats.served.get(backend) ?? 0) + 1);
      client.on('error', () => upstream.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
      client.once('close', () => upstream.destroy());
      upstream.once('close', () => client.destroy());
      client.resume();
    });
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
