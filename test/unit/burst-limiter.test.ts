import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BurstLimiter } from '../../src/util/burst-limiter.ts';

describe('the burst limiter', () => {
  test('lets the first report of a burst through, counts the rest, and reports the count with the next one after the window', () => {
    let now = 0;
    const limiter = new BurstLimiter(10_000, () => now);
    assert.equal(limiter.admit('room-a'), 0);
    for (let i = 0; i < 49; i++) {
      now += 20;
      assert.equal(limiter.admit('room-a'), -1);
    }
    assert.equal(limiter.admit('room-b'), 0, 'another key has its own burst');
    now += 10_000;
    assert.equal(limiter.admit('room-a'), 49, 'the next report says how many were left out');
    assert.equal(limiter.admit('room-a'), -1);
  });

  test('keeps at most maxKeys keys', () => {
    let now = 0;
    const limiter = new BurstLimiter(1_000, () => now, 10);
    for (let i = 0; i < 10; i++) limiter.admit(`k${i}`);
    now += 1_000;
    assert.equal(limiter.admit('new'), 0, 'quiet keys are forgotten to make room');
    for (let i = 0; i < 20; i++) assert.notEqual(limiter.admit(`other${i}`), -1);
  });
});
