// Node side of the browser harness: launches Debian's Chromium through playwright-core, opens one context per
// attendee on the test page and drives `window.amphi` (page/app.ts) with typed wrappers.
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type {
  AmphiPageApi,
  AttendeeResponse,
  ConfigurationSummary,
  JoinOptions,
  MeetingResponse,
  PageEvent,
  PageInfo,
  PageStatus,
  ReceivedDataMessage,
  RosterEntry,
  RtpStat,
  SelectedCandidatePair,
  ToneMeasurement,
  VideoTileInfo,
  VolumeEntry,
  WebSocketRecord,
} from './api.ts';
import { startPageServer, type PageServer } from './bundle.ts';

export type * from './api.ts';

export const CHROMIUM_PATH = process.env.AMPHI_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

/** Default bound on any single call into the page. */
export const DEFAULT_CALL_TIMEOUT_MS = 20_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Rejects with a named error if `promise` takes longer than `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** One headless Chromium per test file. */
export async function launchBrowser(options: { args?: string[]; timeoutMs?: number; executablePath?: string } = {}): Promise<Browser> {
  return chromium.launch({
    executablePath: options.executablePath ?? CHROMIUM_PATH,
    headless: true,
    args: [...CHROMIUM_ARGS, ...(options.args ?? [])],
    timeout: options.timeoutMs ?? 30_000,
  });
}

/**
 * Polls `predicate` (every `intervalMs`) until it returns a truthy value, and returns that value. A throwing
 * predicate counts as "not yet". Fails after `timeoutMs` with `message` and the last value or error.
 */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  timeoutMs = 10_000,
  options: { intervalMs?: number; message?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await withTimeout(Promise.resolve(predicate()), Math.max(1, deadline - Date.now()) + 1_000, 'waitFor predicate');
      if (value) return value as NonNullable<T>;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() >= deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`waitFor${options.message ? ` (${options.message})` : ''}: timed out after ${timeoutMs} ms; last: ${detail}`);
    }
    await sleep(Math.min(options.intervalMs ?? 100, Math.max(0, deadline - Date.now())));
  }
}

/** Console lines of one or more pages, with time offsets, kept for dumping when a test fails. */
export class ConsoleBuffer {
  readonly lines: string[] = [];
  private readonly start = Date.now();

  constructor(private readonly maxLines = 20_000) {}

  push(who: string, kind: string, text: string): void {
    this.lines.push(`+${String(Date.now() - this.start).padStart(6)}ms ${who} [${kind}] ${text}`);
    if (this.lines.length > this.maxLines) this.lines.splice(0, this.lines.length - this.maxLines);
  }

  /** The last `tail` lines (all by default), one per line. */
  dump(tail = this.lines.length): string {
    return this.lines.slice(-tail).join('\n');
  }
}

type Api = AmphiPageApi;
type Method = { [K in keyof Api]: Api[K] extends (...args: any[]) => any ? K : never }[keyof Api];
type Result<K extends Method> = Awaited<ReturnType<Api[K]>>;

/** One attendee = one browser context + page, driven through `window.amphi`. */
export class BrowserAttendee {
  constructor(
    readonly name: string,
    readonly context: BrowserContext,
    readonly page: Page,
    readonly console: ConsoleBuffer,
  ) {}

  /** Calls `window.amphi[method](...args)` in the page, bounded by `timeoutMs`. */
  async call<K extends Method>(method: K, args: Parameters<Api[K]>, timeoutMs = DEFAULT_CALL_TIMEOUT_MS): Promise<Result<K>> {
    const evaluation = this.page.evaluate(
      ([m, a]) => (window as unknown as { amphi: Record<string, (...x: unknown[]) => unknown> }).amphi[m]!(...a),
      [method, args] as [string, unknown[]],
    ) as Promise<Result<K>>;
    evaluation.catch(() => {}); // if the timeout wins, the evaluation may still fail later (page closed)
    return withTimeout(evaluation, timeoutMs, `${this.name}: amphi.${method}`);
  }

  info(): Promise<PageInfo> {
    return this.call('info', []);
  }
  buildConfiguration(meeting: MeetingResponse, attendee: AttendeeResponse, simulcast?: boolean): Promise<ConfigurationSummary> {
    return this.call('buildConfiguration', [meeting, attendee, simulcast]);
  }
  /** Sets up the session and calls start(); does not wait for the connection. */
  startJoin(options: JoinOptions): Promise<ConfigurationSummary> {
    return this.call('startJoin', [options]);
  }
  /** Joins and waits for audioVideoDidStart (rejects with the stop status name, or on options.timeoutMs). */
  join(options: JoinOptions): Promise<ConfigurationSummary> {
    return this.call('join', [options], (options.timeoutMs ?? 15_000) + 10_000);
  }
  /** Stops the session; resolves with the audioVideoDidStop status code name. */
  leave(timeoutMs = 10_000): Promise<string | null> {
    return this.call('leave', [timeoutMs], timeoutMs + 5_000);
  }
  mute(): Promise<void> {
    return this.call('mute', []);
  }
  unmute(): Promise<boolean> {
    return this.call('unmute', []);
  }
  setTone(frequency: number | null): Promise<void> {
    return this.call('setTone', [frequency]);
  }
  startCamera(): Promise<number> {
    return this.call('startCamera', []);
  }
  stopCamera(): Promise<void> {
    return this.call('stopCamera', []);
  }
  startContentShare(): Promise<void> {
    return this.call('startContentShare', []);
  }
  stopContentShare(): Promise<void> {
    return this.call('stopContentShare', []);
  }
  /** promoteToPrimaryMeeting with `{ Attendee }` from CreateAttendee on the primary; resolves with the status name. */
  promote(credentials: AttendeeResponse): Promise<string> {
    return this.call('promote', [credentials], 30_000);
  }
  demote(): Promise<void> {
    return this.call('demote', []);
  }
  subscribeData(topic: string): Promise<void> {
    return this.call('subscribeData', [topic]);
  }
  sendData(topic: string, text: string, lifetimeMs?: number): Promise<void> {
    return this.call('sendData', [topic, text, lifetimeMs]);
  }
  receivedData(): Promise<ReceivedDataMessage[]> {
    return this.call('receivedData', []);
  }
  roster(): Promise<RosterEntry[]> {
    return this.call('roster', []);
  }
  volumes(): Promise<VolumeEntry[]> {
    return this.call('volumes', []);
  }
  activeSpeakers(): Promise<string[]> {
    return this.call('activeSpeakers', []);
  }
  videoTiles(): Promise<VideoTileInfo[]> {
    return this.call('videoTiles', []);
  }
  rtpStats(): Promise<RtpStat[]> {
    return this.call('rtpStats', []);
  }
  selectedCandidatePair(): Promise<SelectedCandidatePair | null> {
    return this.call('selectedCandidatePair', []);
  }
  /** FFT of the RECEIVED audio (the stream bound to the page's <audio> element) over `ms`. */
  measureTones(frequencies: number[], ms = 1_000): Promise<ToneMeasurement> {
    return this.call('measureTones', [frequencies, ms], ms + 10_000);
  }
  /** Resolves with Date.now() in the page when an audio packet louder than `minLevel` (0..1) arrives. */
  audioArrival(minLevel: number, timeoutMs = 15_000): Promise<number> {
    return this.call('audioArrival', [minLevel, timeoutMs], timeoutMs + 5_000);
  }
  /** Starts watching the received audio; resolves with Date.now() in the page when `frequency` appears. */
  toneOnset(frequency: number, timeoutMs = 15_000): Promise<number> {
    return this.call('toneOnset', [frequency, timeoutMs], timeoutMs + 5_000);
  }
  /** FFT of this page's own microphone stream (what it sends), to validate the detection itself. */
  measureLocalTones(frequencies: number[], ms = 1_000): Promise<ToneMeasurement> {
    return this.call('measureLocalTones', [frequencies, ms], ms + 10_000);
  }
  events(sinceSeq = 0): Promise<PageEvent[]> {
    return this.call('events', [sinceSeq]);
  }
  status(): Promise<PageStatus> {
    return this.call('status', []);
  }
  webSockets(): Promise<WebSocketRecord[]> {
    return this.call('webSockets', []);
  }

  /** The sequence number of the latest event, to wait for events that happen after this point. */
  async mark(): Promise<number> {
    const events = await this.events();
    return events.at(-1)?.seq ?? 0;
  }

  /** Waits for an event named `name` (after `since`, optionally matching `where`) and returns it. */
  waitForEvent(
    name: string,
    options: { since?: number; where?: (event: PageEvent) => boolean; timeoutMs?: number } = {},
  ): Promise<PageEvent> {
    return waitFor(
      async () => (await this.events(options.since ?? 0)).find((e) => e.name === name && (!options.where || options.where(e))),
      options.timeoutMs ?? 10_000,
      { message: `${this.name}: event ${name}` },
    );
  }

  /** This attendee's console lines. */
  consoleLines(): string[] {
    return this.console.lines.filter((line) => line.includes(` ${this.name} [`));
  }

  async close(): Promise<void> {
    await withTimeout(this.context.close(), 10_000, `${this.name}: close`).catch(() => {});
  }
}

/** Opens the test page in a fresh context of `browser` and waits until `window.amphi` is ready. */
export async function newAttendee(
  browser: Browser,
  pageUrl: string,
  options: { name?: string; console?: ConsoleBuffer } = {},
): Promise<BrowserAttendee> {
  const name = options.name ?? `page${browser.contexts().length + 1}`;
  const buffer = options.console ?? new ConsoleBuffer();
  const context = await browser.newContext();
  try {
    // tsx compiles test files with esbuild's keepNames, so functions a test passes to page.evaluate() may call
    // esbuild's `__name` helper, which does not exist in the page ("ReferenceError: __name is not defined").
    await context.addInitScript({ content: 'globalThis.__name ??= (fn) => fn;' });
    const page = await context.newPage();
    page.setDefaultTimeout(DEFAULT_CALL_TIMEOUT_MS);
    page.on('console', (message) => buffer.push(name, message.type(), message.text()));
    page.on('pageerror', (error) => buffer.push(name, 'pageerror', error.stack ?? error.message));
    page.on('crash', () => buffer.push(name, 'crash', 'page crashed'));
    page.on('requestfailed', (request) => buffer.push(name, 'requestfailed', `${request.url()} ${request.failure()?.errorText ?? ''}`));
    await page.goto(pageUrl, { waitUntil: 'load', timeout: 15_000 });
    await page.waitForFunction(() => (window as unknown as { amphi?: { ready?: boolean } }).amphi?.ready === true, undefined, {
      timeout: 10_000,
    });
    return new BrowserAttendee(name, context, page, buffer);
  } catch (error) {
    await context.close().catch(() => {});
    throw error;
  }
}

/** Page server + browser for one test file; close() releases both even if some attendees misbehave. */
export interface BrowserSession {
  browser: Browser;
  pageUrl: string;
  console: ConsoleBuffer;
  attendees: BrowserAttendee[];
  newAttendee(name?: string): Promise<BrowserAttendee>;
  /** All pages' console lines, interleaved in time order (last `tail` lines). */
  dumpConsole(tail?: number): string;
  /** Runs `fn`; if it throws, writes the console dump to stderr before rethrowing. */
  withConsoleOnFailure<T>(fn: () => Promise<T>, tail?: number): Promise<T>;
  close(): Promise<void>;
}

export async function openBrowserSession(options: { args?: string[] } = {}): Promise<BrowserSession> {
  const server: PageServer = await startPageServer();
  let browser: Browser;
  try {
    browser = await launchBrowser(options);
  } catch (error) {
    await server.close();
    throw error;
  }
  const buffer = new ConsoleBuffer();
  const attendees: BrowserAttendee[] = [];
  const session: BrowserSession = {
    browser,
    pageUrl: server.url,
    console: buffer,
    attendees,
    async newAttendee(name) {
      const attendee = await newAttendee(browser, server.url, { name: name ?? `page${attendees.length + 1}`, console: buffer });
      attendees.push(attendee);
      return attendee;
    },
    dumpConsole: (tail) => buffer.dump(tail),
    async withConsoleOnFailure(fn, tail = 400) {
      try {
        return await fn();
      } catch (error) {
        process.stderr.write(`\n----- browser console (last ${tail} lines) -----\n${buffer.dump(tail)}\n-----\n`);
        throw error;
      }
    },
    async close() {
      await Promise.all(attendees.map((a) => a.close()));
      await withTimeout(browser.close(), 10_000, 'browser close').catch(() => {});
      await server.close();
    },
  };
  return session;
}
