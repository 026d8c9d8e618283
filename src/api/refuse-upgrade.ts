import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';

/** Answers a WebSocket upgrade request with a plain HTTP error and closes the connection once it is sent. */
export function refuseUpgrade(socket: Duplex, status: number, headers: Record<string, string> = {}): void {
  socket.on('error', () => socket.destroy());
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const lines = Object.entries({ ...headers, Connection: 'close', 'Content-Length': '0' }).map(([name, value]) => `${name}: ${value}\r\n`);
  // end() rather than destroy(): the answer must reach the client before the connection goes.
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n${lines.join('')}\r\n`);
}
