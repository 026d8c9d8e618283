import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import {
  CreateAttendeeCommand,
  CreateMeetingCommand,
  DeleteAttendeeCommand,
  DeleteMeetingCommand,
  type Attendee,
  type Meeting,
} from '@aws-sdk/client-chime-sdk-meetings';
import { loadConfig } from '../../src/config.ts';
import { FrameType, SdkStreamMediaType, SdkStreamServiceType } from '../../src/signaling/frames.ts';
import { startTestAmphi, type TestAmphi } from '../support/helpers.ts';
import { RawClient } from '../support/raw-signaling.ts';
import { serverEndpoint, WebRtcReceiver } from '../support/webrtc-receiver.ts';
import type { StartOptions } from '../../src/app.ts';

/** Meeting lifecycle events POSTed to a receiver on loopback by a real Amphi, driven by the API and raw signaling clients. */

const SECRET = 'webhook-test-secret';
const offers = path.join(import.meta.dirname, '../support/fixtures/offers');
const receiveOnly = (JSON.parse(readFileSync(path.join(offers, 'chrome-first-offer.json'), 'utf8')) as { sdpOffer: string }).sdpOffer;
const camera = JSON.parse(readFileSync(path.join(offers, 'chrome-camera-and-subscription.json'), 'utf8')) as {
  sdpOffer: string;
  sendStreams: { mediaType: string }[];
};

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  /** What it was answered; undefined: nothing (yet). */
  status?: number;
}

/** An HTTP server recording every request; `answer` decides what each gets (undefined: no answer at all). */
class Receiver {
  readonly requests: Received[] = [];
  private readonly server: Server;
  private readonly held: ServerResponse[] = [];

  private constructor(private readonly answer: (request: Received, index: number) => number | undefined) {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const received: Received = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
        this.requests.push(received);
        received.status = this.answer(received, this.requests.length - 1);
        if (received.status === undefined) this.held.push(res);
        else res.writeHead(received.status).end();
      });
    });
  }

  static async start(answer: (request: Received, index: number) => number | undefined): Promise<Receiver> {
    const receiver = new Receiver(answer);
    await new Promise<void>((resolve) => receiver.server.listen(0, '127.0.0.1', resolve));
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/amphi-events`;
  }

  /** Requests waiting for an answer that never comes. */
  get unanswered(): number {
    return this.held.length;
  }

  /** The events answered 2xx, in the order they arrived. */
  delivered(): Record<string, any>[] {
    return this.requests.filter((r) => r.status !== undefined && r.status < 300).map((r) => JSON.parse(r.body));
  }

  /** Resolves with the delivered events once there are `count`. */
  async waitForDelivered(count: number, timeoutMs = 10_000): Promise<Record<string, any>[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const delivered = this.delivered();
      if (delivered.length >= count) return delivered;
      if (Date.now() > deadline) throw new Error(`${delivered.length} of ${count} events delivered: ${delivered.map((e) => e.detail?.eventType).join(', ')}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async close(): Promise<void> {
    for (const res of this.held) res.destroy();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

function checkSignature(request: Received): void {
  const timestamp = String(request.headers['x-amphi-timestamp']);
  assert.match(timestamp, /^\d{10}$/, 'a timestamp in seconds');
  assert.ok(Math.abs(Number(timestamp) - Date.now() / 1000) < 300, 'a current timestamp');
  const expected = `sha256=${createHmac('sha256', SECRET).update(`${timestamp}.${request.body}`).digest('hex')}`;
  const given = String(request.headers['x-amphi-signature']);
  assert.ok(given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected)), 'the signature verifies');
  assert.equal(request.headers['content-type'], 'application/json');
  assert.equal(request.headers['x-amphi-event-id'], JSON.parse(request.body).id);
}

const started: { amphi?: TestAmphi; receiver?: Receiver }[] = [];
after(async () => {
  for (const { amphi, receiver } of started) {
    await amphi?.stop();
    await receiver?.close();
  }
});

async function setUp(answer: (request: Received, index: number) => number | undefined, webhooks = {}, start: StartOptions = {}) {
  const receiver = await Receiver.start(answer);
  const server = await startTestAmphi({
    env: { AMPHI_WEBHOOK_URL: receiver.url, AMPHI_WEBHOOK_SECRET: SECRET },
    start: { webhooks: { firstRetryDelayMs: 20, closeGraceMs: 100, ...webhooks }, ...start },
  });
  started.push({ amphi: server, receiver });
  const newMeeting = async (name: string) =>
    (await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: name }))).Meeting!;
  const newAttendee = async (meeting: Meeting, externalUserId: string) =>
    (await server.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: externalUserId }))).Attendee!;
  return { receiver, server, newMeeting, newAttendee };
}

const connect = async (meeting: Meeting, token: string) => {
  const client = await RawClient.connect(meeting.MediaPlacement!.SignalingUrl!, token);
  await client.join();
  return client;
};
const subscribe = async (client: RawClient, withCamera: boolean) => {
  const sendStreams = camera.sendStreams.map((stream) => ({ ...stream, mediaType: SdkStreamMediaType[stream.mediaType as 'AUDIO' | 'VIDEO'] }));
  client.send({
    type: FrameType.SUBSCRIBE,
    sub: withCamera
      ? { duplex: SdkStreamServiceType.DUPLEX, sdpOffer: camera.sdpOffer, sendStreams, receiveStreamIds: [0] }
      : { duplex: SdkStreamServiceType.RX, sdpOffer: receiveOnly, receiveStreamIds: [0] },
  });
  await client.next(FrameType.SUBSCRIBE_ACK);
};
const leave = async (client: RawClient) => {
  client.send({ type: FrameType.LEAVE, leave: {} });
  await client.next(FrameType.LEAVE_ACK);
  client.ws.close();
};

describe('meeting lifecycle events', () => {
  test('a whole meeting gives the expected events, in order, in the service\'s shape, signed', async () => {
    const { receiver, newMeeting, newAttendee, server } = await setUp(() => 200);
    let expected = 0;
    const step = async (count: number) => (expected += count, receiver.waitForDelivered(expected));

    const meeting = await newMeeting('webhooks-whole');
    const alice = await newAttendee(meeting, 'alice');
    const bob = await newAttendee(meeting, 'bob');
    await newAttendee(meeting, 'alice'); // the same ExternalUserId: the same attendee, no new event
    await step(3);

    const aliceClient = await connect(meeting, alice.JoinToken!);
    await step(2); // authorized, joined
    await subscribe(aliceClient, true);
    await step(1); // video started
    await subscribe(aliceClient, false);
    await step(1); // video stopped

    const share = await connect(meeting, `${alice.JoinToken!}#content`);
    await step(1); // content joined (no authorization event for a share)
    await subscribe(share, true);
    await step(1);
    await leave(share);
    await step(2); // content video stopped, content left

    await leave(aliceClient);
    await step(1);

    const bobClient = await connect(meeting, bob.JoinToken!);
    await step(2);
    bobClient.ws.terminate(); // no LEAVE, no close handshake: a lost connection
    await step(1);
    await server.client.send(new DeleteAttendeeCommand({ MeetingId: meeting.MeetingId, AttendeeId: bob.AttendeeId }));
    await step(1);

    const carol = await newAttendee(meeting, 'carol');
    const carolClient = await connect(meeting, carol.JoinToken!);
    await step(3);
    await server.client.send(new DeleteMeetingCommand({ MeetingId: meeting.MeetingId }));
    const events = await step(2); // ended, then carol's session ends with it
    assert.notEqual(await carolClient.closed(), -1, "the meeting's end closed carol's connection");

    const ids = (who: Attendee, content = false) => ({
      attendeeId: who.AttendeeId! + (content ? '#content' : ''),
      externalUserId: who.ExternalUserId! + (content ? '#content' : ''),
    });
    const expectedEvents: [string, ReturnType<typeof ids> | undefined][] = [
      ['chime:MeetingStarted', undefined],
      ['chime:AttendeeAdded', ids(alice)],
      ['chime:AttendeeAdded', ids(bob)],
      ['chime:AttendeeAuthorized', ids(alice)],
      ['chime:AttendeeJoined', ids(alice)],
      ['chime:AttendeeVideoStarted', ids(alice)],
      ['chime:AttendeeVideoStopped', ids(alice)],
      ['chime:AttendeeContentJoined', ids(alice, true)],
      ['chime:AttendeeContentVideoStarted', ids(alice, true)],
      ['chime:AttendeeContentVideoStopped', ids(alice, true)],
      ['chime:AttendeeContentLeft', ids(alice, true)],
      ['chime:AttendeeLeft', ids(alice)],
      ['chime:AttendeeAuthorized', ids(bob)],
      ['chime:AttendeeJoined', ids(bob)],
      ['chime:AttendeeDropped', ids(bob)],
      ['chime:AttendeeDeleted', ids(bob)],
      ['chime:AttendeeAdded', ids(carol)],
      ['chime:AttendeeAuthorized', ids(carol)],
      ['chime:AttendeeJoined', ids(carol)],
      ['chime:MeetingEnded', undefined],
      ['chime:AttendeeLeft', ids(carol)],
    ];
    assert.deepEqual(
      events.map((event) => event.detail.eventType),
      expectedEvents.map(([type]) => type),
    );
    const seenIds = new Set<string>();
    for (const [index, event] of events.entries()) {
      const [eventType, subject] = expectedEvents[index]!;
      const { time, id, detail, ...envelope } = event;
      assert.deepEqual(envelope, {
        version: '0',
        'detail-type': 'Chime Meeting State Change',
        source: 'aws.chime',
        account: '111122223333',
        region: 'us-east-1',
        resources: [],
      });
      assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      assert.ok(!seenIds.has(id), 'each event has its own id');
      seenIds.add(id);
      assert.match(time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      const { timestamp, ...rest } = detail;
      assert.ok(Number.isInteger(timestamp) && Math.abs(timestamp - Date.parse(time)) < 1000, `${eventType}: timestamp in ms, at its time`);
      const connection = /Joined|Left|Dropped/.test(eventType);
      assert.deepEqual(rest, {
        version: '0',
        eventType,
        meetingId: meeting.MeetingId,
        ...(subject ?? {}),
        ...(connection ? { networkType: 'Voip' } : {}),
        externalMeetingId: 'webhooks-whole',
        mediaRegion: 'us-east-1',
      }, `${eventType} (event ${index + 1})`);
    }
    for (const request of receiver.requests) checkSignature(request);
  });
});

describe('a client that stops sending', () => {
  // Silence looked at every 200 ms instead of 5 s: dropped after 400-600 ms without packets instead of 10-15 s.
  const SILENCE_CHECK_MS = 200;

  test('is dropped once its packets stop, though its signaling stays up; not while its consent checks come', async () => {
    const { receiver, newMeeting, newAttendee, server } = await setUp(() => 200, {}, { mediaSilenceCheckMs: SILENCE_CHECK_MS });
    const meeting = await newMeeting('webhooks-silent-media');
    const quiet = await newAttendee(meeting, 'quiet');
    // A client's network side as a browser's: ICE checks (its consent) every 50 ms, DTLS, SRTP.
    const media = await WebRtcReceiver.open({ checkIntervalMs: 50 });
    const client = await connect(meeting, quiet.JoinToken!);
    const ownOffer = receiveOnly
      .replace(/^a=ice-ufrag:.*$/gm, `a=ice-ufrag:${media.iceUfrag}`)
      .replace(/^a=ice-pwd:.*$/gm, `a=ice-pwd:${media.icePwd}`)
      .replace(/^a=fingerprint:.*$/gm, `a=fingerprint:${media.identity.sdpFingerprint}`);
    client.send({ type: FrameType.SUBSCRIBE, sub: { duplex: SdkStreamServiceType.RX, sdpOffer: ownOffer, receiveStreamIds: [0] } });
    const ack = await client.next(FrameType.SUBSCRIBE_ACK);
    try {
      await media.connect(serverEndpoint(ack.suback?.sdpAnswer ?? ''));
      await new Promise((resolve) => media.once('rtp', resolve));
      // Ten silence checks' worth of consent checks answered: the client is heard, so nothing happens.
      const answered = media.received.stunResponses;
      while (media.received.stunResponses < answered + (10 * SILENCE_CHECK_MS) / 50) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.deepEqual(receiver.delivered().map((e) => e.detail.eventType).slice(4), [], 'no departure while the client is heard');
      assert.equal(client.ws.readyState, client.ws.OPEN);

      media.stopConsent(); // and it sends no RTCP: nothing more arrives from it
      assert.notEqual(await client.closed(), -1, 'the session ends');
    } finally {
      media.close();
      client.ws.terminate();
    }
    // An API call's event after it: a Left for the same departure would have come before it.
    await server.client.send(new DeleteAttendeeCommand({ MeetingId: meeting.MeetingId, AttendeeId: quiet.AttendeeId }));
    const events = await receiver.waitForDelivered(6);
    assert.deepEqual(events.map((e) => e.detail.eventType), [
      'chime:MeetingStarted',
      'chime:AttendeeAdded',
      'chime:AttendeeAuthorized',
      'chime:AttendeeJoined',
      'chime:AttendeeDropped',
      'chime:AttendeeDeleted',
    ]);
    assert.equal(events[4]!.detail.attendeeId, quiet.AttendeeId);
  });
});

describe('delivery', () => {
  test('a receiver failing with 500 twice gets the event on the third attempt, and the next events after it', async () => {
    const { receiver, newMeeting, newAttendee } = await setUp((_request, index) => (index < 2 ? 500 : 200));
    const meeting = await newMeeting('webhooks-retry');
    await newAttendee(meeting, 'after-the-retries');
    const delivered = await receiver.waitForDelivered(2);
    assert.deepEqual(delivered.map((event) => event.detail.eventType), ['chime:MeetingStarted', 'chime:AttendeeAdded']);
    const attempts = receiver.requests.slice(0, 3);
    assert.equal(new Set(attempts.map((r) => r.body)).size, 1, 'the same event, byte for byte, on each attempt');
    assert.equal(JSON.parse(attempts[0]!.body).detail.eventType, 'chime:MeetingStarted');
    for (const request of receiver.requests) checkSignature(request);
  });

  test('a receiver that never answers holds no API call back', async () => {
    const { receiver, newMeeting, newAttendee, server } = await setUp(() => undefined);
    const meeting = await newMeeting('webhooks-silent');
    for (let i = 0; i < 20; i++) await newAttendee(meeting, `attendee-${i}`);
    // Every call was answered while the first event's request still waits for its answer.
    assert.equal(receiver.requests.length, 1);
    assert.equal(receiver.unanswered, 1);
    assert.equal(server.amphi.webhooks?.queued, 21, 'the other events wait their turn');
  });

  test('a full queue drops new events with a warning instead of growing', async () => {
    const { newMeeting, newAttendee, server } = await setUp(() => undefined, { maxQueued: 3 });
    const dropped: string[] = [];
    server.amphi.webhooks!.on('dropped', (_id, reason) => dropped.push(reason));
    const meeting = await newMeeting('webhooks-full');
    for (let i = 0; i < 5; i++) await newAttendee(meeting, `attendee-${i}`);
    assert.equal(server.amphi.webhooks?.queued, 3);
    assert.equal(dropped.length, 3);
    assert.match(dropped[0]!, /queue is full/);
  });
});

describe('configuration', () => {
  test('a webhook URL without a secret, or not http(s), is refused with the setting named', () => {
    assert.throws(() => loadConfig([], { AMPHI_WEBHOOK_URL: 'http://127.0.0.1:9/events' }), /--webhook-secret \/ AMPHI_WEBHOOK_SECRET: is required with --webhook-url/);
    assert.throws(() => loadConfig(['--webhook-url', 'ftp://127.0.0.1/events', '--webhook-secret', 's']), /--webhook-url \/ AMPHI_WEBHOOK_URL: must be an http/);
    const config = loadConfig(['--webhook-url', 'https://hooks.example.com/amphi', '--webhook-secret', 's']);
    assert.equal(config.webhookUrl, 'https://hooks.example.com/amphi');
  });
});
