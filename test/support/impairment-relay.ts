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
  readonly stats: Record<Side, RelayDirectionStats> = {
    a: { received: 0, dropped: 0, forwarded: 0, reordered: 0 },
    b: { received: 0, dropped: 0, forwarded: 0, reordered: 0 },
  };
  /** Per direction: the order in which datagrams arrived, and the latest arrival forwarded so far. */
  private readonly arrivals: Record<Side, number> = { a: 0, b: 0 };
  private readonly latestForwarded: Record<Side, number> = { a: -1, b: -1 };
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  private constructor(
    private readonly facingA: dgram.Socket,
    private readonly facingB: dgram.Socket,
    private readonly a: UdpEndpoint,
    private readonly b: UdpEndpoint,
    private readonly impairmentOf: (from: Side) => Impairment | undefined,
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
  static async open(bindAddress: string, a: UdpEndpoint, b: UdpEndpoint, impairmentOf: (from: Side) => Impairment | undefined): Promise<ImpairmentRelay> {
    const [facingA, facingB] = await Promise.all([bound(bindAddress), bound(bindAddress)]);
    return new ImpairmentRelay(facingA, facingB, a, b, impairmentOf);
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
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.facingA.close();
    this.facingB.close();
  }

  private relay(from: Side, datagram: Buffer, sender: dgram.RemoteInfo): void {
    const source = from === 'a' ? this.a : this.b;
    if (sender.address !== source.address || sender.port !== source.port) return;
    const stats = this.stats[from];
    stats.received++;
    const arrival = this.arrivals[from]++;
    const impairment = this.impairmentOf(from);
    if (impairment && Math.random() * 100 < impairment.lossPercent) return void stats.dropped++;
    const jitter = impairment?.jitterMs ? (Math.random() * 2 - 1) * impairment.jitterMs : 0;
    const delay = Math.max(0, (impairment?.delayMs ?? 0) + jitter);
    const [out, to] = from === 'a' ? [this.facingB, this.b] : [this.facingA, this.a];
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.closed) return;
      if (arrival < this.latestForwarded[from]) stats.reordered++;
      else this.latestForwarded[from] = arrival;
      stats.forwarded++;
      out.send(datagram, to.port, to.address);
    }, delay);
    this.timers.add(timer);
  }
}

async function bound(address: string): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, address, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  return socket;
}

function endpointOf(socket: dgram.Socket): UdpEndpoint {
  const { address, port } = socket.address() as AddressInfo;
  return { address, port };
}
