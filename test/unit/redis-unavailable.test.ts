import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CreateMeetingCommand, GetMeetingCommand } from '@aws-sdk/client-chime-sdk-meetings';
import { StoreUnavailableError } from '../../src/meetings/meeting-store.ts';
import { RedisMeetingStore } from '../../src/store/redis-store.ts';
import { clientFor, startTestAmphi, TEST_KEY, type TestAmphi } from '../support/helpers.ts';
import { startTestRedis, type TestRedis } from '../support/redis-server.ts';

/** Redis goes away and comes back: calls fail at once with 503 meanwhile, and nothing acknowledged is lost. */
let redis: TestRedis;
let store: RedisMeetingStore;
let server: TestAmphi;

before(async () => {
  redis = await startTestRedis();
  store = await RedisMeetingStore.open(redis.url, { keyPrefix: 'unavailable:' });
  server = await startTestAmphi({ start: { store } });
});
after(async () => {
  await server.stop();
  await redis.stop();
});

const timed = async <T>(work: Promise<T>) => {
  const started = Date.now();
  const outcome = await work.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  return { ...outcome, ms: Date.now() - started };
};

describe('Redis unavailable', () => {
  test('the store says so at once, runs no locked section, and works again after a restart with what was acknowledged', async () => {
    const api = clientFor(server.amphi.url, TEST_KEY, 1);
    const { Meeting } = await api.send(new CreateMeetingCommand({ ClientRequestToken: 'before-crash', MediaRegion: 'us-east-1', ExternalMeetingId: 'kept' }));
    await redis.stopServer('SIGKILL');

    const read = await timed(store.getMeeting(Meeting!.MeetingId!));
    assert.ok('error' in read && read.error instanceof StoreUnavailableError, `a StoreUnavailableError, not ${JSON.stringify(read)}`);
    assert.ok(read.ms < 3000, `within 3 s (took ${read.ms} ms)`);
    let ran = false;
    const locked = await timed(store.withLock('k', async () => void (ran = true)));
    assert.ok('error' in locked && locked.error instanceof StoreUnavailableError);
    assert.equal(ran, false, 'no section runs without the lock');

    const call = await timed(api.send(new GetMeetingCommand({ MeetingId: Meeting!.MeetingId })));
    assert.ok('error' in call);
    const error = call.error as { name?: string; $metadata?: { httpStatusCode?: number } };
    assert.equal(error.name, 'ServiceUnavailableException');
    assert.equal(error.$metadata?.httpStatusCode, 503);
    assert.ok(call.ms < 3000, `the API answers instead of hanging (took ${call.ms} ms)`);

    await redis.startServer();
    const deadline = Date.now() + 10_000;
    for (;;) {
      const again = await timed(api.send(new GetMeetingCommand({ MeetingId: Meeting!.MeetingId })));
      if ('value' in again) {
        assert.equal(again.value.Meeting?.ExternalMeetingId, 'kept', 'the acknowledged meeting survived the crash (AOF)');
        break;
      }
      assert.ok(Date.now() < deadline, 'the node recovers by itself');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  });

  test("a section's own errors pass unchanged", async () => {
    await assert.rejects(
      store.withLock('rules', async () => {
        throw new RangeError('a rule of the service');
      }),
      (error: unknown) => error instanceof RangeError && !(error instanceof StoreUnavailableError),
    );
  });
});
