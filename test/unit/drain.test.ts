import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, GetMeetingCommand } from '@aws-sdk/client-chime-sdk-meetings';
import WebSocket from 'ws';
import { AudioStatus, FrameType } from '../../src/signaling/frames.ts';
import { clientFor, errorOf, startTestAmphi, tempDataDir, TEST_KEY } from '../support/helpers.ts';
import { startTestCluster } from '../support/cluster.ts';
import { RawClient } from '../support/raw-signaling.ts';
import { startServe, type ServeProcess } from '../support/serve-process.ts';
import { SlowRequest } from '../support/slow-request.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
/** Long enough to look at the draining node; the tests wait for log lines, not for this to pass. */
const DRAIN_SECONDS = 4;
/** A hang guard for a stop: the grace period, the in-flight limit (5 s) and a wide margin. */
const STOP_BOUND_MS = (DRAIN_SECONDS + 5 + 20) * 1000;

const serveEnv = (dataDir: string): Record<string, string> => ({
  AMPHI_HOST: '127.0.0.1',
  AMPHI_PORT: '0',
  AMPHI_RTC_PORT: '0',
  AMPHI_MEDIA_WORKERS: '1',
  AMPHI_DATA_DIR: dataDir,
  AMPHI_ACCESS_KEY_ID: TEST_KEY.accessKeyId,
  AMPHI_SECRET_ACCESS_KEY: TEST_KEY.secretAccessKey,
  AMPHI_LOG_LEVEL: 'info',
  AMPHI_DRAIN_SECONDS: String(DRAIN_SECONDS),
});

async function healthStatus(url: string): Promise<number> {
  return (await fetch(`${url}/healthz`)).status;
}

/** Polls /healthz until it answers 503: the node has started draining. Every answer before is 200, none refused. */
async function untilDraining(server: ServeProcess): Promise<void> {
  for (;;) {
    const status = await healthStatus(server.url);
    if (status === 503) return;
    assert.equal(status, 200, 'serving until the drain starts');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The answer to a WebSocket upgrade that was refused (undefined if it was accepted). */
function upgradeRefusal(url: string, token: string): Promise<{ status: number; retryAfter: string | undefined } | undefined> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['_aws_wt_session', token]);
    ws.once('open', () => {
      ws.close();
      resolve(undefined);
    });
    ws.once('unexpected-response', (_request, response) => {
      resolve({ status: response.statusCode ?? 0, retryAfter: response.headers['retry-after'] });
      response.resume();
      ws.terminate();
    });
    ws.once('error', reject);
  });
}

describe('SIGTERM drains', () => {
  test('503 with Retry-After and a 503 /healthz during the grace period, sessions and calls in flight finished, then exit 0', async () => {
    const dataDir = tempDataDir();
    const server = await startServe([], serveEnv(dataDir));
    try {
      const client = clientFor(server.url);
      const { Meeting } = await client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'drain' }));
      const meetingId = Meeting!.MeetingId!;
      const attendee = async (name: string) =>
        (await client.send(new CreateAttendeeCommand({ MeetingId: meetingId, ExternalUserId: name }))).Attendee!;
      const session = await RawClient.connect(Meeting!.MediaPlacement!.SignalingUrl!, (await attendee('in-session')).JoinToken!);
      await session.join();
      const latecomerToken = (await attendee('latecomer')).JoinToken!;
      // Two calls taken in before the signal, whose bodies are still on their way.
      const path = `/meetings/${meetingId}/attendees`;
      const duringGrace = await SlowRequest.start(server.url, 'POST', path, JSON.stringify({ ExternalUserId: 'finishes-during-grace' }));
      const afterGrace = await SlowRequest.start(server.url, 'POST', path, JSON.stringify({ ExternalUserId: 'finishes-after-grace' }));

      // Twice at once, as `npm start` forwarding a signal that also reached Amphi's process group delivers it.
      server.child.kill('SIGTERM');
      server.child.kill('SIGTERM');
      await untilDraining(server);

      for (let call = 0; call < 20; call++) {
        const error = await errorOf(client.send(new GetMeetingCommand({ MeetingId: meetingId })));
        // A refused connection is right only once the grace period is over (on a very slow machine).
        if (error.name !== 'ServiceUnavailableException' && server.output().includes('"msg":"shutting down"')) break;
        assert.equal(error.name, 'ServiceUnavailableException', String(error));
        assert.equal(error.$metadata.httpStatusCode, 503);
        assert.equal(error.RetryAfterSeconds, '5');
      }
      assert.equal(await healthStatus(server.url), 503);
      assert.deepEqual(await upgradeRefusal(Meeting!.MediaPlacement!.SignalingUrl!, latecomerToken), { status: 503, retryAfter: '5' }, 'new sessions are sent elsewhere');
      assert.ok(await session.ping(1), 'the open session goes on during the grace period');

      const first = await duringGrace.finish();
      assert.equal(first.status, 200, first.body);
      assert.equal(JSON.parse(first.body).Attendee.ExternalUserId, 'finishes-during-grace');
      assert.equal(first.headers.connection, 'close', 'the client is told to reconnect (elsewhere)');

      await server.waitForOutput('"msg":"shutting down"', STOP_BOUND_MS);
      const second = await afterGrace.finish();
      assert.equal(second.status, 200, second.body);
      assert.equal(JSON.parse(second.body).Attendee.ExternalUserId, 'finishes-after-grace');

      assert.equal((await session.next(FrameType.AUDIO_STATUS)).audioStatus?.audioStatus, AudioStatus.ServiceUnavailable, 'the SDK reconnects on 503');
      assert.equal(await server.exitCode(STOP_BOUND_MS), 0, server.output());
      assert.match(server.output(), /"msg":"stopped"/);
      assert.doesNotMatch(server.output(), /were cut/);
    } finally {
      server.child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('a second signal a second or more after the first stops at once with 128 + its number', async () => {
    const dataDir = tempDataDir();
    const server = await startServe(['--drain-seconds', '600'], serveEnv(dataDir));
    try {
      server.child.kill('SIGINT');
      await untilDraining(server);
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      server.child.kill('SIGTERM');
      assert.equal(await server.exitCode(), 143, server.output());
      assert.match(server.output(), /second stop signal: exiting now/);
    } finally {
      server.child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('npm start passes SIGTERM on to Amphi, which drains and exits 0, and npm with it', async () => {
    const dataDir = tempDataDir();
    const npm = await startServe([], serveEnv(dataDir), { npm: true });
    try {
      const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(npm.child.pid)], { encoding: 'utf8' }).trim().split(/\s+/).map(Number);
      assert.equal(children.length, 1, 'one process under npm: Amphi itself, not a shell in between');
      process.kill(npm.child.pid!, 'SIGTERM');
      await untilDraining(npm);
      assert.equal(await npm.exitCode(STOP_BOUND_MS), 0, npm.output());
      assert.match(npm.output(), /"msg":"stopped"/);
      assert.throws(() => process.kill(children[0]!, 0), { code: 'ESRCH' }, 'Amphi is gone too');
    } finally {
      npm.child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('a node of a cluster leaves it as the grace period begins: new meetings of its region go to another node', async () => {
    const cluster = await startTestCluster([
      { id: 'leaving', regions: ['us-east-1'], env: { AMPHI_DRAIN_SECONDS: '600' } },
      { id: 'staying' },
    ]);
    try {
      const [leaving, staying] = [cluster.node('leaving'), cluster.node('staying')];
      const placedOn = async () => {
        const { Meeting } = await staying.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'placement' }));
        return new URL(Meeting!.MediaPlacement!.SignalingUrl!).port;
      };
      const port = (node: { publicUrl: string }) => new URL(node.publicUrl).port;
      assert.equal(await placedOn(), port(leaving), 'the node naming the region hosts it');
      leaving.process.kill('SIGTERM');
      // The other node reuses its view of the live nodes for up to 2 s (the heartbeat); 60 s is a hang guard.
      const deadline = Date.now() + 60_000;
      while ((await placedOn()) !== port(staying)) {
        assert.ok(Date.now() < deadline, `new meetings of us-east-1 still go to the draining node:\n${leaving.output()}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.equal(await healthStatus(leaving.url), 503, 'still in its grace period');
      assert.doesNotMatch(leaving.output(), /"msg":"shutting down"/);
    } finally {
      // Its grace period is long: end it rather than signal it again within a second (which would count as one stop).
      await cluster.node('leaving').stop('SIGKILL');
      await cluster.stop();
    }
  });

  test('close() cuts a call still in flight after the in-flight limit, so a stop always ends', async () => {
    const server = await startTestAmphi({ start: { inFlightLimitMs: 300 } });
    const { Meeting } = await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'stuck' }));
    const stuck = await SlowRequest.start(server.amphi.url, 'POST', `/meetings/${Meeting!.MeetingId}/attendees`, JSON.stringify({ ExternalUserId: 'never-done' }));
    await server.stop();
    await stuck.closed();
  });
});

describe('a failed start', () => {
  test('a busy HTTP port stops amphi serve at once, non-zero, with a clear message', async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as { port: number }).port;
    const dataDir = tempDataDir();
    try {
      const { code, stderr } = await run(process.execPath, [path.join(root, 'bin/amphi.js'), 'serve'], { ...serveEnv(dataDir), AMPHI_PORT: String(port) });
      assert.equal(code, 1, stderr);
      assert.match(stderr, new RegExp(`^amphi: could not listen for the API: TCP port ${port} on 127\\.0\\.0\\.1 is already in use by another process \\(choose another with --port / AMPHI_PORT\\)`));
    } finally {
      busy.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('a busy media port stops amphi serve at once, non-zero, with a clear message', async () => {
    const busy = createSocket('udp4');
    await new Promise<void>((resolve) => busy.bind(0, '127.0.0.1', resolve));
    const port = busy.address().port;
    const dataDir = tempDataDir();
    try {
      const env = { ...serveEnv(dataDir), AMPHI_RTC_PORT: String(port), AMPHI_MEDIA_WORKERS: '2' };
      const { code, stderr } = await run(process.execPath, [path.join(root, 'bin/amphi.js'), 'serve'], env);
      assert.equal(code, 1, stderr);
      assert.match(stderr, new RegExp(`^amphi: could not start the media workers: UDP port ${port} is already in use by another process \\(choose another with --rtc-port / AMPHI_RTC_PORT\\)`));
    } finally {
      busy.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('startAmphi stops everything it started when a later step fails: nothing keeps the process alive', async () => {
    const busyTcp = createServer();
    await new Promise<void>((resolve) => busyTcp.listen(0, '127.0.0.1', resolve));
    const busyUdp = createSocket('udp4');
    await new Promise<void>((resolve) => busyUdp.bind(0, '127.0.0.1', resolve));
    const dataDir = tempDataDir();
    // Neither failure may leave a media worker, a socket or the journal open: the script must end on its own.
    const script = `
      import { startAmphi } from '${pathToFileURL(path.join(root, 'src/app.ts')).href}';
      import { loadConfig } from '${pathToFileURL(path.join(root, 'src/config.ts')).href}';
      for (const env of [{ AMPHI_PORT: process.env.BUSY_TCP }, { AMPHI_PORT: '0', AMPHI_RTC_PORT: process.env.BUSY_UDP }]) {
        const config = loadConfig([], { ...process.env, ...env });
        await startAmphi(config).then(
          () => console.log('started'),
          (error) => console.log('failed: ' + error.message),
        );
      }`;
    // A file rather than --eval: the media worker threads inherit the process's flags, and --input-type is not for them.
    const scriptFile = path.join(dataDir, 'start-twice.mts');
    writeFileSync(scriptFile, script);
    try {
      const env = { ...serveEnv(dataDir), AMPHI_LOG_LEVEL: 'silent', AMPHI_MEDIA_WORKERS: '2', BUSY_TCP: String((busyTcp.address() as { port: number }).port), BUSY_UDP: String(busyUdp.address().port) };
      const { code, stdout, stderr } = await run(process.execPath, ['--import', 'tsx', scriptFile], env);
      assert.equal(code, 0, stderr);
      assert.deepEqual(
        stdout.trim().split('\n').map((line) => line.replace(/:.*/, '')),
        ['failed', 'failed'],
        stdout,
      );
      assert.match(stdout, /could not listen for the API: TCP port \d+ on 127\.0\.0\.1 is already in use/);
      assert.match(stdout, /could not start the media workers: UDP port \d+ is already in use/);
      assert.doesNotMatch(stderr, /Closing file descriptor/, 'the journal was closed, not left to the garbage collector');
    } finally {
      busyTcp.close();
      busyUdp.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('amphi serve --help', () => {
  test('prints the usage with every setting and how a stop drains, and exits 0', async () => {
    const { code, stdout } = await run(process.execPath, [path.join(root, 'bin/amphi.js'), 'serve', '--help'], {});
    assert.equal(code, 0);
    assert.match(stdout, /^Usage: amphi serve \[options\]/);
    assert.match(stdout, /--drain-seconds +AMPHI_DRAIN_SECONDS/);
    assert.match(stdout, /--port +AMPHI_PORT/);
    assert.match(stdout, /SIGTERM or SIGINT drains the node/);
  });

  test('an unknown option says where the options are listed', async () => {
    const { code, stderr } = await run(process.execPath, [path.join(root, 'bin/amphi.js'), 'serve', '--prot', '80'], {});
    assert.equal(code, 1);
    assert.match(stderr, /Unknown option '--prot'/);
    assert.match(stderr, /amphi serve --help lists the options/);
  });
});

/** Runs a command to its end (within 60 s) and returns its exit code and output. */
async function run(command: string, args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const result = await promisify(execFile)(command, args, { cwd: root, env: { ...process.env, ...env }, timeout: 60_000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code?: number | string; killed?: boolean; stdout: string; stderr: string }) => {
      assert.ok(!error.killed, `still running after 60 s:\n${error.stderr}`);
      return { code: typeof error.code === 'number' ? error.code : -1, stdout: error.stdout, stderr: error.stderr };
    },
  );
  return result;
}
