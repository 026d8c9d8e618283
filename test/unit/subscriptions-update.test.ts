import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { parseOffer } from '../../src/media/protocol/sdp.ts';
import type { MediaPeer } from '../../src/media/sfu/peer.ts';
import type { MediaRoom } from '../../src/media/sfu/room.ts';
import { VideoLayer } from '../../src/media/sfu/video-forwarding.ts';
import { MediaWorker } from '../../src/media/worker/media-worker.ts';

/** REMOTE_VIDEO_UPDATE applied by the peer itself: receive m-lines move between layers of a source, or stop, without an offer. */
const offer = () =>
  parseOffer((JSON.parse(readFileSync(path.join(import.meta.dirname, '../support/fixtures/offers/chrome-subscribe-one.json'), 'utf8')) as { sdpOffer: string }).sdpOffer);
/** The recorded offer's one receive-only m-line. */
const MID = '2';
const base = { sendAudio: true, receiveAudio: true, audioMuted: false, publish: [] };

let worker: MediaWorker;
let room: MediaRoom;
let viewer: MediaPeer;
// Two simulcast layers of one source, and another source.
const low = new VideoLayer(1, 10, () => undefined);
const high = new VideoLayer(2, 10, () => undefined);
const other = new VideoLayer(3, 20, () => undefined);

before(async () => {
  worker = await MediaWorker.start({ listenIp: '127.0.0.1', port: 0, announcedIp: '127.0.0.1', logger: pino({ level: 'silent' }) });
  room = worker.createRoom('subscriptions-update');
  for (const layer of [low, high, other]) room.addLayer(layer);
  viewer = worker.createPeer(room, 'viewer-peer', 'viewer');
});
after(() => worker.close());

describe('updating subscriptions without an offer', () => {
  test('a receive m-line moves to another layer of its source on the same SSRC, and stops when removed', () => {
    const { tracks } = viewer.negotiate({ ...base, offer: offer(), subscriptions: [1] });
    assert.equal(tracks.length, 1);
    const ssrc = tracks[0]!.ssrc;
    assert.equal(low.subscribers.size, 1);

    assert.deepEqual(viewer.updateSubscriptions({ set: [{ mid: MID, streamId: 2 }], remove: [] }), [{ mid: MID, streamId: 2 }]);
    assert.equal(low.subscribers.size, 0, 'the old layer lost its receiver');
    assert.equal(high.subscribers.size, 1, 'the new layer has it');
    assert.deepEqual(
      viewer.stats().subscriptions.map((s) => [s.mid, s.streamId, s.ssrc]),
      [[MID, 2, ssrc]],
      'same m-line, same SSRC: the client sees one continuous track',
    );

    // Another source, a stream the room doesn't have, a mid that carries nothing: all ignored.
    const ignored = viewer.updateSubscriptions({
      set: [
        { mid: MID, streamId: 3 },
        { mid: MID, streamId: 99 },
        { mid: '7', streamId: 1 },
      ],
      remove: ['9'],
    });
    assert.deepEqual(ignored, [{ mid: MID, streamId: 2 }]);
    assert.equal(other.subscribers.size, 0);

    // An offer replayed afterwards keeps the moved m-line where it is.
    const again = viewer.negotiate({ ...base, offer: offer(), subscriptions: [2] });
    assert.equal(again.tracks[0]!.ssrc, ssrc);

    assert.deepEqual(viewer.updateSubscriptions({ set: [], remove: [MID] }), []);
    assert.equal(high.subscribers.size, 0, 'a removed m-line stops');
    assert.deepEqual(viewer.updateSubscriptions({ set: [{ mid: MID, streamId: 1 }], remove: [] }), [], 'a stopped m-line takes a SUBSCRIBE to carry anything again');
  });

  test('sets apply before removals; pausing follows the stream the m-line carries now', () => {
    viewer.negotiate({ ...base, offer: offer(), subscriptions: [1] });
    assert.deepEqual(viewer.updateSubscriptions({ set: [{ mid: MID, streamId: 2 }], remove: [MID] }), []);
    viewer.negotiate({ ...base, offer: offer(), subscriptions: [1] });
    viewer.updateSubscriptions({ set: [{ mid: MID, streamId: 2 }], remove: [] });
    viewer.setPaused([2], true);
    assert.equal([...high.subscribers][0]!.paused, true);
  });
});
