import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { CreateMeetingCommand } from '@aws-sdk/client-chime-sdk-meetings';
import pino from 'pino';
import { startAmphi } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { clientFor, freePort, tempDataDir } from '../support/helpers.ts';

const root = path.resolve(import.meta.dirname, '..', '..');

describe('configuration', () => {
  test('defaults, environment variables and flags (flags win)', () => {
    const defaults = loadConfig([], {});
    assert.equal(defaults.host, undefined, 'chosen at start: 127.0.0.1 with development keys, else 0.0.0.0');
    assert.equal(defaults.port, 8080);
    assert.equal(defaults.dataDir, './data');
    assert.equal(defaults.maxReplicasPerPrimary, 4);
    assert.equal(defaults.publicUrl, undefined);
    assert.equal(defaults.drainSeconds, 10);
    assert.equal(loadConfig(['--drain-seconds', '2.5'], {}).drainSeconds, 2.5);
    assert.equal(loadConfig([], { AMPHI_DRAIN_SECONDS: '0' }).drainSeconds, 0);
    const env = { AMPHI_PORT: '9000', AMPHI_MAX_REPLICAS_PER_PRIMARY: '7', AMPHI_PUBLIC_URL: 'https://meet.example.com', AMPHI_LOG_LEVEL: 'debug' };
    const fromEnv = loadConfig([], env);
    assert.equal(fromEnv.port, 9000);
    assert.equal(fromEnv.maxReplicasPerPrimary, 7);
    assert.equal(fromEnv.publicUrl, 'https://meet.example.com');
    const fromFlags = loadConfig(['--port', '9100', '--max-replicas-per-primary=2', '--account-id', '123456789012'], env);
    assert.equal(fromFlags.port, 9100);
    assert.equal(fromFlags.maxReplicasPerPrimary, 2);
    assert.equal(fromFlags.accountId, '123456789012');
  });

  test('invalid settings are reported by flag and variable name', () => {
    assert.throws(() => loadConfig([], { AMPHI_PORT: 'eighty' }), /--port \/ AMPHI_PORT/);
    assert.throws(() => loadConfig([], { AMPHI_ACCOUNT_ID: '12' }), /AMPHI_ACCOUNT_ID: must be 12 digits/);
    assert.throws(() => loadConfig([], { AMPHI_PUBLIC_URL: 'ftp://x' }), /AMPHI_PUBLIC_URL/);
    assert.throws(() => loadConfig(['--no-such-flag'], {}), /no-such-flag/);
    assert.throws(() => loadConfig([], { AMPHI_DRAIN_SECONDS: '-1' }), /--drain-seconds \/ AMPHI_DRAIN_SECONDS/);
  });

  test('cluster settings: Redis URL, node id and the regions a node hosts, checked against the known regions', () => {
    const embedded = loadConfig([], {});
    assert.deepEqual([embedded.redisUrl, embedded.nodeId, embedded.regions], [undefined, undefined, undefined], 'no Redis: the embedded single node');
    const node = loadConfig(['--regions', 'us-west-2, eu-west-1', '--node-id', 'media-1'], { AMPHI_REDIS_URL: 'redis://10.0.0.5:6379', AMPHI_NODE_ID: 'ignored' });
    assert.deepEqual([node.redisUrl, node.nodeId, node.regions], ['redis://10.0.0.5:6379', 'media-1', ['us-west-2', 'eu-west-1']]);
    assert.throws(() => loadConfig([], { AMPHI_REGIONS: 'us-west-2,moon-1' }), /--regions \/ AMPHI_REGIONS: unknown media region moon-1 \(known: af-south-1, /);
    assert.throws(() => loadConfig([], { AMPHI_REGIONS: ' , ' }), /AMPHI_REGIONS: names no region/);
    assert.throws(() => loadConfig(['--redis-url', 'http://10.0.0.5'], {}), /--redis-url \/ AMPHI_REDIS_URL: must be a redis:\/\/ or rediss:\/\/ URL/);
    assert.throws(() => loadConfig(['--node-id', 'a/b'], {}), /--node-id \/ AMPHI_NODE_ID/);
  });
});

describe('amphi serve', () => {
  test('starts with a generated development key pair, serves the API and /healthz, and stops cleanly on SIGTERM', async () => {
    const dataDir = tempDataDir();
    const port = await freePort();
    const child = spawn(process.execPath, [path.join(root, 'bin/amphi.js'), 'serve', '--host', '127.0.0.1'], {
      // No grace period: draining is test/unit/drain.test.ts's.
      env: { ...process.env, AMPHI_PORT: String(port), AMPHI_RTC_PORT: '0', AMPHI_DATA_DIR: dataDir, AMPHI_PUBLIC_URL: 'https://amphi.example.com/', AMPHI_DRAIN_SECONDS: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 30_000;
      while (!output.includes('Amphi is listening')) {
        assert.ok(Date.now() < deadline, `no start within 30 s:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const keysFile = path.join(dataDir, 'dev-credentials.json');
      assert.ok(existsSync(keysFile));
      const key = JSON.parse(readFileSync(keysFile, 'utf8'));
      assert.ok(output.includes(key.accessKeyId), 'the generated key is printed at start');
      assert.ok(
        output.includes(`export AWS_ACCESS_KEY_ID=${key.accessKeyId} AWS_SECRET_ACCESS_KEY=${key.secretAccessKey} AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1`),
        'a line to paste into a shell',
      );
      assert.match(output, /aws chime-sdk-meetings create-meeting --endpoint-url https:\/\/amphi\.example\.com /, 'a first AWS CLI call');
      assert.match(output, /deleted after 5 minutes/);
      assert.match(output, /Try the webinar demo .*: open https:\/\/amphi\.example\.com\/ in a browser/, 'the demo, on with development keys');
      const lines = output.trim().split('\n').filter((line) => line.startsWith('{'));
      assert.ok(lines.every((line) => JSON.parse(line).level !== undefined), 'structured logs');

      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      assert.equal(health.status, 200);
      assert.equal((await health.json()).status, 'ok');
      const { Meeting } = await clientFor(`http://127.0.0.1:${port}`, key).send(
        new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'cli' }),
      );
      assert.equal(Meeting!.MediaPlacement!.SignalingUrl, `wss://amphi.example.com/control/${Meeting!.MeetingId}`);
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, output);
    assert.match(output, /"msg":"stopped"/);
  });

  test('--version prints the package version', async () => {
    const child = spawn(process.execPath, [path.join(root, 'bin/amphi.js'), '--version'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    assert.equal(await new Promise<number | null>((resolve) => child.on('exit', resolve)), 0);
    const { version } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
    assert.equal(stdout.trim(), `amphi ${version}`);
  });

  test('with development keys and no --host it listens on this machine only; with configured keys on every address', async () => {
    const base = { AMPHI_PORT: '0', AMPHI_RTC_PORT: '0', AMPHI_LOG_LEVEL: 'silent', AMPHI_MEDIA_WORKERS: '1' };
    const dataDir = tempDataDir();
    const local = await startAmphi(loadConfig([], { ...base, AMPHI_DATA_DIR: dataDir }), { logger: pino({ level: 'silent' }) });
    try {
      assert.equal(local.generatedKeys, true);
      assert.equal(local.listenAddress, '127.0.0.1');
      assert.ok(local.demo, 'the demo is on with development keys');
    } finally {
      await local.close();
    }
    const keyed = await startAmphi(loadConfig([], { ...base, AMPHI_DATA_DIR: dataDir, AMPHI_ACCESS_KEY_ID: 'AKIDCLITEST000000001', AMPHI_SECRET_ACCESS_KEY: 'secret' }), {
      logger: pino({ level: 'silent' }),
    });
    try {
      assert.equal(keyed.listenAddress, '0.0.0.0');
      assert.equal(keyed.demo, undefined, 'and off with configured keys');
      assert.equal((await fetch(`${keyed.url}/`)).status, 404);
    } finally {
      await keyed.close();
    }
  });

  test('an unreachable Redis stops a cluster node at start with a clear message, its password left out', async () => {
    const url = `redis://amphi:hunter2@127.0.0.1:${await freePort()}`;
    const dataDir = tempDataDir();
    const config = loadConfig([], { AMPHI_REDIS_URL: url, AMPHI_PORT: '0', AMPHI_RTC_PORT: '0', AMPHI_DATA_DIR: dataDir, AMPHI_LOG_LEVEL: 'silent' });
    const error = await startAmphi(config, { logger: pino({ level: 'silent' }) }).then(
      () => assert.fail('started without Redis'),
      (rejection: Error) => rejection,
    );
    assert.match(error.message, /^could not join the cluster through Redis at redis:\/\/amphi:\*\*\*@127\.0\.0\.1:\d+: connect ECONNREFUSED/);
    assert.doesNotMatch(error.message, /hunter2/);
  });

  test('an invalid setting stops it at once with a clear message', async () => {
    const child = spawn(process.execPath, [path.join(root, 'bin/amphi.js'), 'serve'], {
      env: { ...process.env, AMPHI_MAX_REPLICAS_PER_PRIMARY: 'many' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 1);
    assert.match(stderr, /AMPHI_MAX_REPLICAS_PER_PRIMARY/);
  });
});
