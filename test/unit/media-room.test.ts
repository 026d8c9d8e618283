import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import type { RoomPeer } from '../../src/media/sfu/room.ts';
import { VideoLayer } from '../../src/media/sfu/video-forwarding.ts';
import { MediaWorker } from '../../src/media/worker/media-worker.ts';

/** Inside a worker: the worker owns its rooms by id, and each room the peers and pipe ends connected to it. */
class FakeEnd extends EventEmitter<{ closed: [] }> implements RoomPeer {
  readonly layers: number[] = [];
  closed = false;
  layerAvailable(layer: VideoLayer): void {
    this.layers.push(layer.streamId);
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('closed');
  }
}

let worker: MediaWorker;
before(async () => {
  worker = await MediaWorker.start({ listenIp: '127.0.0.1', port: 0, announcedIp: '127.0.0.1', logger: pino({ level: 'silent' }) });
});
after(() => worker.close());

describe('MediaRoom ownership', () => {
  test('the room creates its peers and adopts ends by id, tells them of layers and closes them with itself', () => {
    const room = worker.createRoom('owner-1');
    assert.equal(worker.room('owner-1'), room);
    const peer = worker.createPeer(room, 'peer-1', 'attendee-1');
    const end = new FakeEnd();
    room.adopt('pipe-1', end);
    assert.equal(room.peer('peer-1'), peer);
    assert.equal(worker.findPeer('peer-1'), peer);
    assert.equal(worker.findAdoptedPeer('pipe-1'), end);
    assert.deepEqual(room.downlinkEstimates(), [['peer-1', 0]]);

    room.addLayer(new VideoLayer(7, 1, () => undefined));
    assert.deepEqual(end.layers, [7]);

    let peerClosed = false;
    peer.once('closed', () => (peerClosed = true));
    worker.closeRoom(room);
    assert.ok(peerClosed && end.closed, 'children close with their room');
    assert.equal(worker.room('owner-1'), undefined);
    assert.equal(worker.findPeer('peer-1'), undefined);
    assert.equal(worker.findAdoptedPeer('pipe-1'), undefined);
  });

  test('a child that closes leaves its room; ids are refused twice; a closed room closes what it is given', () => {
    const room = worker.createRoom('owner-2');
    assert.throws(() => worker.createRoom('owner-2'), /exists/);
    const peer = worker.createPeer(room, 'peer-2', 'attendee-2');
    assert.throws(() => worker.createPeer(room, 'peer-2', 'attendee-3'), /exists/);
    peer.close();
    assert.equal(room.peer('peer-2'), undefined);
    const end = new FakeEnd();
    room.adopt('pipe-2', end);
    assert.throws(() => room.adopt('pipe-2', new FakeEnd()), /already/);
    end.close();
    assert.equal(room.adoptedPeer('pipe-2'), undefined);

    room.close();
    const late = new FakeEnd();
    room.adopt('pipe-3', late);
    assert.ok(late.closed);
    assert.throws(() => worker.createPeer(room, 'peer-3', 'attendee-4'), /closed/);
  });
});
