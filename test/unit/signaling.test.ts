import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, DeleteAttendeeCommand, DeleteMeetingCommand, type Attendee, type Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import {
  decodeFrame,
  encodeFrame,
  FrameError,
  FrameType,
  SdkPingPongType,
  SdkServerSideNetworkAdaption,
  SdkStreamMediaType,
  SdkStreamServiceType,
} from '../../src/signaling/frames.ts';
import { PeerHandle } from '../../src/media/worker/peer-handle.ts';
import { RawClient } from '../support/raw-signaling.ts';
import { startTestAmphi, type TestAmphi } from '../support/helpers.ts';

let server: TestAmphi;
let meeting: Meeting;
const url = () => meeting.MediaPlacement!.SignalingUrl!;
const attendee = async (externalUserId: string): Promise<Attendee> =>
  (await server.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: externalUserId }))).Attendee!;

before(async () => {
  server = await startTestAmphi();
  meeting = (await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'signaling' }))).Meeting!;
});
after(() => server.stop());

describe('frame codec', () => {
  test('round-trips a frame and refuses malformed bytes with FrameError', () => {
    const frame = decodeFrame(encodeFrame({ type: FrameType.JOIN_ACK, joinack: { videoSubscriptionLimit: 25 } }, Date.now()));
    assert.equal(frame.type, FrameType.JOIN_ACK);
    assert.equal(frame.joinack?.videoSubscriptionLimit, 25);
    const garbage = [Buffer.alloc(0), Buffer.from([5]), Buffer.from([9, 1, 2, 3]), Buffer.from([5, 0xff, 0xff, 0xff, 0xff, 0x0f]), Buffer.from([5, 8])];
    for (const bytes of garbage) assert.throws(() => decodeFrame(bytes), FrameError, bytes.toString('hex'));
    for (let i = 0; i < 2000; i++) {
      const random = Buffer.from([5, ...Array.from({ length: 1 + (i % 40) }, () => Math.floor(Math.random() * 256))]);
      try {
        decodeFrame(random);
      } catch (error) {
        assert.ok(error instanceof FrameError, String(error));
      }
    }
  });
});

describe('authentication', () => {
  test('an unknown token is refused at the handshake', async () => {
    await assert.rejects(RawClient.connect(url(), 'bm90LWEtdG9rZW4'), /HTTP 403/);
  });

  test('a token of another meeting is refused', async () => {
    const other = (await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'other' }))).Meeting!;
    const stranger = (await server.client.send(new CreateAttendeeCommand({ MeetingId: other.MeetingId, ExternalUserId: 'stranger' }))).Attendee!;
    await assert.rejects(RawClient.connect(url(), stranger.JoinToken!), /HTTP 403/);
  });

  test('the session subprotocol is echoed', async () => {
    const client = await RawClient.connect(url(), (await attendee('echo')).JoinToken!);
    assert.equal(client.ws.protocol, '_aws_wt_session');
    client.ws.close();
  });
});

describe('hostile input', () => {
  test('garbage, text frames, frames out of order and a bad SDP leave the session and its neighbours working', async () => {
    const bystander = await RawClient.connect(url(), (await attendee('bystander')).JoinToken!);
    await bystander.join();
    const client = await RawClient.connect(url(), (await attendee('hostile')).JoinToken!);
    client.ws.send(Buffer.from([5, 0xff, 0xff, 0xff]));
    client.ws.send('hello as text');
    client.ws.send(Buffer.from([42, 1, 2]));
    client.send({ type: FrameType.SUBSCRIBE, sub: { sdpOffer: 'v=0' } }); // before JOIN
    assert.ok(await client.ping(1), 'still answering');
    await client.join();
    client.send({ type: FrameType.SUBSCRIBE, sub: { sdpOffer: 'this is not SDP at all' } });
    const ack = await client.next(FrameType.SUBSCRIBE_ACK);
    assert.equal(ack.error?.status, 400, 'a bad offer is answered with a 400 error');
    assert.ok(ack.suback, 'and a suback, which the client reads before the status');
    client.send({ type: FrameType.SUBSCRIBE, sub: { sdpOffer: 'v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n' } });
    const second = await client.next(FrameType.SUBSCRIBE_ACK);
    assert.equal(second.error?.status, 400);
    assert.ok(second.suback);
    client.send({ type: FrameType.JOIN, join: {} }); // twice
    assert.ok(await client.ping(2));
    assert.ok(await bystander.ping(3), 'the neighbour is unaffected');
    client.ws.close();
    bystander.ws.close();
  });

  test('a SUBSCRIBE the server fails to answer gets a SUBSCRIBE_ACK with a status the client reconnects on', async () => {
    const offer = JSON.parse(readFileSync(new URL('../support/fixtures/offers/chrome-first-offer.json', import.meta.url), 'utf8')) as { sdpOffer: string };
    const client = await RawClient.connect(url(), (await attendee('unlucky')).JoinToken!);
    await client.join();
    const negotiate = PeerHandle.prototype.negotiate;
    PeerHandle.prototype.negotiate = () => Promise.reject(new Error('media worker media-0 exited (1)'));
    try {
      client.send({ type: FrameType.SUBSCRIBE, sub: { duplex: SdkStreamServiceType.RX, sdpOffer: offer.sdpOffer, receiveStreamIds: [0] } });
      const ack = await client.next(FrameType.SUBSCRIBE_ACK);
      assert.ok(ack.suback, 'a suback the client can read');
      // 5xx maps to SignalingInternalServerError, a failure the SDK reconnects on; 4xx would end the session.
      assert.equal(Math.floor((ack.error?.status ?? 0) / 100), 5);
    } finally {
      PeerHandle.prototype.negotiate = negotiate;
    }
    client.send({ type: FrameType.SUBSCRIBE, sub: { duplex: SdkStreamServiceType.RX, sdpOffer: offer.sdpOffer, receiveStreamIds: [0] } });
    const retry = await client.next(FrameType.SUBSCRIBE_ACK);
    assert.equal(retry.error, null, 'the next SUBSCRIBE is answered normally');
    assert.match(retry.suback?.sdpAnswer ?? '', /^v=0/);
    client.ws.close();
  });

  test('a flood of frames closes only the flooder', async () => {
    const bystander = await RawClient.connect(url(), (await attendee('calm')).JoinToken!);
    const flooder = await RawClient.connect(url(), (await attendee('flooder')).JoinToken!);
    const ping = encodeFrame({ type: FrameType.PING_PONG, pingPong: { type: SdkPingPongType.PING, pingId: 7 } }, Date.now());
    for (let i = 0; i < 1000; i++) flooder.ws.send(ping);
    assert.notEqual(await flooder.closed(), -1, 'the flooder is cut off');
    assert.ok(await bystander.ping(9));
    bystander.ws.close();
  });
});

describe('control-plane events reach connected clients', () => {
  test('DeleteAttendee: AUDIO_STATUS 411 at once, and a retry gets 411 again', async () => {
    const removed = await attendee('removed');
    const client = await RawClient.connect(url(), removed.JoinToken!);
    await client.join();
    await server.client.send(new DeleteAttendeeCommand({ MeetingId: meeting.MeetingId, AttendeeId: removed.AttendeeId }));
    assert.equal((await client.next(FrameType.AUDIO_STATUS)).audioStatus?.audioStatus, 411);
    await client.closed();
    const retry = await RawClient.connect(url(), removed.JoinToken!);
    assert.equal((await retry.next(FrameType.AUDIO_STATUS)).audioStatus?.audioStatus, 411);
  });

  test('the same attendee from a second connection: the first gets 301', async () => {
    const twice = await attendee('twice');
    const first = await RawClient.connect(url(), twice.JoinToken!);
    await first.join();
    const second = await RawClient.connect(url(), twice.JoinToken!);
    assert.equal((await first.next(FrameType.AUDIO_STATUS)).audioStatus?.audioStatus, 301);
    await second.join();
    second.ws.close();
  });

  test('a third content share in a meeting answers 409 (AudioCallAtCapacity)', async () => {
    const shares: RawClient[] = [];
    for (const name of ['sharer-1', 'sharer-2', 'sharer-3']) {
      // A content share connects as <AttendeeId>#content with <JoinToken>#content.
      const share = await RawClient.connect(url(), `${(await attendee(name)).JoinToken}#content`);
      share.send({ type: FrameType.JOIN, join: {} });
      shares.push(share);
      if (shares.length < 3) await share.next(FrameType.JOIN_ACK);
    }
    assert.equal((await shares[2]!.next(FrameType.AUDIO_STATUS)).audioStatus?.audioStatus, 409);
    for (const client of shares) client.ws.close();
  });

  test('DeleteMeeting: AUDIO_STATUS 410 and close code 4410; a retry is told the meeting ended', async () => {
    const doomed = (await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'doomed' }))).Meeting!;
    const member = (await server.client.send(new CreateAttendeeCommand({ MeetingId: doomed.MeetingId, ExternalUserId: 'member' }))).Attendee!;
    const client = await RawClient.connect(doomed.MediaPlacement!.SignalingUrl!, member.JoinToken!);
    await client.join();
    await server.client.send(new DeleteMeetingCommand({ MeetingId: doomed.MeetingId }));
    assert.equal((await client.next(FrameType.AUDIO_STATUS)).audioStatus?.audioStatus, 410);
    assert.equal(await client.closed(), 4410);
    const retry = await RawClient.connect(doomed.MediaPlacement!.SignalingUrl!, member.JoinToken!);
    assert.equal(await retry.closed(), 4410);
  });

  test('after DeleteMeeting, an attendee who had not connected yet is told the meeting ended too', async () => {
    const doomed = (await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'doomed-late' }))).Meeting!;
    const late = (await server.client.send(new CreateAttendeeCommand({ MeetingId: doomed.MeetingId, ExternalUserId: 'late' }))).Attendee!;
    await server.client.send(new DeleteMeetingCommand({ MeetingId: doomed.MeetingId }));
    const client = await RawClient.connect(doomed.MediaPlacement!.SignalingUrl!, late.JoinToken!);
    assert.equal((await client.next(FrameType.AUDIO_STATUS)).audioStatus?.audioStatus, 410);
    assert.equal(await client.closed(), 4410);
  });

  test('LEAVE is acknowledged', async () => {
    const client = await RawClient.connect(url(), (await attendee('leaver')).JoinToken!);
    await client.join();
    client.send({ type: FrameType.LEAVE, leave: {} });
    await client.next(FrameType.LEAVE_ACK);
  });
});

describe('what the client reads', () => {
  test('JOIN_ACK says on the wire that the client adapts video itself (server-side adaptation NONE)', async () => {
    const client = await RawClient.connect(url(), (await attendee('adapter')).JoinToken!);
    client.send({ type: FrameType.JOIN, join: { protocolVersion: 2, flags: 2 } });
    const joinack = (await client.next(FrameType.JOIN_ACK)).joinack!;
    assert.ok(Object.hasOwn(joinack, 'defaultServerSideNetworkAdaption'), 'sent, not left to the decoded default');
    assert.equal(joinack.defaultServerSideNetworkAdaption, SdkServerSideNetworkAdaption.NONE);
    client.ws.close();
  });

  test('DATA_MESSAGE ingest times are exact nanoseconds on the wire', async () => {
    const sender = await RawClient.connect(url(), (await attendee('stamp-sender')).JoinToken!);
    const receiver = await RawClient.connect(url(), (await attendee('stamp-receiver')).JoinToken!);
    const wire: Buffer[] = [];
    receiver.ws.on('message', (data: Buffer) => wire.push(data));
    await sender.join();
    await receiver.join();
    const sentFrom = Date.now();
    for (let i = 0; i < 8; i++) {
      sender.send({ type: FrameType.DATA_MESSAGE, dataMessage: { messages: [{ topic: 'stamps', data: Buffer.from(String(i)) }] } });
      await new Promise((resolve) => setTimeout(resolve, 3));
    }
    for (let i = 0; i < 8; i++) await receiver.next(FrameType.DATA_MESSAGE);
    // The SDK's decoder reads int64 as a double, so the exact value is read from the bytes:
    // SdkSignalFrame.data_message (23) > messages (1) > ingest_time_ns (5).
    const stamps = wire.flatMap((frame) => varintsAt(frame.subarray(1), [23, 1, 5]));
    assert.equal(stamps.length, 8);
    for (const nanos of stamps) {
      assert.equal(nanos % 1_000_000n, 0n, `ingest time ${nanos} ns is a whole millisecond`);
      const ms = Number(nanos / 1_000_000n);
      assert.ok(ms >= sentFrom && ms <= Date.now(), `ingest time ${ms} ms is when it was sent`);
    }
    sender.ws.close();
    receiver.ws.close();
  });
});

describe('video capacity', () => {
  test('INDEX says at_capacity to everyone else once 25 attendees publish video', async () => {
    const fixture = JSON.parse(
      (await import('node:fs')).readFileSync(new URL('../support/fixtures/offers/chrome-camera-and-subscription.json', import.meta.url), 'utf8'),
    ) as { sdpOffer: string; sendStreams: { mediaType: string }[] };
    const room = (await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'twenty-five' }))).Meeting!;
    const join = async (name: string) => {
      const member = (await server.client.send(new CreateAttendeeCommand({ MeetingId: room.MeetingId, ExternalUserId: name }))).Attendee!;
      const client = await RawClient.connect(room.MediaPlacement!.SignalingUrl!, member.JoinToken!);
      const index = await client.join();
      return { client, index };
    };
    const publish = async (client: RawClient) => {
      const sendStreams = fixture.sendStreams.map((stream) => ({ ...stream, mediaType: SdkStreamMediaType[stream.mediaType as 'AUDIO' | 'VIDEO'] }));
      client.send({ type: FrameType.SUBSCRIBE, sub: { duplex: SdkStreamServiceType.DUPLEX, sdpOffer: fixture.sdpOffer, sendStreams, receiveStreamIds: [0] } });
      return (await client.next(FrameType.SUBSCRIBE_ACK)).suback!;
    };
    const publishers = [];
    for (let i = 0; i < 25; i++) {
      const member = await join(`publisher-${i}`);
      assert.equal(member.index.index?.atCapacity, false, `publisher ${i} may publish`);
      const ack = await publish(member.client);
      assert.equal(ack.allocations?.length, 1, `publisher ${i} got a stream`);
      publishers.push(member);
    }
    const late = await join('late');
    assert.equal(late.index.index?.atCapacity, true, 'the 26th sees the meeting at video capacity');
    assert.equal(late.index.index?.sources?.length, 25);
    const ack = await publish(late.client);
    assert.equal(ack.allocations?.length ?? 0, 0, 'and gets no allocation if it tries');
    for (const member of [...publishers, late]) member.client.ws.close();
  });
});

describe('simulcast layer switches by REMOTE_VIDEO_UPDATE (client-side adaptation)', () => {
  const recorded = (name: string) =>
    JSON.parse(readFileSync(new URL(`../support/fixtures/offers/${name}.json`, import.meta.url), 'utf8')) as {
      sdpOffer: string;
      sendStreams: { mediaType: string }[];
    };
  const sendStreamsOf = (name: string) =>
    recorded(name).sendStreams.map((stream) => ({ ...stream, mediaType: SdkStreamMediaType[stream.mediaType as 'AUDIO' | 'VIDEO'] }));

  test('moves the m-line to the new layer of the same source on the same SSRC, ignores other sources, stops removed m-lines', async () => {
    const room = (await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'layer-switch' }))).Meeting!;
    const join = async (name: string) => {
      const member = (await server.client.send(new CreateAttendeeCommand({ MeetingId: room.MeetingId, ExternalUserId: name }))).Attendee!;
      const client = await RawClient.connect(room.MediaPlacement!.SignalingUrl!, member.JoinToken!);
      await client.join();
      return client;
    };
    const publish = async (client: RawClient) => {
      const sub = { duplex: SdkStreamServiceType.DUPLEX, sdpOffer: recorded('chrome-simulcast-publish').sdpOffer, sendStreams: sendStreamsOf('chrome-simulcast-publish'), receiveStreamIds: [0] };
      client.send({ type: FrameType.SUBSCRIBE, sub });
      return (await client.next(FrameType.SUBSCRIBE_ACK)).suback!.allocations!.map((a) => a.streamId!);
    };
    const [low, , high] = await publish(await join('simulcaster'));
    const [otherSource] = await publish(await join('other-simulcaster'));
    const viewer = await join('viewer');
    viewer.send({ type: FrameType.SUBSCRIBE, sub: { duplex: SdkStreamServiceType.RX, sdpOffer: recorded('chrome-subscribe-one').sdpOffer, receiveStreamIds: [0, low!] } });
    const track = (await viewer.next(FrameType.SUBSCRIBE_ACK)).suback!.tracks![0]!;
    assert.equal(track.streamId, low);
    const subscriptions = async () => {
      const stats = await server.amphi.signaling.conference(room.MeetingId!)!.stats();
      return stats.find((s) => s.externalUserId === 'viewer')!.media!.subscriptions;
    };
    const waitForSubscriptions = async (check: (subs: Awaited<ReturnType<typeof subscriptions>>) => boolean, what: string) => {
      const deadline = Date.now() + 5000;
      for (;;) {
        const subs = await subscriptions();
        if (check(subs)) return subs;
        if (Date.now() > deadline) throw new Error(`${what}: ${JSON.stringify(subs)}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    const update = (addedOrUpdatedVideoSubscriptions: { mid: string; streamId: number }[], removedVideoSubscriptionMids: string[] = []) =>
      viewer.send({ type: FrameType.REMOTE_VIDEO_UPDATE, remoteVideoUpdate: { addedOrUpdatedVideoSubscriptions, removedVideoSubscriptionMids } });

    update([{ mid: '2', streamId: high! }]);
    const switched = await waitForSubscriptions((subs) => subs[0]?.streamId === high, 'the m-line moves to the high layer');
    assert.deepEqual(switched.map((s) => [s.mid, s.ssrc]), [['2', track.ssrc]], 'same m-line, same SSRC: the client sees the same track');

    update([{ mid: '2', streamId: otherSource! }]);
    update([{ mid: '7', streamId: low! }]);
    assert.ok(await viewer.ping(1));
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual((await subscriptions()).map((s) => s.streamId), [high], 'another source, or an m-line that receives nothing, takes a SUBSCRIBE');

    update([], ['2']);
    await waitForSubscriptions((subs) => subs.length === 0, 'the removed m-line stops');
    assert.equal(viewer.frames.filter((f) => f.type === FrameType.SUBSCRIBE_ACK).length, 0, 'the client expects no answer');
  });
});

/** The varint fields at a path of nested protobuf messages, read exactly. */
function varintsAt(bytes: Uint8Array, path: number[]): bigint[] {
  const found: bigint[] = [];
  let pos = 0;
  const varint = () => {
    let value = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const byte = bytes[pos++]!;
      value |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return value;
    }
  };
  while (pos < bytes.length) {
    const tag = Number(varint());
    const [field, wireType] = [tag >>> 3, tag & 7];
    if (wireType === 0) {
      const value = varint();
      if (path.length === 1 && field === path[0]) found.push(value);
    } else if (wireType === 2) {
      const length = Number(varint());
      if (path.length > 1 && field === path[0]) found.push(...varintsAt(bytes.subarray(pos, pos + length), path.slice(1)));
      pos += length;
    } else {
      pos += wireType === 1 ? 8 : 4;
    }
  }
  return found;
}
