import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import OpusScript from 'opusscript';
import { AudioMixer, FRAME_MS, FRAME_SAMPLES, OPUS_SILENCE_FRAME, SAMPLE_RATE, type MixerSink } from '../src/media/audio-mixer.ts';

/** A talker: encodes a sine tone into 20 ms opus frames, like a browser's microphone. */
class ToneSource {
  private readonly encoder = new OpusScript(SAMPLE_RATE, 1, OpusScript.Application.VOIP);
  private phase = 0;
  constructor(readonly frequency: number) {}
  frame(): Buffer {
    const pcm = Buffer.alloc(FRAME_SAMPLES * 2);
    for (let i = 0; i < FRAME_SAMPLES; i++) {
      pcm.writeInt16LE(Math.round(6000 * Math.sin(this.phase)), i * 2);
      this.phase += (2 * Math.PI * this.frequency) / SAMPLE_RATE;
    }
    return this.encoder.encode(pcm, FRAME_SAMPLES);
  }
}

/** A listener: decodes what it receives and measures tone power (Goertzel). */
class Listener implements MixerSink {
  readonly payloads: Buffer[] = [];
  private readonly decoder = new OpusScript(SAMPLE_RATE, 1);
  private readonly samples: number[] = [];
  deliver(payload: Buffer): void {
    this.payloads.push(payload);
    const pcm = this.decoder.decode(Buffer.from(payload));
    for (let i = 0; i + 1 < pcm.length; i += 2) this.samples.push(pcm.readInt16LE(i));
  }
  hears(frequency: number): boolean {
    const recent = this.samples.slice(-SAMPLE_RATE / 2);
    const power = (f: number) => {
      const k = (2 * Math.cos((2 * Math.PI * f) / SAMPLE_RATE));
      let s1 = 0;
      let s2 = 0;
      for (const x of recent) {
        const s0 = x + k * s1 - s2;
        s2 = s1;
        s1 = s0;
      }
      return (s1 * s1 + s2 * s2 - k * s1 * s2) / recent.length;
    };
    return power(frequency) > 1000 * (power(frequency * 1.37) + 1);
  }
}

function meeting() {
  let now = 0;
  const mixer = new AudioMixer({ now: () => now });
  const run = (frames: number, feed: () => void) => {
    for (let i = 0; i < frames; i++) {
      feed();
      now += FRAME_MS;
      mixer.tick();
    }
  };
  return { mixer, run, advance: (ms: number) => (now += ms) };
}

describe('the audio mixer', () => {
  test('listeners hear every talker; each talker hears the others but not itself', () => {
    const { mixer, run } = meeting();
    const a = new ToneSource(440);
    const b = new ToneSource(880);
    const [hearA, hearB, hearC, hearD] = [new Listener(), new Listener(), new Listener(), new Listener()];
    for (const id of ['a', 'b', 'c']) mixer.addSource(id);
    mixer.addSink(hearA, 'a');
    mixer.addSink(hearB, 'b');
    mixer.addSink(hearC, 'c');
    mixer.addSink(hearD);
    run(60, () => {
      mixer.push('a', a.frame(), 20);
      mixer.push('b', b.frame(), 25);
      mixer.push('c', OPUS_SILENCE_FRAME, 127);
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
    const sources = [300, 500, 700, 900, 1100].map((f) => new ToneSource(f));
    sources.forEach((_, i) => mixer.addSource(`s${i}`));
    mixer.addSink(new Listener());
    run(10, () => sources.slice(0, 4).forEach((s, i) => mixer.push(`s${i}`, s.frame(), 30 + i * 5)));
    assert.deepEqual(mixer.talkerIds().sort(), ['s0', 's1', 's2']);
    run(10, () => sources.forEach((s, i) => mixer.push(`s${i}`, s.frame(), i === 4 ? 10 : 30 + i * 5)));
    assert.ok(mixer.talkerIds().includes('s4'), 'the much louder newcomer is in');
    assert.ok(!mixer.talkerIds().includes('s2'), 'the quietest talker made room');
    assert.equal(mixer.talkerIds().length, 3);
  });

  test('a talker who pauses briefly keeps its place; a long silence frees it', () => {
    const { mixer, run } = meeting();
    const a = new ToneSource(440);
    mixer.addSource('a');
    mixer.addSink(new Listener());
    run(10, () => mixer.push('a', a.frame(), 20));
    run(10, () => mixer.push('a', OPUS_SILENCE_FRAME, 127)); // 200 ms pause
    assert.deepEqual(mixer.talkerIds(), ['a']);
    run(40, () => mixer.push('a', OPUS_SILENCE_FRAME, 127));
    assert.deepEqual(mixer.talkerIds(), []);
  });

  test('a removed (muted) source leaves the mix; with nobody talking the frame is silence', () => {
    const { mixer, run } = meeting();
    const a = new ToneSource(440);
    const listener = new Listener();
    mixer.addSource('a');
    mixer.addSink(listener);
    run(20, () => mixer.push('a', a.frame(), 20));
    assert.ok(listener.hears(440));
    mixer.removeSource('a');
    run(5, () => mixer.push('a', a.frame(), 20));
    assert.equal(listener.payloads.at(-1), OPUS_SILENCE_FRAME);
    assert.deepEqual(mixer.talkerIds(), []);
  });

  test('corrupt packets cost a frame, not the mix', () => {
    const { mixer, run } = meeting();
    const a = new ToneSource(440);
    const listener = new Listener();
    mixer.addSource('a');
    mixer.addSink(listener);
    let i = 0;
    // Every fifth frame is damaged in transit (the talker's tone goes on meanwhile).
    run(40, () => {
      const frame = a.frame();
      mixer.push('a', i++ % 5 === 0 ? Buffer.from([0xff, 0xff, 0xff, 0x00]) : frame, 20);
    });
    assert.ok(listener.hears(440));
  });
});
