import type { IncomingMessage } from 'node:http';

/**
 * Set by a node's signaling relay on the handshake it makes to the hosting node: the address of
 * the client whose connection it carries, so the hosting node counts the client rather than the
 * relaying node (which would otherwise hit the cap with its own relayed clients).
 */
export const RELAYED_CLIENT_ADDRESS_HEADER = 'x-amphi-client-address';

/**
 * Caps the signaling sockets open at once from one remote address. A slot is taken at the upgrade
 * request, before any lookup, and given back when the socket closes, whatever became of it.
 * `max` 0: no cap.
 */
export class AddressLimits {
  private readonly open = new Map<string, number>();

  constructor(readonly max: number) {}

  /** Takes a slot for `address`; returns the function that gives it back, or undefined at the cap. */
  admit(address: string): (() => void) | undefined {
    const count = this.open.get(address) ?? 0;
    if (this.max > 0 && count >= this.max) return undefined;
    this.open.set(address, count + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(address) ?? 1) - 1;
      if (left <= 0) this.open.delete(address);
      else this.open.set(address, left);
    };
  }

  /** Sockets open from `address` now. */
  countOf(address: string): number {
    return this.open.get(address) ?? 0;
  }
}

/**
 * The address a signaling request is counted under: the TCP peer's, or, on a connection relayed by
 * another node (`relayed`), the client address that node forwarded. The forwarded address is
 * trusted as the relay marker itself is: nodes are expected to be reached by clients only through
 * a proxy or load balancer that strips `x-amphi-*` headers.
 */
export function addressOf(request: IncomingMessage, relayed: boolean): string {
  const forwarded = request.headers[RELAYED_CLIENT_ADDRESS_HEADER];
  if (relayed && typeof forwarded === 'string' && forwarded.length > 0 && forwarded.length <= 64) return forwarded;
  return request.socket.remoteAddress ?? 'unknown';
}
