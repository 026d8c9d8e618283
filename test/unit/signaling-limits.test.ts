import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, GetMeetingCommand, type Attendee, type Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import WebSocket from 'ws';
import { CloseCode, FrameType, SdkPingPongType, SdkStreamServiceType } from '../../src/signaling/frames.ts';
import { SMALL_FRAME_BYTES } from '../../src/signaling/frame-limits.ts';
import { INBOUND_BURST_BYTES } from '../../src/signaling/session.ts';
import type { SignalingSession } from '../../src/signaling/session.ts';
import type { ReadPauseReason } from '../../src/signaling/read-pause.ts';
import { RELAYED_CLIENT_ADDRESS_HEADER } from '../../src/signaling/address-limits.ts';
import { RELAYED_HEADER } from '../../src/signaling/signal-relay.ts';
import { RawClient } from '../support/raw-signaling.ts';
import { startTestAmphi, type TestAmphi } from '../support/helpers.ts';

const offer = (JSON.parse(readFileSync(new URL('../support/fixtures/offers/chrome-first-offer.json', import.meta.url), 'utf8')) as { sdpOffer: string }).sdpOffer;

let server: TestAmphi;
let meeting: Meeting;
const url = () => meeting.MediaPlacement!.SignalingUrl!;
const attendee = async (externalUserId: string, on: TestAmphi = server, inMeeting: Meeting = meeting): Promise<Attendee> =>
  (await on.client.send(new CreateAttendeeCommand({ MeetingId: inMeeting.MeetingId, ExternalUserId: externalUserId }))).Attendee!;

/** A PING carrying `bytes` of padding (in the frame's error description, a field the server ignores on a PING). */
function paddedPing(pingId: number, bytes: number) {
  return { type: FrameType.PING_PONG, pingPong: { type: SdkPingPongType.PING, pingId }, error: { description: 'p'.repeat(bytes) } };
}

/** The server's side of a client's connection. */
function sessionOf(attendeeId: string): SignalingSession {
  const sessions = server.amphi.signaling.conference(meeting.MeetingId!)?.sessions ?? new Set<SignalingSession>();
  const session = [...sessions].find((s) => s.attendeeId === attendeeId);
  assert.ok(session, `a session for ${attendeeId}`);
  return session;
}

before(async () => {
  server = await startTestAmphi();
  meeting = (await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'signaling-limits' }))).Meeting!;
});
after(() => server.stop());

describe('frame size per type', () => {
  test('a PING over the small-frame limit is refused unanswered; one under it is answered; the session goes on', async () => {
    const client = await RawClient.connect(url(), (await attendee('padder')).JoinToken!);
    await client.join();
    client.send(paddedPing(1, SMALL_FRAME_BYTES + 1024));
    client.send(paddedPing(2, SMALL_FRAME_BYTES - 1024));
    const pong = await client.next(FrameType.PING_PONG);
    assert.equal(pong.pingPong?.pingId, 2, 'the oversized PING got no PONG; the one under the limit did');
    assert.ok(await client.ping(3));
    client.ws.close();
  });

  test('oversized frames count as malformed: the 21st closes the socket with 4400', async () => {
    const client = await RawClient.connect(url(), (await attendee('repeat-padder')).JoinToken!);
    for (let i = 0; i < 21; i++) client.send({ type: FrameType.AUDIO_CONTROL, audioControl: { muted: true }, error: { description: 'm'.repeat(SMALL_FRAME_BYTES) } });
    assert.equal(await client.closed(), CloseCode.BadRequest);
  });

  test('a SUBSCRIBE of 200 KiB (an SDP offer with many lines) is answered with an SDP answer', async () => {
    const client = await RawClient.connect(url(), (await attendee('big-offer')).JoinToken!);
    await client.join();
    const padding = Array.from({ length: 2600 }, (_, i) => `a=x-amphi-padding:${i.toString().padStart(6, '0')}${'z'.repeat(56)}\r\n`).join('');
    const firstMedia = offer.indexOf('m=');
    const bigOffer = offer.slice(0, firstMedia) + padding + offer.slice(firstMedia);
    assert.ok(bigOffer.length > 200 * 1024 && bigOffer.length < 250 * 1024, `offer of ${bigOffer.length} bytes`);
    client.send({ type: FrameType.SUBSCRIBE, sub: { duplex: SdkStreamServiceType.RX, sdpOffer: bigOffer, receiveStreamIds: [0] } });
    const ack = await client.next(FrameType.SUBSCRIBE_ACK, 10_000);
    assert.equal(ack.error, null);
    assert.match(ack.suback?.sdpAnswer ?? '', /^v=0/);
    client.ws.close();
  });
});

describe('byte budget', () => {
  test('a client sending over its budget is paused, not cut off, while a neighbour and the API stay served', async () => {
    const bystander = await RawClient.connect(url(), (await attendee('neighbour')).JoinToken!);
    await bystander.join();
    const flooderAttendee = await attendee('byte-flooder');
    const flooder = await RawClient.connect(url(), flooderAttendee.JoinToken!);
    await flooder.join();
    const pauses: ReadPauseReason[] = [];
    sessionOf(flooderAttendee.AttendeeId!).on('readPaused', (reason) => pauses.push(reason));

    // Twice the burst in frames the server accepts (CLIENT_METRIC, 60 KiB each) and far under the frame-rate limit.
    const metric = { type: FrameType.CLIENT_METRIC, clientMetric: { globalMetrics: [] }, error: { description: 'c'.repeat(60 * 1024) } };
    const frames = Math.ceil((2 * INBOUND_BURST_BYTES) / (60 * 1024));
    for (let i = 0; i < frames; i++) flooder.send(metric);
    flooder.send(paddedPing(77, 0));

    while (pauses.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(pauses, ['budget']);
    assert.ok(await bystander.ping(5), 'the neighbour is answered while the flooder waits');
    const got = await server.client.send(new GetMeetingCommand({ MeetingId: meeting.MeetingId }));
    assert.equal(got.Meeting?.MeetingId, meeting.MeetingId, 'the API answers while the flooder waits');

    const pong = await flooder.next(FrameType.PING_PONG, 20_000);
    assert.equal(pong.pingPong?.pingId, 77, 'everything the flooder sent was read in the end');
    assert.equal(flooder.closeCode, undefined, 'the flooder was slowed, not cut off');
    flooder.ws.close();
    bystander.ws.close();
  });
});

describe('sockets per address', () => {
  let capped: TestAmphi;
  let cappedMeeting: Meeting;
  before(async () => {
    capped = await startTestAmphi({ env: { AMPHI_MAX_SOCKETS_PER_ADDRESS: '3' } });
    cappedMeeting = (await capped.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'capped' }))).Meeting!;
  });
  after(() => capped.stop());
  const cappedUrl = () => cappedMeeting.MediaPlacement!.SignalingUrl!;

  test('over the cap, the upgrade is answered 429; a closed socket frees its slot, refused handshakes hold none', async () => {
    // Refused handshakes (403) give their slot back at once.
    for (let i = 0; i < 5; i++) await assert.rejects(RawClient.connect(cappedUrl(), 'bm90LWEtdG9rZW4'), /HTTP 403/);
    const open = [];
    for (let i = 0; i < 3; i++) open.push(await RawClient.connect(cappedUrl(), (await attendee(`cap-${i}`, capped, cappedMeeting)).JoinToken!));
    const fourth = (await attendee('cap-3', capped, cappedMeeting)).JoinToken!;
    await assert.rejects(RawClient.connect(cappedUrl(), fourth), /HTTP 429/);
    for (const client of open) assert.ok(await client.ping(1), 'the admitted sockets are unaffected');

    open[0]!.ws.close();
    await open[0]!.closed();
    const late = await retryUntilAdmitted(() => RawClient.connect(cappedUrl(), fourth));
    assert.ok(await late.ping(2));
    for (const client of [late, ...open.slice(1)]) client.ws.close();
  });

  test("a relayed connection counts under the client address the relaying node forwards, not the node's", async () => {
    const open = [];
    for (let i = 0; i < 3; i++) open.push(await RawClient.connect(cappedUrl(), (await attendee(`local-${i}`, capped, cappedMeeting)).JoinToken!));
    const token = (await attendee('relayed-client', capped, cappedMeeting)).JoinToken!;
    const relayed = new WebSocket(cappedUrl(), ['_aws_wt_session', token], {
      headers: { [RELAYED_HEADER]: '1', [RELAYED_CLIENT_ADDRESS_HEADER]: '198.51.100.7' },
    });
    await new Promise<void>((resolve, reject) => {
      relayed.once('open', () => resolve());
      relayed.once('unexpected-response', (_request, response) => reject(new Error(`HTTP ${response.statusCode}`)));
      relayed.once('error', reject);
    });
    relayed.close();
    for (const client of open) client.ws.close();
  });
});

/** The server frees a slot when it sees the socket close, a moment after the client does. */
async function retryUntilAdmitted(connect: () => Promise<RawClient>): Promise<RawClient> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await connect();
    } catch (error) {
      if (attempt >= 50 || !/HTTP 429/.test(String(error))) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}
