import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect as connectTcp, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, test } from 'node:test';
import pino from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import { CreateAttendeeCommand, CreateMeetingCommand, DeleteMeetingCommand } from '@aws-sdk/client-chime-sdk-meetings';
import { AudioStatus, CloseCode, FrameType, MAX_FRAME_BYTES } from '../../src/signaling/frames.ts';
import { LOST_LEG_CLOSE_CODE } from '../../src/signaling/relay-link.ts';
import { RELAYED_HEADER, SignalRelay, type SignalRelayOptions } from '../../src/signaling/signal-relay.ts';
import { freePort, startTestAmphi } from '../support/helpers.ts';
import { RawClient } from '../support/raw-signaling.ts';

const logger = pino({ level: 'silent' });
const SESSION_PROTOCOL = '_aws_wt_session';
const TOKEN = 'YTJmMDY3ZTYtNGI0Zi00ZDk3LWJkNzYtMmQ0YjE2MjM4ZjZh#content';
const OFFERED = [SESSION_PROTOCOL, TOKEN];
const CONTROL_PATH = '/control/0f7cbb2c-0d1b-4e57-9d0c-6a7a3f0f2b11';

/** A hang fails its own test instead of the whole file. */
const it = (name: string, body: () => Promise<void>) => test(name, { timeout: 20_000 }, body);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Every socket a server accepted, so a test can end with none left open (upgraded ones included). */
function trackSockets(server: Server): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  return sockets;
}

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}

/** A stand-in hosting node: a real ws server that echoes, or does what a test says with the upgrade. */
class Upstream {
  readonly requests: IncomingMessage[] = [];
  readonly offered: string[][] = [];
  /** Echo every message back as it came. */
  echo = true;
  /** Replaces the normal accept, to refuse or stall the handshake. */
  onUpgrade: ((request: IncomingMessage, socket: Duplex) => void) | undefined;
  private readonly server = createServer((_request, response) => response.writeHead(404).end());
  private readonly sockets = trackSockets(this.server);
  private readonly wss: WebSocketServer;
  private readonly accepted: WebSocket[] = [];
  private readonly waiting: ((ws: WebSocket) => void)[] = [];
  baseUrl = '';

  constructor(options: { autoPong?: boolean } = {}) {
    this.wss = new WebSocketServer({
      noServer: true,
      autoPong: options.autoPong ?? true,
      maxPayload: 8 * MAX_FRAME_BYTES,
      handleProtocols: (protocols) => {
        this.offered.push([...protocols]);
        return protocols.has(SESSION_PROTOCOL) ? SESSION_PROTOCOL : false;
      },
    });
    this.server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.requests.push(request);
      if (this.onUpgrade) return this.onUpgrade(request, socket);
      this.wss.handleUpgrade(request, socket, head, (ws) => {
        ws.on('message', (data, isBinary) => {
          if (this.echo) ws.send(data as Buffer, { binary: isBinary });
        });
        ws.on('error', () => {});
        const waiter = this.waiting.shift();
        if (waiter) waiter(ws);
        else this.accepted.push(ws);
      });
    });
  }

  static async start(options: { autoPong?: boolean } = {}): Promise<Upstream> {
    const upstream = new Upstream(options);
    upstream.baseUrl = `http://127.0.0.1:${await listen(upstream.server)}`;
    cleanups.push(() => upstream.stop());
    return upstream;
  }

  /** The server side of the next relayed connection. */
  nextConnection(): Promise<WebSocket> {
    const ready = this.accepted.shift();
    return ready ? Promise.resolve(ready) : new Promise((resolve) => this.waiting.push(resolve));
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.wss.close();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

interface Front {
  relay: SignalRelay;
  url: string;
}

/** The node the client's WebSocket lands on: it relays every upgrade to `hostBaseUrl`. */
async function startFront(
  hostBaseUrl: string,
  options: Partial<SignalRelayOptions> = {},
  onHostDown?: (request: IncomingMessage, socket: Duplex, head: Buffer) => void,
): Promise<Front> {
  const relay = new SignalRelay({ logger, ...options });
  const server = createServer((_request, response) => response.writeHead(404).end());
  const sockets = trackSockets(server);
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const handBack = onHostDown && (() => onHostDown(request, socket, head));
    relay.relay(request, socket, head, hostBaseUrl, new URL(request.url ?? '/', 'http://front').pathname, handBack);
  });
  const port = await listen(server);
  cleanups.push(async () => {
    relay.close();
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return { relay, url: `ws://127.0.0.1:${port}${CONTROL_PATH}` };
}

/** Opens a client WebSocket; a refused handshake rejects with `HTTP <status>`. */
function connect(url: string, options: { protocols?: string[]; headers?: Record<string, string>; autoPong?: boolean } = {}): Promise<WebSocket> {
  const ws = new WebSocket(url, options.protocols ?? OFFERED, { headers: options.headers, autoPong: options.autoPong ?? true });
  cleanups.push(() => ws.terminate());
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_request, response) => {
      reject(new Error(`HTTP ${response.statusCode}`));
      ws.terminate();
    });
    ws.on('error', reject);
  });
}

async function closeOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  if (ws.readyState === ws.CLOSED) throw new Error('already closed');
  const [code, reason] = (await once(ws, 'close')) as [number, Buffer];
  return { code, reason: reason.toString() };
}

function collect(ws: WebSocket, count: number): Promise<{ data: Buffer; isBinary: boolean }[]> {
  const received: { data: Buffer; isBinary: boolean }[] = [];
  return new Promise((resolve) => {
    ws.on('message', (data, isBinary) => {
      received.push({ data: data as Buffer, isBinary });
      if (received.length === count) resolve(received);
    });
  });
}

/** One relayed session: upstream, front, client, and the upstream's side of the connection. */
async function relayedSession(options: Partial<SignalRelayOptions> = {}, upstreamOptions: { autoPong?: boolean } = {}) {
  const upstream = await Upstream.start(upstreamOptions);
  const front = await startFront(upstream.baseUrl, options);
  const [client, server] = await Promise.all([connect(front.url), upstream.nextConnection()]);
  return { upstream, front, client, server };
}

describe('signal relay', () => {
  describe('handshake', () => {
    it('offers the client subprotocols, path and query upstream, marked as relayed, and returns the chosen subprotocol', async () => {
      const upstream = await Upstream.start();
      const front = await startFront(upstream.baseUrl);
      const opened = once(front.relay, 'opened');
      const client = await connect(`${front.url}?attempt=2&x=a%20b`);
      assert.equal(client.protocol, SESSION_PROTOCOL);
      assert.deepEqual(upstream.offered, [OFFERED]);
      const [request] = upstream.requests;
      assert.equal(request?.url, `${CONTROL_PATH}?attempt=2&x=a%20b`);
      assert.equal(request?.headers[RELAYED_HEADER], '1');
      assert.deepEqual(await opened, [`ws://127.0.0.1:${new URL(upstream.baseUrl).port}${CONTROL_PATH}?attempt=2&x=a%20b`]);
      assert.equal(front.relay.count, 1);
    });

    it("the hosting node's refusal reaches the client as the same HTTP status", async () => {
      const upstream = await Upstream.start();
      const front = await startFront(upstream.baseUrl);
      for (const status of [403, 404, 421, 503]) {
        upstream.onUpgrade = (_request, socket) => socket.end(`HTTP/1.1 ${status} No\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
        const refused = once(front.relay, 'refused');
        await assert.rejects(connect(front.url), new RegExp(`HTTP ${status}`));
        assert.equal((await refused)[0], status);
      }
      assert.equal(front.relay.count, 0);
      assert.equal(front.relay.pendingCount, 0);
    });

    it('a hosting node that answers the upgrade with a non-error status is a bad gateway', async () => {
      const upstream = await Upstream.start();
      const front = await startFront(upstream.baseUrl);
      upstream.onUpgrade = (_request, socket) => socket.end('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      await assert.rejects(connect(front.url), /HTTP 502/);
    });

    it('an unreachable hosting node is answered with 502', async () => {
      const front = await startFront(`http://127.0.0.1:${await freePort()}`);
      await assert.rejects(connect(front.url), /HTTP 502/);
      assert.equal(front.relay.pendingCount, 0);
    });

    it('a hosting node that refuses connections is handed back, with the client still waiting, when asked', async () => {
      const local = new WebSocketServer({ noServer: true, handleProtocols: () => SESSION_PROTOCOL });
      cleanups.push(() => local.close());
      let handedBack = 0;
      const front = await startFront(`http://127.0.0.1:${await freePort()}`, {}, (request, socket, head) => {
        handedBack += 1;
        local.handleUpgrade(request, socket, head, (ws) => ws.on('message', () => ws.send('served here')));
      });
      const client = await connect(front.url);
      const received = collect(client, 1);
      client.send('hello');
      const [message] = await received;
      assert.equal(message!.data.toString(), 'served here');
      assert.equal(handedBack, 1);
      assert.equal(front.relay.pendingCount, 0);
    });

    it('a hosting node that never answers the handshake is answered with 504', async () => {
      const upstream = await Upstream.start();
      upstream.onUpgrade = () => {};
      const front = await startFront(upstream.baseUrl, { handshakeTimeoutMs: 100 });
      await assert.rejects(connect(front.url), /HTTP 504/);
      assert.equal(front.relay.pendingCount, 0);
    });

    it('a client that leaves during the handshake cancels the upstream one', async () => {
      const upstream = await Upstream.start();
      const stalled: Duplex[] = [];
      const reached = new Promise<void>((resolve) => {
        upstream.onUpgrade = (_request, socket) => {
          stalled.push(socket);
          socket.resume(); // read, so that the relay's FIN is seen
          resolve();
        };
      });
      const front = await startFront(upstream.baseUrl);
      const client = new WebSocket(front.url, OFFERED);
      client.on('error', () => {});
      await reached;
      assert.equal(front.relay.pendingCount, 1);
      const upstreamGone = once(stalled[0]!, 'end');
      client.terminate();
      await upstreamGone;
      assert.equal(front.relay.pendingCount, 0);
      assert.equal(front.relay.count, 0);
    });

    it('a client that sends before the 101 is refused with 400 and the upstream handshake cancelled', async () => {
      const upstream = await Upstream.start();
      let upstreamEnded: Promise<unknown> | undefined;
      const reached = new Promise<void>((resolve) => {
        upstream.onUpgrade = (_request, socket) => {
          upstreamEnded = once(socket.resume(), 'end');
          resolve();
        };
      });
      const front = await startFront(upstream.baseUrl);
      const raw = connectTcp(Number(new URL(front.url).port), '127.0.0.1');
      cleanups.push(() => void raw.destroy());
      raw.write(
        [
          `GET ${CONTROL_PATH} HTTP/1.1`,
          'Host: front',
          'Connection: Upgrade',
          'Upgrade: websocket',
          'Sec-WebSocket-Version: 13',
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
          `Sec-WebSocket-Protocol: ${OFFERED.join(', ')}`,
          '',
          '',
        ].join('\r\n'),
      );
      await reached;
      const answer = once(raw, 'data');
      raw.write(Buffer.from([0x82, 0x80, 1, 2, 3, 4]));
      assert.match(String((await answer)[0]), /^HTTP\/1\.1 400 /);
      await upstreamEnded;
      assert.equal(front.relay.pendingCount, 0);
    });

    it('an already relayed request is not relayed again', async () => {
      const upstream = await Upstream.start();
      const front = await startFront(upstream.baseUrl);
      await assert.rejects(connect(front.url, { headers: { [RELAYED_HEADER]: '1' } }), /HTTP 508/);
      assert.equal(upstream.requests.length, 0);
    });

    it('a bad hosting node URL is a 500, not a crash', async () => {
      for (const base of ['not a url', 'ftp://127.0.0.1:21']) {
        const front = await startFront(base);
        await assert.rejects(connect(front.url), /HTTP 500/);
      }
    });

    it('the hosting node base URL may carry a path prefix', async () => {
      const upstream = await Upstream.start();
      const front = await startFront(`${upstream.baseUrl}/amphi/`);
      upstream.onUpgrade = (_request, socket) => socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      await assert.rejects(connect(front.url), /HTTP 404/);
      assert.equal(upstream.requests[0]?.url, `/amphi${CONTROL_PATH}`);
    });
  });

  describe('frames', () => {
    it('binary and text frames go both ways byte for byte, large ones included', async () => {
      const { client, server } = await relayedSession();
      const sent = [
        { data: Buffer.from([5, 8, 1, 0x10, 0x02]), isBinary: true },
        { data: randomBytes(MAX_FRAME_BYTES - 16), isBinary: true },
        { data: Buffer.from('text stays text ✓'), isBinary: false },
        { data: Buffer.alloc(0), isBinary: true },
        { data: randomBytes(70_000), isBinary: true },
      ];
      const echoed = collect(client, sent.length);
      for (const frame of sent) client.send(frame.data, { binary: frame.isBinary });
      assert.deepEqual(await echoed, sent);

      // The hosting node's frames aren't held to the client limit: a direct connection has none.
      const big = randomBytes(3 * MAX_FRAME_BYTES);
      const received = collect(client, 1);
      server.send(big);
      assert.deepEqual(await received, [{ data: big, isBinary: true }]);
    });

    it('a client frame over the gateway limit closes the client with 1009 and ends the upstream leg', async () => {
      const { client, server } = await relayedSession();
      const upstreamClosed = closeOf(server);
      const clientClosed = closeOf(client);
      client.send(Buffer.alloc(MAX_FRAME_BYTES + 1));
      assert.equal((await clientClosed).code, 1009);
      await upstreamClosed;
    });

    it('a slow hosting node pauses the client leg, and every frame still arrives in order', async () => {
      const { front, client, server, upstream } = await relayedSession({ highWaterBytes: 256 * 1024 });
      upstream.echo = false;
      server.pause();
      const count = 96;
      const body = randomBytes(250_000);
      const frames = Array.from({ length: count }, (_, index) => {
        const frame = Buffer.from(body);
        frame.writeUInt32BE(index, 0);
        return frame;
      });
      const paused = once(front.relay, 'paused');
      for (const frame of frames) client.send(frame);
      assert.deepEqual(await paused, ['client']);
      const received = collect(server, count);
      server.resume();
      const got = await received;
      for (let index = 0; index < count; index++) assert.ok(got[index]!.data.equals(frames[index]!), `frame ${index}`);
    });
  });

  describe('closing', () => {
    it("the hosting node's close code and reason reach the client", async () => {
      const { front, client, server } = await relayedSession();
      const ended = once(front.relay, 'ended');
      const closed = closeOf(client);
      server.close(CloseCode.MeetingEnded, 'meeting ended');
      assert.deepEqual(await closed, { code: CloseCode.MeetingEnded, reason: 'meeting ended' });
      await ended;
      assert.equal(front.relay.count, 0);
    });

    it("the client's close code and reason reach the hosting node", async () => {
      const { client, server } = await relayedSession();
      const closed = closeOf(server);
      client.close(4321, 'bye');
      assert.deepEqual(await closed, { code: 4321, reason: 'bye' });
    });

    it('a close frame without a code is passed on without a code', async () => {
      const { client, server } = await relayedSession();
      const closed = closeOf(client);
      server.close();
      assert.deepEqual(await closed, { code: 1005, reason: '' });
    });

    it('a hosting node lost mid-session closes the client with a code the SDK reconnects on', async () => {
      const { front, client, server } = await relayedSession();
      const closed = closeOf(client);
      const ended = once(front.relay, 'ended');
      server.terminate();
      assert.deepEqual(await closed, { code: LOST_LEG_CLOSE_CODE, reason: 'upstream connection lost' });
      await ended;
      assert.equal(front.relay.count, 0);
    });

    it('a client lost mid-session closes the upstream leg', async () => {
      const { client, server } = await relayedSession();
      const closed = closeOf(server);
      client.terminate();
      assert.deepEqual(await closed, { code: LOST_LEG_CLOSE_CODE, reason: 'client connection lost' });
    });

    it('a hosting node that stops answering pings is dropped, and the client told to reconnect', async () => {
      const { client } = await relayedSession({ keepAliveIntervalMs: 50 }, { autoPong: false });
      assert.deepEqual(await closeOf(client), { code: LOST_LEG_CLOSE_CODE, reason: 'upstream connection lost' });
    });

    it('a client that stops answering pings is dropped, and the hosting node told', async () => {
      const upstream = await Upstream.start();
      const front = await startFront(upstream.baseUrl, { keepAliveIntervalMs: 50 });
      const [, server] = await Promise.all([connect(front.url, { autoPong: false }), upstream.nextConnection()]);
      assert.deepEqual(await closeOf(server), { code: LOST_LEG_CLOSE_CODE, reason: 'client connection lost' });
    });

    it('answering legs are kept through keep-alive rounds', async () => {
      const { front, client } = await relayedSession({ keepAliveIntervalMs: 20 });
      // Ten rounds' worth of pings, each answered: the relay is still there and still relays.
      let pings = 0;
      await new Promise<void>((resolve) =>
        client.on('ping', () => {
          if (++pings === 10) resolve();
        }),
      );
      const echoed = collect(client, 1);
      client.send(Buffer.from([5, 1]));
      assert.deepEqual(await echoed, [{ data: Buffer.from([5, 1]), isBinary: true }]);
      assert.equal(front.relay.count, 1);
    });

    it('relays are counted, and close() ends them all and refuses new ones', async () => {
      const upstream = await Upstream.start();
      const front = await startFront(upstream.baseUrl);
      const sessions = [];
      for (let index = 0; index < 3; index++) {
        const [client, server] = await Promise.all([connect(front.url), upstream.nextConnection()]);
        sessions.push({ client, server });
      }
      assert.equal(front.relay.count, 3);
      let ended = 0;
      const allEnded = new Promise<void>((resolve) =>
        front.relay.on('ended', () => {
          if (++ended === 3) resolve();
        }),
      );
      const closes = sessions.map(({ client, server }) => Promise.all([closeOf(client), closeOf(server)]));
      front.relay.close();
      for (const [clientClose, serverClose] of await Promise.all(closes)) {
        assert.equal(clientClose.code, LOST_LEG_CLOSE_CODE);
        assert.equal(serverClose.code, 1001);
      }
      await allEnded;
      assert.equal(front.relay.count, 0);
      await assert.rejects(connect(front.url), /HTTP 503/);
    });

    it('close() refuses handshakes still waiting on the hosting node with 503', async () => {
      const upstream = await Upstream.start();
      const reached = new Promise<void>((resolve) => {
        upstream.onUpgrade = () => resolve();
      });
      const front = await startFront(upstream.baseUrl);
      const attempt = connect(front.url);
      await reached;
      front.relay.close();
      await assert.rejects(attempt, /HTTP 503/);
      assert.equal(front.relay.pendingCount, 0);
    });
  });
});

describe('signal relay in front of a real Amphi', () => {
  it('the Chime wire protocol works through the relay: refusal, join, ping, and the meeting ending with 4410', async () => {
    const amphi = await startTestAmphi();
    cleanups.push(() => amphi.stop());
    const meeting = (await amphi.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'relayed' }))).Meeting!;
    const attendee = (await amphi.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: 'far-away' }))).Attendee!;
    const front = await startFront(amphi.amphi.url);
    const viaFront = `${front.url.replace(CONTROL_PATH, '')}/control/${meeting.MeetingId}`;

    await assert.rejects(RawClient.connect(viaFront, 'bm90LWEtdG9rZW4'), /HTTP 403/);
    const client = await RawClient.connect(viaFront, attendee.JoinToken!);
    cleanups.push(() => client.ws.terminate());
    assert.equal(client.ws.protocol, SESSION_PROTOCOL);
    const index = await client.join();
    assert.equal(index.type, FrameType.INDEX);
    assert.ok(await client.ping(7), 'PING answered through the relay');
    assert.equal(front.relay.count, 1);

    await amphi.client.send(new DeleteMeetingCommand({ MeetingId: meeting.MeetingId }));
    assert.equal((await client.next(FrameType.AUDIO_STATUS)).audioStatus?.audioStatus, AudioStatus.MeetingEnded);
    assert.equal(await client.closed(), CloseCode.MeetingEnded);
  });
});
