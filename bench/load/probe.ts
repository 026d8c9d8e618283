/**
 * Probe viewers: a few viewers in their own process, run by run.ts at real-time priority on the load's core,
 * so a packet reaching them is read at once rather than after the busy load process's backlog. Their delay is
 * what the server adds (plus loopback), while the load process's viewers also measure their own queueing.
 *
 * Talks to run.ts over the fork IPC channel: `join` → `joined`, `start` (a fresh histogram), `stop` → `measured`.
 */
import { ChimeSDKMeetingsClient, type Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import { DelayHistogram } from './delay-histogram.ts';
import { Viewer } from './viewer.ts';

export interface ProbeJoin {
  type: 'join';
  url: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  rooms: Meeting[];
  videoStreamId: number;
}

export interface ProbeMeasured {
  type: 'measured';
  packets: number;
  p50DelayMs: number;
  p99DelayMs: number;
  maxDelayMs: number;
  expected: number;
  lost: number;
}

type Command = ProbeJoin | { type: 'start' } | { type: 'stop' } | { type: 'close' };

const delays = { current: new DelayHistogram() };
const viewers: Viewer[] = [];
let tallyAtStart = { expected: 0, lost: 0 };

function tally(): { expected: number; lost: number } {
  const now = performance.now();
  let expected = 0;
  let lost = 0;
  for (const viewer of viewers) {
    viewer.video.settle(now);
    viewer.audio.settle(now);
    expected += viewer.video.expected + viewer.audio.expected;
    lost += viewer.video.lost + viewer.audio.lost;
  }
  return { expected, lost };
}

process.on('message', (command: Command) => {
  void (async () => {
    switch (command.type) {
      case 'join': {
        const api = new ChimeSDKMeetingsClient({ region: 'us-east-1', endpoint: command.url, credentials: command.credentials, maxAttempts: 1 });
        // One probe per room, so every room's fan-out is watched.
        for (const [i, room] of command.rooms.entries()) viewers.push(await Viewer.join(api, room, `probe-${i}`, command.videoStreamId, delays));
        process.send!({ type: 'joined', viewers: viewers.length });
        break;
      }
      case 'start':
        delays.current = new DelayHistogram();
        tallyAtStart = tally();
        break;
      case 'stop': {
        const histogram = delays.current;
        // Holes need a second to count as lost.
        await new Promise((resolve) => setTimeout(resolve, 1100));
        const now = tally();
        const measured: ProbeMeasured = {
          type: 'measured',
          packets: histogram.count,
          p50DelayMs: histogram.percentile(50),
          p99DelayMs: histogram.percentile(99),
          maxDelayMs: histogram.maxMs,
          expected: now.expected - tallyAtStart.expected,
          lost: now.lost - tallyAtStart.lost,
        };
        process.send!(measured);
        break;
      }
      case 'close':
        for (const viewer of viewers) viewer.close();
        process.disconnect();
        break;
    }
  })().catch((error: unknown) => {
    process.stderr.write(`probe: ${String(error)}\n`);
    process.exit(1);
  });
});
