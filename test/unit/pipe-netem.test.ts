import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import type { PipeStats } from '../../src/media/worker/protocol.ts';
import type { MediaWorkerStats } from '../../src/media/worker/media-worker.ts';
import type { VideoReport } from '../support/inline-pipe-end.ts';
import { NetnsLab, netnsUnavailable, type Impairment, type UdpPath } from '../support/netns.ts';

/**
 * The replication pipe between two machines 40 ms apart each way with 1 % loss: each end runs in a
 * process of its own, in its own network namespace (test/support/pipe-end-process.ts).
 */
const controlScript = path.join(import.meta.dirname, '../support/pipe-end-process.ts');
/** The jitter (± 15 ms against 20 ms between audio frames) reorders some packets on the way. */
const LINK: Impairment = { delayMs: 40, jitterMs: 15, lossPercent: 1 };
const AUDIO_WATCH_MS = 10_000;
const VIDEO_WATCH_MS = 6_000;
const VIDEO_FPS = 30;

interface Report {
  pipe: PipeStats;
  longestStallMs: number;
  worker?: MediaWorkerStats;
  video?: VideoReport;
}

/** Drives one pipe-end process: calls answered by id, `demand` events, and what else it prints (its logs) kept. */
class PipeEndProcess extends EventEmitter<{ demand: [streamIds: number[]] }> {
  /** Log lines (warnings and worse), stderr, anything that is neither a reply nor an event. */
  readonly complaints: string[] = [];
  private readonly pending = new Map<number, { resolve: (result: any) => void; reject: (error: Error) => void }>();
  private nextId = 1;
  private readonly exited: Promise<unknown>;

  constructor(private readonly child: ChildProcess) {
    super();
    this.exited = new Promise((resolve) => child.once('exit', resolve));
    createInterface({ input: child.stdout! }).on('line', (line) => this.receive(line));
    createInterface({ input: child.stderr! }).on('line', (line) => this.complaints.push(line));
    child.once('exit', (code) => {
      for (const { reject } of this.pending.values()) reject(new Error(`the pipe-end process exited (${code})`));
      this.pending.clear();
    });
  }

  call<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.stdin!.write(`${JSON.stringify({ id, method, params })}\n`);
    });
  }

  async close(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) await this.call('close').catch(() => undefined);
    await this.exited;
  }

  private receive(line: string): void {
    let message: { id?: number; result?: unknown; error?: string; event?: string; streamIds?: number[] };
    try {
      message = JSON.parse(line) as typeof message;
    } catch {
      return void this.complaints.push(line);
    }
    if (message.event === 'demand') return void this.emit('demand', message.streamIds ?? []);
    const waiter = typeof message.id === 'number' ? this.pending.get(message.id) : undefined;
    if (!waiter) return void this.complaints.push(line);
    this.pending.delete(message.id!);
    if (message.error !== undefined) waiter.reject(new Error(message.error));
    else waiter.resolve(message.result);
  }
}

const masterKey = () => ({ key: randomBytes(16).toString('base64'), salt: randomBytes(12).toString('base64') });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('the replication pipe across an impaired link', { skip: netnsUnavailable() }, () => {
  let lab: NetnsLab;
  const processes: PipeEndProcess[] = [];

  /** A primary end in the first namespace and a replica end in the second, connected across the impaired links as ReplicaLink connects them. */
  const openPipe = async (inline: boolean) => {
    const [primaryNs, replicaNs] = lab.namespaces as [string, string];
    const start = (ns: string) => {
      const started = new PipeEndProcess(lab.spawn(ns, process.execPath, ['--import', 'tsx', controlScript], { stdio: ['pipe', 'pipe', 'pipe'] }));
      processes.push(started);
      return started;
    };
    const [primary, replica] = [start(primaryNs), start(replicaNs)];
    const [{ port: primaryPort }, { port: replicaPort }] = await Promise.all([
      primary.call<{ port: number }>('open', { role: 'primary', listenIp: lab.addressOf(primaryNs), inline }),
      replica.call<{ port: number }>('open', { role: 'replica', listenIp: lab.addressOf(replicaNs), inline }),
    ]);
    const route = await lab.udpPath({ ns: primaryNs, port: primaryPort }, { ns: replicaNs, port: replicaPort });
    const [down, up] = [masterKey(), masterKey()];
    await Promise.all([
      primary.call('connect', { remote: route.aSendsTo, keys: { send: down, receive: up } }),
      replica.call('connect', { remote: route.bSendsTo, keys: { send: up, receive: down } }),
    ]);
    return { primary, replica, route };
  };

  /** Everything the relay let through (if it is the relay) was accepted, reordered packets included. */
  const assertRelayedAllAccepted = async (route: UdpPath, replica: PipeEndProcess) => {
    const relayed = route.relay?.stats.a;
    if (!relayed) return;
    assert.ok(relayed.reordered > 0, 'the jitter reordered some packets');
    const forwarded = relayed.forwarded;
    await sleep(200);
    const { pipe } = await replica.call<Report>('report');
    assert.ok(pipe.rtpIn + pipe.rtcpIn >= forwarded, `${pipe.rtpIn + pipe.rtcpIn} accepted of ${forwarded} relayed`);
  };

  before(async () => {
    lab = await NetnsLab.create(2);
    for (const ns of lab.namespaces) await lab.setLink(ns, LINK);
    console.log(`# impairment mode: ${lab.impairment}; each way ${LINK.delayMs} ± ${LINK.jitterMs} ms, ${LINK.lossPercent} % lost`);
  });

  after(async () => {
    await Promise.all(processes.map((running) => running.close()));
    await lab?.destroy();
  });

  test(`media workers: for ${AUDIO_WATCH_MS / 1000} s the replica hears the primary's mix, ≥ 95 % of frames, no stall over a second, nothing rejected`, async () => {
    const { primary, replica, route } = await openPipe(false);
    // Count from the moment frames flow.
    while ((await replica.call<Report>('report')).pipe.rtpIn === 0) await sleep(50);
    await replica.call('watch');
    const [sentBefore, receivedBefore] = await Promise.all([primary.call<Report>('report'), replica.call<Report>('report')]);
    await sleep(AUDIO_WATCH_MS);
    const [sentAfter, receivedAfter] = await Promise.all([primary.call<Report>('report'), replica.call<Report>('report')]);

    const sent = sentAfter.pipe.rtpOut - sentBefore.pipe.rtpOut;
    const received = receivedAfter.pipe.rtpIn - receivedBefore.pipe.rtpIn;
    console.log(
      `# audio: ${received}/${sent} frames arrived (${((100 * received) / sent).toFixed(1)} %), longest stall ${receivedAfter.longestStallMs.toFixed(0)} ms, ` +
        `rejected: primary ${sentAfter.pipe.rejected}, replica ${receivedAfter.pipe.rejected}` +
        (route.relay ? `; relay primary→replica ${JSON.stringify(route.relay.stats.a)}` : ''),
    );
    assert.ok(sent >= (AUDIO_WATCH_MS / 20) * 0.9, `the primary's mixer sent ${sent} frames in ${AUDIO_WATCH_MS} ms`);
    assert.ok(received >= sent * 0.95, `${received} of ${sent} frames arrived`);
    assert.ok(receivedAfter.longestStallMs < 1000, `the replica heard nothing for ${receivedAfter.longestStallMs} ms`);
    assert.equal(receivedAfter.pipe.rejected, 0, 'late and reordered packets passed the replay window');
    assert.equal(sentAfter.pipe.rejected, 0);
    await assertRelayedAllAccepted(route, replica);
    assert.equal(receivedAfter.worker!.mixerRebuilds + sentAfter.worker!.mixerRebuilds, 0);
    assert.deepEqual([...primary.complaints, ...replica.complaints], [], 'no warnings or errors from either process');
  });

  test(`video: a replica viewer's demand reaches the camera, and for ${VIDEO_WATCH_MS / 1000} s ≥ 95 % of the camera's packets come down, no stall over a second`, async () => {
    const { primary, replica, route } = await openPipe(true);
    replica.on('demand', (streamIds) => void primary.call('sendStreams', { streamIds }));
    await primary.call('publishVideo', { streamId: 7, fps: VIDEO_FPS });
    await replica.call('view', { streamId: 7 });
    // The viewer starts at a key frame the camera made when the demand reached it.
    while ((await replica.call<Report>('report')).video!.received === 0) await sleep(50);
    const [sentBefore, receivedBefore] = await Promise.all([primary.call<Report>('report'), replica.call<Report>('report')]);
    await sleep(VIDEO_WATCH_MS);
    const [sentAfter, receivedAfter] = await Promise.all([primary.call<Report>('report'), replica.call<Report>('report')]);

    const sent = sentAfter.video!.sent - sentBefore.video!.sent;
    const received = receivedAfter.video!.received - receivedBefore.video!.received;
    console.log(
      `# video: ${received}/${sent} packets reached the viewer (${((100 * received) / sent).toFixed(1)} %), longest stall ${receivedAfter.video!.longestStallMs.toFixed(0)} ms, ` +
        `key-frame requests at the camera ${sentAfter.video!.keyFrameRequests}, RTCP up ${sentAfter.pipe.rtcpIn}, rejected: primary ${sentAfter.pipe.rejected}, replica ${receivedAfter.pipe.rejected}` +
        (route.relay ? `; relay primary→replica ${JSON.stringify(route.relay.stats.a)}, replica→primary ${JSON.stringify(route.relay.stats.b)}` : ''),
    );
    assert.ok(sentAfter.video!.keyFrameRequests >= 1, 'the demand made the camera send a key frame');
    assert.ok(sent >= (VIDEO_WATCH_MS / 1000) * VIDEO_FPS * 0.8, `the camera sent ${sent} packets`);
    assert.ok(received >= sent * 0.95, `${received} of ${sent} packets arrived`);
    assert.ok(receivedAfter.video!.longestStallMs < 1000, `the viewer got nothing for ${receivedAfter.video!.longestStallMs} ms`);
    assert.equal(receivedAfter.pipe.rejected, 0, 'late and reordered packets passed the replay window');
    assert.equal(sentAfter.pipe.rejected, 0);
    await assertRelayedAllAccepted(route, replica);
    assert.deepEqual([...primary.complaints, ...replica.complaints], []);
  });
});
