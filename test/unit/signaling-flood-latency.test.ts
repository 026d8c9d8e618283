import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, GetMeetingCommand } from '@aws-sdk/client-chime-sdk-meetings';
import type { ReadPauseReason } from '../../src/signaling/read-pause.ts';
import { INBOUND_BURST_BYTES } from '../../src/signaling/session.ts';
import { startTestAmphi } from '../support/helpers.ts';

const FLOODING_SOCKETS = 5;
const WARM_UP_MS = 1_000;
const MEASURE_MS = 8_000;
const CALL_INTERVAL_MS = 4;

/**
 * Issue 10: signaling shares the main thread with the API. While 5 sockets flood it from another
 * process as fast as it reads them, the API's 99th percentile stays under 50 ms (this one latency
 * bound is the requirement). The flood is checked to be real: every socket went over its
 * byte budget and stayed open.
 */
test('the API p99 stays under 50 ms while 5 signaling sockets flood from another process', async (t) => {
  const server = await startTestAmphi();
  const flooder = { child: undefined as ReturnType<typeof spawn> | undefined };
  try {
    const meeting = (await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'flood' }))).Meeting!;
    const attendees = [];
    for (let i = 0; i < FLOODING_SOCKETS; i++) {
      attendees.push((await server.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: `flooder-${i}` }))).Attendee!);
    }
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', new URL('../support/signaling-flooder.ts', import.meta.url).pathname, meeting.MediaPlacement!.SignalingUrl!, ...attendees.map((a) => a.JoinToken!)],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    flooder.child = child;
    const reports: { sentBytes: number; open: number }[] = [];
    const lines = createInterface({ input: child.stdout! });
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`the flooder exited (${code}) before it was ready`)));
      lines.on('line', (line) => {
        const message = JSON.parse(line) as { ready?: boolean; sentBytes?: number; open?: number };
        if (message.ready) resolve();
        else reports.push(message as { sentBytes: number; open: number });
      });
    });

    const pausesBySession = new Map<string, ReadPauseReason[]>();
    const sessions = [...(server.amphi.signaling.conference(meeting.MeetingId!)?.sessions ?? [])];
    assert.equal(sessions.length, FLOODING_SOCKETS);
    for (const session of sessions) {
      const pauses: ReadPauseReason[] = [];
      pausesBySession.set(session.attendeeId, pauses);
      session.on('readPaused', (reason) => pauses.push(reason));
    }

    const call = () => server.client.send(new GetMeetingCommand({ MeetingId: meeting.MeetingId }));
    /**
     * Open loop: a call is due every CALL_INTERVAL_MS whatever became of the others, and its latency
     * counts from when it was due, so a stalled thread delays every call due meanwhile.
     */
    const callEvery = async (durationMs: number, samples: number[]) => {
      const calls: Promise<void>[] = [];
      const startedAt = performance.now();
      for (let i = 0; i < durationMs / CALL_INTERVAL_MS; i++) {
        const due = startedAt + i * CALL_INTERVAL_MS;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        calls.push(call().then(() => void samples.push(performance.now() - due)));
      }
      await Promise.all(calls);
    };
    // Warm-up: the SDK's and the server's first calls, and the sockets' initial bursts.
    await callEvery(WARM_UP_MS, []);
    const loopDelay = monitorEventLoopDelay({ resolution: 5 });
    loopDelay.enable();
    const samples: number[] = [];
    await callEvery(MEASURE_MS, samples);
    loopDelay.disable();
    const bytesRead = sessions.reduce((sum, session) => sum + session.bytesReceived, 0);
    const last = reports.at(-1);
    assert.ok(last, 'the flooder reported');
    assert.equal(last.open, FLOODING_SOCKETS, 'the flooding sockets were slowed, not cut off');
    assert.ok(last.sentBytes > FLOODING_SOCKETS * 2 * INBOUND_BURST_BYTES, `the flood sent ${last.sentBytes} bytes`);
    for (const [attendeeId, pauses] of pausesBySession) assert.ok(pauses.includes('budget'), `${attendeeId} went over its byte budget`);

    samples.sort((a, b) => a - b);
    const p99 = samples[Math.ceil(samples.length * 0.99) - 1]!;
    const median = samples[Math.floor(samples.length / 2)]!;
    t.diagnostic(`API during the flood: median ${median.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${samples.at(-1)!.toFixed(2)} ms over ${samples.length} calls; flood: ${last.sentBytes} bytes sent, ${bytesRead} read; event-loop delay p99 ${(loopDelay.percentile(99) / 1e6).toFixed(1)} ms, max ${(loopDelay.max / 1e6).toFixed(1)} ms`);
        assert.ok(p99 < 50, `API p99 ${p99.toFixed(1)} ms (median ${median.toFixed(1)} ms, ${samples.length} calls) during the flood`);
  } finally {
    if (flooder.child && flooder.child.exitCode === null) {
      const exited = new Promise((resolve) => flooder.child!.once('exit', resolve));
      flooder.child.stdin!.end();
      await exited;
    }
    await server.stop();
  }
});
