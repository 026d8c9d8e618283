import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { ImpairmentGateway } from '../support/impairment-gateway.ts';
import { ImpairmentRelay, type Impairment } from '../support/impairment-relay.ts';
import { NetnsLab, listLabResources, netnsUnavailable } from '../support/netns.ts';

const probeScript = path.join(import.meta.dirname, '../support/udp-probe.ts');

const udpSocket = async (address = '127.0.0.1') => {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, address, resolve));
  return socket;
};
const portOf = (socket: dgram.Socket) => (socket.address() as AddressInfo).port;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every datagram a socket receives, with when and from where. */
const record = (socket: dgram.Socket) => {
  const received: { at: number; seq: number; from: string }[] = [];
  socket.on('message', (datagram, from) => received.push({ at: performance.now(), seq: datagram.readUInt32BE(0), from: `${from.address}:${from.port}` }));
  return received;
};
const numbered = (seq: number) => {
  const datagram = Buffer.alloc(4);
  datagram.writeUInt32BE(seq);
  return datagram;
};

describe('the impairment relay (user-space netem, on loopback)', () => {
  test('delays each way by the sender’s delay; each end sees the other as the relay’s socket it sends to', async () => {
    const [a, b] = await Promise.all([udpSocket(), udpSocket()]);
    const delays: Record<'a' | 'b', Impairment> = { a: { delayMs: 30, lossPercent: 0 }, b: { delayMs: 10, lossPercent: 0 } };
    const relay = await ImpairmentRelay.open('127.0.0.1', { address: '127.0.0.1', port: portOf(a) }, { address: '127.0.0.1', port: portOf(b) }, (from) => delays[from]);
    const [atA, atB] = [record(a), record(b)];
    const sentAt = performance.now();
    a.send(numbered(1), relay.aSendsTo.port, relay.aSendsTo.address);
    while (atB.length === 0) await sleep(1);
    assert.ok(atB[0]!.at - sentAt >= 29, `A → B took ${atB[0]!.at - sentAt} ms`);
    assert.equal(atB[0]!.from, `127.0.0.1:${relay.bSendsTo.port}`);
    const repliedAt = performance.now();
    b.send(numbered(2), relay.bSendsTo.port, relay.bSendsTo.address);
    while (atA.length === 0) await sleep(1);
    assert.ok(atA[0]!.at - repliedAt >= 9, `B → A took ${atA[0]!.at - repliedAt} ms`);
    assert.equal(atA[0]!.from, `127.0.0.1:${relay.aSendsTo.port}`);
    relay.close();
    a.close();
    b.close();
  });

  test('drops by the loss rate, reorders under jitter, and ignores strangers', async () => {
    const [a, b, stranger] = await Promise.all([udpSocket(), udpSocket(), udpSocket()]);
    let impairment: Impairment = { delayMs: 0, lossPercent: 100 };
    const relay = await ImpairmentRelay.open('127.0.0.1', { address: '127.0.0.1', port: portOf(a) }, { address: '127.0.0.1', port: portOf(b) }, () => impairment);
    const atB = record(b);
    for (let seq = 0; seq < 50; seq++) a.send(numbered(seq), relay.aSendsTo.port, relay.aSendsTo.address);
    while (relay.stats.a.received < 50) await sleep(2);
    assert.deepEqual(relay.stats.a, { received: 50, dropped: 50, forwarded: 0, reordered: 0 });

    impairment = { delayMs: 20, jitterMs: 10, lossPercent: 0 };
    for (let seq = 0; seq < 200; seq++) {
      a.send(numbered(seq), relay.aSendsTo.port, relay.aSendsTo.address);
      stranger.send(numbered(9999), relay.aSendsTo.port, relay.aSendsTo.address);
      await sleep(1);
    }
    while (atB.length < 200) await sleep(5);
    await sleep(50);
    assert.equal(atB.length, 200, 'every datagram of A arrived once; none of the stranger’s');
    assert.ok(relay.stats.a.reordered > 0, 'jitter larger than the spacing reorders');
    const outOfOrder = atB.filter((arrival, i) => i > 0 && arrival.seq < atB[i - 1]!.seq).length;
    assert.ok(outOfOrder > 0, 'B saw them out of order');
    relay.close();
    for (const socket of [a, b, stranger]) socket.close();
  });
});

describe('the impairment gateway (user-space netem in front of a shared UDP port, on loopback)', () => {
  test('each client gets a flow of its own: the server sees distinct peers, answers go back to the client they answer, from the gateway', async () => {
    const [server, a, b] = await Promise.all([udpSocket(), udpSocket(), udpSocket()]);
    const peers = new Set<string>();
    server.on('message', (datagram, from) => {
      peers.add(`${from.address}:${from.port}`);
      server.send(datagram, from.port, from.address);
    });
    const aPort = portOf(a);
    // A's datagrams to the server are all lost; what the server sends B is delayed 20 ms.
    const gateway = await ImpairmentGateway.open({ address: '127.0.0.1', port: 0 }, { address: '127.0.0.1', port: portOf(server) }, '127.0.0.1', (client, direction) =>
      client.port === aPort ? (direction === 'toServer' ? { delayMs: 0, lossPercent: 100 } : undefined) : direction === 'toClient' ? { delayMs: 20, lossPercent: 0 } : undefined,
    );
    const [atA, atB] = [record(a), record(b)];
    const sentAt = performance.now();
    for (let seq = 0; seq < 3; seq++) {
      a.send(numbered(seq), gateway.endpoint.port, gateway.endpoint.address);
      b.send(numbered(100 + seq), gateway.endpoint.port, gateway.endpoint.address);
    }
    while (atB.length < 3) await sleep(2);
    assert.ok(atB[0]!.at - sentAt >= 19, `the answer to B took ${atB[0]!.at - sentAt} ms`);
    assert.deepEqual(atB.map((r) => r.seq), [100, 101, 102], 'B gets its own answers');
    assert.ok(atB.every((r) => r.from === `127.0.0.1:${gateway.endpoint.port}`), 'from the address it sends to');
    await sleep(30);
    assert.equal(atA.length, 0, 'nothing of A reached the server');
    assert.equal(peers.size, 1);
    const flows = gateway.flowStats();
    assert.equal(flows.length, 2);
    assert.deepEqual(flows.find((f) => f.client.port === aPort)!.toServer, { received: 3, dropped: 3, forwarded: 0, reordered: 0 });
    gateway.close();
    for (const socket of [server, a, b]) socket.close();
  });
});

/** A udp-probe in the namespace, and its JSON lines. */
const startProbe = (lab: NetnsLab, ns: string, mode: 'echo' | 'ping') => {
  const child = lab.spawn(ns, process.execPath, ['--import', 'tsx', probeScript, mode], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const messages: unknown[] = [];
  const waiters: ((message: unknown) => void)[] = [];
  lines.on('line', (line) => {
    const message = JSON.parse(line) as unknown;
    const waiter = waiters.shift();
    if (waiter) waiter(message);
    else messages.push(message);
  });
  const next = <T>() => (messages.length > 0 ? Promise.resolve(messages.shift() as T) : new Promise<T>((resolve) => waiters.push(resolve as (message: unknown) => void)));
  return { child, next };
};
const ping = async (probe: { child: ChildProcess; next: <T>() => Promise<T> }, target: { address: string; port: number }, count: number, intervalMs: number) => {
  probe.child.stdin!.write(`${JSON.stringify({ ...target, count, intervalMs })}\n`);
  return probe.next<{ sent: number; received: number; rtts: number[] }>();
};

describe('the network-namespace lab', { skip: netnsUnavailable() }, () => {
  let lab: NetnsLab;
  let first: string;
  let second: string;
  before(async () => {
    lab = await NetnsLab.create(2);
    [first, second] = lab.namespaces as [string, string];
    console.log(`# impairment mode: ${lab.impairment}`);
  });
  after(() => lab?.destroy());

  test('the root namespace and the namespaces reach each other', async () => {
    const echo = startProbe(lab, first, 'echo');
    const { port } = await echo.next<{ port: number }>();
    const socket = await udpSocket(lab.bridgeAddress);
    const replies = record(socket);
    // The probe may still be binding when the first datagram leaves: send until one comes back.
    for (let seq = 0; replies.length === 0; seq++) {
      assert.ok(seq < 100, 'no answer from the namespace');
      socket.send(numbered(seq), port, lab.addressOf(first));
      await sleep(20);
    }
    assert.equal(replies[0]!.from, `${lab.addressOf(first)}:${port}`);

    // And from a namespace to a socket bound to the bridge address in the root namespace.
    const rootEcho = await udpSocket(lab.bridgeAddress);
    rootEcho.on('message', (datagram, from) => rootEcho.send(datagram, from.port, from.address));
    const pinger = startProbe(lab, second, 'ping');
    await pinger.next();
    const result = await ping(pinger, { address: lab.bridgeAddress, port: portOf(rootEcho) }, 5, 10);
    assert.equal(result.received, 5);
    socket.close();
    rootEcho.close();
    echo.child.kill();
  });

  test('40 ms each way and 1 % loss between two namespaces: a round trip takes at least 75 ms, and some of 2000 are lost', async () => {
    const impaired = { delayMs: 40, jitterMs: 0, lossPercent: 1 };
    await lab.setLink(first, impaired);
    await lab.setLink(second, impaired);
    const echo = startProbe(lab, first, 'echo');
    const pinger = startProbe(lab, second, 'ping');
    const [{ port: echoPort }, { port: pingPort }] = await Promise.all([echo.next<{ port: number }>(), pinger.next<{ port: number }>()]);
    const route = await lab.udpPath({ ns: second, port: pingPort }, { ns: first, port: echoPort });
    const result = await ping(pinger, route.aSendsTo, 2000, 1);
    const lossPercent = (100 * (result.sent - result.received)) / result.sent;
    const sorted = [...result.rtts].sort((x, y) => x - y);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    console.log(`# ${lab.impairment}: ${result.received}/${result.sent} answered (${lossPercent.toFixed(2)} % lost both ways), RTT min ${sorted[0]!.toFixed(1)} ms, median ${median.toFixed(1)} ms, max ${sorted.at(-1)!.toFixed(1)} ms`);
    if (route.relay) console.log(`# relay: ${JSON.stringify(route.relay.stats)}`);
    assert.ok(sorted[0]! >= 75, `the shortest round trip took ${sorted[0]} ms`);
    assert.ok(lossPercent > 0 && lossPercent < 5, `${lossPercent} % lost`);
    route.close();
    echo.child.kill();
  });

  test("a new lab removes what a dead process's lab left behind, and keeps clear of a live lab's network", async () => {
    const deadPid = spawnSync('true').pid!;
    const leftovers = { namespaces: [`amphi-t-${deadPid}-0-0`], interfaces: [`at${deadPid}-0b`] };
    spawnSync('ip', ['netns', 'add', leftovers.namespaces[0]!]);
    spawnSync('ip', ['link', 'add', leftovers.interfaces[0]!, 'type', 'bridge']);
    const before = await listLabResources();
    assert.ok(before.namespaces.includes(leftovers.namespaces[0]!) && before.interfaces.includes(leftovers.interfaces[0]!));
    const second = await NetnsLab.create(1);
    try {
      const now = await listLabResources();
      assert.ok(!now.namespaces.includes(leftovers.namespaces[0]!), 'the dead lab’s namespace is gone');
      assert.ok(!now.interfaces.includes(leftovers.interfaces[0]!), 'the dead lab’s bridge is gone');
      assert.ok(now.namespaces.includes(first), 'the live lab is untouched');
      assert.notEqual(second.bridgeAddress, lab.bridgeAddress);
    } finally {
      await second.destroy();
    }
  });

  test('destroy kills what runs inside and leaves no namespace or interface; it can be called again', async () => {
    const sleeper = lab.spawn(first, 'sleep', ['600']);
    const exited = new Promise((resolve) => sleeper.once('exit', resolve));
    const ours = (name: string) => name.startsWith(`amphi-t-${process.pid}-`) || name.startsWith(`at${process.pid}-`);
    const beforeDestroy = await listLabResources();
    assert.equal(beforeDestroy.namespaces.filter(ours).length, 2);
    assert.equal(beforeDestroy.interfaces.filter(ours).length, 3, 'a bridge and two veths');
    await lab.destroy();
    await exited;
    const left = await listLabResources();
    assert.deepEqual(left.namespaces.filter(ours), []);
    assert.deepEqual(left.interfaces.filter(ours), []);
    await lab.destroy();
    assert.throws(() => lab.spawn(first, 'true'), /destroyed/);
  });
});
