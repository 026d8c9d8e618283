import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, describe, test } from 'node:test';
import { StoreUnavailableError, type MeetingStore } from '../../src/meetings/meeting-store.ts';
import type { AttendeeRecord, MeetingRecord } from '../../src/meetings/model.ts';
import { FileStore } from '../../src/store/file-store.ts';
import { LockLostError, MalformedRecordError, RedisMeetingStore } from '../../src/store/redis-store.ts';
import { startTestRedis, type TestRedis } from '../support/redis-server.ts';
import { tempDataDir } from '../support/helpers.ts';

let redis: TestRedis;
before(async () => {
  redis = await startTestRedis();
});
after(async () => {
  await redis.stop();
});

/** One store under test; `reopen` closes it and opens it again on the same data. */
interface Subject {
  store: MeetingStore;
  reopen(): Promise<void>;
  close(): Promise<void>;
}

let prefixes = 0;
const kinds: Record<string, () => Promise<Subject>> = {
  async FileStore() {
    const dir = tempDataDir();
    const subject: Subject = {
      store: await FileStore.open(dir),
      async reopen() {
        await subject.store.close();
        subject.store = await FileStore.open(dir);
      },
      async close() {
        await subject.store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
    return subject;
  },
  async RedisMeetingStore() {
    const keyPrefix = `contract${++prefixes}:`;
    const subject: Subject = {
      store: await RedisMeetingStore.open(redis.url, { keyPrefix }),
      async reopen() {
        await subject.store.close();
        subject.store = await RedisMeetingStore.open(redis.url, { keyPrefix });
      },
      close: () => subject.store.close(),
    };
    return subject;
  },
};

let counter = 0;
const id = (label: string) => `${label}-${String(++counter).padStart(4, '0')}`;

function meeting(overrides: Partial<MeetingRecord> = {}): MeetingRecord {
  const meetingId = overrides.MeetingId ?? id('m');
  return {
    MeetingId: meetingId,
    ExternalMeetingId: `ext-${meetingId}`,
    MediaRegion: 'us-east-1',
    TenantIds: [],
    ClientRequestToken: `token-${meetingId}`,
    RequestFingerprint: 'fp',
    MediaNodeId: 'local',
    Tags: [],
    CreatedAt: 1_700_000_000_000,
    ...overrides,
  };
}

function attendee(meetingId: string, overrides: Partial<AttendeeRecord> = {}): AttendeeRecord {
  const attendeeId = overrides.AttendeeId ?? id('a');
  return {
    MeetingId: meetingId,
    AttendeeId: attendeeId,
    ExternalUserId: `user-${attendeeId}`,
    JoinToken: `join-${attendeeId}`,
    Capabilities: { Audio: 'SendReceive', Video: 'SendReceive', Content: 'SendReceive' },
    CreatedAt: 1_700_000_000_001,
    ...overrides,
  };
}

function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

for (const [kind, openSubject] of Object.entries(kinds)) {
  describe(`MeetingStore contract: ${kind}`, () => {
    let subject: Subject;
    let store: MeetingStore;
    const fresh = async () => {
      subject = await openSubject();
      store = subject.store;
    };
    afterEach(async () => {
      await subject?.close();
    });

    test('meetings: put, get, replace, list in order of first put, count, delete, put again', async () => {
      await fresh();
      const [a, b, c] = [meeting(), meeting(), meeting()];
      assert.equal(await store.getMeeting(a.MeetingId), undefined);
      assert.deepEqual(await store.listMeetings(), []);
      assert.equal(await store.countMeetings(), 0);
      for (const m of [a, b, c]) await store.putMeeting(m);
      assert.deepEqual(await store.getMeeting(b.MeetingId), b);
      const retagged = { ...a, Tags: [{ Key: 'k', Value: 'v' }] };
      await store.putMeeting(retagged);
      assert.deepEqual(await store.getMeeting(a.MeetingId), retagged);
      assert.deepEqual(await store.listMeetings(), [retagged, b, c], 'a replaced meeting keeps its place');
      assert.equal(await store.countMeetings(), 3);
      assert.deepEqual(await store.deleteMeeting(b.MeetingId), []);
      assert.equal(await store.getMeeting(b.MeetingId), undefined);
      assert.deepEqual(await store.deleteMeeting(b.MeetingId), [], 'deleting twice is harmless');
      await store.putMeeting(b);
      assert.deepEqual(await store.listMeetings(), [retagged, c, b], 'a meeting put again after its deletion goes last');
      assert.equal(await store.countMeetings(), 3);
    });

    test('ClientRequestToken index: latest put wins; deleting another meeting leaves it', async () => {
      await fresh();
      const first = meeting({ ClientRequestToken: 'shared' });
      const second = meeting({ ClientRequestToken: 'shared' });
      assert.equal(await store.findMeetingByRequestToken('shared'), undefined);
      await store.putMeeting(first);
      assert.deepEqual(await store.findMeetingByRequestToken('shared'), first);
      await store.putMeeting(second);
      assert.deepEqual(await store.findMeetingByRequestToken('shared'), second);
      await store.deleteMeeting(first.MeetingId);
      assert.deepEqual(await store.findMeetingByRequestToken('shared'), second);
      await store.deleteMeeting(second.MeetingId);
      assert.equal(await store.findMeetingByRequestToken('shared'), undefined);
    });

    test('replica ids per primary, in the order they were put', async () => {
      await fresh();
      const primary = meeting();
      await store.putMeeting(primary);
      const replicas = [1, 2, 3].map(() => meeting({ PrimaryMeetingId: primary.MeetingId }));
      for (const replica of replicas) await store.putMeeting(replica);
      await store.putMeeting(replicas[0]!); // again: keeps its place
      assert.deepEqual(await store.listReplicaIds(primary.MeetingId), replicas.map((r) => r.MeetingId));
      assert.deepEqual(await store.listReplicaIds(replicas[0]!.MeetingId), []);
      assert.deepEqual(await store.listReplicaIds('unknown'), []);
      await store.deleteMeeting(replicas[1]!.MeetingId);
      assert.deepEqual(await store.listReplicaIds(primary.MeetingId), [replicas[0]!.MeetingId, replicas[2]!.MeetingId]);
      await store.deleteMeeting(replicas[0]!.MeetingId);
      await store.deleteMeeting(replicas[2]!.MeetingId);
      assert.deepEqual(await store.listReplicaIds(primary.MeetingId), []);
      assert.equal(await store.countMeetings(), 1);
    });

    test('attendees: put, get, replace, count, list in order of first put, delete', async () => {
      await fresh();
      const m = meeting();
      await store.putMeeting(m);
      const [a, b, c] = [attendee(m.MeetingId), attendee(m.MeetingId), attendee(m.MeetingId)];
      assert.equal(await store.getAttendee(m.MeetingId, a.AttendeeId), undefined);
      assert.equal(await store.countAttendees(m.MeetingId), 0);
      assert.deepEqual(await store.listAllAttendees(m.MeetingId), []);
      for (const x of [a, b, c]) await store.putAttendee(x);
      assert.deepEqual(await store.getAttendee(m.MeetingId, b.AttendeeId), b);
      assert.equal(await store.getAttendee('other', b.AttendeeId), undefined);
      const muted = { ...a, Capabilities: { Audio: 'Receive' as const, Video: 'None' as const, Content: 'None' as const } };
      await store.putAttendee(muted);
      assert.deepEqual(await store.listAllAttendees(m.MeetingId), [muted, b, c]);
      assert.equal(await store.countAttendees(m.MeetingId), 3);
      assert.deepEqual(await store.deleteAttendee(m.MeetingId, b.AttendeeId), b);
      assert.equal(await store.deleteAttendee(m.MeetingId, b.AttendeeId), undefined);
      assert.equal(await store.getAttendee(m.MeetingId, b.AttendeeId), undefined);
      assert.equal(await store.countAttendees(m.MeetingId), 2);
      await store.putAttendee(b);
      assert.deepEqual(await store.listAllAttendees(m.MeetingId), [muted, c, b]);
    });

    test('JoinToken index: follows a replaced token, forgets a deleted attendee', async () => {
      await fresh();
      const m = meeting();
      await store.putMeeting(m);
      const a = attendee(m.MeetingId);
      await store.putAttendee(a);
      assert.deepEqual(await store.findAttendeeByJoinToken(a.JoinToken), a);
      assert.equal(await store.findAttendeeByJoinToken('unknown'), undefined);
      const renewed = { ...a, JoinToken: 'renewed-token' };
      await store.putAttendee(renewed);
      assert.equal(await store.findAttendeeByJoinToken(a.JoinToken), undefined, 'the old token no longer finds it');
      assert.deepEqual(await store.findAttendeeByJoinToken('renewed-token'), renewed);
      await store.deleteAttendee(m.MeetingId, a.AttendeeId);
      assert.equal(await store.findAttendeeByJoinToken('renewed-token'), undefined);
    });

    test('ExternalUserId index: per meeting, latest put wins, deleting a superseded attendee keeps the newer', async () => {
      await fresh();
      const [m1, m2] = [meeting(), meeting()];
      await store.putMeeting(m1);
      await store.putMeeting(m2);
      const first = attendee(m1.MeetingId, { ExternalUserId: 'alice' });
      const second = attendee(m1.MeetingId, { ExternalUserId: 'alice' });
      const elsewhere = attendee(m2.MeetingId, { ExternalUserId: 'alice' });
      await store.putAttendee(first);
      assert.deepEqual(await store.findAttendeeByExternalUserId(m1.MeetingId, 'alice'), first);
      await store.putAttendees([second, elsewhere]);
      assert.deepEqual(await store.findAttendeeByExternalUserId(m1.MeetingId, 'alice'), second);
      assert.deepEqual(await store.findAttendeeByExternalUserId(m2.MeetingId, 'alice'), elsewhere);
      assert.equal(await store.findAttendeeByExternalUserId(m1.MeetingId, 'bob'), undefined);
      await store.deleteAttendee(m1.MeetingId, first.AttendeeId);
      assert.deepEqual(await store.findAttendeeByExternalUserId(m1.MeetingId, 'alice'), second);
      await store.deleteAttendee(m1.MeetingId, second.AttendeeId);
      assert.equal(await store.findAttendeeByExternalUserId(m1.MeetingId, 'alice'), undefined);
      assert.deepEqual(await store.findAttendeeByExternalUserId(m2.MeetingId, 'alice'), elsewhere);
    });

    test('listAttendees: by AttendeeId, pages of `limit`, lastAttendeeId only while more remain', async () => {
      await fresh();
      const m = meeting();
      await store.putMeeting(m);
      const ids = ['e', 'a', 'd', 'b', 'c'];
      await store.putAttendees(ids.map((AttendeeId) => attendee(m.MeetingId, { AttendeeId, JoinToken: `${m.MeetingId}-${AttendeeId}` })));
      const idsOf = (page: { attendees: AttendeeRecord[] }) => page.attendees.map((a) => a.AttendeeId);
      const first = await store.listAttendees(m.MeetingId, 2);
      assert.deepEqual(idsOf(first), ['a', 'b']);
      assert.equal(first.lastAttendeeId, 'b');
      const second = await store.listAttendees(m.MeetingId, 2, first.lastAttendeeId);
      assert.deepEqual(idsOf(second), ['c', 'd']);
      assert.equal(second.lastAttendeeId, 'd');
      const last = await store.listAttendees(m.MeetingId, 2, second.lastAttendeeId);
      assert.deepEqual(last, { attendees: [(await store.getAttendee(m.MeetingId, 'e'))!] });
      assert.deepEqual(idsOf(await store.listAttendees(m.MeetingId, 5)), ['a', 'b', 'c', 'd', 'e']);
      assert.equal((await store.listAttendees(m.MeetingId, 5)).lastAttendeeId, undefined, 'exactly the rest: no marker');
      assert.deepEqual(idsOf(await store.listAttendees(m.MeetingId, 10, 'bb')), ['c', 'd', 'e'], 'after an id that is not there');
      assert.deepEqual(await store.listAttendees(m.MeetingId, 10, 'e'), { attendees: [] });
      assert.deepEqual(await store.listAttendees('unknown', 10), { attendees: [] });
    });

    test('deleteMeeting returns its attendees in order and removes every index entry, and nothing of others', async () => {
      await fresh();
      const primary = meeting();
      const replica = meeting({ PrimaryMeetingId: primary.MeetingId });
      const other = meeting();
      for (const m of [primary, replica, other]) await store.putMeeting(m);
      const inReplica = [attendee(replica.MeetingId), attendee(replica.MeetingId)];
      const inOther = attendee(other.MeetingId);
      await store.putAttendees([...inReplica, inOther]);
      assert.deepEqual(await store.deleteMeeting(replica.MeetingId), inReplica);
      assert.equal(await store.getMeeting(replica.MeetingId), undefined);
      assert.equal(await store.findMeetingByRequestToken(replica.ClientRequestToken), undefined);
      assert.deepEqual(await store.listReplicaIds(primary.MeetingId), []);
      assert.equal(await store.countAttendees(replica.MeetingId), 0);
      assert.deepEqual(await store.listAllAttendees(replica.MeetingId), []);
      for (const a of inReplica) {
        assert.equal(await store.getAttendee(replica.MeetingId, a.AttendeeId), undefined);
        assert.equal(await store.findAttendeeByJoinToken(a.JoinToken), undefined);
        assert.equal(await store.findAttendeeByExternalUserId(replica.MeetingId, a.ExternalUserId), undefined);
      }
      assert.deepEqual(await store.listMeetings(), [primary, other]);
      assert.deepEqual(await store.findAttendeeByJoinToken(inOther.JoinToken), inOther);
      assert.deepEqual(await store.listAllAttendees(other.MeetingId), [inOther]);
      assert.deepEqual(await store.deleteMeeting(replica.MeetingId), []);
    });

    test('putAttendees: one batch, applied in order (a later entry for the same attendee wins); an empty batch is fine', async () => {
      await fresh();
      const m = meeting();
      await store.putMeeting(m);
      const a = attendee(m.MeetingId);
      const b = attendee(m.MeetingId);
      const aAgain = { ...a, JoinToken: 'second-token' };
      await store.putAttendees([a, b, aAgain]);
      await store.putAttendees([]);
      assert.deepEqual(await store.listAllAttendees(m.MeetingId), [aAgain, b]);
      assert.equal(await store.countAttendees(m.MeetingId), 2);
      assert.equal(await store.findAttendeeByJoinToken(a.JoinToken), undefined);
      assert.deepEqual(await store.findAttendeeByJoinToken('second-token'), aAgain);
    });

    test('the state, orders and indexes survive closing and opening the store again', async () => {
      await fresh();
      const primary = meeting();
      const replica = meeting({ PrimaryMeetingId: primary.MeetingId });
      await store.putMeeting(primary);
      await store.putMeeting(replica);
      const attendees = [attendee(primary.MeetingId, { AttendeeId: 'z' }), attendee(primary.MeetingId, { AttendeeId: 'y' })];
      await store.putAttendees(attendees);
      await subject.reopen();
      store = subject.store;
      assert.deepEqual(await store.listMeetings(), [primary, replica]);
      assert.deepEqual(await store.listReplicaIds(primary.MeetingId), [replica.MeetingId]);
      assert.deepEqual(await store.listAllAttendees(primary.MeetingId), attendees);
      assert.deepEqual(await store.findMeetingByRequestToken(replica.ClientRequestToken), replica);
      assert.deepEqual(await store.findAttendeeByJoinToken(attendees[1]!.JoinToken), attendees[1]);
      assert.deepEqual(await store.findAttendeeByExternalUserId(primary.MeetingId, attendees[0]!.ExternalUserId), attendees[0]);
    });

    test('withLock: sections on one key run one at a time, in the order they asked', async () => {
      await fresh();
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
      await sleep(50);
      assert.deepEqual(order, ['first in'], 'the others wait while the first holds the key');
      first.open();
      assert.deepEqual(await Promise.all([a, b, c]), [1, 2, 3]);
      assert.deepEqual(order, ['first in', 'first out', 'second in', 'third in']);
    });

    test('withLock: sections on different keys run at the same time, and may nest', async () => {
      await fresh();
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

    test('withLock: a section that throws passes its error on and releases the key', async () => {
      await fresh();
      await assert.rejects(
        store.withLock('meeting:f', async () => {
          throw new Error('section failed');
        }),
        /section failed/,
      );
      assert.equal(await store.withLock('meeting:f', async () => 'next'), 'next');
    });
  });
}

describe('RedisMeetingStore: the lock across nodes', () => {
  const nodes: RedisMeetingStore[] = [];
  const node = async (options: { lockTtlMs?: number } = {}) => {
    const opened = await RedisMeetingStore.open(redis.url, { keyPrefix: 'nodes:', ...options });
    nodes.push(opened);
    return opened;
  };
  afterEach(async () => {
    for (const opened of nodes.splice(0)) await opened.close();
  });

  test('two nodes: sections on one key never overlap', async () => {
    const [a, b] = [await node(), await node()];
    let inside = 0;
    let most = 0;
    let runs = 0;
    const section = async () => {
      inside++;
      most = Math.max(most, inside);
      await sleep(3);
      runs++;
      inside--;
    };
    await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).withLock('meeting:shared', section)));
    assert.equal(runs, 20);
    assert.equal(most, 1, 'two sections on one key overlapped');
  });

  test('two nodes: sections on different keys run at the same time; one key waits for the other node', async () => {
    const [a, b] = [await node(), await node()];
    const held = gate();
    const holding = a.withLock('meeting:x', () => held.opened);
    await sleep(20);
    assert.equal(await b.withLock('meeting:y', async () => 'ran'), 'ran', 'meeting:y did not wait for meeting:x');
    let waited = false;
    const waiting = b.withLock('meeting:x', async () => {
      waited = true;
    });
    await sleep(100);
    assert.equal(waited, false, 'the second node took meeting:x while the first held it');
    held.open();
    await holding;
    await waiting;
    assert.equal(waited, true);
  });

  test('check-then-write under the lock holds a limit across nodes: 3 nodes race 300 additions, exactly 250 land', async () => {
    const nodesInRace = [await node(), await node(), await node()];
    const m = meeting();
    await nodesInRace[0]!.putMeeting(m);
    const outcomes = await Promise.all(
      Array.from({ length: 300 }, (_, i) => {
        const store = nodesInRace[i % 3]!;
        return store.withLock(`meeting:${m.MeetingId}`, async () => {
          if ((await store.countAttendees(m.MeetingId)) >= 250) return false;
          await store.putAttendee(attendee(m.MeetingId));
          return true;
        });
      }),
    );
    assert.equal(outcomes.filter(Boolean).length, 250);
    assert.equal(await nodesInRace[1]!.countAttendees(m.MeetingId), 250);
    await nodesInRace[2]!.deleteMeeting(m.MeetingId);
  });

  test('a section longer than the TTL keeps its lock (renewed), and it is released at once after', async () => {
    const [a, b] = [await node({ lockTtlMs: 300 }), await node({ lockTtlMs: 300 })];
    let bTookItAt = 0;
    let aLeftAt = 0;
    const holding = a.withLock('meeting:long', async () => {
      await sleep(1_000);
      aLeftAt = Date.now();
    });
    await sleep(20);
    await b.withLock('meeting:long', async () => {
      bTookItAt = Date.now();
    });
    await holding;
    assert.ok(bTookItAt >= aLeftAt, 'the lock expired under a live holder');
    assert.ok(bTookItAt - aLeftAt < 300, `the waiter took ${bTookItAt - aLeftAt} ms to notice the release`);
  });

  test('a holder that dies (its process killed, its connection gone) frees the lock within its TTL', async () => {
    const ttl = 1_000;
    const storeModule = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/store/redis-store.ts');
    const script = `
      const { RedisMeetingStore } = await import(${JSON.stringify(storeModule)});
      const store = await RedisMeetingStore.open(${JSON.stringify(redis.url)}, { keyPrefix: 'nodes:', lockTtlMs: ${ttl} });
      store.withLock('meeting:dies', () => { console.log('held'); return new Promise(() => {}); });
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('held') && resolve());
        child.once('exit', (code) => reject(new Error(`the holder exited (${code}) before it held the lock`)));
      });
      const b = await node({ lockTtlMs: ttl });
      let took = false;
      const waiting = b.withLock('meeting:dies', async () => {
        took = true;
      });
      await sleep(2 * ttl);
      assert.equal(took, false, 'a live holder lost its lock (not renewed?)');
      const killedAt = Date.now();
      child.kill('SIGKILL');
      await waiting;
      const freedAfter = Date.now() - killedAt;
      assert.ok(freedAfter <= ttl + 300, `the lock was freed ${freedAfter} ms after its holder died`);
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('a holder whose lease runs out (Redis unreachable) is told so after its section', async () => {
    const a = await node({ lockTtlMs: 200 });
    const b = await node({ lockTtlMs: 200 });
    const held = gate();
    const holding = a.withLock('meeting:lost', () => held.opened);
    await sleep(20);
    // Another holder takes over as if the lease had expired (what a long partition from Redis would allow).
    await redis.client.set('nodes:lock:meeting:lost', 'someone-else', 'PX', 10_000);
    await sleep(250);
    held.open();
    // As a store error: unavailable (the API's 503, which the SDK retries), with the lock's own error as its cause.
    await assert.rejects(holding, (error: Error) => error instanceof StoreUnavailableError && error.cause instanceof LockLostError);
    assert.equal(await redis.client.get('nodes:lock:meeting:lost'), 'someone-else', 'the old holder released a lock it no longer held');
    await redis.client.del('nodes:lock:meeting:lost');
    assert.equal(await b.withLock('meeting:lost', async () => 'free'), 'free');
  });
});

describe('RedisMeetingStore: keys and malformed values', () => {
  let store: RedisMeetingStore;
  const prefix = 'shape:';
  before(async () => {
    store = await RedisMeetingStore.open(redis.url, { keyPrefix: prefix });
  });
  after(async () => {
    await store.close();
  });

  test('every key is under the prefix, and deleting everything leaves only the sequence counter', async () => {
    const primary = meeting();
    const replica = meeting({ PrimaryMeetingId: primary.MeetingId });
    await store.putMeeting(primary);
    await store.putMeeting(replica);
    await store.putAttendees([attendee(primary.MeetingId), attendee(replica.MeetingId), attendee(replica.MeetingId)]);
    await store.withLock('meetings', async () => undefined);
    const keys = await redis.client.keys('*');
    const naming = keys.filter((key) => key.includes(primary.MeetingId) || key.includes(replica.MeetingId));
    assert.ok(naming.length > 0 && naming.every((key) => key.startsWith(prefix)), naming.join(' '));
    assert.ok(keys.includes(`${prefix}meetings`) && keys.includes(`${prefix}join-tokens`), keys.join(' '));
    await store.deleteMeeting(replica.MeetingId);
    await store.deleteMeeting(primary.MeetingId);
    assert.deepEqual(await redis.client.keys(`${prefix}*`), [`${prefix}sequence`]);
  });

  test('a malformed meeting is an error naming its key, not a crash; a deletion that meets it changes nothing', async () => {
    const m = meeting();
    await store.putMeeting(m);
    const a = attendee(m.MeetingId);
    await store.putAttendee(a);
    await redis.client.hset(`${prefix}meetings`, m.MeetingId, '{"MeetingId": 42');
    await assert.rejects(store.getMeeting(m.MeetingId), (error: Error) => error instanceof MalformedRecordError && error.message.includes(`${prefix}meetings[${m.MeetingId}]`));
    await assert.rejects(store.listMeetings(), MalformedRecordError);
    await assert.rejects(store.findMeetingByRequestToken(m.ClientRequestToken), MalformedRecordError);
    await assert.rejects(store.deleteMeeting(m.MeetingId), (error: Error) => error instanceof MalformedRecordError && /malformed meeting record/.test(error.message));
    assert.deepEqual(await store.getAttendee(m.MeetingId, a.AttendeeId), a, 'the failed deletion removed nothing');
    assert.deepEqual(await store.findAttendeeByJoinToken(a.JoinToken), a);
    await redis.client.hset(`${prefix}meetings`, m.MeetingId, JSON.stringify(m));
    assert.deepEqual(await store.deleteMeeting(m.MeetingId), [a]);
  });

  test('a malformed attendee is an error naming its key; replacing or deleting it is refused whole', async () => {
    const m = meeting();
    await store.putMeeting(m);
    const [a, b] = [attendee(m.MeetingId), attendee(m.MeetingId)];
    await store.putAttendees([a, b]);
    const hash = `${prefix}attendees:${m.MeetingId}`;
    await redis.client.hset(hash, a.AttendeeId, '[]');
    await assert.rejects(store.getAttendee(m.MeetingId, a.AttendeeId), (error: Error) => error instanceof MalformedRecordError && error.message.includes(`${hash}[${a.AttendeeId}]`));
    await assert.rejects(store.listAllAttendees(m.MeetingId), MalformedRecordError);
    await assert.rejects(store.listAttendees(m.MeetingId, 10), MalformedRecordError);
    await assert.rejects(store.findAttendeeByExternalUserId(m.MeetingId, a.ExternalUserId), MalformedRecordError);
    await assert.rejects(store.deleteAttendee(m.MeetingId, a.AttendeeId), MalformedRecordError);
    const c = attendee(m.MeetingId);
    await assert.rejects(store.putAttendees([c, { ...a, JoinToken: 'new' }]), MalformedRecordError);
    assert.equal(await store.getAttendee(m.MeetingId, c.AttendeeId), undefined, 'the refused batch wrote nothing');
    await assert.rejects(store.deleteMeeting(m.MeetingId), MalformedRecordError);
    assert.deepEqual(await store.getMeeting(m.MeetingId), m);
    assert.deepEqual(await store.getAttendee(m.MeetingId, b.AttendeeId), b);
    await redis.client.hset(`${prefix}join-tokens`, 'broken', 'not json');
    await assert.rejects(store.findAttendeeByJoinToken('broken'), /malformed JoinToken index record/);
    await redis.client.hset(hash, a.AttendeeId, JSON.stringify(a));
    assert.deepEqual(await store.deleteMeeting(m.MeetingId), [a, b]);
  });

  test('a reader on another connection never sees half of a deletion', async () => {
    const reader = await RedisMeetingStore.open(redis.url, { keyPrefix: prefix });
    try {
      for (let round = 0; round < 20; round++) {
        const m = meeting();
        await store.putMeeting(m);
        const attendees = Array.from({ length: 20 }, () => attendee(m.MeetingId));
        await store.putAttendees(attendees);
        const deleting = store.deleteMeeting(m.MeetingId);
        const seen = await Promise.all([reader.countAttendees(m.MeetingId), reader.listAllAttendees(m.MeetingId)]);
        await deleting;
        assert.ok(seen[0] === 0 || seen[0] === 20, `saw ${seen[0]} attendees`);
        assert.ok(seen[1].length === 0 || seen[1].length === 20, `listed ${seen[1].length} attendees`);
      }
    } finally {
      await reader.close();
    }
  });

  test('close() disconnects: later calls reject instead of hanging', async () => {
    const closing = await RedisMeetingStore.open(redis.url, { keyPrefix: prefix });
    await closing.close();
    await assert.rejects(closing.putMeeting(meeting()), /closed/);
    await assert.rejects(closing.withLock('meetings', async () => undefined), /closed/);
    await assert.rejects(closing.getMeeting('x'));
    await closing.close();
  });

  test('open() rejects when Redis cannot be reached', async () => {
    await assert.rejects(RedisMeetingStore.open('redis://127.0.0.1:1', { redis: { retryStrategy: () => null } }));
  });
});
