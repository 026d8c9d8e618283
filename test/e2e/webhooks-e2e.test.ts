import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  CreateAttendeeCommand,
  CreateMeetingCommand,
  DeleteAttendeeCommand,
  DeleteMeetingCommand,
  type Attendee,
  type Meeting,
} from '@aws-sdk/client-chime-sdk-meetings';
import { openBrowserSession, waitFor, type BrowserAttendee, type BrowserSession } from './browser/harness.ts';
import { startTestAmphi, type TestAmphi } from '../support/helpers.ts';

/**
 * The meeting lifecycle events of a whole meeting driven by Chromium with the official SDK, as a webhook receiver
 * (a real HTTP server verifying each request's HMAC) records them: joins, mute and unmute (no event), a camera on
 * and off, a content share, a leave, a page killed without leaving, DeleteAttendee and DeleteMeeting.
 */

const SECRET = 'webhooks-e2e-secret';

interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
  /** Whether the HMAC and the timestamp verified (a request that did not was refused with 401). */
  verified: boolean;
}

/** A receiver as an application would write one: it verifies each request before accepting its event. */
class WebhookReceiver {
  readonly deliveries: Delivery[] = [];
  private readonly server: Server;

  private constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const verified = verifies(req.headers, body);
        this.deliveries.push({ headers: req.headers, body, verified });
        res.writeHead(verified ? 204 : 401).end();
      });
    });
  }

  static async start(): Promise<WebhookReceiver> {
    const receiver = new WebhookReceiver();
    await new Promise<void>((resolve) => receiver.server.listen(0, '127.0.0.1', resolve));
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/chime-events`;
  }

  /** The accepted events, in the order they arrived. */
  events(): Record<string, any>[] {
    return this.deliveries.filter((d) => d.verified).map((d) => JSON.parse(d.body));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

function verifies(headers: IncomingHttpHeaders, body: string): boolean {
  const timestamp = String(headers['x-amphi-timestamp']);
  const given = String(headers['x-amphi-signature']);
  const expected = `sha256=${createHmac('sha256', SECRET).update(`${timestamp}.${body}`).digest('hex')}`;
  return (
    given.length === expected.length &&
    timingSafeEqual(Buffer.from(given), Buffer.from(expected)) &&
    Math.abs(Date.now() / 1000 - Number(timestamp)) < 300 &&
    headers['content-type'] === 'application/json' &&
    headers['x-amphi-event-id'] === JSON.parse(body).id
  );
}

let receiver: WebhookReceiver;
let server: TestAmphi;
let browser: BrowserSession;
let meeting: Meeting;
const attendees: Record<'alice' | 'bob' | 'carol', Attendee> = {} as never;
let alice: BrowserAttendee;
let bob: BrowserAttendee;
let carol: BrowserAttendee;

before(async () => {
  receiver = await WebhookReceiver.start();
  server = await startTestAmphi({ env: { AMPHI_WEBHOOK_URL: receiver.url, AMPHI_WEBHOOK_SECRET: SECRET } });
  browser = await openBrowserSession();
  [alice, bob, carol] = [await browser.newAttendee('alice'), await browser.newAttendee('bob'), await browser.newAttendee('carol')];
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await receiver?.close();
});

/** [eventType, whose] of every event expected so far; `whose` names an attendee, `#content` for its share. */
const expected: [string, string | undefined][] = [];

/** Adds what an action should cause, then waits until the receiver has exactly the expected events so far. */
async function expect(...events: [string, string?][]): Promise<void> {
  for (const [type, whose] of events) expected.push([`chime:${type}`, whose]);
  const describe = (list: [string, string | undefined][]) => list.map(([type, whose]) => (whose ? `${type}(${whose})` : type)).join(', ');
  const received = () => receiver.events().map((e): [string, string | undefined] => [e.detail.eventType, e.detail.externalUserId]);
  // On a timeout the comparison below says what is missing.
  await waitFor(() => received().length >= expected.length, 15_000).catch(() => {});
  assert.equal(describe(received()), describe(expected));
}

const ids = (whose: string) => {
  const [name, content] = whose.split('#') as [keyof typeof attendees, string?];
  const attendee = attendees[name];
  const suffix = content === undefined ? '' : '#content';
  return { attendeeId: attendee.AttendeeId! + suffix, externalUserId: attendee.ExternalUserId! + suffix };
};

const step = <T>(fn: () => Promise<T>) => browser.withConsoleOnFailure(fn);
const join = (page: BrowserAttendee, name: keyof typeof attendees, frequency: number) =>
  page.join({ meeting: { Meeting: meeting }, attendee: { Attendee: attendees[name] }, tone: { frequency } });

describe('the lifecycle events of a meeting in Chromium', () => {
  test('creating the meeting and its attendees', () =>
    step(async () => {
      meeting = (await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'webhooks-e2e' }))).Meeting!;
      for (const name of ['alice', 'bob', 'carol'] as const) {
        attendees[name] = (await server.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: name }))).Attendee!;
      }
      await expect(['MeetingStarted'], ['AttendeeAdded', 'alice'], ['AttendeeAdded', 'bob'], ['AttendeeAdded', 'carol']);
    }));

  test('each join: authorized, then joined', () =>
    step(async () => {
      await join(alice, 'alice', 440);
      await expect(['AttendeeAuthorized', 'alice'], ['AttendeeJoined', 'alice']);
      await join(bob, 'bob', 880);
      await expect(['AttendeeAuthorized', 'bob'], ['AttendeeJoined', 'bob']);
      await join(carol, 'carol', 660);
      await expect(['AttendeeAuthorized', 'carol'], ['AttendeeJoined', 'carol']);
    }));

  test('mute and unmute are no lifecycle events', () =>
    step(async () => {
      const mutedAs = (muted: boolean) => async () => (await carol.roster()).find((e) => e.externalUserId === 'alice')?.muted === muted;
      await alice.mute();
      await waitFor(mutedAs(true), 10_000, { message: 'carol sees alice muted' });
      await alice.unmute();
      await waitFor(mutedAs(false), 10_000, { message: 'carol sees alice unmuted' });
      await expect();
    }));

  test('a camera on and off: video started, then stopped', () =>
    step(async () => {
      const aliceTile = async () => (await carol.videoTiles()).find((t) => t.boundExternalUserId === 'alice');
      await alice.startCamera();
      await waitFor(async () => ((await aliceTile())?.framesDecoded ?? 0) > 0, 15_000, { message: "carol decodes alice's camera" });
      await expect(['AttendeeVideoStarted', 'alice']);
      await alice.stopCamera();
      await waitFor(async () => (await aliceTile()) === undefined, 15_000, { message: "alice's tile leaves carol's page" });
      await expect(['AttendeeVideoStopped', 'alice']);
    }));

  test('a content share: its own connection joins, shows video, and leaves', () =>
    step(async () => {
      await alice.startContentShare();
      await expect(['AttendeeContentJoined', 'alice#content'], ['AttendeeContentVideoStarted', 'alice#content']);
      await alice.stopContentShare();
      await expect(['AttendeeContentVideoStopped', 'alice#content'], ['AttendeeContentLeft', 'alice#content']);
    }));

  test('a page killed without leaving: dropped, never left; DeleteAttendee afterwards: deleted only', () =>
    step(async () => {
      await bob.context.close();
      await expect(['AttendeeDropped', 'bob']);
      await server.client.send(new DeleteAttendeeCommand({ MeetingId: meeting.MeetingId, AttendeeId: attendees.bob.AttendeeId }));
      await expect(['AttendeeDeleted', 'bob']);
    }));

  test('leaving: left, never dropped', () =>
    step(async () => {
      assert.equal(await alice.leave(), 'Left');
      await expect(['AttendeeLeft', 'alice']);
    }));

  test('DeleteMeeting: the meeting ends, then the attendee still in it leaves', () =>
    step(async () => {
      const since = await carol.mark();
      await server.client.send(new DeleteMeetingCommand({ MeetingId: meeting.MeetingId }));
      const stop = await carol.waitForEvent('audioVideoDidStop', { since, timeoutMs: 10_000 });
      assert.equal(stop.detail.name, 'MeetingEnded');
      await expect(['MeetingEnded'], ['AttendeeLeft', 'carol']);
    }));

  test('every event in the service\'s shape, signed, each once', () => {
    assert.ok(receiver.deliveries.every((d) => d.verified), 'every request verifies');
    const events = receiver.events();
    assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'no event delivered twice');
    for (const [index, event] of events.entries()) {
      const [eventType, whose] = expected[index]!;
      const { id, time, detail, ...envelope } = event;
      assert.deepEqual(envelope, {
        version: '0',
        'detail-type': 'Chime Meeting State Change',
        source: 'aws.chime',
        account: '111122223333',
        region: 'us-east-1',
        resources: [],
      });
      assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      assert.match(time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      const { timestamp, ...rest } = detail;
      assert.ok(Number.isInteger(timestamp) && Math.abs(timestamp - Date.parse(time)) < 1000, `${eventType}: timestamp in ms, at its time`);
      assert.deepEqual(rest, {
        version: '0',
        eventType,
        meetingId: meeting.MeetingId,
        ...(whose === undefined ? {} : ids(whose)),
        ...(/Joined|Left|Dropped/.test(eventType) ? { networkType: 'Voip' } : {}),
        externalMeetingId: 'webhooks-e2e',
        mediaRegion: 'us-east-1',
      }, `event ${index + 1}`);
    }
    // Left and Dropped never both for one departure: one of them per connection that joined.
    const departures = events.filter((e) => /Left|Dropped/.test(e.detail.eventType)).map((e) => e.detail.attendeeId);
    const joins = events.filter((e) => /Joined/.test(e.detail.eventType)).map((e) => e.detail.attendeeId);
    assert.deepEqual([...departures].sort(), [...joins].sort());
  });
});
