import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FRAME_MS, FrameClock } from '../../src/media/audio/frame-clock.ts';
import { AudioTimestamps } from '../../src/media/protocol/rtp.ts';

describe('the media clock', () => {
  test('a late wake-up produces every frame that is due, in order', () => {
    let now = 1000;
    const clock = new FrameClock({ now: () => now });
    const frames: number[] = [];
    const late: (boolean | undefined)[] = [];
    clock.add({ produce: (frame, isLate) => frames.push(frame) && late.push(isLate) });
    clock.start();
    clock.stop(); // driven by hand below
    now += FRAME_MS;
    clock.advance();
    now += 3 * FRAME_MS + 5; // the thread was busy for 65 ms
    clock.advance();
    clock.advance(); // nothing more is due
    assert.deepEqual(frames, [1, 2, 3, 4]);
    assert.deepEqual(late, [false, true, true, false], 'frames 2 and 3 were due before frame 4');
    assert.equal(clock.stats().frames, 4);
  });

  test('a long stall skips the oldest frames and leaves a gap in frame numbers', () => {
    let now = 0;
    const clock = new FrameClock({ now: () => now, maxCatchUp: 5 });
    const frames: number[] = [];
    clock.add({ produce: (frame) => frames.push(frame) });
    clock.start();
    clock.stop();
    now += 2 * FRAME_MS;
    clock.advance();
    now += 20 * FRAME_MS; // a 400 ms stall
    clock.advance();
    assert.deepEqual(frames, [1, 2, 18, 19, 20, 21, 22]);
    assert.equal(clock.stats().skipped, 15);
  });

  test('a listener that throws does not stop the others', () => {
    let now = 0;
    const errors: unknown[] = [];
    const clock = new FrameClock({ now: () => now });
    clock.on('listenerError', (_listener, error) => errors.push(error));
    const frames: number[] = [];
    clock.add({
      produce() {
        throw new Error('broken room');
      },
    });
    clock.add({ produce: (frame) => frames.push(frame) });
    clock.start();
    clock.stop();
    now += 3 * FRAME_MS;
    clock.advance();
    assert.deepEqual(frames, [1, 2, 3]);
    assert.equal(errors.length, 3);
  });

  test('on real timers, every due frame is produced or counted as skipped', async () => {
    const clock = new FrameClock();
    let produced = 0;
    clock.add({ produce: () => produced++ });
    const startedAt = performance.now();
    clock.start();
    await new Promise((resolve) => setTimeout(resolve, 500));
    clock.advance(); // whatever is due now, even if its wake-up has not run yet
    clock.stop();
    const elapsedFrames = Math.floor((performance.now() - startedAt) / FRAME_MS);
    const { frames, skipped } = clock.stats();
    assert.equal(frames, produced);
    assert.ok(frames + skipped >= elapsedFrames - 1 && frames + skipped <= elapsedFrames, `${frames} + ${skipped} of ${elapsedFrames}`);
  });
});

describe('outgoing audio timestamps', () => {
  test('follow the source clock, keep its gaps, and never go back when the source changes', () => {
    const stamps = new AudioTimestamps(1_000, 960);
    const out = [960, 1920, 2880, 6720].map((ts) => stamps.next(ts));
    assert.deepEqual(out, [1960, 2920, 3880, 7720], 'a skipped stretch of 3 frames stays a gap');
    assert.equal(stamps.next(5_000_000), 8680, 'another source: one frame on');
    assert.equal(stamps.next(5_000_960), 9640);
    assert.equal(stamps.next(4_000_000), 10600, 'backwards: one frame on');
  });

  test('a frame of the same time as the last one is not sent again (a stream switching source mid-frame)', () => {
    const stamps = new AudioTimestamps(0, 960);
    assert.equal(stamps.next(9600), 960);
    assert.equal(stamps.next(9600), -1);
    assert.equal(stamps.next(10560), 1920);
  });

  test('wrap at 2^32 on both sides', () => {
    const stamps = new AudioTimestamps(2 ** 32 - 960, 960);
    assert.equal(stamps.next(2 ** 32 - 960), 0);
    assert.equal(stamps.next(0), 960, 'the source wrapped: still one frame');
  });
});
