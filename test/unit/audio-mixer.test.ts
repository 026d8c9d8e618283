import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AudioMixer, FRAME_MS, FRAME_SAMPLES, MIX_ENCODER_SETTINGS } from '../../src/media/audio/audio-mixer.ts';
import { loadOpusBackend } from '../../src/media/audio/opus/backend.ts';
import type { OpusBackend } from '../../src/media/audio/opus/codec.ts';
import { OpusCodecPool } from '../../src/media/audio/opus/codec-pool.ts';
import { ToneEar, ToneEncoder } from '../support/audio-tones.ts';

for (const backendName of ['native', 'wasm'] as const) {
  describe(`the audio mixer (${backendName} opus)`, () => {
    const backend = loadOpusBackend(backendName);
    const codecs = new OpusCodecPool(backend, MIX_ENCODER_SETTINGS);
    const silence = new AudioMixer({ codecs }).silenceFrame;
    const tone = (frequency: number) => new ToneEncoder(frequency, backend);
    const listener = () => new ToneEar(backend);
    function meeting() {
      let now = 0;
      let frame = 0;
      const mixer = new AudioMixer({ codecs, now: () => now });
      const run = (frames: number, feed: () => void) => {
        for (let i = 0; i < frames; i++) {
          feed();
          now += FRAME_MS;
          mixer.produce(++frame);
        }
      };
      return { mixer, run, advance: (ms: number) => (now += ms) };
    }

    test('listeners hear every talker; each talker hears the others but not itself', () => {
      const { mixer, run } = meeting();
      const a = tone(440);
      const b = tone(880);
      const [hearA, hearB, hearC, hearD] = [listener(), listener(), listener(), listener()];
      for (const id of ['a', 'b', 'c']) mixer.addSource(id);
      mixer.addSink(hearA, 'a');
      mixer.addSink(hearB, 'b');
      mixer.addSink(hearC, 'c');
      mixer.addSink(hearD);
      run(60, () => {
        mixer.push('a', a.frame(), 20);
        mixer.push('b', b.frame(), 25);
        mixer.push('c', silence, 127);
      });
      assert.deepEqual(mixer.talkerIds().sort(), ['a', 'b']);
      assert.ok(hearD.hears(440) && hearD.hears(880), 'a listener hears both');
      assert.ok(hearC.hears(440) && hearC.hears(880), 'a silent attendee hears both');
      assert.ok(hearA.hears(880) && !hearA.hears(440), 'A hears B, not itself');
      assert.ok(hearB.hears(440) && !hearB.hears(880), 'B hears A, not itself');
      // Every listener who is not talking gets the very same encoded frame: one encode for all of them.
      assert.equal(hearC.payloads.at(-1), hearD.payloads.at(-1));
      assert.notEqual(hearA.payloads.at(-1), hearD.payloads.at(-1));
      assert.deepEqual(
        mixer.levels().map((l) => l.id).sort(),
        ['a', 'b'],
        'levels report the talkers only',
      );
    });

    test('at most three talkers, the loudest; a louder newcomer replaces the quietest', () => {
      const { mixer, run } = meeting();
      const sources = [300, 500, 700, 900, 1100].map((f) => tone(f));
      sources.forEach((_, i) => mixer.addSource(`s${i}`));
      mixer.addSink(listener());
      run(10, () => sources.slice(0, 4).forEach((s, i) => mixer.push(`s${i}`, s.frame(), 30 + i * 5)));
      assert.deepEqual(mixer.talkerIds().sort(), ['s0', 's1', 's2']);
      run(10, () => sources.forEach((s, i) => mixer.push(`s${i}`, s.frame(), i === 4 ? 10 : 30 + i * 5)));
      assert.ok(mixer.talkerIds().includes('s4'), 'the much louder newcomer is in');
      assert.ok(!mixer.talkerIds().includes('s2'), 'the quietest talker made room');
      assert.equal(mixer.talkerIds().length, 3);
    });

    test('frames that arrive out of order (a jittery path) are mixed in order; one that comes after its turn is dropped', () => {
      const talker = tone(440);
      const frames = Array.from({ length: 80 }, () => talker.frame());
      const mixOf = (arrivals: number[], pushesPerFrame: number[]) => {
        let now = 0;
        const mixer = new AudioMixer({ codecs: new OpusCodecPool(backend, MIX_ENCODER_SETTINGS), now: () => now });
        const heard: Buffer[] = [];
        mixer.addSource('a');
        mixer.addSink({ deliver: (payload) => heard.push(Buffer.from(payload)) });
        let next = 0;
        pushesPerFrame.forEach((pushes, frame) => {
          for (let i = 0; i < pushes && next < arrivals.length; i++, next++) mixer.push('a', frames[arrivals[next]!]!, 20, 1000 + arrivals[next]!);
          now += FRAME_MS;
          mixer.produce(frame + 1);
        });
        return { heard, stats: mixer.stats() };
      };
      const inOrder = frames.map((_, i) => i);
      // Each pair swapped: 1, 0, 3, 2, …; both arrive before the first of them is due.
      const swapped = inOrder.map((i) => (i % 2 === 0 ? i + 1 : i - 1));
      const everyFrame = frames.map(() => 1);
      const reference = mixOf(inOrder, everyFrame);
      const jittery = mixOf(swapped, everyFrame);
      assert.equal(jittery.stats.reordered, 40);
      assert.deepEqual(jittery.heard, reference.heard, 'the same mix, byte for byte');

      // Frame 10 arrives 200 ms late, after 11…20 were mixed: it is dropped, not played out of place.
      const late = [...inOrder.slice(0, 10), ...inOrder.slice(11, 21), 10, ...inOrder.slice(21)];
      const { stats } = mixOf(late, everyFrame);
      assert.equal(stats.late, 1);
    });

    test('a talker who pauses briefly keeps its place; a long silence frees it', () => {
      const { mixer, run } = meeting();
      const a = tone(440);
      mixer.addSource('a');
      mixer.addSink(listener());
      run(10, () => mixer.push('a', a.frame(), 20));
      run(10, () => mixer.push('a', silence, 127)); // 200 ms pause
      assert.deepEqual(mixer.talkerIds(), ['a']);
      run(40, () => mixer.push('a', silence, 127));
      assert.deepEqual(mixer.talkerIds(), []);
    });

    test('a removed (muted) source leaves the mix; with nobody talking the frame is silence', () => {
      const { mixer, run } = meeting();
      const a = tone(440);
      const hearer = listener();
      mixer.addSource('a');
      mixer.addSink(hearer);
      run(20, () => mixer.push('a', a.frame(), 20));
      assert.ok(hearer.hears(440));
      mixer.removeSource('a');
      run(5, () => mixer.push('a', a.frame(), 20));
      assert.equal(hearer.payloads.at(-1), silence);
      assert.deepEqual(mixer.talkerIds(), []);
    });

    test('corrupt packets cost a frame, not the mix', () => {
      const { mixer, run } = meeting();
      const a = tone(440);
      const hearer = listener();
      mixer.addSource('a');
      mixer.addSink(hearer);
      let i = 0;
      // Every fifth frame is damaged in transit (the talker's tone goes on meanwhile).
      run(40, () => {
        const frame = a.frame();
        mixer.push('a', i++ % 5 === 0 ? Buffer.from([0xff, 0xff, 0xff, 0x00]) : frame, 20);
      });
      assert.ok(hearer.hears(440));
    });
      test('a codec failure costs one frame of one meeting: the mixer rebuilds its codecs and goes on', () => {
      // A backend whose encoders can be made to fail, as a broken codec build would.
      let failing = false;
      const faulty: OpusBackend = {
        name: backend.name,
        createDecoder: () => backend.createDecoder(),
        createEncoder(settings) {
          const encoder = backend.createEncoder(settings);
          return { ...encoder, encode: (pcm) => (failing ? (() => { throw new Error('encoder abort'); })() : encoder.encode(pcm)) };
        },
      };
      const faultyCodecs = new OpusCodecPool(faulty, MIX_ENCODER_SETTINGS);
      let now = 0;
      const broken = new AudioMixer({ codecs: faultyCodecs, now: () => now });
      const healthy = new AudioMixer({ codecs, now: () => now });
      const failures: unknown[] = [];
      broken.on('failure', (error, rebuilt) => rebuilt && failures.push(error));
      const [brokenEar, healthyEar] = [listener(), listener()];
      const [a, b] = [tone(440), tone(660)];
      broken.addSource('a');
      broken.addSink(brokenEar);
      healthy.addSource('b');
      healthy.addSink(healthyEar);
      const run = (frames: number) => {
        for (let i = 0; i < frames; i++) {
          broken.push('a', a.frame(), 20);
          healthy.push('b', b.frame(), 20);
          now += FRAME_MS;
          broken.produce(now / FRAME_MS);
          healthy.produce(now / FRAME_MS);
        }
      };
      run(20);
      failing = true;
      run(3);
      assert.equal(failures.length, 3, 'each failed frame is reported');
      assert.equal(broken.stats().rebuilds, 3);
      assert.equal(brokenEar.payloads.length, 23, 'the listener still gets a packet every frame');
      assert.equal(brokenEar.payloads.at(-1), broken.silenceFrame);
      assert.ok(faultyCodecs.stats().discarded > 0, 'failed codecs are never reused');
      failing = false;
      run(30);
      assert.ok(brokenEar.hears(440), 'the meeting hears its talker again');
      assert.ok(healthyEar.hears(660), 'the other meeting never noticed');
      assert.equal(healthy.stats().rebuilds, 0);
    });

    test('frames carry their media-clock time; frames the clock skipped leave a gap', () => {
      const mixer = new AudioMixer({ codecs });
      const ear = listener();
      mixer.addSink(ear);
      for (const frame of [1, 2, 3, 7, 8]) mixer.produce(frame);
      assert.deepEqual(ear.timestamps, [1, 2, 3, 7, 8].map((f) => f * FRAME_SAMPLES));
      mixer.produce(4_473_925); // 32-bit RTP time wraps after 4,473,924.27 frames (24.9 hours)
      assert.equal(ear.timestamps.at(-1), 4_473_925 * 960 - 2 ** 32);
      mixer.close();
    });

    test('a talk spurt does not start with the end of the previous one, cut off', () => {
      const { mixer, run } = meeting();
      const [a, b] = [tone(440), tone(880)];
      const ear = listener();
      mixer.addSink(ear);
      mixer.addSource('a');
      run(20, () => mixer.push('a', a.frame(), 20));
      mixer.removeSource('a'); // muted while talking
      run(20, () => undefined);
      mixer.addSource('b');
      run(1, () => mixer.push('b', b.frame(), 20)); // b is a talker, not started yet: this frame is silence
      const pcm = new Int16Array(FRAME_SAMPLES);
      backend.createDecoder().decodeInto(Buffer.from(ear.payloads.at(-1)!), pcm);
      const peak = pcm.reduce((max, x) => Math.max(max, Math.abs(x)), 0);
      assert.ok(peak < 100, `peak ${peak}`);
      mixer.close();
    });

    test('a frame produced late (a later one is due too) is mixed but not sent: listeners get a gap, not a burst', () => {
      const { mixer, run } = meeting();
      const a = tone(440);
      const ear = listener();
      mixer.addSource('a');
      mixer.addSink(ear);
      run(10, () => mixer.push('a', a.frame(), 20));
      for (let i = 0; i < 3; i++) mixer.push('a', a.frame(), 20); // they came while the thread was stalled
      for (const frame of [11, 12]) mixer.produce(frame, true);
      mixer.produce(13, false);
      assert.deepEqual(ear.timestamps.slice(-2), [10 * FRAME_SAMPLES, 13 * FRAME_SAMPLES]);
      assert.ok(mixer.stats().backlog <= 2, `the late frames were taken from the queue (backlog ${mixer.stats().backlog})`);
      mixer.close();
    });
      test("a talker's backlog after a burst is worked off, so its delay does not build up", () => {
      const { mixer, run } = meeting();
      const a = tone(440);
      const hearer = listener();
      mixer.addSource('a');
      mixer.addSink(hearer);
      run(10, () => mixer.push('a', a.frame(), 20));
      for (let i = 0; i < 8; i++) mixer.push('a', a.frame(), 20); // a burst: 160 ms at once
      run(1, () => mixer.push('a', a.frame(), 20));
      assert.ok(mixer.stats().backlog >= 8, `backlog ${mixer.stats().backlog}`);
      run(400, () => mixer.push('a', a.frame(), 20));
      assert.ok(mixer.stats().backlog <= 3, `backlog ${mixer.stats().backlog}`);
      assert.ok(hearer.hears(440));
    });
      test("a listener that throws doesn't stop the others, and no codec is rebuilt for it", () => {
      const mixer = new AudioMixer({ codecs });
      const reports: boolean[] = [];
      mixer.on('failure', (_error, rebuilt) => reports.push(rebuilt));
      const ear = listener();
      mixer.addSink({
        deliver() {
          throw new Error('a broken sender');
        },
      });
      mixer.addSink(ear);
      for (let frame = 1; frame <= 3; frame++) mixer.produce(frame);
      assert.equal(ear.packets, 3);
      assert.deepEqual(reports, [false, false, false]);
      assert.equal(mixer.stats().rebuilds, 0);
      mixer.close();
    });
  });
}
