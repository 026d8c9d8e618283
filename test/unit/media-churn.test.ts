import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { AudioRelay } from '../../src/replication/audio-relay.ts';
import { loadOpusBackend } from '../../src/media/audio/opus/backend.ts';
import { PipeTransport } from '../../src/media/transport/pipe-transport.ts';
import { PrimaryPipeEnd, ReplicaPipeEnd } from '../../src/replication/pipe-ends.ts';
import type { MediaRoom } from '../../src/media/sfu/room.ts';
import { MediaWorker } from '../../src/media/worker/media-worker.ts';
import { ToneEar, ToneEncoder } from '../support/audio-tones.ts';

/**
 * A day of meetings on one media worker, compressed: meetings start and end in sequence and in
 * parallel, talkers come and go, replica attendees are promoted and demoted through real pipes.
 * Afterwards a fresh meeting must still get its audio, every frame, with the right content.
 */
const backend = loadOpusBackend();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A talker whose packets arrive every 20 ms, like a browser's microphone. */
class Talker {
  private readonly tone: ToneEncoder;
  private timer: NodeJS.Timeout | undefined;
  constructor(
    readonly id: string,
    frequency: number,
  ) {
    this.tone = new ToneEncoder(frequency, backend);
  }
  start(room: MediaRoom): void {
    room.mixer.addSource(this.id);
    this.timer = setInterval(() => room.mixer.push(this.id, this.tone.frame(), 20), 20).unref();
  }
  stop(room: MediaRoom): void {
    clearInterval(this.timer);
    room.mixer.removeSource(this.id);
    this.tone.free();
  }
}
const newEar = () => new ToneEar(backend);

let worker: MediaWorker;
before(async () => {
  worker = await MediaWorker.start({ listenIp: '127.0.0.1', port: 0, announcedIp: '127.0.0.1', logger: pino({ level: 'silent' }) });
});
after(() => worker.close());

/** A primary with a replica linked by a real pipe, as the orchestrator links them. */
async function primaryWithReplica(id: string) {
  const primary = worker.createRoom(`${id}-primary`);
  const replica = worker.createRelayedRoom(`${id}-replica`, new AudioRelay());
  const [down, up] = await Promise.all([PipeTransport.open('127.0.0.1'), PipeTransport.open('127.0.0.1')]);
  const keys = { down: { key: randomBytes(16), salt: randomBytes(12) }, up: { key: randomBytes(16), salt: randomBytes(12) } };
  down.connect({ address: '127.0.0.1', port: up.port }, { send: keys.down, receive: keys.up });
  up.connect({ address: '127.0.0.1', port: down.port }, { send: keys.up, receive: keys.down });
  const primaryEnd = new PrimaryPipeEnd(primary, down);
  primary.adopt(`${id}-pipe`, primaryEnd);
  const replicaEnd = new ReplicaPipeEnd(replica, up);
  replica.adopt(`${id}-pipe`, replicaEnd);
  return {
    primary,
    replica,
    promote(slot: number, attendeeId: string) {
      primaryEnd.promote(slot, attendeeId);
      replicaEnd.promote(slot, attendeeId);
    },
    demote(slot: number, attendeeId: string) {
      primaryEnd.demote(slot);
      replicaEnd.demote(attendeeId);
    },
    close() {
      primaryEnd.close();
      replicaEnd.close();
      worker.closeRoom(replica);
      worker.closeRoom(primary);
    },
  };
}

/** One meeting's life: talkers take turns, one replica attendee is promoted and demoted again. */
async function meetingLife(index: number): Promise<void> {
  const meeting = await primaryWithReplica(`m${index}`);
  const talkers = [0, 1, 2, 3].map((t) => new Talker(`m${index}-t${t}`, 300 + 110 * t));
  const listener = newEar();
  meeting.primary.mixer.addSink(listener);
  talkers[0]!.start(meeting.primary);
  talkers[1]!.start(meeting.primary);
  await sleep(100);
  talkers[2]!.start(meeting.primary);
  talkers[0]!.stop(meeting.primary);
  const viewer = new Talker(`m${index}-viewer`, 1200);
  meeting.replica.mixer.addSink(newEar(), viewer.id);
  meeting.promote(index % 8, viewer.id);
  viewer.start(meeting.replica);
  await sleep(120);
  talkers[3]!.start(meeting.primary);
  talkers[1]!.stop(meeting.primary);
  meeting.demote(index % 8, viewer.id);
  viewer.stop(meeting.replica);
  await sleep(80);
  for (const talker of talkers.slice(2)) talker.stop(meeting.primary);
  assert.ok(listener.packets > 0);
  meeting.close();
}

describe('one media worker through a day of churn', () => {
  test('60 meetings come and go; a fresh meeting then hears every frame, with the right content', async () => {
    for (let i = 0; i < 40; i++) await meetingLife(i);
    for (let batch = 0; batch < 4; batch++) await Promise.all([0, 1, 2, 3, 4].map((j) => meetingLife(40 + batch * 5 + j)));

    const fresh = await primaryWithReplica('fresh');
    const speaker = new Talker('fresh-speaker', 440);
    const inPrimary = newEar();
    const inReplica = newEar();
    fresh.primary.mixer.addSink(inPrimary);
    fresh.replica.mixer.addSink(inReplica, 'fresh-viewer');
    speaker.start(fresh.primary);
    await sleep(500);
    const before = { primary: inPrimary.packets, replica: inReplica.packets, clock: worker.stats().clock };
    const startedAt = performance.now();
    await sleep(2000);
    const seconds = (performance.now() - startedAt) / 1000;
    const clock = worker.stats().clock;
    // Every frame of the media clock reaches the listener, except frames the clock had to skip
    // because this thread stalled for over 200 ms (counted, so this holds on a loaded machine).
    const skipped = clock.skipped - before.clock.skipped;
    const due = Math.floor(seconds * 50);
    assert.ok(inPrimary.packets - before.primary >= due - skipped - 2, `primary: ${inPrimary.packets - before.primary} packets for ${due} frames, ${skipped} skipped`);
    assert.ok(inReplica.packets - before.replica >= due - skipped - 2, `replica: ${inReplica.packets - before.replica} packets for ${due} frames, ${skipped} skipped`);
    assert.ok(inPrimary.hears(440), 'the primary listener hears the speaker');
    assert.ok(inReplica.hears(440), 'the replica viewer hears the speaker');
    speaker.stop(fresh.primary);
    fresh.close();
    const stats = worker.stats();
    assert.equal(stats.mixerRebuilds, 0, 'no mixer ever failed');
    assert.ok(stats.opus.encodersCreated < 100, `codecs are reused: ${JSON.stringify(stats.opus)}`);
  });
});
