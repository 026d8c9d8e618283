import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AddressLimits } from '../../src/signaling/address-limits.ts';
import { ByteBudget } from '../../src/signaling/byte-budget.ts';
import { TurnQueue } from '../../src/signaling/turns.ts';

describe('ByteBudget', () => {
  test('the burst passes at once; past it, the wait is the debt at the sustained rate; time refills up to the burst', () => {
    let now = 0;
    const budget = new ByteBudget(1000, 4000, () => now);
    assert.equal(budget.charge(3000), 0);
    assert.equal(budget.charge(1000), 0);
    assert.equal(budget.charge(500), 500, '500 bytes over at 1000 B/s: half a second');
    now += 500;
    assert.equal(budget.available, 0);
    now += 2000;
    assert.equal(budget.available, 2000);
    now += 60_000;
    assert.equal(budget.available, 4000, 'never more than the burst');
    assert.throws(() => new ByteBudget(0, 10, () => 0), RangeError);
  });
});

describe('AddressLimits', () => {
  test('admits up to the cap per address, frees a slot once per release; 0 is no cap', () => {
    const limits = new AddressLimits(2);
    const first = limits.admit('10.0.0.1')!;
    assert.ok(limits.admit('10.0.0.1'));
    assert.equal(limits.admit('10.0.0.1'), undefined);
    assert.ok(limits.admit('10.0.0.2'), 'other addresses have their own slots');
    first();
    first();
    assert.equal(limits.countOf('10.0.0.1'), 1, 'a second release of the same slot frees nothing');
    assert.ok(limits.admit('10.0.0.1'));
    const open = new AddressLimits(0);
    for (let i = 0; i < 1000; i++) assert.ok(open.admit('10.0.0.1'));
  });
});

describe('TurnQueue', () => {
  test('runs jobs in order, one per event-loop turn, with I/O-phase callbacks in between', async () => {
    const turns = new TurnQueue(1);
    const order: string[] = [];
    await new Promise<void>((resolve) => {
      turns.take(() => {
        order.push('job 1');
        // Queued during job 1: runs before job 2, which waits for a later turn.
        setImmediate(() => order.push('between'));
      });
      turns.take(() => order.push('job 2'));
      turns.take(() => {
        order.push('job 3');
        resolve();
      });
    });
    assert.deepEqual(order, ['job 1', 'between', 'job 2', 'job 3']);
  });

});
