import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, DeleteMeetingCommand, type ChimeSDKMeetingsClient, type Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import { openBrowserSession, waitFor, type BrowserAttendee, type BrowserSession } from './browser/harness.ts';
import { clientFor, tempDataDir, TEST_KEY } from '../support/helpers.ts';

/**
 * One `amphi serve` process, as deployed, through rounds of webinars back to back: a presenter
 * in a primary, viewers in a replica, a viewer promoted and demoted, everyone leaving, the
 * meeting deleted; a second webinar overlapping each round. Every round must have its audio,
 * and the server's log must hold no uncaught error and no media failure afterwards.
 */
const ROUNDS = 4;
const root = path.resolve(import.meta.dirname, '..', '..');
let server: ChildProcess;
let log = '';
let client: ChimeSDKMeetingsClient;
let browser: BrowserSession;
const dataDir = tempDataDir();

before(async () => {
  server = spawn(process.execPath, [path.join(root, 'bin/amphi.js'), 'serve', '--host', '127.0.0.1', '--port', '0', '--rtc-port', '0', '--media-workers', '1'], {
    env: { ...process.env, AMPHI_DATA_DIR: dataDir, AMPHI_ACCESS_KEY_ID: TEST_KEY.accessKeyId, AMPHI_SECRET_ACCESS_KEY: TEST_KEY.secretAccessKey, AMPHI_LOG_LEVEL: 'debug', AMPHI_DRAIN_SECONDS: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout!.on('data', (chunk: Buffer) => (log += chunk));
  server.stderr!.on('data', (chunk: Buffer) => (log += chunk));
  const url = await waitFor(() => /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(log)?.[1], 20_000, { message: 'the server says where it listens' });
  client = clientFor(url);
  browser = await openBrowserSession();
});
after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    const killer = setTimeout(() => server.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(killer);
  }
  rmSync(dataDir, { recursive: true, force: true });
});

const hears = (page: BrowserAttendee, frequency: number, message: string) =>
  waitFor(async () => (await page.measureTones([frequency], 800)).tones[0]!.present, 20_000, { message });

async function webinar(round: number, name: string, presenterTone: number, viewerTone: number): Promise<void> {
  const send = client.send.bind(client);
  const primary = (await send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: `${name}-${round}` }))).Meeting!;
  const replica = (await send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: `${name}-${round}-r`, PrimaryMeetingId: primary.MeetingId }))).Meeting!;
  const attendee = async (m: Meeting, who: string) => (await send(new CreateAttendeeCommand({ MeetingId: m.MeetingId, ExternalUserId: who }))).Attendee!;
  const pages: BrowserAttendee[] = [];
  const join = async (m: Meeting, who: string, frequency?: number) => {
    const page = await browser.newAttendee(`${name}-${round}-${who}`);
    pages.push(page);
    await page.join({ meeting: { Meeting: m }, attendee: { Attendee: await attendee(m, who) }, ...(frequency ? { tone: { frequency } } : {}) });
    return page;
  };
  try {
    const presenter = await join(primary, 'presenter', presenterTone);
    const viewer = await join(replica, 'viewer');
    const guest = await join(replica, 'guest', viewerTone);
    await hears(viewer, presenterTone, `round ${round}: the replica viewer hears the presenter`);
    assert.equal(await guest.promote({ Attendee: await attendee(primary, 'guest-on-stage') }), 'OK');
    await hears(presenter, viewerTone, `round ${round}: the presenter hears the promoted guest`);
    await hears(viewer, viewerTone, `round ${round}: the other viewer hears the promoted guest`);
    await guest.demote();
    await guest.leave();
    await viewer.leave();
    await presenter.leave();
    await send(new DeleteMeetingCommand({ MeetingId: primary.MeetingId }));
  } finally {
    await Promise.all(pages.map((page) => page.close()));
  }
}

describe('one server through webinars back to back', () => {
  test(`${ROUNDS} rounds of two overlapping webinars, with promotions, on one media worker`, () =>
    browser.withConsoleOnFailure(async () => {
      try {
        for (let round = 0; round < ROUNDS; round++) {
          await Promise.all([webinar(round, 'a', 440, 880), webinar(round, 'b', 550, 990)]);
        }
        assert.doesNotMatch(log, /uncaught error|unhandled rejection|media failure|media worker exited/, 'the server log shows no failure');
      } catch (error) {
        process.stderr.write(`\n----- server log (last 60 lines) -----\n${log.split('\n').slice(-60).join('\n')}\n-----\n`);
        throw error;
      }
    }, 600));
});
