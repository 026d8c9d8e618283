import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import pino from 'pino';
import type { AttendeeRecord, MeetingRecord } from '../../src/meetings/model.ts';
import { RedisMeetingEventBus } from '../../src/store/redis-event-bus.ts';
import { RedisTokenRevocations } from '../../src/store/redis-revocations.ts';
import { startTestRedis, type TestRedis } from '../support/redis-server.ts';

/** Two "nodes" share revocations and control-plane events through one real redis-server. */
let redis: TestRedis;
const connections: Redis[] = [];
const connect = () => {
  const connection = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  connections.push(connection);
  return connection;
};
const logger = pino({ level: 'silent' });
const waitFor = async (check: () => boolean, what: string, timeoutMs = 3000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

before(async () => {
  redis = await startTestRedis();
});
after(async () => {
  for (const connection of connections) connection.disconnect();
  await redis.stop();
});

const attendee: AttendeeRecord = {
  MeetingId: '11111111-2222-3333-4444-555555555555',
  AttendeeId: '66666666-7777-8888-9999-000000000000',
  ExternalUserId: 'shared',
  JoinToken: 'token',
  Capabilities: { Audio: 'SendReceive', Video: 'SendReceive', Content: 'SendReceive' },
  CreatedAt: 1,
};

describe('RedisTokenRevocations', () => {
  test('a revocation made on one node is read on another, with its reason, until it expires', async () => {
    const nodeA = new RedisTokenRevocations(connect(), 'test-rev:', { memoryMs: 300 });
    const nodeB = new RedisTokenRevocations(connect(), 'test-rev:', { memoryMs: 300 });
    await nodeA.revoke(['t1', 't2'], 'meetingEnded');
    await nodeA.revoke(['t3'], 'attendeeRemoved');
    assert.equal(await nodeB.reasonFor('t1'), 'meetingEnded');
    assert.equal(await nodeB.reasonFor('t3'), 'attendeeRemoved');
    assert.equal(await nodeB.reasonFor('never'), undefined);
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(await nodeB.reasonFor('t1'), undefined, 'forgotten after the memory time');
  });

  test('a value that is not a reason reads as no revocation', async () => {
    const revocations = new RedisTokenRevocations(connect(), 'test-rev:');
    await redis.client.set('test-rev:revoked:odd', 'something else');
    assert.equal(await revocations.reasonFor('odd'), undefined);
  });
});

describe('RedisMeetingEventBus', () => {
  test("a node's events reach its own subscribers at once and the other node's through Redis", async () => {
    const nodeA = new RedisMeetingEventBus(connect(), connect(), logger, 'test-bus:');
    const nodeB = new RedisMeetingEventBus(connect(), connect(), logger, 'test-bus:');
    await Promise.all([nodeA.whenReady(), nodeB.whenReady()]);
    const seenA: string[] = [];
    const seenB: AttendeeRecord[] = [];
    const endedB: [MeetingRecord, string][] = [];
    nodeA.subscribe('attendeeDeleted', (deleted) => seenA.push(deleted.AttendeeId));
    const stop = nodeB.subscribe('attendeeDeleted', (deleted) => seenB.push(deleted));
    nodeB.subscribe('meetingEnded', (meeting, reason) => endedB.push([meeting, reason]));

    nodeA.publish('attendeeDeleted', attendee);
    assert.deepEqual(seenA, [attendee.AttendeeId], 'synchronously on the publishing node');
    await waitFor(() => seenB.length === 1, 'the event on node B');
    assert.deepEqual(seenB[0], attendee, 'the record arrives whole');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(seenA, [attendee.AttendeeId], 'never twice on the publishing node');

    stop();
    nodeA.publish('attendeeDeleted', attendee);
    nodeA.publish('meetingEnded', { MeetingId: attendee.MeetingId } as MeetingRecord, 'deleted');
    await waitFor(() => endedB.length === 1, 'the second event on node B');
    assert.equal(endedB[0]![1], 'deleted');
    assert.equal(seenB.length, 1, 'an ended subscription hears nothing more');
  });

  test('garbage on the channel is ignored and the bus goes on', async () => {
    const bus = new RedisMeetingEventBus(connect(), connect(), logger, 'test-garbage:');
    await bus.whenReady();
    const seen: string[] = [];
    bus.subscribe('attendeeDeleted', (deleted) => seen.push(deleted.AttendeeId));
    await redis.client.publish('test-garbage:events', 'not json');
    await redis.client.publish('test-garbage:events', JSON.stringify({ origin: 'x', event: 'nope', args: [] }));
    await redis.client.publish('test-garbage:events', JSON.stringify({ origin: 'another node', event: 'attendeeDeleted', args: [attendee] }));
    await waitFor(() => seen.length === 1, 'the valid event');
  });
});
