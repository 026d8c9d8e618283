import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import pino from 'pino';
import { placeMeeting, RedisNodeRegistry, type NodeInfo } from '../../src/cluster/node-registry.ts';
import { startTestRedis, type TestRedis } from '../support/redis-server.ts';

let redis: TestRedis;
const connections: Redis[] = [];
const registry = (prefix: string, options: { heartbeatMs?: number; deadAfterMs?: number } = {}) => {
  const connection = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  connections.push(connection);
  return new RedisNodeRegistry(connection, pino({ level: 'silent' }), { prefix, ...options });
};
const node = (id: string, regions: NodeInfo['regions'], sessions = 0) => ({ id, publicUrl: `http://${id}.example`, mediaAddress: '127.0.0.1', regions, sessions });

before(async () => {
  redis = await startTestRedis();
});
after(async () => {
  for (const connection of connections) connection.disconnect();
  await redis.stop();
});

describe('RedisNodeRegistry', () => {
  test('nodes see each other with their regions and load; a node that leaves is gone at once', async () => {
    const a = registry('reg1:');
    const b = registry('reg1:');
    let bSessions = 3;
    await a.join(() => node('node-a', ['us-east-1']));
    await b.join(() => node('node-b', '*', bSessions));
    const seen = await a.liveNodes();
    assert.deepEqual(seen.map((n) => [n.id, n.regions, n.sessions]), [['node-a', ['us-east-1'], 0], ['node-b', '*', 3]]);
    bSessions = 5;
    await b.join(() => node('node-b', '*', bSessions)); // an immediate heartbeat
    assert.equal((await a.liveNodes()).find((n) => n.id === 'node-b')?.sessions, 5, 'the load follows the heartbeat');
    await b.leave('node-b');
    assert.deepEqual((await a.liveNodes()).map((n) => n.id), ['node-a']);
    await a.leave('node-a');
  });

  test('a node that stops beating is dead once its entry expires, and is pruned from the index', async () => {
    const a = registry('reg2:', { heartbeatMs: 100, deadAfterMs: 400 });
    const b = registry('reg2:', { heartbeatMs: 100, deadAfterMs: 400 });
    await a.join(() => node('node-a', '*'));
    await b.join(() => node('node-b', '*'));
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.deepEqual((await a.liveNodes()).map((n) => n.id), ['node-a', 'node-b'], 'heartbeats keep both alive past the expiry');
    b.stopHeartbeat();
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.deepEqual((await a.liveNodes()).map((n) => n.id), ['node-a']);
    assert.deepEqual(await redis.client.smembers('reg2:nodes'), ['node-a']);
    await a.leave('node-a');
  });

  test('a malformed entry counts as no node', async () => {
    const a = registry('reg3:');
    await redis.client.sadd('reg3:nodes', 'junk');
    await redis.client.set('reg3:node:junk', '{not json');
    assert.deepEqual(await a.liveNodes(), []);
  });
});

describe('placeMeeting', () => {
  const nodes = [node('a', ['us-east-1'], 10), node('b', ['us-east-1'], 2), node('c', '*', 0), node('d', ['eu-west-1'], 1)].map((n) => ({ ...n, heartbeatAt: 0 }));
  test('the least-loaded node naming the region, else a catch-all, else any live node', () => {
    assert.equal(placeMeeting(nodes, 'us-east-1')?.id, 'b');
    assert.equal(placeMeeting(nodes, 'ap-south-1')?.id, 'c');
    assert.equal(placeMeeting(nodes.filter((n) => n.id !== 'c'), 'ap-south-1')?.id, 'd', 'no node serves it: the least loaded of all');
    assert.equal(placeMeeting([], 'us-east-1'), undefined);
  });
  test('ties go to the lowest id', () => {
    const tied = [node('z', ['us-east-1'], 1), node('m', ['us-east-1'], 1)].map((n) => ({ ...n, heartbeatAt: 0 }));
    assert.equal(placeMeeting(tied, 'us-east-1')?.id, 'm');
  });
});
