import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { describe, test } from 'node:test';
import pino from 'pino';
import { MediaWorkerClient } from '../../src/media/worker/client.ts';

const start = () => MediaWorkerClient.start({ listenIp: '127.0.0.1', port: 0, announcedIp: '127.0.0.1', logLevel: 'silent', name: 'test-worker' }, pino({ level: 'silent' }));
const withTimeout = <T>(promise: Promise<T>, ms: number, what: string) =>
  Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms).unref())]);

describe('a media worker thread’s lifecycle', () => {
  test('a dead thread is started again on its port, and calls made meanwhile wait for it', async () => {
    const worker = await start();
    const port = worker.port;
    const restarted = new Promise<void>((resolve) => worker.once('restarted', () => resolve()));
    await worker.crashThread();
    const stats = worker.call('workerStats'); // made while the thread is down
    await withTimeout(restarted, 20_000, 'the restart');
    assert.equal((await stats).rooms, 0);
    assert.equal(worker.port, port);
    assert.equal(worker.restartCount, 1);
    await withTimeout(worker.close(), 5_000, 'close');
  });

  test('close() during a restart returns', async () => {
    const worker = await start();
    await worker.crashThread();
    await withTimeout(worker.close(), 20_000, 'close during the restart');
    await assert.rejects(worker.call('workerStats'), /not running/);
  });

  test('a restart that keeps failing leaves the worker unavailable without taking the process down', async () => {
    const worker = await start();
    const exited = new Promise((resolve) => worker.once('exited', resolve));
    await worker.crashThread();
    await exited;
    // Someone else takes the port before the new thread can bind it.
    const squatter = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => squatter.bind(worker.port, '127.0.0.1', resolve));
    try {
      const stats = worker.call('workerStats');
      await assert.rejects(withTimeout(stats, 30_000, 'the failed restart'), /not running/);
      assert.equal(worker.available, false);
    } finally {
      squatter.close();
      await withTimeout(worker.close(), 5_000, 'close');
    }
  });
});
