import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { z } from 'zod';
import { BridgeChannel, BridgeClosedError } from '../../src/bridge/channel.ts';
import { signNodeCall, verifyNodeCall } from '../../src/bridge/node-auth.ts';

/** The bridge's channel between two nodes, over a real WebSocket on loopback: messages, requests, bad input, closing. */
const message = z.discriminatedUnion('t', [z.object({ t: z.literal('hello'), n: z.number() }), z.object({ t: z.literal('double'), n: z.number() })]);
type Message = z.infer<typeof message>;

let server: WebSocketServer;
let url: string;
before(async () => {
  server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((resolve) => server.once('listening', resolve));
  url = `ws://127.0.0.1:${(server.address() as { port: number }).port}`;
});
after(() => server.close());

/** Both ends of one connection: `near` built here, `far` the server's raw socket or a channel on it. */
async function pair() {
  const farSocket = new Promise<WebSocket>((resolve) => server.once('connection', resolve));
  const ws = new WebSocket(url);
  await new Promise((resolve) => ws.once('open', resolve));
  const problems: string[] = [];
  const near = new BridgeChannel<Message, Message>(ws, message, (problem) => problems.push(problem));
  return { near, far: await farSocket, problems };
}

test('messages and requests cross; an answer comes back to its request', async () => {
  const { near, far } = await pair();
  const farProblems: string[] = [];
  const farChannel = new BridgeChannel<Message, Message>(far, message, (problem) => farProblems.push(problem));
  farChannel.serve(async (request) => (request.t === 'double' ? { n: request.n * 2 } : Promise.reject(new Error('no such request'))));
  const received = new Promise<Message>((resolve) => farChannel.once('message', resolve));
  near.send({ t: 'hello', n: 1 });
  assert.deepEqual(await received, { t: 'hello', n: 1 });
  assert.deepEqual(await near.request({ t: 'double', n: 21 }), { n: 42 });
  await assert.rejects(near.request({ t: 'hello', n: 0 }), /no such request/);
  assert.deepEqual(farProblems, []);
  near.close();
  await new Promise((resolve) => farChannel.once('closed', resolve));
  assert.ok(farChannel.closed);
});

test('what does not fit the schema is dropped and reported, never trusted; a request of that kind is answered with an error', async () => {
  const { near, far, problems } = await pair();
  const messages: Message[] = [];
  near.on('message', (m) => messages.push(m));
  far.send('not json');
  far.send(Buffer.from([1, 2, 3]), { binary: true });
  far.send(JSON.stringify({ body: { t: 'hello', n: 'one' } }));
  far.send(JSON.stringify({ body: { t: 'unknown' } }));
  const answer = new Promise<string>((resolve) => far.once('message', (data) => resolve(data.toString())));
  far.send(JSON.stringify({ id: 5, body: { t: 'launch' } }));
  assert.deepEqual(JSON.parse(await answer), { replyTo: 5, error: 'unexpected message' });
  far.send(JSON.stringify({ body: { t: 'hello', n: 2 } }));
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.deepEqual(messages, [{ t: 'hello', n: 2 }], 'only the valid message arrives');
  assert.equal(problems.length, 5, problems.join('; '));
  assert.equal(near.closed, false, 'bad input does not close the bridge');
  near.close();
});

test('pending requests fail when the other side goes away', async () => {
  const { near, far } = await pair();
  const pending = near.request({ t: 'double', n: 1 });
  far.terminate();
  await assert.rejects(pending, BridgeClosedError);
  await assert.rejects(near.request({ t: 'double', n: 1 }), BridgeClosedError, 'and so do new ones');
});

test('a node proves itself with the shared secret, for one path, for a while', () => {
  const now = Date.now();
  const proof = signNodeCall('secret', 'node-a', '/_amphi/bridge/x/y', now);
  assert.equal(verifyNodeCall('secret', proof, '/_amphi/bridge/x/y', now + 1000), 'node-a');
  assert.equal(verifyNodeCall('other', proof, '/_amphi/bridge/x/y', now), undefined, 'another secret');
  assert.equal(verifyNodeCall('secret', proof, '/_amphi/bridge/x/z', now), undefined, 'another path');
  assert.equal(verifyNodeCall('secret', proof, '/_amphi/bridge/x/y', now + 10 * 60_000), undefined, 'too old');
  for (const junk of [undefined, '', 'a.b', 'a.b.c.d', '%zz.1.abc', `node-a.${now}.${'A'.repeat(43)}`]) {
    assert.equal(verifyNodeCall('secret', junk, '/_amphi/bridge/x/y', now), undefined, String(junk));
  }
});
