import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ListAttendeesCommand } from '@aws-sdk/client-chime-sdk-meetings';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchBrowser, waitFor } from './browser/harness.ts';
import { startTestAmphi, type TestAmphi } from '../support/helpers.ts';

/**
 * The webinar demo page in Chromium with the official SDK, as people would use it: a presenter (whose microphone
 * plays 440 Hz) starts a webinar; two viewers (microphones at 880 Hz) land in two replicas, one seat each; one
 * raises a hand, is brought on stage (heard and seen by the other viewer) and sent back; chat crosses both ways.
 * Screenshots go to $TMPDIR/amphi-demo-artifacts.
 */
const ARTIFACTS = path.join(tmpdir(), 'amphi-demo-artifacts');
const PRESENTER_TONE = 440;
const VIEWER_TONE = 880;

let server: TestAmphi;
let soundDir: string;
const browsers: Browser[] = [];
const contexts: BrowserContext[] = [];
let presenter: Page;
let bea: Page;
let cal: Page;
let webinarId: string;

/** One second of a sine at `frequency` (a whole number of cycles, so Chromium's looping of the file is seamless). */
function writeToneWav(file: string, frequency: number): void {
  const rate = 48_000;
  const data = Buffer.alloc(rate * 2);
  for (let i = 0; i < rate; i++) data.writeInt16LE(Math.round(0.3 * 32767 * Math.sin((2 * Math.PI * frequency * i) / rate)), i * 2);
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVEfmt ', 8);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36);
  header.writeUInt32LE(data.length, 40);
  writeFileSync(file, Buffer.concat([header, data]));
}

/** A Chromium whose fake microphone plays `frequency`. */
async function browserWithMicrophone(frequency: number): Promise<Browser> {
  const file = path.join(soundDir, `${frequency}.wav`);
  writeToneWav(file, frequency);
  const browser = await launchBrowser({ args: [`--use-file-for-fake-audio-capture=${file}`] });
  browsers.push(browser);
  return browser;
}

async function openPage(browser: Browser, url: string): Promise<Page> {
  const context = await browser.newContext();
  contexts.push(context);
  // Functions passed to page.evaluate from here are compiled by tsx, which may call esbuild's `__name`.
  await context.addInitScript({ content: 'globalThis.__name ??= (fn) => fn;' });
  const page = await context.newPage();
  await page.goto(url);
  return page;
}

/** Which of `frequencies` stand out of what the page plays (the meeting's audio element), over 1.5 s. */
async function tonesAt(page: Page, frequencies: number[]): Promise<Record<number, boolean>> {
  return page.evaluate(async (wanted) => {
    const stream = (document.getElementById('meeting-audio') as HTMLAudioElement).srcObject as MediaStream | null;
    if (!stream || stream.getAudioTracks().length === 0) return {};
    const context = new AudioContext({ sampleRate: 48_000 });
    await context.resume();
    const source = context.createMediaStreamSource(stream);
    const analyser = context.createAnalyser();
    analyser.fftSize = 8192;
    analyser.smoothingTimeConstant = 0;
    const sink = context.createGain();
    sink.gain.value = 0;
    source.connect(analyser);
    analyser.connect(sink);
    sink.connect(context.destination);
    const spectrum = new Float32Array(analyser.frequencyBinCount);
    const power = new Float64Array(analyser.frequencyBinCount);
    await new Promise((resolve) => setTimeout(resolve, 250));
    let snapshots = 0;
    for (const end = performance.now() + 1500; performance.now() < end; snapshots++) {
      analyser.getFloatFrequencyData(spectrum);
      spectrum.forEach((db, i) => (power[i]! += Number.isFinite(db) ? 10 ** (db / 10) : 0));
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    source.disconnect();
    await context.close();
    const binHz = 48_000 / 8192;
    const db = (i: number) => 10 * Math.log10(power[i]! / snapshots + 1e-30);
    const median = (from: number, to: number, skip = (_i: number) => false) => {
      const values: number[] = [];
      for (let i = from; i <= to; i++) if (!skip(i)) values.push(db(i));
      return values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    };
    const floor = median(Math.floor(50 / binHz), Math.ceil(8000 / binHz));
    const heard: Record<number, boolean> = {};
    for (const frequency of wanted) {
      const centre = Math.round(frequency / binHz);
      const level = Math.max(...[-2, -1, 0, 1, 2].map((d) => db(centre + d)));
      // Opus puts coding noise beside a strong tone: it must also stand out of its ±150 Hz neighbourhood.
      const span = Math.round(150 / binHz);
      const local = median(centre - span, centre + span, (i) => Math.abs(i - centre) <= 4);
      heard[frequency] = level - floor >= 20 && level - local >= 15;
    }
    return heard;
  }, frequencies);
}

/** Frames the page's tile captioned `name` has shown, and its width (null without such a tile). */
function tileFrames(page: Page, name: string): Promise<{ frames: number; width: number } | null> {
  return page.evaluate((caption) => {
    const figure = [...document.querySelectorAll('figure.tile')].find((node) => node.querySelector('figcaption')?.textContent === caption);
    const video = figure?.querySelector('video');
    return video ? { frames: video.getVideoPlaybackQuality().totalVideoFrames, width: video.videoWidth } : null;
  }, name);
}

/** Whether the tile captioned `name` shows new frames now (sampled half a second apart). */
async function playing(page: Page, name: string): Promise<boolean> {
  const first = await tileFrames(page, name);
  if (!first) return false;
  await new Promise((resolve) => setTimeout(resolve, 500));
  const second = await tileFrames(page, name);
  return second !== null && second.width > 0 && second.frames > first.frames + 3;
}

const sees = (page: Page, name: string, who: string) => waitFor(() => playing(page, name), 20_000, { message: `${who} sees ${name}'s video` });

const hears = (page: Page, frequency: number, who: string, heard = true) =>
  waitFor(async () => (await tonesAt(page, [frequency]))[frequency] === heard, 20_000, {
    message: `${who} ${heard ? 'hears' : 'no longer hears'} ${frequency} Hz`,
  });

const screenshot = (page: Page, name: string) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });

async function joinAudience(page: Page, name: string): Promise<number> {
  await page.fill('#join-form input[name=name]', name);
  await page.click('#join-form button');
  await page.waitForSelector('#status[data-replica]', { timeout: 20_000 });
  return Number(await page.getAttribute('#status', 'data-replica'));
}

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  console.log(`# demo screenshots: ${ARTIFACTS}`);
  soundDir = mkdtempSync(path.join(tmpdir(), 'amphi-demo-sounds-'));
  server = await startTestAmphi({ env: { AMPHI_DEMO: 'on', AMPHI_DEMO_SEATS_PER_REPLICA: '1' } });
  const presenterBrowser = await browserWithMicrophone(PRESENTER_TONE);
  const audienceBrowser = await browserWithMicrophone(VIEWER_TONE);
  presenter = await openPage(presenterBrowser, `${server.amphi.url}/`);
  [bea, cal] = [await openPage(audienceBrowser, 'about:blank'), await openPage(audienceBrowser, 'about:blank')];
});

after(async () => {
  for (const context of contexts) await context.close().catch(() => {});
  for (const browser of browsers) await browser.close().catch(() => {});
  await server?.stop();
  rmSync(soundDir, { recursive: true, force: true });
});

describe('the webinar demo page', () => {
  test('a presenter starts a webinar from / and gets an audience link', async () => {
    await presenter.fill('#start-form input[name=title]', 'Quarterly town hall');
    await presenter.fill('#start-form input[name=name]', 'Ada');
    await presenter.click('#start-form button');
    await presenter.waitForSelector('#audience-link:not([hidden])', { timeout: 20_000 });
    assert.equal(await presenter.textContent('#status'), 'You are presenting');
    const link = await presenter.inputValue('#audience-link');
    const match = /\/\?webinar=([0-9a-f-]{36})$/.exec(link);
    assert.ok(match, `an audience link: ${link}`);
    webinarId = match[1]!;
    await sees(presenter, 'You', 'the presenter');
  });

  test('with one seat per replica, two viewers land in two replicas, each hearing and seeing the presenter', async () => {
    const link = await presenter.inputValue('#audience-link');
    await bea.goto(link);
    await cal.goto(link);
    assert.equal(await bea.textContent('#invite-title'), 'Quarterly town hall');
    assert.equal(await joinAudience(bea, 'Bea'), 1);
    assert.equal(await joinAudience(cal, 'Cal'), 2);
    await waitFor(async () => (await presenter.textContent('#replicas')) === 'Replica 1: 1 · Replica 2: 1', 10_000, { message: 'the presenter sees both replicas' });
    assert.equal(await presenter.textContent('#watching'), '2');
    const primary = server.amphi.signaling.primaryConference(webinarId);
    assert.equal(primary?.replicaLinks().length, 2, 'the primary feeds two replicas');
    for (const [page, who] of [[bea, 'Bea'], [cal, 'Cal']] as const) {
      await hears(page, PRESENTER_TONE, who);
      await sees(page, 'Ada', who);
      await waitFor(async () => (await page.textContent('#on-stage'))?.includes('Ada'), 10_000, { message: `${who} sees Ada on stage` });
    }
    assert.equal((await tonesAt(presenter, [VIEWER_TONE]))[VIEWER_TONE], false, "a viewer's microphone goes nowhere");
    await screenshot(presenter, '1-presenter');
    await screenshot(cal, '1-viewer');
  });

  test('chat: the presenter writes into the meeting, a viewer through the presenter; everyone reads both', async () => {
    await presenter.fill('#chat-form input', 'Welcome, everyone!');
    await presenter.click('#chat-form button');
    await cal.fill('#chat-form input', 'Hello from replica 2');
    await cal.click('#chat-form button');
    for (const [page, who] of [[presenter, 'Ada'], [bea, 'Bea'], [cal, 'Cal']] as const) {
      await waitFor(async () => {
        const log = (await page.textContent('#chat-log')) ?? '';
        return log.includes('Welcome, everyone!') && log.includes('CalHello from replica 2');
      }, 10_000, { message: `${who} reads the chat` });
    }
    assert.equal(await bea.locator('#chat-log li.audience').count(), 1, "the viewer's line is marked as the audience's");
  });

  test('a raised hand is brought on stage: the other viewer hears and sees them; the presenter hears them', async () => {
    await bea.click('#hand');
    const bea$ = presenter.locator('#audience li.hand');
    await bea$.waitFor({ timeout: 10_000 });
    assert.equal(await bea$.locator('.name').textContent(), 'Bea');
    await bea$.locator('button.to-stage').click();
    await bea.waitForSelector('#leave-stage:not([hidden])', { timeout: 20_000 });
    await hears(cal, VIEWER_TONE, 'Cal');
    await hears(presenter, VIEWER_TONE, 'Ada');
    await sees(cal, 'Bea', 'Cal');
    await sees(presenter, 'Bea', 'Ada');
    await hears(bea, PRESENTER_TONE, 'Bea on stage');
    assert.equal((await tonesAt(bea, [VIEWER_TONE]))[VIEWER_TONE], false, 'Bea does not hear herself');
    await waitFor(async () => (await cal.textContent('#on-stage'))?.includes('Bea'), 10_000, { message: 'Cal sees Bea on stage' });
    const { Attendees } = await server.client.send(new ListAttendeesCommand({ MeetingId: webinarId }));
    assert.deepEqual(Attendees!.map((a) => a.ExternalUserId!.split('|')[0]).sort(), ['Ada', 'Bea'], 'Bea has a primary attendee');
    await screenshot(presenter, '2-presenter-with-guest');
    await screenshot(cal, '2-viewer-with-guest');
    await screenshot(bea, '2-guest-on-stage');
  });

  test('back to the audience: the guest is demoted, silent and unseen again, and the primary attendee is deleted', async () => {
    await presenter.locator('#audience li button.to-audience').click();
    await bea.waitForSelector('#hand:not([hidden])', { timeout: 20_000 });
    await hears(cal, VIEWER_TONE, 'Cal', false);
    await waitFor(async () => (await tileFrames(cal, 'Bea')) === null, 10_000, { message: "Bea's tile leaves Cal's page" });
    await hears(cal, PRESENTER_TONE, 'Cal');
    await waitFor(async () => {
      const { Attendees } = await server.client.send(new ListAttendeesCommand({ MeetingId: webinarId }));
      return Attendees!.length === 1;
    }, 10_000, { message: "Bea's primary attendee is deleted" });
    await waitFor(async () => (await presenter.locator('#audience li button.to-stage').count()) === 2, 10_000, { message: 'both viewers in the audience' });
    await screenshot(bea, '3-guest-back-in-audience');
  });

  test("a reload of the presenter's page offers to resume, and the audience gets the presenter back", async () => {
    await presenter.reload();
    await presenter.click('#resume', { timeout: 10_000 });
    await presenter.waitForSelector('#audience-link:not([hidden])', { timeout: 20_000 });
    await waitFor(async () => (await presenter.textContent('#watching')) === '2', 10_000, { message: 'the audience is still there' });
    await hears(cal, PRESENTER_TONE, 'Cal');
    await sees(cal, 'Ada', 'Cal, again,');
  });

  test('ending the webinar ends every page', async () => {
    await presenter.click('#end');
    for (const [page, who] of [[presenter, 'Ada'], [bea, 'Bea'], [cal, 'Cal']] as const) {
      await page.waitForSelector('#view-ended:not([hidden])', { timeout: 15_000 }).catch((error: unknown) => {
        throw new Error(`${who}'s page did not end: ${(error as Error).message}`);
      });
    }
    await screenshot(cal, '4-ended');
  });
});
