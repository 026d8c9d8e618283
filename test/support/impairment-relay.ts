import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';

/** How a link mistreats what a node sends: one-way delay (± uniform jitter) and random loss. */
export interface Impairment {
  delayMs: number;
  jitterMs?: number;
  lossPercent: number;
}

export interface UdpEndpoint {
  address: string;
  port: number;
}

/** What the relay did with the datagrams one end sent. */
export interface RelayDirectionStats {
  received: number;
  dropped: number;
  forwarded: number;
  /** Forwarded after a datagram this end sent later (jitter reorders, as netem's does). */
  reordered: number;
}

type Side = 'a' | 'b';

/** What a datagram suffers on its way: one impairment, several in a row (a sender's link, then a receiver's), or none. */
export type ImpairmentChain = Impairment | readonly Impairment[] | undefined;

/**
 * One direction of an impaired link: each datagram is dropped or delayed by the impairments read at
 * its arrival (several in a row: lost if any loses it, delayed by the sum of their delays), and
 * counted. Jitter reorders, as netem's does.
 */
export class ImpairedLine {
  readonly stats: RelayDirectionStats = { received: 0, dropped: 0, forwarded: 0, reordered: 0 };
  private arrivals = 0;
  /** The latest arrival forwarded so far. */
  private latestForwarded = -1;
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  /** `deliver` runs after the delay, unless the datagram is lost or the line closed first. */
  carry(chain: ImpairmentChain, deliver: () => void): void {
    if (this.closed) return;
    this.stats.received++;
    const arrival = this.arrivals++;
    const impairments = chain === undefined ? [] : Array.isArray(chain) ? (chain as readonly Impairment[]) : [chain as Impairment];
    let delay = 0;
    for (const { delayMs, jitterMs, lossPercent } of impairments) {
      if (Math.random() * 100 < lossPercent) return void this.stats.dropped++;
      delay += Math.max(0, delayMs + (jitterMs ? (Math.random() * 2 - 1) * jitterMs : 0));
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.closed) return;
      if (arrival < this.latestForwarded) this.stats.reordered++;
      else this.latestForwarded = arrival;
      this.stats.forwarded++;
      deliver();
    }, delay);
    this.timers.add(timer);
  }

  close(): void {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }
}

/**
 * A user-space stand-in for `tc netem` between two UDP endpoints, for kernels without sch_netem.
 *
 * It owns two sockets: `aSendsTo` stands for B in A's eyes and `bSendsTo` for A in B's. A datagram
 * A sends to `aSendsTo` leaves from `bSendsTo` towards B after A's delay (or never, by A's loss), and
 * the other way round; so each end sees the other as one fixed address and port (the relay's), and
 * replies reach the sender from the very address it sends to, as a connected UDP peer expects.
 * The impairment is read per datagram, so changing it applies at once.
 *
 * Limits: UDP only, between exactly these two endpoints (datagrams from anyone else are ignored);
 * the ends see the relay's address, never each other's; the delay has the precision of Node's timers
 * in the process that runs the relay (a millisecond or two late when it is busy).
 */
export class ImpairmentRelay {
  private readonly lines: Record<Side, ImpairedLine> = { a: new ImpairedLine(), b: new ImpairedLine() };
  private closed = false;

  private constructor(
    private readonly facingA: dgram.Socket,
    private readonly facingB: dgram.Socket,
    private readonly a: UdpEndpoint,
    private readonly b: UdpEndpoint,
    private readonly impairmentOf: (from: Side) => ImpairmentChain,
  ) {
    facingA.on('message', (datagram, from) => this.relay('a', datagram, from));
    facingB.on('message', (datagram, from) => this.relay('b', datagram, from));
    facingA.on('error', () => undefined);
    facingB.on('error', () => undefined);
  }

  /**
   * Binds both sockets on `bindAddress` (an address both ends reach). `impairmentOf('a')` is what
   * A's datagrams suffer on their way to B; undefined means none.
   */
  static async open(bindAddress: string, a: UdpEndpoint, b: UdpEndpoint, impairmentOf: (from: Side) => ImpairmentChain): Promise<ImpairmentRelay> {
    const [facingA, facingB] = await Promise.all([bound(bindAddress), bound(bindAddress)]);
    return new ImpairmentRelay(facingA, facingB, a, b, impairmentOf);
  }

  /** What the relay did with the datagrams each end sent. */
  get stats(): Record<Side, RelayDirectionStats> {
    return { a: this.lines.a.stats, b: this.lines.b.stats };
  }

  /** Where A sends to reach B (and where B's datagrams come from, in A's eyes). */
  get aSendsTo(): UdpEndpoint {
    return endpointOf(this.facingA);
  }

  /** Where B sends to reach A. */
  get bSendsTo(): UdpEndpoint {
    return endpointOf(this.facingB);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.lines.a.close();
    this.lines.b.close();
    this.facingA.close();
    this.facingB.close();
  }

  private relay(from: Side, datagram: Buffer, sender: dgram.RemoteInfo): void {
    const source = from === 'a' ? this.a : this.b;
    if (sender.address !== source.address || sender.port !== source.port) return;
    const [out, to] = from === 'a' ? [this.facingB, this.b] : [this.facingA, this.a];
    this.lines[from].carry(this.impairmentOf(from), () => out.send(datagram, to.port, to.address));
  }
}

/** A UDP socket bound on `address` (port 0: any free port). */
export async function bound(address: string, port = 0): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, address, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  return socket;
}

export function endpointOf(socket: dgram.Socket): UdpEndpoint {
  const { address, port } = socket.address() as AddressInfo;
  return { address, port };
}
