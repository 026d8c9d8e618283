import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import sdpTransform from 'sdp-transform';
import { parseOffer, SdpError } from '../../src/media/protocol/sdp.ts';
import type { MediaPeer, PublishedLayer } from '../../src/media/sfu/peer.ts';
import type { MediaRoom } from '../../src/media/sfu/room.ts';
import { MediaWorker } from '../../src/media/worker/media-worker.ts';

/** Offers recorded from Chromium 156 running amazon-chime-sdk-js 3.32.0 against Amphi. */
const fixture = (name: string) =>
  JSON.parse(readFileSync(path.join(import.meta.dirname, '../support/fixtures/offers', `${name}.json`), 'utf8')) as { sdpOffer: string; receiveStreamIds: number[] };
const FIXTURES = ['chrome-first-offer', 'chrome-subscribe-one', 'chrome-camera-and-subscription', 'chrome-simulcast-publish', 'chrome-simulcast-with-subscription'];

let worker: MediaWorker;
let room: MediaRoom;
const peers: MediaPeer[] = [];
const newPeer = (id: string) => {
  const peer = worker.createPeer(room, `peer-${peers.length}`, id);
  peers.push(peer);
  return peer;
};
const layer = (streamId: number, groupId: number, layerIndex = 0, layerCount = 1): PublishedLayer => ({
  streamId,
  groupId,
  trackLabel: layerCount > 1 ? '' : 'AmazonChimeExpressVideo',
  maxBitrateKbps: 1000,
  width: 0,
  height: 0,
  framerate: 15,
  layerIndex,
  layerCount,
});
const base = { sendAudio: true, receiveAudio: true, audioMuted: false };

before(async () => {
  worker = await MediaWorker.start({ listenIp: '127.0.0.1', port: 0, announcedIp: '127.0.0.1', logger: pino({ level: 'silent' }) });
  room = worker.createRoom('sdp-test');
});
after(() => {
  for (const peer of peers) peer.close();
  worker.close();
});

describe('parsing offers', () => {
  test('every recorded offer parses into its m-lines', () => {
    for (const name of FIXTURES) {
      const offer = parseOffer(fixture(name).sdpOffer);
      assert.equal(offer.media[0]!.kind, 'audio', name);
      assert.equal(offer.media[1]!.kind, 'video', name);
      assert.match(offer.fingerprint.value, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    }
    const simulcast = parseOffer(fixture('chrome-simulcast-publish').sdpOffer);
    assert.deepEqual(simulcast.media[1]!.sendRids, ['low', 'mid', 'hi']);
  });

  test('values that look like numbers are read as text (the fuzz suite found codec names that crashed the parser)', () => {
    const original = fixture('chrome-first-offer').sdpOffer;
    const numeric = original
      .replace(/a=rtpmap:111 opus\/48000\/2/, 'a=rtpmap:111 123/48000/2')
      .replace(/a=ice-ufrag:\S+/g, 'a=ice-ufrag:1234')
      .replace(/a=ice-pwd:\S+/g, 'a=ice-pwd:123456789012345678901234')
      .replace(/a=setup:\S+/g, 'a=setup:1');
    const offer = parseOffer(numeric);
    assert.equal(offer.iceUfrag, '1234');
    assert.equal(offer.icePwd, '123456789012345678901234');
    assert.equal(offer.setup, '1');
    assert.ok(offer.media[0]!.codecs.some((codec) => codec.payloadType === 111 && codec.name === '123'));
  });

  test('garbage and mutilated offers fail with SdpError only', () => {
    for (const bad of ['', 'garbage', 'v=0\r\n', 'v=0\r\nm=audio 9 RTP/AVP 0\r\n']) assert.throws(() => parseOffer(bad), SdpError, JSON.stringify(bad));
    const original = fixture('chrome-camera-and-subscription').sdpOffer;
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let i = 0; i < 500; i++) {
      const lines = original.split('\r\n');
      const mutated = [...lines];
      for (let k = 0; k < 3; k++) {
        const at = random(mutated.length);
        const action = random(4);
        if (action === 0) mutated.splice(at, 1);
        else if (action === 1) mutated[at] = mutated[at]!.slice(0, random(mutated[at]!.length + 1));
        else if (action === 2) mutated.splice(at, 0, mutated[random(mutated.length)]!);
        else mutated[at] = mutated[at]!.replace(/[0-9]/, 'x');
      }
      try {
        parseOffer(mutated.join('\r\n'));
      } catch (error) {
        assert.ok(error instanceof SdpError, `mutation ${i}: ${String(error)}`);
      }
    }
  });
});

describe('answers written from the model', () => {
  test('the first offer: one answer m-line per offer m-line, BUNDLE, ICE-lite, passive DTLS, opus', () => {
    const offer = parseOffer(fixture('chrome-first-offer').sdpOffer);
    const { answer, tracks } = newPeer('first').negotiate({ ...base, offer, publish: [], subscriptions: [] });
    const parsed = sdpTransform.parse(answer);
    assert.equal(parsed.media.length, offer.media.length);
    assert.deepEqual(parsed.media.map((m) => String(m.mid)), offer.media.map((m) => m.mid));
    assert.equal(parsed.groups?.[0]?.mids, offer.media.map((m) => m.mid).join(' '));
    assert.ok(answer.includes('a=ice-lite'));
    for (const media of parsed.media) {
      assert.equal(media.setup, 'passive');
      assert.notEqual(media.port, 0, 'no m-line is rejected: the client would stop its transceiver');
      assert.equal(media.rtcpMux, 'rtcp-mux');
      assert.equal(media.candidates?.[0]?.type, 'host');
    }
    const audio = parsed.media[0]!;
    assert.equal(audio.direction, 'sendrecv');
    assert.deepEqual(audio.rtp.map((r) => r.codec), ['opus']);
    assert.ok(audio.ext?.some((e) => e.uri === 'urn:ietf:params:rtp-hdrext:ssrc-audio-level'));
    assert.equal(parsed.media[1]!.direction, 'inactive', 'camera off');
    assert.deepEqual(tracks, []);
  });

  test('publishing and subscribing: recvonly camera, sendonly subscription with msid = track label', () => {
    const publisher = newPeer('publisher');
    publisher.negotiate({ ...base, offer: parseOffer(fixture('chrome-camera-and-subscription').sdpOffer), publish: [layer(10, 100)], subscriptions: [] });
    const subscriber = newPeer('subscriber');
    const recorded = fixture('chrome-camera-and-subscription');
    const offer = parseOffer(recorded.sdpOffer);
    const result = subscriber.negotiate({ ...base, offer, publish: [layer(20, 200)], subscriptions: [10] });
    const parsed = sdpTransform.parse(result.answer);
    assert.equal(parsed.media[1]!.direction, 'recvonly');
    assert.deepEqual(parsed.media[1]!.rtp.map((r) => r.codec), ['VP8', 'rtx'].slice(0, parsed.media[1]!.rtp.length));
    // This recorded re-offer keeps an inactive m-line (mid 2) before the receive-only one (mid 3).
    assert.equal(parsed.media[2]!.direction, 'inactive');
    const subscriptionLine = parsed.media[3]!;
    assert.equal(subscriptionLine.direction, 'sendonly');
    assert.equal(result.tracks.length, 1);
    const track = result.tracks[0]!;
    assert.equal(track.streamId, 10);
    const msid = String(subscriptionLine.ssrcs?.find((s) => s.attribute === 'msid')?.value ?? '').split(' ')[0];
    assert.equal(msid, track.trackLabel, 'the client finds the stream by msid stream id = track_label');
    // The client looks a transceiver's stream up by 'v_' + mid; another label makes it stop and recreate every
    // receive transceiver at each resubscription.
    assert.equal(track.trackLabel, `v_${subscriptionLine.mid}`);
    assert.equal(Number(subscriptionLine.ssrcs?.[0]?.id), track.ssrc);

    // A re-offer keeps the stream on the same SSRC; an unsubscribed m-line is inactive, not rejected.
    const again = subscriber.negotiate({ ...base, offer, publish: [layer(20, 200)], subscriptions: [10] });
    assert.equal(again.tracks[0]!.ssrc, track.ssrc);
    assert.ok(Number(sdpTransform.parse(again.answer).origin?.sessionVersion) > Number(parsed.origin?.sessionVersion));
    const dropped = subscriber.negotiate({ ...base, offer, publish: [layer(20, 200)], subscriptions: [] });
    const droppedLine = sdpTransform.parse(dropped.answer).media[3]!;
    assert.equal(droppedLine.direction, 'inactive');
    assert.notEqual(droppedLine.port, 0);
    assert.deepEqual(dropped.tracks, []);
  });

  test('simulcast: the answer accepts the rids in order, with the rid and mid extensions', () => {
    const offer = parseOffer(fixture('chrome-simulcast-publish').sdpOffer);
    const layers = [layer(30, 300, 0, 3), layer(31, 300, 1, 3), layer(32, 300, 2, 3)];
    const { answer } = newPeer('simulcaster').negotiate({ ...base, offer, publish: layers, subscriptions: [] });
    const camera = sdpTransform.parse(answer).media[1]!;
    assert.equal(camera.direction, 'recvonly');
    assert.deepEqual(camera.rids?.map((r) => `${r.id} ${r.direction}`), ['low recv', 'mid recv', 'hi recv']);
    assert.equal(`${camera.simulcast?.dir1} ${camera.simulcast?.list1}`, 'recv low;mid;hi');
    const uris = camera.ext?.map((e) => e.uri) ?? [];
    assert.ok(uris.includes('urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id'));
    assert.ok(uris.includes('urn:ietf:params:rtp-hdrext:sdes:mid'));
  });

  test('a subscription to a stream that does not exist is inactive', () => {
    const offer = parseOffer(fixture('chrome-subscribe-one').sdpOffer);
    const { answer, tracks } = newPeer('lonely').negotiate({ ...base, offer, publish: [], subscriptions: [999] });
    assert.deepEqual(tracks, []);
    assert.equal(sdpTransform.parse(answer).media[2]!.direction, 'inactive');
  });

  test('the audio direction mirrors the client whatever the capabilities (they are enforced per packet)', () => {
    const offer = parseOffer(fixture('chrome-first-offer').sdpOffer);
    for (const [sendAudio, receiveAudio] of [[true, false], [false, true], [false, false]] as const) {
      const answer = sdpTransform.parse(newPeer(`caps-${sendAudio}-${receiveAudio}`).negotiate({ ...base, sendAudio, receiveAudio, offer, publish: [], subscriptions: [] }).answer);
      assert.equal(answer.media[0]!.direction, 'sendrecv');
    }
  });
});
