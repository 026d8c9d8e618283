import http from 'node:http';
import { spawn } from 'node:child_process';
import { openSync, mkdtempSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { ChimeSDKMeetingsClient, CreateAttendeeCommand, CreateMeetingCommand } from '@aws-sdk/client-chime-sdk-meetings';
import { runAtFixedRate, runClosedLoop, percentile } from './load.ts';
const CRED = { accessKeyId: 'AKIDAMPHIBENCH000001', secretAccessKey: 'x' };
const port = 39111;
const out = openSync('/tmp/benchdiag/server.log', 'w');
const child = spawn(process.execPath, [...(process.env.SERVER_FLAGS ?? '').split(' ').filter(Boolean), 'bin/amphi.js', 'serve'], { stdio: ['ignore', out, out], env: { ...process.env, AMPHI_HOST: '127.0.0.1', AMPHI_PORT: String(port), AMPHI_DATA_DIR: mkdtempSync('/tmp/benchdiag/d'), AMPHI_ACCESS_KEY_ID: CRED.accessKeyId, AMPHI_SECRET_ACCESS_KEY: CRED.secretAccessKey, AMPHI_LOG_LEVEL: 'warn', AMPHI_MAX_MEETINGS: '10000' } });
await new Promise((r) => setTimeout(r, 2500));
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const client = new ChimeSDKMeetingsClient({ region: 'us-east-1', endpoint: `http://127.0.0.1:${port}`, credentials: CRED, maxAttempts: 1, requestHandler: { httpAgent: agent } });
try {
  const meetings: string[] = [];
  for (let i = 0; i < 40; i++) { const r = await client.send(new CreateMeetingCommand({ ClientRequestToken: `m${i}`, ExternalMeetingId: `m${i}`, MediaRegion: 'us-east-1' })); meetings.push(r.Meeting!.MeetingId!); }
  let n = 0;
  const send = (i: number) => client.send(new CreateAttendeeCommand({ MeetingId: meetings[i % meetings.length]!, ExternalUserId: `u${n++}` })).then(() => undefined);
  await runClosedLoop(2000, 16, send);
  console.log('--- measured start', performance.now().toFixed(0));
  const h = monitorEventLoopDelay({ resolution: 1 }); h.enable();
  const r = await runAtFixedRate(500, 8000, send);
  h.disable();
  console.log('p50', percentile(r.latenciesMs, 50), 'p99', percentile(r.latenciesMs, 99), 'lag p99', percentile(r.sendLagMs, 99), 'eld p99 ms', h.percentile(99) / 1e6, 'max', h.max / 1e6);
} finally { client.destroy(); agent.destroy(); child.kill('SIGTERM'); }
