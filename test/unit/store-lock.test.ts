import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { FileStore } from '../../src/store/file-store.ts';
import { tempDataDir } from '../support/helpers.ts';

let dataDir: string;
let store: FileStore;

before(async () => {
  dataDir = tempDataDir();
  store = await FileStore.open(dataDir);
});
after(async () => {
  await store.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** A promise and the function that settles it, to hold a section open until the test says so. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('MeetingStore.withLock (file store)', () => {
  test('sections on one key run one at a time, in the order they asked', async () => {
    const order: string[] = [];
    const first = gate();
    const a = store.withLock('meeting:a', async () => {
      order.push('first in');
      await first.opened;
      order.push('first out');
      return 1;
    });
    const b = store.withLock('meeting:a', async () => {
      order.push('second in');
      return 2;
    });
    const c = store.withLock('meeting:a', async () => {
      order.push('third in');
      return 3;
    });
    await tick();
    assert.deepEqual(order, ['first in'], 'the others wait while the first holds the key');
    first.open();
    assert.deepEqual(await Promise.all([a, b, c]), [1, 2, 3]);
    assert.deepEqual(order, ['first in', 'first out', 'second in', 'third in']);
  });

  test('sections on different keys run at the same time, and may nest', async () => {
    const held = gate();
    let otherRan = false;
    const holding = store.withLock('meeting:x', () => held.opened);
    await store.withLock('meeting:y', async () => {
      otherRan = true;
    });
    assert.ok(otherRan, 'meeting:y did not wait for meeting:x');
    const nested = await store.withLock('meetings', () => store.withLock('meeting:z', async () => 'inner'));
    assert.equal(nested, 'inner');
    held.open();
    await holding;
  });

  test('a section that throws passes its error on and releases the key', async () => {
    await assert.rejects(
      store.withLock('meeting:f', async () => {
        throw new Error('section failed');
      }),
      /section failed/,
    );
    assert.equal(await store.withLock('meeting:f', async () => 'next'), 'next');
  });
});
