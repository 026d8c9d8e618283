import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, test, type TestContext } from 'node:test';
import {
  CreateAttendeeCommand,
  CreateMeetingCommand,
  GetMeetingCommand,
  ListAttendeesCommand,
  type Attendee,
  type ChimeSDKMeetingsClient,
  type Meeting,
} from '@aws-sdk/client-chime-sdk-meetings';
import { openBrowserSession, waitFor, type BrowserAttendee, type BrowserSession, type RosterEntry } from './browser/harness.ts';
import { clientFor, freePort, freeUdpPorts, tempDataDir, TEST_KEY } from '../support/helpers.ts';
import { startServe, type ServeProcess } from '../support/serve-process.ts';

/**
 * One embedded node (`amphi serve` with a data directory) is killed with SIGKILL, or stopped with SIGTERM, and
 * started again on the same ports and data directory. A primary with a presenter (440 Hz and a camera) and a guest
 * (660 Hz), and a replica with a viewer (880 Hz) promoted into the primary: without a page reload, every client is
 * back in its meeting by the SDK's own reconnect, hearing the others, seeing the presenter, with the right roster.
 * The promoted viewer comes back as a viewer (the SDK demotes a promoted attendee whenever it reconnects, and tells
 * the application) and can be promoted again.
 *
 * The time from the restarted node answering (its 'Amphi is listening' log line) to each client reconnected and
 * hearing audio is printed as a diagnostic; the bound asserted is generous (BACK_WITHIN_MS), the figures measured
 * are in docs/RELIABILITY.md.
 * AMPHI_RESTART_RUNS (default 1) repeats each kind of restart, for medians.
 */
const BACK_WITHIN_MS = 30_000;
const RUNS = Math.max(1, Number(process.env.AMPHI_RESTART_RUNS ?? 1));
const TONE = { presenter: 440, guest: 660, viewer: 880 } as const;

let browser: BrowserSession;
let server: ServeProcess | undefined;
let client: ChimeSDKMeetingsClient;
let dataDir: string;
let serveArgs: string[];
let primary: Meeting;
let replica: Meeting;
const who = {} as Record<'presenter' | 'guest' | 'viewer' | 'stage', Attendee>;
let presenter: BrowserAttendee;
let guest: BrowserAttendee;
let viewer: BrowserAttendee;

const serveEnv = (): Record<string, string> => ({
  AMPHI_ACCESS_KEY_ID: TEST_KEY.accessKeyId,
  AMPHI_SECRET_ACCESS_KEY: TEST_KEY.secretAccessKey,
  AMPHI_LOG_LEVEL: 'info',
});

/** Starts the node and returns when (by its own log's clock) it listens again. */
async function startNode(): Promise<number> {
  server = await startServe(serveArgs, serveEnv());
  const line = server.output().split('\n').reverse().find((l) => l.includes('"msg":"Amphi is listening"'))!;
  return (JSON.parse(line) as { time: number }).time;
}

const present = (roster: RosterEntry[]) => roster.filter((e) => e.present).map((e) => e.externalUserId).sort();
const decodes = (page: BrowserAttendee, attendeeId: string) =>
  waitFor(async () => (await page.videoTiles()).find((t) => t.boundAttendeeId === attendeeId && (t.framesDecoded ?? 0) > 10), 20_000, {
    message: `${page.name} decodes ${attendeeId}`,
  });
const hears = async (page: BrowserAttendee, frequency: number) => (await page.measureTones([frequency], 800)).tones[0]!.present;
const waitHears = (page: BrowserAttendee, frequency: number, message: string) => waitFor(() => hears(page, frequency), 15_000, { message });

/**
 * When `page` starts hearing `frequency` for good (Date.now()): the onset of a tone that the stricter detection of
 * measureTones then confirms, since the first frames a new connection plays can look like a low tone for an instant.
 */
async function toneHeard(page: BrowserAttendee, frequency: number, deadline: number): Promise<number> {
  for (;;) {
    const onset = await page.toneOnset(frequency, Math.max(1, deadline - Date.now()));
    if (await hears(page, frequency)) return onset;
  }
}

async function promoteViewer(): Promise<void> {
  assert.equal(await viewer.promote({ Attendee: who.stage }), 'OK');
  await waitHears(presenter, TONE.viewer, 'the presenter hears the promoted viewer');
  await waitHears(guest, TONE.viewer, 'the guest hears the promoted viewer');
  for (const page of [presenter, guest]) {
    await waitFor(async () => present(await page.roster()).includes('stage-guest'), 10_000, { message: `${page.name} sees the promoted viewer` });
  }
}

/**
 * Restarts the node with `restart` (which returns when it answers again) and checks that everyone is back;
 * prints each client's time from the node answering to it reconnected and hearing audio.
 */
async function restartAndCheck(t: TestContext, restart: () => Promise<number>): Promise<void> {
  const pages = [presenter, guest, viewer];
  const marks = await Promise.all(pages.map((page) => page.mark()));
  const stopped = Date.now();
  const answering = await restart();

  // Each client: reconnected (the SDK's own reconnect: no new join from the page), then the moment it hears a tone
  // (watched from its reconnection on: the SDK binds the new connection's audio to the page's element before that).
  const back = await Promise.all(
    pages.map(async (page, i) => {
      const started = await page.waitForEvent('audioVideoDidStart', { since: marks[i], timeoutMs: BACK_WITHIN_MS });
      const frequency = page === presenter ? TONE.guest : TONE.presenter;
      return { name: page.name, reconnectedMs: started.ts - answering, hearsMs: (await toneHeard(page, frequency, answering + BACK_WITHIN_MS)) - answering };
    }),
  );
  t.diagnostic(
    `ms from the stop to the node answering again: ${answering - stopped}; ` +
      `from its answering to each client reconnected / hearing audio: ${back.map((c) => `${c.name} ${c.reconnectedMs} / ${c.hearsMs}`).join(', ')}`,
  );
  for (const { name, hearsMs } of back) assert.ok(hearsMs < BACK_WITHIN_MS, `${name} hears audio ${hearsMs} ms after the node answers`);
  for (const [i, page] of pages.entries()) {
    const events = await page.events(marks[i]);
    assert.ok(events.some((e) => e.name === 'audioVideoDidStartConnecting' && e.detail?.reconnecting === true), `${page.name} reconnected`);
    assert.ok(!events.some((e) => e.name === 'audioVideoDidStop'), `${page.name} never stopped`);
  }

  // Every meeting and attendee is still there.
  for (const meeting of [primary, replica]) {
    const { Meeting: found } = await client.send(new GetMeetingCommand({ MeetingId: meeting.MeetingId }));
    assert.equal(found?.MeetingId, meeting.MeetingId);
  }
  const attendeesOf = async (meeting: Meeting) =>
    ((await client.send(new ListAttendeesCommand({ MeetingId: meeting.MeetingId }))).Attendees ?? []).map((a) => a.ExternalUserId).sort();
  assert.deepEqual(await attendeesOf(primary), ['guest', 'presenter', 'stage-guest']);
  assert.deepEqual(await attendeesOf(replica), ['viewer']);

  // The promoted viewer was demoted by its SDK on reconnecting and is back as a viewer: it hears the presenter and
  // the guest, nobody hears it, nobody sees its primary identity.
  const demoted = await viewer.waitForEvent('audioVideoWasDemotedFromPrimaryMeeting', { since: marks[2] });
  assert.equal(demoted.detail.name, 'AudioVideoDisconnectedWhilePromoted');
  assert.equal((await viewer.status()).promoted, false);
  await waitHears(viewer, TONE.guest, 'the viewer hears the guest');
  for (const page of [presenter, guest, viewer]) {
    await waitFor(async () => JSON.stringify(present(await page.roster())) === JSON.stringify(['guest', 'presenter']), 15_000, {
      message: `${page.name}'s roster is the presenter and the guest`,
    });
  }
  await waitHears(presenter, TONE.guest, 'the presenter hears the guest');
  assert.equal(await hears(presenter, TONE.viewer), false, 'the demoted viewer is not heard');

  // Video: the presenter's camera reaches the guest and the viewer again.
  for (const page of [guest, viewer]) await decodes(page, who.presenter.AttendeeId!);

  // Promoted again on the connection it has now.
  await promoteViewer();
}

before(async () => {
  dataDir = tempDataDir();
  const [port, rtcPort] = [await freePort(), await freeUdpPorts(2)];
  serveArgs = ['--host', '127.0.0.1', '--port', String(port), '--rtc-port', String(rtcPort), '--media-workers', '2', '--data-dir', dataDir, '--drain-seconds', '1'];
  await startNode();
  client = clientFor(server!.url);
  browser = await openBrowserSession();
  primary = (await client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'restart' }))).Meeting!;
  replica = (await client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'restart-r', PrimaryMeetingId: primary.MeetingId }))).Meeting!;
  const attendee = async (meeting: Meeting, name: string) =>
    (await client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: name }))).Attendee!;
  who.presenter = await attendee(primary, 'presenter');
  who.guest = await attendee(primary, 'guest');
  who.stage = await attendee(primary, 'stage-guest');
  who.viewer = await attendee(replica, 'viewer');
  [presenter, guest, viewer] = [await browser.newAttendee('presenter'), await browser.newAttendee('guest'), await browser.newAttendee('viewer')];
});

after(async () => {
  await browser?.close();
  server?.child.kill('SIGKILL');
  await server?.exitCode().catch(() => {});
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('a single node restarted on the same ports and data directory', () => {
  test('the clients join: the presenter, the guest, the viewer promoted', () =>
    browser.withConsoleOnFailure(async () => {
      await presenter.join({ meeting: { Meeting: primary }, attendee: { Attendee: who.presenter }, tone: { frequency: TONE.presenter }, camera: true });
      await guest.join({ meeting: { Meeting: primary }, attendee: { Attendee: who.guest }, tone: { frequency: TONE.guest } });
      await viewer.join({ meeting: { Meeting: replica }, attendee: { Attendee: who.viewer }, tone: { frequency: TONE.viewer } });
      await waitHears(viewer, TONE.presenter, 'the viewer hears the presenter');
      await decodes(viewer, who.presenter.AttendeeId!);
      await promoteViewer();
    }));

  for (let run = 1; run <= RUNS; run++) {
    test(`after kill -9 (run ${run}), everyone is back by the SDK's reconnect`, (t) =>
      browser.withConsoleOnFailure(async () => {
        await restartAndCheck(t, async () => {
          server!.child.kill('SIGKILL');
          await server!.exitCode();
          return startNode();
        });
      }));
  }

  for (let run = 1; run <= RUNS; run++) {
    test(`after SIGTERM (a drain) and a start (run ${run}), everyone is back the same way`, (t) =>
      browser.withConsoleOnFailure(async () => {
        await restartAndCheck(t, async () => {
          server!.child.kill('SIGTERM');
          assert.equal(await server!.exitCode(), 0);
          return startNode();
        });
      }));
  }
});
