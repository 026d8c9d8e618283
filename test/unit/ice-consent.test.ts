import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { buildNack, rtp } from '../../src/media/protocol/rtp.ts';
import { parseOffer } from '../../src/media/protocol/sdp.ts';
import type { MediaPeer } from '../../src/media/sfu/peer.ts';
import { VideoLayer } from '../../src/media/sfu/video-forwarding.ts';
import { MediaWorker } from '../../src/media/worker/media-worker.ts';
import { serverEndpoint, WebRtcReceiver } from '../support/webrtc-receiver.ts';

/**
 * RFC 7675 on the server's side: a viewer whose ICE agent stops sending checks gets nothing but STUN
 * answers once its consent expires (no audio, no video, no retransmission, no RTCP), and all of it again
 * once its checks resume. Consent lasts 1.5 s here instead of 30 s.
 */

const CONSENT_TIMEOUT_MS = 1500;
const OPUS = 111;
const VP8 = 96;
/** The recorded offer: audio sendrecv (mid 0), a camera (mid 1), one receive-only video m-line (mid 2). */
const recordedOffer = () =>
  parseOffer((JSON.parse(readFileSync(path.join(import.meta.dirname, '../support/fixtures/offers/chrome-subscribe-one.json'), 'utf8')) as { sdpOffer: string }).sdpOffer);

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls until `condition` holds; fails with `what` after `ms`. */
async function waitFor(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await delay(20);
  }
}

/** A camera feeding the room's layer as a publisher's peer would: a 50 packet/s VP8 stream, a key frame every 25th. */
class Camera {
  private seq = 1000;
  private readonly timer: NodeJS.Timeout;
  constructor(private readonly layer: VideoLayer) {
    this.timer = setInterval(() => this.send(), 20);
  }
  private send(): void {
    const seq = this.seq++ & 0xffff;
    const keyFrame = seq % 25 === 0;
    const packet = Buffer.alloc(12 + 1000);
    packet[0] = 0x80;
    packet[1] = VP8;
    packet.writeUInt16BE(seq, 2);
    packet.writeUInt32BE((seq * 3000) >>> 0, 4);
    packet.writeUInt32BE(0x1234, 8);
    packet[12] = 0x10; // VP8 payload descriptor: start of partition 0
    packet[13] = keyFrame ? 0x00 : 0x01; // frame tag: bit 0 clear on a key frame
    this.layer.receive(packet, 12, packet.length);
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

/** What the receiver got, by kind, and which video sequence numbers. */
class Tally {
  audio = 0;
  video = 0;
  readonly videoSeqs = new Set<number>();
  constructor(receiver: WebRtcReceiver) {
    receiver.on('rtp', (packet) => {
      const payloadType = rtp.payloadType(packet);
      if (payloadType === OPUS) this.audio++;
      else if (payloadType === VP8) {
        this.video++;
        this.videoSeqs.add(rtp.sequence(packet));
      }
    });
  }
  arrived(seq: number): boolean {
    return this.videoSeqs.has(seq);
  }
}

let worker: MediaWorker;
let receiver: WebRtcReceiver;
let camera: Camera;
let viewer: MediaPeer;
let videoSsrc: number;

before(async () => {
  worker = await MediaWorker.start({
    listenIp: '127.0.0.1',
    port: 0,
    announcedIp: '127.0.0.1',
    logger: pino({ level: 'silent' }),
    consentTimeoutMs: CONSENT_TIMEOUT_MS,
  });
  const room = worker.createRoom('consent');
  const layer = new VideoLayer(1, 10, () => undefined);
  room.addLayer(layer);
  camera = new Camera(layer);
  viewer = worker.createPeer(room, 'viewer-peer', 'viewer');
  receiver = await WebRtcReceiver.open({ checkIntervalMs: 200 });
  const { answer, tracks } = viewer.negotiate({
    offer: receiver.own(recordedOffer()),
    sendAudio: true,
    receiveAudio: true,
    audioMuted: false,
    publish: [],
    subscriptions: [1],
  });
  assert.equal(tracks.length, 1, 'the viewer receives the camera');
  videoSsrc = tracks[0]!.ssrc;
  await receiver.connect(serverEndpoint(answer));
});

after(() => {
  camera?.stop();
  receiver?.close();
  worker?.close();
});

describe('ICE consent freshness (RFC 7675)', () => {
  test('a viewer that stops its consent checks gets no media after expiry, and all of it again when they resume', async () => {
    const tally = new Tally(receiver);
    const transport = viewer.transport;

    // Consenting: audio (the mix), video and NACK retransmissions all arrive.
    await waitFor(() => tally.audio > 10 && tally.video > 10, 5000, 'audio and video reaching the viewer');
    const before = viewer.stats();
    assert.equal(before.consentFresh, true);
    assert.ok(before.lastConsentAt > 0 && before.lastConsentAt <= Date.now());
    // A lost packet, NACKed, comes again (a packet the receiver has seen would be an SRTP replay to it).
    const [lost] = await receiver.loseNext(videoSsrc, 1);
    assert.equal(tally.arrived(lost!), false);
    receiver.sendRtcp(buildNack(0x5eed, videoSsrc, [lost!]));
    await waitFor(() => tally.arrived(lost!), 5000, 'a retransmission answering a NACK while consent is fresh');

    // The checks stop; consent expires (the peer tells its stats and its connection state).
    const lostBeforeExpiry = await receiver.loseNext(videoSsrc, 5);
    receiver.stopConsent();
    const stoppedAt = Date.now();
    await waitFor(() => !viewer.stats().consentFresh, CONSENT_TIMEOUT_MS + 5000, 'consent expiring');
    assert.equal(viewer.stats().connected, false);
    assert.ok(viewer.stats().lastConsentAt <= stoppedAt, 'no check came after the receiver stopped');
    // What the transport sent before the expiry is all still on its way: let it land, then count.
    const sentBeforeExpiry = transport.stats.rtpOut;
    const rtcpBeforeExpiry = transport.stats.rtcpOut;
    await waitFor(() => receiver.received.rtp + receiver.received.lost >= sentBeforeExpiry, 5000, 'packets sent before the expiry landing');
    const receivedAtExpiry = { ...receiver.received };
    const videoAtExpiry = tally.video;
    const forwardedAtExpiry = viewer.stats().subscriptions[0]!.forwarded;

    // Two seconds of the camera and the mix going on, and NACKs for the packets the viewer lost.
    const rtcpInAtExpiry = transport.stats.rtcpIn;
    for (let i = 0; i < 4; i++) {
      receiver.sendRtcp(buildNack(0x5eed, videoSsrc, lostBeforeExpiry));
      await delay(500);
    }
    assert.equal(transport.stats.rtcpIn, rtcpInAtExpiry + 4, 'the server still heard the NACKs');
    assert.ok(viewer.stats().subscriptions[0]!.forwarded > forwardedAtExpiry, 'the camera kept coming to the viewer’s downstream');
    assert.equal(receiver.received.rtp, receivedAtExpiry.rtp, 'no RTP at all (audio, video or retransmission) after consent expired');
    assert.equal(receiver.received.rtcp, receivedAtExpiry.rtcp, 'no RTCP after consent expired');
    assert.equal(tally.video, videoAtExpiry);
    assert.deepEqual(lostBeforeExpiry.filter((seq) => tally.arrived(seq)), [], 'no retransmission');
    assert.equal(transport.stats.rtpOut, sentBeforeExpiry, 'the transport sent no RTP');
    assert.equal(transport.stats.rtcpOut, rtcpBeforeExpiry, 'the transport sent no RTCP');

    // The checks resume: consent is back and so is the media, retransmissions included.
    const stunBefore = receiver.received.stunResponses;
    const audioBefore = tally.audio;
    const videoBefore = tally.video;
    receiver.startConsent();
    await waitFor(() => viewer.stats().consentFresh && viewer.stats().connected, 5000, 'consent coming back');
    assert.ok(receiver.received.stunResponses > stunBefore, 'the server answered the checks');
    await waitFor(() => tally.audio > audioBefore + 10 && tally.video > videoBefore + 10, 5000, 'audio and video resuming');
    // (Packets lost before the expiry are now beyond the receiver's SRTP replay window: a fresh loss.)
    const [lostAfter] = await receiver.loseNext(videoSsrc, 1);
    receiver.sendRtcp(buildNack(0x5eed, videoSsrc, [lostAfter!]));
    await waitFor(() => tally.arrived(lostAfter!), 5000, 'retransmissions resuming');
  });

  test('a viewer whose path changes (to a relay and back) gets its media on the new path, and consent follows it', async () => {
    const tally = new Tally(receiver);
    await waitFor(() => tally.audio > 5 && tally.video > 5, 5000, 'media on the first path');
    for (let move = 0; move < 2; move++) {
      const port = await receiver.move();
      const audioBefore = tally.audio;
      const videoBefore = tally.video;
      await waitFor(() => tally.audio > audioBefore + 10 && tally.video > videoBefore + 10, 5000, `media on the new path (port ${port})`);
      assert.equal(viewer.stats().consentFresh, true, 'consent is fresh on the new path');
      assert.equal(viewer.stats().connected, true);
    }
  });

  test('checks keep being answered while consent is expired (STUN is the one thing that may be sent)', async () => {
    receiver.stopConsent();
    await waitFor(() => !viewer.stats().consentFresh, CONSENT_TIMEOUT_MS + 5000, 'consent expiring');
    const answered = receiver.received.stunResponses;
    receiver.startConsent();
    await waitFor(() => receiver.received.stunResponses > answered, 5000, 'an answer to a check after expiry');
    await waitFor(() => viewer.stats().consentFresh, 5000, 'consent coming back');
  });
});
