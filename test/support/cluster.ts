import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import type { ChimeSDKMeetingsClient } from '@aws-sdk/client-chime-sdk-meetings';
import type { AccessKey } from '../../src/api/sigv4.ts';
import { clientFor, tempDataDir, TEST_KEY } from './helpers.ts';
import { startTestRedis, type TestRedis } from './redis-server.ts';

const AMPHI = path.resolve(import.meta.dirname, '..', '..', 'bin', 'amphi.js');
const START_TIMEOUT_MS = 30_000;

export interface TestNodeOptions {
  id: string;
  /** MediaRegions it hosts (--regions); unset: any. */
  regions?: string[];
  /** More AMPHI_* variables for this node. */
  env?: Record<string, string>;
}

/** One `amphi serve` process of a test cluster. */
export interface TestNode {
  id: string;
  /** Where its API listens (port 0: the port it printed). */
  url: string;
  publicUrl: string;
  /** The AWS SDK client aimed at it. */
  client: ChimeSDKMeetingsClient;
  process: ChildProcess;
  /** Everything it wrote, for failure messages. */
  output(): string;
  /** Ends the process (SIGTERM: a clean stop that leaves the cluster; SIGKILL: a crash) and waits for its exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface TestCluster {
  redis: TestRedis;
  nodes: TestNode[];
  node(id: string): TestNode;
  /** Starts one more node on the same Redis. */
  startNode(options: TestNodeOptions): Promise<TestNode>;
  /** Stops every node, then Redis. */
  stop(): Promise<void>;
}

/**
 * A real redis-server and Amphi node processes on loopback, each started as an operator would
 * (`amphi serve` with AMPHI_REDIS_URL, AMPHI_NODE_ID, AMPHI_REGIONS), on ports of their choosing, all
 * accepting `key` (default: the tests' key) unless a node's env says otherwise.
 */
export async function startTestCluster(
  nodes: TestNodeOptions[],
  options: { key?: AccessKey; env?: Record<string, string> } = {},
): Promise<TestCluster> {
  const redis = await startTestRedis();
  const started: TestNode[] = [];
  const key = options.key ?? TEST_KEY;
  const startNode = async (node: TestNodeOptions) => {
    const env: Record<string, string> = {
      AMPHI_ACCESS_KEY_ID: key.accessKeyId,
      AMPHI_SECRET_ACCESS_KEY: key.secretAccessKey,
      ...options.env,
      ...node.env,
    };
    const running = await startNodeProcess(redis.url, node, env, key);
    started.push(running);
    return running;
  };
  try {
    // One after the other: a node's start (tsx compiling the sources) uses a core of its own.
    for (const node of nodes) await startNode(node);
  } catch (error) {
    await Promise.all(started.map((node) => node.stop('SIGKILL')));
    await redis.stop();
    throw error;
  }
  return {
    redis,
    nodes: started,
    node(id) {
      const found = started.find((node) => node.id === id);
      if (!found) throw new Error(`no test node ${id}`);
      return found;
    },
    startNode,
    async stop() {
      await Promise.all(started.map((node) => node.stop('SIGTERM')));
      await redis.stop();
    },
  };
}

async function startNodeProcess(redisUrl: string, node: TestNodeOptions, extraEnv: Record<string, string>, key: AccessKey): Promise<TestNode> {
  const dataDir = tempDataDir();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AMPHI_HOST: '127.0.0.1',
    AMPHI_PORT: '0',
    AMPHI_RTC_PORT: '0',
    AMPHI_MEDIA_WORKERS: '1',
    AMPHI_DATA_DIR: dataDir,
    AMPHI_ACCOUNT_ID: '111122223333',
    AMPHI_LOG_LEVEL: 'info',
    // No load balancer to drain away from: SIGTERM stops a test node without a grace period.
    AMPHI_DRAIN_SECONDS: '0',
    AMPHI_REDIS_URL: redisUrl,
    AMPHI_NODE_ID: node.id,
    ...(node.regions ? { AMPHI_REGIONS: node.regions.join(',') } : {}),
    ...extraEnv,
  };
  if (!node.regions && !extraEnv.AMPHI_REGIONS) delete env.AMPHI_REGIONS;
  const child = spawn(process.execPath, [AMPHI, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  // Kept short: a node logs every call, and only the end matters when a test fails.
  const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-20_000));
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const listening = new Promise<{ url: string; publicUrl: string }>((resolve, reject) => {
    let pending = '';
    const timer = setTimeout(() => reject(new Error(`node ${node.id} did not start within ${START_TIMEOUT_MS / 1000} s:\n${output}`)), START_TIMEOUT_MS);
    child.stdout!.on('data', (chunk: Buffer) => {
      keep(chunk);
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        const entry = parseLogLine(line);
        if (entry?.msg === 'Amphi is listening' && typeof entry.url === 'string' && typeof entry.publicUrl === 'string') {
          clearTimeout(timer);
          resolve({ url: entry.url, publicUrl: entry.publicUrl });
        }
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`node ${node.id} exited (${code ?? signal}) before listening:\n${output}`));
    });
  });
  let addresses: { url: string; publicUrl: string };
  try {
    addresses = await listening;
  } catch (error) {
    child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  return {
    id: node.id,
    ...addresses,
    client: clientFor(addresses.url, key),
    process: child,
    output: () => output,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function parseLogLine(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
