import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './helpers.ts';
import { turnAllocate } from './turn-client.ts';

/** A real coturn `turnserver` (Debian's) for one test file: its own ports, database, log and pid files, REST-credential auth. */
export interface TestCoturn {
  /** The address it listens and relays on. */
  host: string;
  /** TURN over UDP and TCP. */
  port: number;
  /** TURN over TLS (undefined when started without TLS). */
  tlsPort: number | undefined;
  realm: string;
  secret: string;
  /** The turnserver process (for CPU readings). */
  pid: number;
  /** What coturn logged so far (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

export interface CoturnOptions {
  /** Listening and relay address (default 127.0.0.1). */
  host?: string;
  /** Also listen for TURN over TLS with a self-signed certificate made for this run. */
  tls?: boolean;
  secret?: string;
  realm?: string;
  /** Peers on loopback are refused by default; a test whose media server is on loopback allows them. */
  allowLoopbackPeers?: boolean;
  /** Relay only to these addresses (every other peer denied), as docs/DEPLOY.md configures coturn in front of Amphi. */
  onlyPeers?: string[];
}

/** Why this machine can't run the coturn tests (undefined when it can): tests skip with this reason. */
export function coturnUnavailable(): string | undefined {
  try {
    execFileSync('turnserver', ['--help'], { stdio: 'ignore' });
  } catch (error) {
    // turnserver --help exits non-zero after printing; only a missing binary is fatal.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return "coturn's turnserver is not installed (apt-get install coturn)";
  }
  return undefined;
}

export async function startCoturn(options: CoturnOptions = {}): Promise<TestCoturn> {
  const dir = mkdtempSync(path.join(tmpdir(), 'amphi-coturn-'));
  const host = options.host ?? '127.0.0.1';
  const realm = options.realm ?? 'amphi.test';
  const secret = options.secret ?? 'coturn-test-secret';
  const port = await freePort();
  const tlsPort = options.tls ? await freePort() : undefined;
  // A relay range of its own, away from the ports freePort hands out to other servers of the same test.
  const relayBase = 50_000 + ((process.pid * 7) % 100) * 100;
  const logFile = path.join(dir, 'turnserver.log');
  const args = [
    '--listening-ip', host,
    '--relay-ip', host,
    '--listening-port', String(port),
    '--min-port', String(relayBase),
    '--max-port', String(relayBase + 99),
    '--use-auth-secret',
    '--static-auth-secret', secret,
    '--realm', realm,
    '--fingerprint',
    '--no-dtls',
    '--no-cli',
    '--no-rfc5780',
    '--no-stun-backward-compatibility',
    '--no-multicast-peers',
    '--userdb', path.join(dir, 'turndb'),
    '--log-file', logFile,
    '--simple-log',
    '--pidfile', path.join(dir, 'turnserver.pid'),
    '--relay-threads', '1',
  ];
  if (options.allowLoopbackPeers) args.push('--allow-loopback-peers');
  if (options.onlyPeers) {
    args.push('--denied-peer-ip=0.0.0.0-255.255.255.255', '--denied-peer-ip=::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
    for (const peer of options.onlyPeers) args.push(`--allowed-peer-ip=${peer}`);
  }
  if (tlsPort !== undefined) {
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=turn.amphi.test', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    args.push('--tls-listening-port', String(tlsPort), '--cert', cert, '--pkey', key);
  } else {
    args.push('--no-tls');
  }
  const child: ChildProcess = spawn('turnserver', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const log = () => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return output;
    }
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // Ready when it answers an unauthenticated Allocate with its 401 challenge.
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) {
      const text = log();
      await stop();
      throw new Error(`turnserver exited (${child.exitCode}) before it was ready:\n${text}`);
    }
    const answer = await turnAllocate({ transport: 'udp', host, port }, undefined, 300).catch(() => undefined);
    if (answer?.status === 401) break;
    if (Date.now() > deadline) {
      const text = log();
      await stop();
      throw new Error(`turnserver did not answer within 10 s:\n${text}`);
    }
  }
  return { host, port, tlsPort, realm, secret, pid: child.pid!, log, stop };
}
