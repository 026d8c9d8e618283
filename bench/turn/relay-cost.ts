/**
 * What the TURN hop costs per viewer, side by side in one run: the same two-attendee call in Chromium with the
 * official SDK, joined directly to one `amphi serve` and through coturn over TURN/TCP to another (the SDK relays
 * everything once JOIN_ACK carries TURN URIs). Measured per round and server, alternating:
 * - join time: from the page's join call to audioVideoDidStart (signaling, ICE through the relay, DTLS);
 * - CPU while both talk and one sends video, over a fixed window: the Amphi process, and coturn for the relayed call.
 * See BENCHMARKS.md.
 */
import { CreateAttendeeCommand, CreateMeetingCommand, DeleteMeetingCommand } from '@aws-sdk/client-chime-sdk-meetings';
import { openBrowserSession, waitFor, type BrowserAttendee } from '../../test/e2e/browser/harness.ts';
import { startCoturn } from '../../test/support/coturn.ts';
import { clientFor, TEST_KEY } from '../../test/support/helpers.ts';
import { processCpuTime } from '../api/proc.ts';
import { ServerProcess } from '../api/server-process.ts';

const quick = process.argv.includes('--quick');
const rounds = quick ? 2 : 5;
const windowMs = quick ? 5_000 : 15_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const cpuMs = (pid: number) => {
  const t = processCpuTime(pid);
  return t.userMs + t.systemMs;
};
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

// Amphi on loopback, so coturn must be let relay to loopback peers.
const coturn = await startCoturn({ allowLoopbackPeers: true });
const direct = await ServerProcess.start(TEST_KEY);
const relayed = await ServerProcess.start({
  ...TEST_KEY,
  env: { AMPHI_TURN_URIS: `turn:${coturn.host}:${coturn.port}?transport=tcp`, AMPHI_TURN_SECRET: coturn.secret },
});
const browser = await openBrowserSession();

interface Sample {
  joinMs: number[];
  amphiCpuPerSecond: number;
  coturnCpuPerSecond: number;
}
const samples: Record<'direct' | 'turnTcp', Sample[]> = { direct: [], turnTcp: [] };

async function round(kind: 'direct' | 'turnTcp', server: ServerProcess): Promise<Sample> {
  const client = clientFor(server.url);
  const meeting = (await client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: `bench-${kind}` }))).Meeting!;
  const attendee = async (name: string) => (await client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId!, ExternalUserId: name }))).Attendee!;
  const pages: BrowserAttendee[] = [await browser.newAttendee(`${kind}-a`), await browser.newAttendee(`${kind}-b`)];
  try {
    const joinMs: number[] = [];
    const [a, b] = pages as [BrowserAttendee, BrowserAttendee];
    for (const [page, tone, camera] of [[a, 440, true], [b, 880, false]] as const) {
      const started = performance.now();
      await page.join({ meeting: { Meeting: meeting }, attendee: { Attendee: await attendee(page.name) }, tone: { frequency: tone }, camera });
      joinMs.push(performance.now() - started);
    }
    const pair = await waitFor(() => b.selectedCandidatePair(), 10_000, { message: 'a selected pair' });
    const expected = kind === 'direct' ? 'host' : 'relay';
    if (pair.localCandidateType !== expected) throw new Error(`${kind}: the pair is ${pair.localCandidateType}, not ${expected}`);
    await waitFor(async () => (await b.measureTones([440], 500)).tones[0]!.present, 15_000, { message: `${kind}: b hears a` });
    await sleep(2_000); // video ramps up
    const amphiBefore = cpuMs(server.pid);
    const coturnBefore = cpuMs(coturn.pid);
    const started = performance.now();
    await sleep(windowMs);
    const seconds = (performance.now() - started) / 1000;
    return {
      joinMs,
      amphiCpuPerSecond: (cpuMs(server.pid) - amphiBefore) / seconds,
      coturnCpuPerSecond: (cpuMs(coturn.pid) - coturnBefore) / seconds,
    };
  } finally {
    for (const page of pages) await page.leave().catch(() => null);
    for (const page of pages) await page.close();
    await client.send(new DeleteMeetingCommand({ MeetingId: meeting.MeetingId! })).catch(() => {});
  }
}

try {
  for (let i = 0; i < rounds; i++) {
    samples.direct.push(await round('direct', direct));
    samples.turnTcp.push(await round('turnTcp', relayed));
  }
  const summary = (kind: 'direct' | 'turnTcp') => {
    const s = samples[kind];
    return {
      joinMsMedian: Math.round(median(s.flatMap((x) => x.joinMs))),
      amphiCpuMsPerSecond: Number(median(s.map((x) => x.amphiCpuPerSecond)).toFixed(1)),
      coturnCpuMsPerSecond: Number(median(s.map((x) => x.coturnCpuPerSecond)).toFixed(1)),
    };
  };
  console.log(`two attendees (440 Hz + camera, 880 Hz), ${rounds} rounds each, CPU over ${windowMs / 1000} s windows; CPU is ms per second of call (all threads)`);
  console.table({ direct: summary('direct'), 'TURN/TCP via coturn': summary('turnTcp') });
} finally {
  await browser.close();
  await direct.stop();
  await relayed.stop();
  await coturn.stop();
}
