import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { fileSystemOf, peakMemoryMiB, processCpuTime, type CpuTime } from './proc.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TIMING_HOOK = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), 'server-timing.mjs')).href;
const STARTUP_TIMEOUT_MS = 30_000;
const SHUTDOWN_TIMEOUT_MS = 15_000;
/** Lines of the server's output kept to explain a failure. */
const OUTPUT_LINES_KEPT = 40;

export interface ServerOptions {
  accessKeyId: string;
  secretAccessKey: string;
  /** Extra flags for the server's node, e.g. --cpu-prof. */
  nodeFlags?: string[];
  /** Cluster mode (`--redis-url`): a node whose meetings live in the Redis at this URL instead of the journal. */
  redisUrl?: string;
  /** More settings for the server, e.g. AMPHI_TURN_URIS. */
  env?: Record<string, string>;
  /** CPUs the server may run on (`taskset -c`, e.g. '0'), all its threads included; unset: any. */
  cpuList?: string;
}

/**
 * `amphi serve` in its own process, exactly as deployed (bin/amphi.js through the tsx loader),
 * so its CPU time can be read from /proc apart from the load generator's. The only addition
 * is server-timing.mjs, which times requests inside the server on demand. With `redisUrl` it is a
 * node of a cluster (`--redis-url`): its meetings, events and revocations in Redis, its entry in the registry.
 */
export class ServerProcess {
  private readonly output: string[] = [];
  private readonly exited: Promise<void>;
  private hasExited = false;

  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
    readonly dataDir: string,
  ) {
    this.exited = new Promise((resolve) =>
      child.once('exit', () => {
        this.hasExited = true;
        resolve();
      }),
    );
    for (const stream of [child.stdout, child.stderr]) {
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        this.output.push(...chunk.split('\n').filter((line) => line.trim() !== ''));
        this.output.splice(0, Math.max(0, this.output.length - OUTPUT_LINES_KEPT));
      });
    }
  }

  static async start(options: ServerOptions): Promise<ServerProcess> {
    const port = await freeLoopbackPort();
    const dataDir = mkdtempSync(path.join(tmpdir(), 'amphi-bench-'));
    const entry = ['bin/amphi.js', 'serve'];
    const nodeArgs = ['--import', TIMING_HOOK, ...(options.nodeFlags ?? []), ...entry];
    // taskset execs node in its own process: the pid stays the server's.
    const [command, args] = options.cpuList ? ['taskset', ['-c', options.cpuList, process.execPath, ...nodeArgs]] : [process.execPath, nodeArgs];
    const child = spawn(command, args, {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: {
        ...process.env,
        // NODE_OPTIONS from the caller (e.g. a debugger) would distort the server's CPU time.
        NODE_OPTIONS: '',
        AMPHI_HOST: '127.0.0.1',
        AMPHI_PORT: String(port),
        AMPHI_DATA_DIR: dataDir,
        AMPHI_ACCESS_KEY_ID: options.accessKeyId,
        AMPHI_SECRET_ACCESS_KEY: options.secretAccessKey,
        AMPHI_LOG_LEVEL: 'warn',
        AMPHI_API_RATE_LIMIT: '0',
        AMPHI_MAX_MEETINGS: '100000',
        // Any free UDP ports for the media workers, so several benchmarked servers can run side by side.
        AMPHI_RTC_PORT: '0',
        // Nothing routes around a benchmarked server: stop without a grace period.
        AMPHI_DRAIN_SECONDS: '0',
        ...(options.redisUrl ? { AMPHI_REDIS_URL: options.redisUrl } : {}),
        ...options.env,
      },
    });
    const server = new ServerProcess(child, `http://127.0.0.1:${port}`, dataDir);
    try {
      await server.waitUntilHealthy();
    } catch (error) {
      await server.stop();
      throw error;
    }
    return server;
  }

  get pid(): number {
    return this.child.pid!;
  }

  cpuTime(): CpuTime {
    return processCpuTime(this.pid);
  }

  peakMemoryMiB(): number {
    return peakMemoryMiB(this.pid);
  }

  /** Where the journal is written matters: every acknowledged change waits for its write. */
  dataFileSystem(): string {
    return fileSystemOf(this.dataDir);
  }

  /** Starts recording how long each request takes inside the server (server-timing.mjs). */
  startTiming(): void {
    this.child.send('timing:start');
  }

  /** Stops recording and returns the durations, in milliseconds, since startTiming. */
  stopTiming(): Promise<number[]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the server did not report its request timings')), 10_000);
      this.child.once('message', (message) => {
        clearTimeout(timer);
        resolve((message as { timingMs: number[] }).timingMs);
      });
      this.child.send('timing:stop');
    });
  }

  recentOutput(): string {
    return this.output.join('\n');
  }

  private async waitUntilHealthy(): Promise<void> {
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (this.hasExited) throw new Error(`amphi exited during startup:\n${this.recentOutput()}`);
      try {
        const response = await fetch(`${this.url}/healthz`, { signal: AbortSignal.timeout(1_000) });
        await response.arrayBuffer();
        if (response.status === 200) return;
      } catch {
        // Not listening yet.
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`amphi did not answer /healthz within ${STARTUP_TIMEOUT_MS} ms:\n${this.recentOutput()}`);
  }

  /** SIGTERM (a clean exit also writes the CPU profile), SIGKILL if it hangs; then removes the data. */
  async stop(): Promise<void> {
    if (!this.hasExited) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), SHUTDOWN_TIMEOUT_MS);
      await this.exited;
      clearTimeout(timer);
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** Last resort from an 'exit' handler, where nothing asynchronous can run; the data goes too. */
  killNow(): void {
    if (!this.hasExited) this.child.kill('SIGKILL');
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** A port the OS just handed out on 127.0.0.1; Amphi cannot report a port 0 choice back to us. */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => (port ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}
