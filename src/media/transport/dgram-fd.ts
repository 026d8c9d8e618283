import type dgram from 'node:dgram';

/**
 * The file descriptor behind a bound dgram socket, for the native send path to sendmmsg on the very socket Node
 * receives on (same port, so clients see one address; same kernel queue as Node's own sends).
 *
 * Node has no public API for it, so this relies on two internals, both present from Node 20 through 24: the socket
 * keeps its state under a symbol described 'state symbol' (lib/internal/dgram.js, `kStateSymbol`), whose `handle`
 * is the UDPWrap, and UDPWrap's `fd` getter (src/udp_wrap.cc) answers the descriptor, or a negative errno once the
 * handle is closing. Anything else gives undefined and the caller stays on the TypeScript path; the caller also
 * checks the descriptor's bound port against `socket.address()` before trusting it.
 */
export interface DgramHandle {
  readonly fd: number;
}

export function dgramHandle(socket: dgram.Socket): DgramHandle | undefined {
  const stateSymbol = Object.getOwnPropertySymbols(socket).find((symbol) => symbol.description === 'state symbol');
  if (!stateSymbol) return undefined;
  const state = (socket as unknown as Record<symbol, { handle?: unknown } | undefined>)[stateSymbol];
  const handle = state?.handle as Partial<DgramHandle> | null | undefined;
  return handle && typeof handle.fd === 'number' && handle.fd >= 0 ? (handle as DgramHandle) : undefined;
}
