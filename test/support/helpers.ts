import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ChimeSDKMeetingsClient } from '@aws-sdk/client-chime-sdk-meetings';
import pino from 'pino';
import { startAmphi, type Amphi, type StartOptions } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { ManualClock } from '../../src/util/clock.ts';

export const TEST_KEY = { accessKeyId: 'AKIDAMPHITEST0000001', secretAccessKey: 'amphi-test-secret/with+special=chars' };
export const SECOND_KEY = { accessKeyId: 'AKIDAMPHITEST0000002', secretAccessKey: 'second-secret' };

export interface TestAmphi {
  amphi: Amphi;
  client: ChimeSDKMeetingsClient;
  clock: ManualClock;
  dataDir: string;
  /** Stops the server; keeps the data directory unless `removeData`. */
  stop(removeData?: boolean): Promise<void>;
}

/** A TCP port free on 127.0.0.1 just now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** `count` consecutive UDP ports free on 127.0.0.1 just now (a node's media workers bind base + i). */
export async function freeUdpPorts(count: number): Promise<number> {
  const bind = (port: number) =>
    new Promise<ReturnType<typeof createSocket> | undefined>((resolve) => {
      const socket = createSocket('udp4');
      socket.once('error', () => {
        socket.close();
        resolve(undefined);
      });
      socket.bind(port, '127.0.0.1', () => resolve(socket));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    // Below Linux's ephemeral range (32768–60999), so a port the kernel hands out in between can't take it.
    const base = 20_000 + Math.floor(Math.random() * 10_000);
    const sockets = await Promise.all(Array.from({ length: count }, (_, i) => bind(base + i)));
    for (const socket of sockets) socket?.close();
    if (sockets.every(Boolean)) return base;
  }
  throw new Error(`no ${count} consecutive free UDP ports found`);
}

export function tempDataDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'amphi-test-'));
}

/** A real Amphi on a loopback port with a hand-driven clock, and the real AWS SDK client aimed at it. */
export async function startTestAmphi(
  options: { dataDir?: string; env?: Record<string, string>; start?: StartOptions } = {},
): Promise<TestAmphi> {
  const dataDir = options.dataDir ?? tempDataDir();
  const config = loadConfig([], {
    AMPHI_HOST: '127.0.0.1',
    AMPHI_PORT: '0',
    AMPHI_DATA_DIR: dataDir,
    AMPHI_ACCESS_KEY_ID: `${TEST_KEY.accessKeyId},${SECOND_KEY.accessKeyId}`,
    AMPHI_SECRET_ACCESS_KEY: `${TEST_KEY.secretAccessKey},${SECOND_KEY.secretAccessKey}`,
    AMPHI_ACCOUNT_ID: '111122223333',
    // AMPHI_TEST_LOG_LEVEL=warn shows the media workers' logs while debugging a test.
    AMPHI_LOG_LEVEL: process.env.AMPHI_TEST_LOG_LEVEL ?? 'silent',
    AMPHI_RTC_PORT: '0',
    ...options.env,
  });
  const clock = new ManualClock(Date.now());
  const amphi = await startAmphi(config, { clock, logger: pino({ level: 'silent' }), ...options.start });
  return {
    amphi,
    client: clientFor(amphi.url),
    clock,
    dataDir,
    async stop(removeData = true) {
      await amphi.close();
      if (removeData) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export function clientFor(url: string, credentials = TEST_KEY, maxAttempts = 1): ChimeSDKMeetingsClient {
  return new ChimeSDKMeetingsClient({ region: 'us-east-1', endpoint: url, credentials, maxAttempts });
}

/** Runs `action` and returns the error it throws, failing if it doesn't. */
export async function errorOf(action: Promise<unknown>): Promise<Error & Record<string, any>> {
  try {
    await action;
  } catch (error) {
    return error as Error & Record<string, any>;
  }
  throw new Error('expected the call to fail');
}
