import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MissingPackets } from '../../src/media/sfu/missing-packets.ts';

describe('the gaps of an incoming stream', () => {
  test('a gap is asked for once it has been missing 20 ms, again every 120 ms, at most 4 times', () => {
    const missing = new MissingPackets();
    missing.received(100, 0);
    missing.received(103, 0);
    assert.deepEqual(missing.due(10), [], 'younger than the reordering hold');
    assert.deepEqual(missing.due(20), [101, 102]);
    assert.deepEqual(missing.due(100), [], 'asked 80 ms ago');
    assert.deepEqual(missing.due(140), [101, 102]);
    assert.deepEqual(missing.due(260), [101, 102]);
    assert.deepEqual(missing.due(380), [101, 102]);
    assert.deepEqual(missing.due(500), [], 'asked four times');
    assert.equal(missing.size, 0);
  });

  test('a packet that comes late or repaired fills its gap and is not asked for again', () => {
    const missing = new MissingPackets();
    missing.received(10, 0);
    missing.received(14, 0);
    assert.equal(missing.received(12, 5), true, 'a late packet fills a gap');
    assert.equal(missing.received(12, 6), false, 'twice does not count twice');
    assert.equal(missing.received(14, 6), false, 'a duplicate of the newest is no gap');
    assert.deepEqual(missing.due(30), [11, 13]);
    assert.equal(missing.received(13, 40), true);
    assert.deepEqual(missing.due(200), [11]);
  });

  test('gaps older than a second are forgotten: receivers asked for a key frame by then', () => {
    const missing = new MissingPackets();
    missing.received(1, 0);
    missing.received(3, 0);
    assert.deepEqual(missing.due(1001), []);
    assert.equal(missing.size, 0);
  });

  test('numbering wraps around 65535; a jump of more than 256 is a restart, not losses', () => {
    const missing = new MissingPackets();
    missing.received(65534, 0);
    missing.received(1, 0);
    assert.deepEqual(missing.due(20), [65535, 0]);
    missing.received(1000, 30);
    assert.equal(missing.size, 0, 'the jump dropped what was tracked');
    missing.received(1001, 30);
    assert.deepEqual(missing.due(200), []);
  });

  test('never asked (nobody watches), gaps stay bounded: the oldest make room', () => {
    const missing = new MissingPackets();
    for (let seq = 0; seq < 20_000; seq += 2) missing.received(seq, 0);
    assert.equal(missing.size, 512);
    assert.equal(missing.due(20)[0], 20_000 - 2 * 512 - 1, 'the newest are kept');
  });
});
