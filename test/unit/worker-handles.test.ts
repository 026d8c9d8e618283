import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { parseOffer } from '../../src/media/protocol/sdp.ts';
import { MediaWorkerClient } from '../../src/media/worker/client.ts';
import type { CloseCause } from '../../src/media/worker/handle-close.ts';
import { ReplicaLink } from '../../src/replication/replica-link.ts';

/** The main thread's handles on a real worker thread: ownership, closing, and the events they carry. */
const subscribeOffer = () =>
  parseOffer((JSON.parse(readFileSync(path.join(import.meta.dirname, '../support/fixtures/offers/chrome-subscribe-one.json'), 'utf8')) as { sdpOffer: string }).sdpOffer);
const base = { sendAudio: true, receiveAudio: true, audioMuted: false, publish: [] };
const key = () => ({ key: randomBytes(16), salt: randomBytes(12) });
const closeCause = (handle: { once(event: 'closed', listener: (cause: CloseCause) => void): unknown }) =>
  new Promise<CloseCause>((resolve) => handle.once('closed', resolve));
const withTimeout = <T>(promise: Promise<T>, ms: number, what: string) =>
  Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms).unref())]);

let worker: MediaWorkerClient;
before(async () => {
  worker = await MediaWorkerClient.start({ listenIp: '127.0.0.1', port: 0, announcedIp: '127.0.0.1', logLevel: 'silent', name: 'handles' }, pino({ level: 'silent' }));
});
after(() => worker.close());

describe('media worker handles', () => {
  test('closing a room closes its peers and pipe ends, each saying why; closed handles send nothing', async () => {
    const room = worker.createRoom('m1', false);
    const peer = room.createPeer('attendee');
    const end = await room.createPrimaryPipeEnd();
    assert.equal((await worker.stats()).rooms, 1);
    const causes = Promise.all([closeCause(room), closeCause(peer), closeCause(end)]);
    room.close();
    assert.deepEqual(await causes, ['closed', 'parentClosed', 'parentClosed']);
    assert.equal((await worker.stats()).rooms, 0, 'the worker closed the room too');
    assert.equal(await peer.stats(), undefined);
    await assert.rejects(peer.negotiate({ ...base, offer: subscribeOffer(), subscriptions: [] }), /closed/);
    assert.equal(await end.stats(), undefined);
    assert.ok(room.createPeer('late').closed, 'a closed room makes closed peers');
    await assert.rejects(room.createPrimaryPipeEnd(), /closed/);
  });

  test('a room has the pipe ends of its kind only', async () => {
    const mixing = worker.createRoom('m2', false);
    const replica = worker.createRoom('m2-replica', true);
    await assert.rejects(mixing.createReplicaPipeEnd(), /no replica pipe end/);
    await assert.rejects(replica.createPrimaryPipeEnd(), /no primary pipe end/);
    mixing.close();
    replica.close();
  });

  test("a replica end reports its viewers' demand as events; a moved or removed subscription changes it", async () => {
    const primary = worker.createRoom('m3', false);
    const replica = worker.createRoom('m3-replica', true);
    const [primaryEnd, replicaEnd] = await Promise.all([primary.createPrimaryPipeEnd(), replica.createReplicaPipeEnd()]);
    const [down, up] = [key(), key()];
    await Promise.all([
      primaryEnd.connect({ address: '127.0.0.1', port: replicaEnd.port }, { send: down, receive: up }),
      replicaEnd.connect({ address: '127.0.0.1', port: primaryEnd.port }, { send: up, receive: down }),
    ]);
    const demands: number[][] = [];
    replicaEnd.on('demand', (streamIds) => demands.push(streamIds));
    replicaEnd.setStreams([
      { streamId: 7, groupId: 1 },
      { streamId: 8, groupId: 1 },
    ]);
    const viewer = replica.createPeer('viewer');
    const { tracks } = await viewer.negotiate({ ...base, offer: subscribeOffer(), subscriptions: [7] });
    assert.equal(tracks[0]?.streamId, 7);
    await withTimeout(
      (async () => {
        while (demands.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      })(),
      2000,
      'the demand',
    );
    assert.deepEqual(demands.at(-1), [7]);
    assert.deepEqual(await viewer.updateSubscriptions({ set: [{ mid: '2', streamId: 8 }], remove: [] }), [{ mid: '2', streamId: 8 }]);
    assert.deepEqual(await viewer.updateSubscriptions({ set: [], remove: ['2'] }), []);
    await viewer.stats(); // every event posted before this answer has arrived
    assert.deepEqual(demands.at(-1), [], 'nobody subscribes any more');
    assert.ok(demands.some((d) => d.includes(8)), `the moved subscription was demanded: ${JSON.stringify(demands)}`);
    primary.close();
    replica.close();
  });

  test('a link closes with either room, and closes the other end', async () => {
    const primary = worker.createRoom('m4', false);
    const replica = worker.createRoom('m4-replica', true);
    const link = await ReplicaLink.open(primary, '127.0.0.1', async () => ({ end: await replica.createReplicaPipeEnd(), address: '127.0.0.1' }));
    assert.ok((await link.stats()).primary, 'both ends are open');
    const closed = new Promise<void>((resolve) => link.once('closed', resolve));
    replica.close();
    await withTimeout(closed, 1000, 'the link closing');
    assert.deepEqual(await link.stats(), { primary: undefined, replica: undefined });
    primary.close();
  });

  test("the worker's death closes every handle on it before `exited`, and a new room works on the new thread", async () => {
    const room = worker.createRoom('m5', false);
    const peer = room.createPeer('attendee');
    const causes = Promise.all([closeCause(room), closeCause(peer)]);
    const exited = new Promise<boolean>((resolve) => worker.once('exited', () => resolve(room.closed && peer.closed)));
    const restarted = new Promise<void>((resolve) => worker.once('restarted', () => resolve()));
    await worker.crashThread();
    assert.equal(await exited, true, 'closed before `exited` is emitted');
    assert.deepEqual(await causes, ['workerExited', 'workerExited']);
    await withTimeout(restarted, 20_000, 'the restart');
    const fresh = worker.createRoom('m6', false);
    fresh.createPeer('attendee');
    assert.equal((await worker.stats()).rooms, 1);
    fresh.close();
  });
});
