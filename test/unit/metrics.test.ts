import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, GetMeetingCommand, type Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import { Registry } from 'prom-client';
import { loadConfig } from '../../src/config.ts';
import { SnapshotHistogram } from '../../src/metrics/snapshot-histogram.ts';
import { rtp } from '../../src/media/protocol/rtp.ts';
import { FrameType } from '../../src/signaling/frames.ts';
import { HistogramCounts } from '../../src/util/histogram-counts.ts';
import { errorOf, startTestAmphi, type TestAmphi } from '../support/helpers.ts';
import { RawClient } from '../support/raw-signaling.ts';
import { serverEndpoint, WebRtcReceiver } from '../support/webrtc-receiver.ts';

/**
 * GET /metrics of a real Amphi, scraped before and after the API calls, connections, promotions and media that
 * should move it: the API's calls by operation and status, meetings and attendees per role, the replica pipe, the
 * promotions, and the media workers' packets, bytes, reported losses, CPU time, event-loop lag and clock lateness.
 */
const offer = (JSON.parse(readFileSync(path.join(import.meta.dirname, '../support/fixtures/offers/chrome-first-offer.json'), 'utf8')) as { sdpOffer: string }).sdpOffer;
const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One scrape: each sample by its name and labels. */
class Scrape {
  private constructor(
    readonly text: string,
    private readonly samples: { name: string; labels: Record<string, string>; value: number }[],
  ) {}

  static parse(text: string): Scrape {
    const samples = [];
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      assert.ok(match, `a sample line: ${line}`);
      const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]));
      samples.push({ name: match[1]!, labels, value: Number(match[3]) });
    }
    return new Scrape(text, samples);
  }

  /** The sum of the samples of `name` whose labels include `labels` (0 when there is none). */
  value(name: string, labels: Record<string, string> = {}): number {
    return this.matching(name, labels).reduce((sum, sample) => sum + sample.value, 0);
  }

  /** The label sets `name` has samples for. */
  matching(name: string, labels: Record<string, string> = {}) {
    return this.samples.filter((s) => s.name === name && Object.entries(labels).every(([key, value]) => s.labels[key] === value));
  }
}

async function scrape(server: TestAmphi): Promise<Scrape> {
  const response = await fetch(`${server.amphi.url}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return Scrape.parse(await response.text());
}

/** Scrapes until `condition` holds of a scrape; fails with `what` after `ms`. */
async function scrapeUntil(server: TestAmphi, condition: (scrape: Scrape) => boolean, what: string, ms = 10_000): Promise<Scrape> {
  const deadline = Date.now() + ms;
  for (;;) {
    const latest = await scrape(server);
    if (condition(latest)) return latest;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms:\n${latest.text.split('\n').filter((l) => l.startsWith('amphi_')).join('\n')}`);
    await delay(100);
  }
}

/** An RTCP receiver report (RFC 3550 §6.4.2) with one block per stream: its cumulative loss, the rest zero. */
function receiverReport(senderSsrc: number, blocks: { ssrc: number; cumulativeLost: number }[]): Buffer {
  const packet = Buffer.alloc(8 + 24 * blocks.length);
  packet[0] = 0x80 | blocks.length;
  packet[1] = 201;
  packet.writeUInt16BE(packet.length / 4 - 1, 2);
  packet.writeUInt32BE(senderSsrc, 4);
  blocks.forEach((block, i) => {
    packet.writeUInt32BE(block.ssrc, 8 + 24 * i);
    packet.writeIntBE(block.cumulativeLost, 8 + 24 * i + 5, 3);
  });
  return packet;
}

let server: TestAmphi;

const createMeeting = async (externalMeetingId: string, primary?: Meeting) =>
  (await server.client.send(
    new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: externalMeetingId, ...(primary ? { PrimaryMeetingId: primary.MeetingId } : {}) }),
  )).Meeting!;
const createAttendee = async (meeting: Meeting, externalUserId: string) =>
  (await server.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: externalUserId }))).Attendee!;

/** A raw signaling client joined to the meeting, its SUBSCRIBE answered; `sdpOffer` defaults to the recorded one. */
async function join(meeting: Meeting, externalUserId: string, sdpOffer = offer) {
  const attendee = await createAttendee(meeting, externalUserId);
  const client = await RawClient.connect(meeting.MediaPlacement!.SignalingUrl!, attendee.JoinToken!);
  await client.join();
  client.send({ type: FrameType.SUBSCRIBE, sub: { duplex: 1, sdpOffer, receiveStreamIds: [0] } });
  const ack = await client.next(FrameType.SUBSCRIBE_ACK);
  return { client, attendee, answer: ack.suback?.sdpAnswer ?? '' };
}

before(async () => {
  server = await startTestAmphi();
});
after(() => server.stop());

describe('GET /metrics', () => {
  test('is served without credentials, with the process metrics', async () => {
    const first = await scrape(server);
    assert.ok(first.value('process_cpu_user_seconds_total') > 0, 'prom-client process metrics');
    assert.ok(first.matching('nodejs_heap_size_used_bytes').length > 0);
  });

  test('counts API calls per operation and status code, with their durations', async () => {
    const before = await scrape(server);
    const meeting = await createMeeting('api-counted');
    await server.client.send(new GetMeetingCommand({ MeetingId: meeting.MeetingId }));
    await server.client.send(new GetMeetingCommand({ MeetingId: meeting.MeetingId }));
    const missing = await errorOf(server.client.send(new GetMeetingCommand({ MeetingId: '11111111-2222-3333-4444-555555555555' })));
    assert.equal(missing.name, 'NotFoundException');
    // Unsigned, and naming an operation the route doesn't have.
    assert.equal((await fetch(`${server.amphi.url}/meetings?operation=bogus`, { method: 'POST' })).status, 401);
    await fetch(`${server.amphi.url}/no-such-route`);
    const after = await scrape(server);

    const delta = (name: string, labels: Record<string, string>) => after.value(name, labels) - before.value(name, labels);
    assert.equal(delta('amphi_api_requests_total', { operation: 'CreateMeeting', code: '200' }), 1);
    assert.equal(delta('amphi_api_requests_total', { operation: 'GetMeeting', code: '200' }), 2);
    assert.equal(delta('amphi_api_requests_total', { operation: 'GetMeeting', code: '404' }), 1);
    assert.equal(delta('amphi_api_requests_total', { operation: 'UnknownOperation', code: '401' }), 1);
    assert.equal(delta('amphi_api_requests_total', { operation: 'UnknownOperation', code: '404' }), 1);
    assert.equal(delta('amphi_api_request_duration_seconds_count', { operation: 'GetMeeting' }), 3);
    assert.equal(delta('amphi_api_request_duration_seconds_bucket', { operation: 'GetMeeting', le: '+Inf' }), 3);
    assert.ok(delta('amphi_api_request_duration_seconds_sum', { operation: 'GetMeeting' }) > 0);
    // Scrapes and health checks are not API calls.
    assert.equal(after.matching('amphi_api_requests_total').filter((s) => !/^[A-Z]/.test(s.labels.operation ?? '')).length, 0);
  });

  test('counts meetings and attendees per role, the replica pipe and promotions', async () => {
    const primary = await createMeeting('town-hall');
    const replica = await createMeeting('town-hall-eu', primary);
    const presenter = await join(primary, 'presenter');
    const viewer = await join(replica, 'viewer');
    const connected = await scrapeUntil(server, (s) => s.value('amphi_replica_pipes') === 1, 'the replica linking to its primary');
    assert.equal(connected.value('amphi_meetings', { role: 'primary' }), 1);
    assert.equal(connected.value('amphi_meetings', { role: 'replica' }), 1);
    assert.equal(connected.value('amphi_attendees_connected', { role: 'primary' }), 1);
    assert.equal(connected.value('amphi_attendees_connected', { role: 'replica' }), 1);

    const stage = await createAttendee(primary, 'on-stage');
    const credentials = { attendeeId: stage.AttendeeId, joinToken: stage.JoinToken };
    viewer.client.send({ type: FrameType.PRIMARY_MEETING_JOIN, primaryMeetingJoin: { credentials } });
    assert.equal((await viewer.client.next(FrameType.PRIMARY_MEETING_JOIN_ACK)).error?.status ?? 200, 200);
    viewer.client.send({ type: FrameType.PRIMARY_MEETING_JOIN, primaryMeetingJoin: { credentials } });
    assert.equal((await viewer.client.next(FrameType.PRIMARY_MEETING_JOIN_ACK)).error?.status, 409);
    const promoted = await scrape(server);
    assert.equal(promoted.value('amphi_promotions_total', { result: 'ok' }), 1);
    assert.equal(promoted.value('amphi_promotions_total', { result: '409' }), 1);
    // A promoted viewer stays connected to its replica: it is counted there.
    assert.equal(promoted.value('amphi_attendees_connected', { role: 'replica' }), 1);

    viewer.client.ws.close();
    presenter.client.ws.close();
    const gone = await scrapeUntil(
      server,
      (s) => s.value('amphi_meetings') === 0 && s.value('amphi_attendees_connected') === 0 && s.value('amphi_replica_pipes') === 0,
      'the conferences closing',
    );
    assert.equal(gone.value('amphi_promotions_total', { result: 'ok' }), 1, 'counters keep their counts');
  });

  test("media workers' packets, bytes and reported losses move as media flows; CPU, lag and clock lateness per worker", async () => {
    const workers = server.amphi.media.workers.map((worker) => worker.name);
    const idle = await scrape(server);
    for (const worker of workers) {
      assert.equal(idle.matching('amphi_media_worker_cpu_seconds_total', { worker }).length, 1, `CPU of ${worker}`);
      assert.equal(idle.matching('amphi_media_worker_event_loop_lag_seconds', { worker }).length, 1, `event-loop lag of ${worker}`);
      assert.ok(idle.value('amphi_mixer_tick_lateness_seconds_count', { worker }) > 0, `clock lateness of ${worker}`);
      assert.equal(
        idle.value('amphi_mixer_tick_lateness_seconds_bucket', { worker, le: '+Inf' }),
        idle.value('amphi_mixer_tick_lateness_seconds_count', { worker }),
      );
    }

    // A receiver as a browser's peer connection is: the mixer sends it a packet every 20 ms.
    const receiver = await WebRtcReceiver.open();
    const ownOffer = offer
      .replace(/^a=ice-ufrag:.*$/gm, `a=ice-ufrag:${receiver.iceUfrag}`)
      .replace(/^a=ice-pwd:.*$/gm, `a=ice-pwd:${receiver.icePwd}`)
      .replace(/^a=fingerprint:.*$/gm, `a=fingerprint:${receiver.identity.sdpFingerprint}`);
    const meeting = await createMeeting('media-counted');
    const listener = await join(meeting, 'listener', ownOffer);
    await receiver.connect(serverEndpoint(listener.answer));
    const firstPacket = await new Promise<Buffer>((resolve) => receiver.once('rtp', resolve));
    const audioSsrc = rtp.ssrc(firstPacket);
    const flowing = await scrapeUntil(
      server,
      (s) => s.value('amphi_media_packets_sent_total') >= idle.value('amphi_media_packets_sent_total') + 50,
      'fifty packets sent to the receiver',
    );
    assert.ok(flowing.value('amphi_media_bytes_sent_total') > idle.value('amphi_media_bytes_sent_total'));
    assert.ok(receiver.received.rtp > 0);

    // Losses count as the receiver reports them: its cumulative count, each packet once.
    const lostBefore = flowing.value('amphi_media_packets_lost_total');
    receiver.sendRtcp(receiverReport(0x5eed, [{ ssrc: audioSsrc, cumulativeLost: 7 }]));
    await scrapeUntil(server, (s) => s.value('amphi_media_packets_lost_total') === lostBefore + 7, 'a loss of 7 being counted');
    receiver.sendRtcp(receiverReport(0x5eed, [{ ssrc: audioSsrc, cumulativeLost: 5 }, { ssrc: 0xbadbad, cumulativeLost: 1000 }]));
    receiver.sendRtcp(receiverReport(0x5eed, [{ ssrc: audioSsrc, cumulativeLost: 10 }]));
    const reported = await scrapeUntil(server, (s) => s.value('amphi_media_packets_lost_total') >= lostBefore + 10, 'the next report being counted');
    assert.equal(reported.value('amphi_media_packets_lost_total'), lostBefore + 10, "a lower count and another stream's add nothing");

    const later = await scrape(server);
    const cpu = (scrape: Scrape) => scrape.value('amphi_media_worker_cpu_seconds_total');
    assert.ok(cpu(later) > 0, 'the workers used CPU');
    listener.client.ws.close();
    receiver.close();
  });

  test('is answered while the node drains, when the API is not', async () => {
    const draining = await startTestAmphi();
    try {
      draining.amphi.drain();
      assert.equal((await fetch(`${draining.amphi.url}/healthz`)).status, 503);
      assert.equal((await scrape(draining)).value('amphi_api_requests_total'), 0, '/healthz and /metrics are not API calls');
      assert.equal((await fetch(`${draining.amphi.url}/meetings/11111111-2222-3333-4444-555555555555`)).status, 503);
      assert.equal((await scrape(draining)).value('amphi_api_requests_total', { operation: 'GetMeeting', code: '503' }), 1);
    } finally {
      await draining.stop();
    }
  });

  test('--metrics off serves no /metrics; other values are refused', async () => {
    const quiet = await startTestAmphi({ env: { AMPHI_METRICS: 'off' } });
    try {
      assert.equal((await fetch(`${quiet.amphi.url}/metrics`)).status, 404);
    } finally {
      await quiet.stop();
    }
    assert.throws(() => loadConfig(['--metrics', 'maybe'], {}), /--metrics \/ AMPHI_METRICS/);
  });
});

describe('SnapshotHistogram', () => {
  test('renders counts made elsewhere as a Prometheus histogram', async () => {
    const counts = new HistogramCounts([0.25, 0.5, 1]);
    for (const value of [0.125, 0.25, 0.375, 0.75, 4]) counts.observe(value);
    const registry = new Registry();
    const histogram = new SnapshotHistogram('test_lateness_seconds', 'lateness', registry);
    histogram.set({ worker: 'media-0' }, counts.snapshot());
    const text = await registry.metrics();
    assert.match(text, /# TYPE test_lateness_seconds histogram/);
    const lines = text.split('\n').filter((line) => line.startsWith('test_lateness_seconds'));
    assert.deepEqual(lines, [
      'test_lateness_seconds_bucket{worker="media-0",le="0.25"} 2',
      'test_lateness_seconds_bucket{worker="media-0",le="0.5"} 3',
      'test_lateness_seconds_bucket{worker="media-0",le="1"} 4',
      'test_lateness_seconds_bucket{worker="media-0",le="+Inf"} 5',
      'test_lateness_seconds_sum{worker="media-0"} 5.5',
      'test_lateness_seconds_count{worker="media-0"} 5',
    ]);
  });
});
