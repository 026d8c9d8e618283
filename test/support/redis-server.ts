import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './helpers.ts';

/** A real redis-server (Debian's) for one test file: its own port and data directory, append-only persistence on. */
export interface TestRedis {
  url: string;
  port: number;
  /** A connected client, for checks and for clearing between tests. */
  client: Redis;
  /** Stops the server as a crash would (SIGKILL) or cleanly (SIGTERM), keeping its data directory. */
  stopServer(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the server again on the same port and data directory. */
  startServer(): Promise<void>;
  stop(): Promise<void>;
}

export async function startTestRedis(): Promise<TestRedis> {
  const dir = mkdtempSync(path.join(tmpdir(), 'amphi-redis-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  const startServer = async () => {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--protected-mode', 'no'];
    const started = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = started;
    let output = '';
    started.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start within 10 s:\n${output}`)), 10_000);
      const poll = setInterval(() => {
        if (/Ready to accept connections/.test(output)) {
          clearInterval(poll);
          clearTimeout(timer);
          resolve();
        }
      }, 20);
      started.once('exit', (code) => {
        clearInterval(poll);
        clearTimeout(timer);
        reject(new Error(`redis-server exited (${code}) before it was ready:\n${output}`));
      });
    });
  };
  const stopServer = async (signal: NodeJS.Signals = 'SIGTERM') => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill(signal);
    await exited;
  };
  await startServer();
  const url = `redis://127.0.0.1:${port}`;
  const client = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1 });
  return {
    url,
    port,
    client,
    stopServer,
    startServer,
    async stop() {
      client.disconnect();
      await stopServer('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
