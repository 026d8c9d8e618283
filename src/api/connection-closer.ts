import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Closes an HTTP server without cutting calls short: it stops accepting, idle keep-alive connections go at once,
 * busy ones once their answer is sent; whatever is still open after a limit (a call that never ends, a WebSocket
 * whose peer never acknowledges the close) is destroyed, so that a shutdown always ends.
 */
export class ConnectionCloser {
  /** Every connection, upgraded ones included (the server's own list forgets those). */
  private readonly sockets = new Set<Socket>();

  constructor(private readonly server: Server) {
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  /** Connections open now. */
  get openCount(): number {
    return this.sockets.size;
  }

  /**
   * Runs `closeServer` (which must stop the listener and resolve once every connection is gone) and gives it
   * `limitMs`; then destroys what is left and reports how many were cut.
   */
  async close(closeServer: () => Promise<void>, limitMs: number): Promise<{ cut: number }> {
    const closed = closeServer();
    this.server.closeIdleConnections();
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<'limit'>((resolve) => (timer = setTimeout(() => resolve('limit'), limitMs)));
    const outcome = await Promise.race([closed.then(() => 'closed' as const), limit]).finally(() => clearTimeout(timer));
    if (outcome === 'closed') return { cut: 0 };
    const cut = this.sockets.size;
    for (const socket of this.sockets) socket.destroy();
    await closed;
    return { cut };
  }
}
