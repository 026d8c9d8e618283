import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { fileSystemOf, processCpuTime, type CpuTime } from './proc.ts';
import { freeLoopbackPort } from './server-process.ts';

const STARTUP_TIMEOUT_MS = 10_000;

/**
 * When Redis forces its append-only file to disk: `everysec` writes every change to the kernel before it answers
 * and fsyncs once a second (a crash of redis-server loses nothing acknowledged, a crash of the machine up to a
 * second); `always` fsyncs before it answers.
 */
export type AppendFsync = 'everysec' | 'always';

/**
 * Debian's redis-server for one benchmark run, as test/support/redis-server.ts starts it: its own port on
 * 127.0.0.1 and its own data directory under $TMPDIR, append-only persistence on, no snapshots. Its CPU
 * (all threads, the background fsync thread included) is read from /proc like the Amphi server's.
 */
export class RedisProcess {
  private readonly exited: Promise<void>;
  private hasExited = false;
  /** For INFO only, connected once the server is ready. */
  private admin?: Redis;

  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
    readonly dataDir: string,
    readonly appendFsync: AppendFsync,
  ) {
    this.exited = new Promise((resolve) =>
      child.once('exit', () => {
        this.hasExited = true;
        resolve();
      }),
    );
  }

  static async start(appendFsync: AppendFsync): Promise<RedisProcess> {
    const port = await freeLoopbackPort();
    const dataDir = mkdtempSync(path.join(tmpdir(), 'amphi-bench-redis-'));
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dataDir, '--appendonly', 'yes', '--appendfsync', appendFsync, '--save', '', '--protected-mode', 'no'];
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const redis = new RedisProcess(child, `redis://127.0.0.1:${port}`, dataDir, appendFsync);
    try {
      await redis.waitUntilReady(child);
      redis.admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    } catch (error) {
      await redis.stop();
      throw error;
    }
    return redis;
  }

  get pid(): number {
    return this.child.pid!;
  }

  cpuTime(): CpuTime {
    return processCpuTime(this.pid);
  }

  /** Commands the server has run since it started (INFO's total_commands_processed), this one not included. */
  async commandsProcessed(): Promise<number> {
    const info = await this.admin!.info('stats');
    const total = /^total_commands_processed:(\d+)/m.exec(info)?.[1];
    if (total === undefined) throw new Error('INFO stats of redis-server has no total_commands_processed');
    return Number(total);
  }

  /** The append-only file's file system: `always` costs what its fsync costs there. */
  dataFileSystem(): string {
    return fileSystemOf(this.dataDir);
  }

  private waitUntilReady(child: ChildProcess): Promise<void> {
    let output = '';
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    const collect = (chunk: string) => (output += chunk);
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    return new Promise<void>((resolve, reject) => {
      const done = (error?: Error) => {
        clearTimeout(timer);
        child.stdout!.off('data', check);
        child.off('exit', exitedEarly);
        if (error) reject(error);
        else resolve();
      };
      const check = () => {
        if (/Ready to accept connections/.test(output)) done();
      };
      const exitedEarly = (code: number | null) => done(new Error(`redis-server exited (${code}) before it was ready:\n${output}`));
      const timer = setTimeout(() => done(new Error(`redis-server was not ready within ${STARTUP_TIMEOUT_MS} ms:\n${output}`)), STARTUP_TIMEOUT_MS);
      child.stdout!.on('data', check);
      child.once('exit', exitedEarly);
      // Not launched at all (redis-server missing): 'error' instead of 'exit'.
      child.once('error', (error) => done(new Error(`could not start redis-server: ${error.message}`)));
    });
  }

  async stop(): Promise<void> {
    this.admin?.disconnect();
    if (!this.hasExited) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
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
