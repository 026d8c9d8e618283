import { execFile, execFileSync, spawn as spawnProcess, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { promisify } from 'node:util';
import { ImpairmentGateway } from './impairment-gateway.ts';
import { ImpairmentRelay, type Impairment, type UdpEndpoint } from './impairment-relay.ts';

export type { Impairment, UdpEndpoint } from './impairment-relay.ts';

const run = promisify(execFile);

/** How `setLink` impairs a link: the kernel's netem qdisc, or the user-space ImpairmentRelay where the kernel has none. */
export type ImpairmentMode = 'netem' | 'relay';

/** A UDP endpoint inside one of the lab's namespaces. */
export interface NodeEndpoint {
  ns: string;
  port: number;
}

/**
 * How two UDP endpoints reach each other across their impaired links: A sends to `aSendsTo` and
 * sees B's datagrams come from there; B likewise with `bSendsTo`. With netem these are the ends'
 * own addresses; with the relay they are the relay's, in the root namespace.
 */
export interface UdpPath {
  aSendsTo: UdpEndpoint;
  bSendsTo: UdpEndpoint;
  /** Only in relay mode: what it forwarded, dropped and reordered. */
  relay: ImpairmentRelay | undefined;
  close(): void;
}

/**
 * How the lab's namespaces reach a UDP server of the root namespace (listening on the bridge
 * address) across their impaired links: they send to `clientsSendTo`, which the server should
 * announce as its address. With netem it is the server itself; with the relay it is a gateway on
 * `gatewayAddress` with the server's port number.
 */
export interface UdpGateway {
  clientsSendTo: UdpEndpoint;
  /** Only in relay mode: what it did with each client's datagrams. */
  gateway: ImpairmentGateway | undefined;
  close(): void;
}

/** Namespaces are `amphi-t-<pid>-<lab>-<index>`; interfaces in the root namespace `at<pid>-<lab>b` (bridge) and `at<pid>-<lab>v<index>` (veth). */
const NAMESPACE_PREFIX = 'amphi-t-';
const namespacePattern = /^amphi-t-(\d+)-/;
const interfacePattern = /^at(\d+)-[0-9a-z]+[bv]\d*$/;
/** The veth end inside each namespace. */
const NODE_INTERFACE = 'eth0';

let labsMade = 0;
/** Subnets of this process's labs: two made at once must not pick the same before either has its bridge. */
const subnetsTaken = new Set<string>();
let detectedMode: ImpairmentMode | undefined;

/** Why this process can't build a lab (undefined when it can): tests skip with this reason. */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'the `ip` command (iproute2) is not installed';
  }
  return undefined;
}

/**
 * A small network of namespaces for tests: each has loopback up and a veth to a bridge in the root
 * namespace, all on one private /24 (the bridge holds .1), so processes in the namespaces and in the
 * root namespace reach each other. `setLink` delays and drops what a namespace sends, `setDownlink`
 * what it receives; `udpPath` joins two namespaces' UDP endpoints and `udpGateway` puts the links in
 * front of a root-namespace UDP server, whichever the impairment mode. Everything is
 * removed by `destroy()`, on process exit, or, after a crash, by the next lab made on this machine.
 */
export class NetnsLab {
  private readonly children = new Set<ChildProcess>();
  /** Relays and gateways open now. */
  private readonly routes = new Set<{ close(): void }>();
  /** What each namespace's link does to what it sends (uplink) and to what it receives (downlink). */
  private readonly impairments = new Map<string, Impairment>();
  private readonly downlinks = new Map<string, Impairment>();
  private destroyed: Promise<void> | undefined;
  private readonly onExit = () => this.destroySync();

  private constructor(
    /** The namespaces' names, in order. */
    readonly namespaces: string[],
    private readonly addresses: Map<string, string>,
    /** The bridge's address: where the root namespace listens for the nodes. */
    readonly bridgeAddress: string,
    private readonly bridge: string,
    /** Their root-namespace ends, in the namespaces' order. */
    private readonly veths: string[],
    readonly impairment: ImpairmentMode,
    /**
     * Where the namespaces reach root-namespace UDP servers impaired (`udpGateway`): a second
     * address of the bridge in relay mode, the bridge's own with netem.
     */
    readonly gatewayAddress: string,
  ) {
    process.on('exit', this.onExit);
  }

  static async create(count: number): Promise<NetnsLab> {
    const unavailable = netnsUnavailable();
    if (unavailable) throw new Error(unavailable);
    if (!Number.isInteger(count) || count < 1 || count > 50) throw new Error(`a lab has 1 to 50 namespaces, not ${count}`);
    await removeLeftovers();
    const lab = (labsMade++).toString(36);
    const subnet = await freeSubnet();
    const bridge = `at${process.pid}-${lab}b`;
    const namespaces = Array.from({ length: count }, (_, i) => `${NAMESPACE_PREFIX}${process.pid}-${lab}-${i}`);
    const addresses = new Map(namespaces.map((ns, i) => [ns, `${subnet}.${10 + i}`]));
    const veths = namespaces.map((_, i) => `at${process.pid}-${lab}v${i}`);
    const created: string[] = [];
    try {
      await ip('link', 'add', bridge, 'type', 'bridge');
      await ip('addr', 'add', `${subnet}.1/24`, 'dev', bridge);
      await ip('link', 'set', bridge, 'up');
      for (const [i, ns] of namespaces.entries()) {
        const veth = veths[i]!;
        await ip('netns', 'add', ns);
        created.push(ns);
        await ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', NODE_INTERFACE, 'netns', ns);
        await ip('link', 'set', veth, 'master', bridge, 'up');
        await ip('-n', ns, 'link', 'set', 'lo', 'up');
        await ip('-n', ns, 'addr', 'add', `${addresses.get(ns)}/24`, 'dev', NODE_INTERFACE);
        await ip('-n', ns, 'link', 'set', NODE_INTERFACE, 'up');
        await ip('-n', ns, 'route', 'add', 'default', 'via', `${subnet}.1`);
      }
      const mode = detectedMode ?? (detectedMode = await detectImpairmentMode(namespaces[0]!));
      // The relay's gateways need an address of their own: a server's port number on it leads to the server.
      if (mode === 'relay') await ip('addr', 'add', `${subnet}.2/24`, 'dev', bridge);
      return new NetnsLab(namespaces, addresses, `${subnet}.1`, bridge, veths, mode, mode === 'relay' ? `${subnet}.2` : `${subnet}.1`);
    } catch (error) {
      for (const veth of veths) await ip('link', 'del', veth).catch(() => undefined);
      for (const ns of created) await ip('netns', 'del', ns).catch(() => undefined);
      await ip('link', 'del', bridge).catch(() => undefined);
      subnetsTaken.delete(subnet);
      throw error;
    }
  }

  /** The namespace's address on the lab's network. */
  addressOf(ns: string): string {
    const address = this.addresses.get(ns);
    if (!address) throw new Error(`${ns} is not a namespace of this lab`);
    return address;
  }

  /** Starts `command` inside the namespace (`ip netns exec`); destroy() kills it if it still runs. */
  spawn(ns: string, command: string, args: string[] = [], options: SpawnOptions = {}): ChildProcess {
    this.addressOf(ns);
    if (this.destroyed) throw new Error('the lab is destroyed');
    const child = spawnProcess('ip', ['netns', 'exec', ns, command, ...args], options);
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    child.once('error', () => this.children.delete(child));
    return child;
  }

  /** Runs `command` inside the namespace to its end; rejects with its stderr if it fails. */
  async exec(ns: string, command: string, args: string[] = []): Promise<{ stdout: string; stderr: string }> {
    this.addressOf(ns);
    return run('ip', ['netns', 'exec', ns, command, ...args]);
  }

  /**
   * What the namespace sends from now on is delayed and dropped so. With netem it is the qdisc of the
   * namespace's veth, so it applies to all its traffic; with the relay it applies to the UDP paths
   * (`udpPath`) that start at this namespace, and to nothing else.
   */
  async setLink(ns: string, impairment: Impairment): Promise<void> {
    this.addressOf(ns);
    const checked = checkedImpairment(impairment);
    this.impairments.set(ns, checked);
    if (this.impairment === 'netem') await tc(ns, ...netemCommand('replace', NODE_INTERFACE, checked));
  }

  /**
   * What the namespace receives from now on is delayed and dropped so, on top of the sender's
   * link. With netem it is the qdisc of the veth's root-namespace end, so it applies to all its
   * traffic (TCP too); with the relay it applies to the UDP paths and gateways that end at this
   * namespace.
   */
  async setDownlink(ns: string, impairment: Impairment): Promise<void> {
    this.addressOf(ns);
    const checked = checkedImpairment(impairment);
    this.downlinks.set(ns, checked);
    if (this.impairment === 'netem') await runTool('tc', netemCommand('replace', this.veths[this.namespaces.indexOf(ns)]!, checked));
  }

  /**
   * The way UDP endpoint `a` and UDP endpoint `b` (each bound in its namespace) should address each
   * other so that their datagrams suffer the links' impairment, whichever the mode.
   */
  async udpPath(a: NodeEndpoint, b: NodeEndpoint): Promise<UdpPath> {
    if (this.destroyed) throw new Error('the lab is destroyed');
    const aAt = { address: this.addressOf(a.ns), port: a.port };
    const bAt = { address: this.addressOf(b.ns), port: b.port };
    const relay =
      this.impairment === 'relay'
        ? await ImpairmentRelay.open(this.bridgeAddress, aAt, bAt, (from) => {
            const [sender, receiver] = from === 'a' ? [a.ns, b.ns] : [b.ns, a.ns];
            return this.chain(this.impairments.get(sender), this.downlinks.get(receiver));
          })
        : undefined;
    const path: UdpPath = {
      aSendsTo: relay ? relay.aSendsTo : bAt,
      bSendsTo: relay ? relay.bSendsTo : aAt,
      relay,
      close: () => {
        relay?.close();
        this.routes.delete(path);
      },
    };
    this.routes.add(path);
    return path;
  }

  /**
   * Puts the lab's links in front of a UDP server of the root namespace listening on
   * `bridgeAddress:port` (a media port many clients share): what a namespace sends it suffers that
   * namespace's link (`setLink`), and what it answers suffers the namespace's downlink
   * (`setDownlink`). Clients outside the lab's namespaces pass unimpaired. The server should
   * announce `clientsSendTo` (on `gatewayAddress`, with its own port number) as its address.
   */
  async udpGateway(port: number): Promise<UdpGateway> {
    if (this.destroyed) throw new Error('the lab is destroyed');
    const server = { address: this.bridgeAddress, port };
    const namespaceAt = new Map(this.namespaces.map((ns) => [this.addressOf(ns), ns]));
    const gateway =
      this.impairment === 'relay'
        ? await ImpairmentGateway.open({ address: this.gatewayAddress, port }, server, this.bridgeAddress, (client, direction) => {
            const ns = namespaceAt.get(client.address);
            if (ns === undefined) return undefined;
            return this.chain(direction === 'toServer' ? this.impairments.get(ns) : this.downlinks.get(ns));
          })
        : undefined;
    const opened: UdpGateway = {
      clientsSendTo: gateway ? gateway.endpoint : server,
      gateway,
      close: () => {
        gateway?.close();
        this.routes.delete(opened);
      },
    };
    this.routes.add(opened);
    return opened;
  }

  private chain(...impairments: (Impairment | undefined)[]): Impairment[] {
    return impairments.filter((impairment): impairment is Impairment => impairment !== undefined);
  }

  /** Kills what runs in the namespaces, closes relays, removes namespaces and bridge. Safe to call again. */
  destroy(): Promise<void> {
    this.destroyed ??= (async () => {
      process.off('exit', this.onExit);
      for (const path of [...this.routes]) path.close();
      await Promise.all(
        [...this.children].map((child) => {
          if (child.exitCode !== null || child.signalCode !== null) return undefined;
          const exited = new Promise((resolve) => child.once('exit', resolve));
          child.kill('SIGKILL');
          return exited;
        }),
      );
      // The veths first: a deleted namespace frees its end of them only later, in the kernel's own time.
      for (const veth of this.veths) await ip('link', 'del', veth).catch(() => undefined);
      for (const ns of this.namespaces) await ip('netns', 'del', ns).catch(() => undefined);
      await ip('link', 'del', this.bridge).catch(() => undefined);
      subnetsTaken.delete(this.bridgeAddress.replace(/\.1$/, ''));
    })();
    return this.destroyed;
  }

  /** On process exit nothing asynchronous runs any more. */
  private destroySync(): void {
    for (const path of this.routes) path.close();
    for (const child of this.children) child.kill('SIGKILL');
    for (const veth of this.veths) tryIp(['link', 'del', veth]);
    for (const ns of this.namespaces) tryIp(['netns', 'del', ns]);
    tryIp(['link', 'del', this.bridge]);
  }
}

/** The namespaces and root-namespace interfaces of any lab (of any process) now on this machine. */
export async function listLabResources(): Promise<{ namespaces: string[]; interfaces: string[] }> {
  const [{ stdout: netns }, { stdout: links }] = await Promise.all([run('ip', ['netns', 'list']), run('ip', ['-o', 'link', 'show'])]);
  const namespaces = netns
    .split('\n')
    .map((line) => line.split(' ')[0]!)
    .filter((name) => namespacePattern.test(name));
  const interfaces = links
    .split('\n')
    .map((line) => line.split(': ')[1]?.split('@')[0] ?? '')
    .filter((name) => interfacePattern.test(name));
  return { namespaces, interfaces };
}

/** Removes what labs of processes that no longer run left behind (a crash, a SIGKILL). */
async function removeLeftovers(): Promise<void> {
  const { namespaces, interfaces } = await listLabResources();
  for (const ns of namespaces) {
    if (!isAlive(Number(namespacePattern.exec(ns)![1]))) await ip('netns', 'del', ns).catch(() => undefined);
  }
  for (const name of interfaces) {
    if (!isAlive(Number(interfacePattern.exec(name)![1]))) await ip('link', 'del', name).catch(() => undefined);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A 10.213.x.0/24 no address or route of the host uses, starting from one this process's id picks. */
async function freeSubnet(): Promise<string> {
  const [{ stdout: addresses }, { stdout: routes }] = await Promise.all([run('ip', ['-4', '-o', 'addr', 'show']), run('ip', ['-4', 'route', 'show', 'table', 'all'])]);
  const used = addresses + routes;
  for (let i = 0; i < 250; i++) {
    const subnet = `10.213.${(process.pid + i) % 250}`;
    if (used.includes(`${subnet}.`) || subnetsTaken.has(subnet)) continue;
    subnetsTaken.add(subnet);
    return subnet;
  }
  throw new Error('no free 10.213.x.0/24 for a lab');
}

/** netem where the kernel has it: tried once per process on a fresh namespace's veth. */
async function detectImpairmentMode(ns: string): Promise<ImpairmentMode> {
  try {
    await tc(ns, ...netemCommand('add', NODE_INTERFACE, { delayMs: 0, jitterMs: 0, lossPercent: 0 }));
  } catch {
    return 'relay';
  }
  await tc(ns, 'qdisc', 'del', 'dev', NODE_INTERFACE, 'root');
  return 'netem';
}

function netemCommand(verb: 'add' | 'replace', device: string, { delayMs, jitterMs = 0, lossPercent }: Impairment): string[] {
  const delay = ['delay', `${delayMs}ms`, ...(jitterMs > 0 ? [`${jitterMs}ms`] : [])];
  return ['qdisc', verb, 'dev', device, 'root', 'netem', ...delay, 'loss', `${lossPercent}%`];
}

function checkedImpairment({ delayMs, jitterMs = 0, lossPercent }: Impairment): Impairment {
  for (const [name, value] of Object.entries({ delayMs, jitterMs, lossPercent })) {
    if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number ≥ 0, not ${value}`);
  }
  if (lossPercent > 100) throw new Error(`lossPercent is at most 100, not ${lossPercent}`);
  return { delayMs, jitterMs, lossPercent };
}

async function ip(...args: string[]): Promise<void> {
  await runTool('ip', args);
}

/** `tc` inside the namespace. */
async function tc(ns: string, ...args: string[]): Promise<void> {
  await runTool('tc', ['-n', ns, ...args]);
}

async function runTool(tool: string, args: string[]): Promise<void> {
  try {
    await run(tool, args);
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(`${tool} ${args.join(' ')} failed: ${stderr || (error as Error).message}`);
  }
}

function tryIp(args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: 'ignore' });
  } catch {
    // already gone
  }
}
