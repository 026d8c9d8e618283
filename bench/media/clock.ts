/**
 * Frames per second each meeting mixes, and packets per second its listeners get, while the
 * machine is overloaded (busy processes on every core and one more), with the mixers driven by
 * the media clock (frames numbered from absolute time; after a late wake-up every due frame is
 * mixed and the newest sent) against the scheduling Amphi used before (one timer chain per
 * mixer, one frame per wake-up, each sent, resynchronised when 100 ms behind). Real mixers with
 * real codecs: 10 meetings, 2 talkers each.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { AudioMixer, MIX_ENCODER_SETTINGS } from '../../src/media/audio/audio-mixer.ts';
import { FRAME_MS, FrameClock, type FrameListener } from '../../src/media/audio/frame-clock.ts';
import { loadOpusBackend } from '../../src/media/audio/opus/backend.ts';
import { OPUS_FRAME_BYTES, OPUS_FRAME_SAMPLES, OPUS_SAMPLE_RATE } from '../../src/media/audio/opus/codec.ts';
import { OpusCodecPool } from '../../src/media/audio/opus/codec-pool.ts';
import { median } from './measure.ts';

const MEETINGS = 10;
const codecs = new OpusCodecPool(loadOpusBackend(), MIX_ENCODER_SETTINGS);
const talkerPackets = [330, 550].map((frequency) => {
  const encoder = codecs.backend.createEncoder(MIX_ENCODER_SETTINGS);
  return Array.from({ length: 50 }, (_, frame) => {
    const pcm = Buffer.alloc(OPUS_FRAME_BYTES);
    for (let i = 0; i < OPUS_FRAME_SAMPLES; i++) pcm.writeInt16LE(Math.round(5000 * Math.sin((2 * Math.PI * frequency * (frame * OPUS_FRAME_SAMPLES + i)) / OPUS_SAMPLE_RATE)), i * 2);
    return encoder.encode(pcm);
  });
});

/** One meeting: a mixer whose two talkers' packets arrive with each frame, and a counting listener. */
function meeting(): FrameListener & { delivered: number; mixed(): number; close(): void } {
  const mixer = new AudioMixer({ codecs });
  const result = {
    delivered: 0,
    mixed: () => mixer.stats().frames,
    produce(frame: number, late?: boolean) {
      talkerPackets.forEach((packets, t) => mixer.push(`t${t}`, packets[frame % 50]!, 25));
      mixer.produce(frame, late);
    },
    close: () => mixer.close(),
  };
  ['t0', 't1', 'listener'].forEach((id) => mixer.addSource(id));
  mixer.addSink({ deliver: () => void result.delivered++ }, 'listener');
  return result;
}

/** The scheduling before the media clock: a timer chain per mixer. */
function previousScheduling(listener: FrameListener): () => void {
  let frame = 0;
  let nextTickAt = performance.now() + FRAME_MS;
  let timer: NodeJS.Timeout;
  const loop = () => {
    listener.produce(++frame);
    nextTickAt += FRAME_MS;
    const delay = nextTickAt - performance.now();
    if (delay < -5 * FRAME_MS) nextTickAt = performance.now() + FRAME_MS;
    timer = setTimeout(loop, Math.max(0, delay));
  };
  timer = setTimeout(loop, FRAME_MS);
  return () => clearTimeout(timer);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function measureClockUnderLoad(rounds: number, seconds: number) {
  const hogs: ChildProcess[] = Array.from({ length: availableParallelism() + 1 }, () => spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
  const results = {
    previous: [] as number[],
    clock: [] as number[],
    clockMixed: [] as number[],
    lateness: [] as { p50: number; p99: number; max: number }[],
    skippedPerSecond: [] as number[],
  };
  try {
    await sleep(500);
    for (let round = 0; round < rounds; round++) {
      for (const mode of ['previous', 'clock'] as const) {
        const meetings = Array.from({ length: MEETINGS }, meeting);
        let stop: () => void;
        let clock: FrameClock | undefined;
        if (mode === 'clock') {
          clock = new FrameClock();
          meetings.forEach((m) => clock!.add(m));
          clock.start();
          stop = () => clock!.stop();
        } else {
          const stops = meetings.map(previousScheduling);
          stop = () => stops.forEach((s) => s());
        }
        await sleep(1000); // talkers selected, timers settled
        const before = meetings.map((m) => m.delivered);
        const mixedBefore = meetings.map((m) => m.mixed());
        const skippedBefore = clock?.stats().skipped ?? 0;
        const startedAt = performance.now();
        await sleep(seconds * 1000);
        const elapsed = (performance.now() - startedAt) / 1000;
        const perSecond = meetings.map((m, i) => (m.delivered - before[i]!) / elapsed);
        results[mode].push(median(perSecond));
        if (clock) {
          results.clockMixed.push(median(meetings.map((m, i) => (m.mixed() - mixedBefore[i]!) / elapsed)));
          results.lateness.push(clock.stats().lateness);
          results.skippedPerSecond.push((clock.stats().skipped - skippedBefore) / elapsed);
        }
        stop();
        meetings.forEach((m) => m.close());
      }
    }
  } finally {
    hogs.forEach((hog) => hog.kill());
  }
  return {
    hogs: hogs.length,
    previousFramesPerSecond: median(results.previous),
    clockFramesPerSecond: median(results.clock),
    clockMixedPerSecond: median(results.clockMixed),
    previousRounds: results.previous,
    clockRounds: results.clock,
    latenessP50: median(results.lateness.map((l) => l.p50)),
    latenessP99: median(results.lateness.map((l) => l.p99)),
    latenessMax: Math.max(...results.lateness.map((l) => l.max)),
    skippedPerSecond: median(results.skippedPerSecond),
  };
}
