import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { WorkerAnswer, WorkerCall, WorkerChannel, WorkerEvent, WorkerMethods, WorkerOptions } from './protocol.ts';
import { RoomHandle } from './room-handle.ts';

export interface MediaWorkerClientEvents {
  /** The thread died; its rooms' handles (and their peers' and pipe ends') closed just before. Calls wait for the new thread. */
  exited: [code: number];
  /** A new thread serves on the same port, with no rooms yet. */
  restarted: [];
}

const RESTART_ATTEMPTS = 5;
/**
 * What a connection weighs before its packets show in the measured rate, in packets per second: about what a
 * viewer of one camera (VP8 at ~1.5 Mb/s, ~170 packets/s) with audio (50) costs. Joins come faster than the
 * rate is measured (each second), so a burst of them is weighed at once.
 */
export const PACKETS_PER_CONNECTION = 200;
/** What a room weighs besides, so rooms nobody joined yet spread over the workers too. */
export const PACKETS_PER_ROOM = 50;

/**
 * The main thread's handle on a media worker thread, and the parent of its RoomHandles (which
 * make their peers and pipe ends): calls go in order, answers come back in order; what the
 * worker reports on its own (connection changes, demand, levels, rates) is handed to the room
 * it concerns. A thread that dies is started again on the same port; the handles of what died
 * with it close (`closed` with 'workerExited'), and its clients reconnect (signaling ends their
 * sessions on `exited`).
 */
export class MediaWorkerClient extends EventEmitter<MediaWorkerClientEvents> implements WorkerChannel {
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  private nextId = 1;
  private readonly rooms = new Map<string, RoomHandle>();
  port = 0;
  /** Settled while a thread runs; a restart replaces it, so calls made meanwhile wait. */
  private running: Promise<void> = Promise.resolve();
  private stopped = false;
  private closing = false;
  /** False from the moment the thread exits until a new one is ready. */
  private threadAlive = true;
  private restarts = 0;
  /** RTP packets the thread sent and received per second, as it last reported (each second). */
  private measuredPacketsPerSecond = 0;

  private constructor(
    private thread: Worker,
    private readonly options: WorkerOptions,
    private readonly logger: Logger,
  ) {
    super();
    this.attach(thread);
  }

  get name(): string {
    return this.options.name;
  }

  static async start(options: WorkerOptions, logger: Logger): Promise<MediaWorkerClient> {
    const { thread, port } = await spawnWorker(options);
    const client = new MediaWorkerClient(thread, options, logger);
    client.port = port;
    return client;
  }

  /** Times the thread was started again after dying. */
  get restartCount(): number {
    return this.restarts;
  }

  /** Rooms open on this worker. */
  get roomCount(): number {
    return this.rooms.size;
  }

  /** RTP packets per second the thread sent and received over its last second. */
  get packetsPerSecond(): number {
    return this.measuredPacketsPerSecond;
  }

  /**
   * The worker's load, for placing new meetings, in packets per second: what it moves (measured by the
   * thread each second), plus each connection it serves and each room at what they will soon cost (a
   * replica of 250 viewers weighs 250 viewers before its video even starts).
   */
  get load(): number {
    let connections = 0;
    for (const room of this.rooms.values()) connections += room.connectionCount;
    return this.measuredPacketsPerSecond + PACKETS_PER_CONNECTION * connections + PACKETS_PER_ROOM * this.rooms.size;
  }

  /** False once the thread died and could not be started again: place nothing here. */
  get available(): boolean {
    return !this.stopped && !this.closing;
  }

  private attach(thread: Worker): void {
    this.threadAlive = true;
    thread.on('message', (event: WorkerEvent) => this.receive(event));
    thread.on('error', (error) => this.logger.error({ err: error, worker: this.name }, 'media worker failed'));
    thread.on('exit', (code) => {
      this.threadAlive = false;
      this.measuredPacketsPerSecond = 0;
      for (const { reject } of this.pending.values()) reject(new Error(`media worker ${this.name} exited (${code})`));
      this.pending.clear();
      if (this.closing) {
        for (const room of [...this.rooms.values()]) room.workerExited();
        this.logger.debug({ worker: this.name }, 'media worker stopped');
        return;
      }
      this.logger.error({ worker: this.name, code }, 'media worker exited; starting it again');
      for (const room of [...this.rooms.values()]) room.workerExited();
      this.running = this.restart();
      this.running.catch(() => undefined); // logged in restart(); calls waiting on it fail on their own
      this.emit('exited', code);
    });
  }

  private async restart(): Promise<void> {
    for (let attempt = 1; attempt <= RESTART_ATTEMPTS && !this.closing; attempt++) {
      try {
        const { thread, port } = await spawnWorker({ ...this.options, port: this.port });
        if (this.closing) {
          await thread.terminate();
          break;
        }
        this.thread = thread;
        this.restarts++;
        this.attach(thread);
        this.logger.info({ worker: this.name, port }, 'media worker started again');
        this.emit('restarted');
        return;
      } catch (error) {
        this.logger.error({ err: error, worker: this.name, attempt }, 'media worker did not start again');
        await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
      }
    }
    this.stopped = true;
    throw new Error(`media worker ${this.name} is not running`);
  }

  async call<M extends keyof WorkerMethods>(method: M, ...args: Parameters<WorkerMethods[M]>): Promise<WorkerAnswer<M>> {
    if (this.stopped || this.closing) throw new Error(`media worker ${this.name} is not running`);
    await this.running;
    const id = this.nextId++;
    const promise = new Promise<WorkerAnswer<M>>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
    });
    this.thread.postMessage({ type: 'call', id, method, args } as WorkerCall);
    return promise;
  }

  /** A call whose answer nobody waits for; a failure is logged. Dropped once the worker is stopped for good. */
  fire<M extends keyof WorkerMethods>(method: M, ...args: Parameters<WorkerMethods[M]>): void {
    if (this.stopped || this.closing) return;
    this.call(method, ...args).catch((error: unknown) => this.logger.warn({ err: error, method }, 'media worker call failed'));
  }

  /** A meeting's room on this worker; `replica`: it relays its primary's mix (from a pipe) instead of mixing. */
  createRoom(meetingId: string, replica: boolean): RoomHandle {
    const room = new RoomHandle(this, `${meetingId}/${randomUUID().slice(0, 8)}`, replica);
    if (!this.available) {
      room.workerExited();
      return room;
    }
    this.rooms.set(room.id, room);
    room.once('closed', () => this.rooms.delete(room.id));
    this.fire('createRoom', room.id, replica);
    return room;
  }

  /** The worker's media clock (frames, lateness), opus codecs, mixer failures, traffic and thread load. */
  stats(): Promise<WorkerAnswer<'workerStats'>> {
    return this.call('workerStats');
  }

  async close(): Promise<void> {
    if (this.closing) return;
    await this.endThread(0);
  }

  /** Ends the thread as a failure would (exit code 1): the client starts it again. */
  async crashThread(): Promise<void> {
    await this.endThread(1);
  }

  /** Asks the thread to exit between packets; terminates it if it doesn't within a second. */
  private async endThread(exitCode: number): Promise<void> {
    if (!this.threadAlive) {
      // Dead already, perhaps being started again: a restart that sees `closing` ends its thread.
      if (exitCode === 0) this.closing = true;
      await this.running.catch(() => undefined);
      return;
    }
    const thread = this.thread;
    const exited = new Promise((resolve) => thread.once('exit', resolve));
    this.call('exit', exitCode).catch(() => undefined);
    if (exitCode === 0) this.closing = true; // after the call is posted: calls are refused from here on
    const timer = setTimeout(() => void thread.terminate(), 1000);
    // A thread stuck in native code can't be terminated either: give up on it after 3 s, so
    // that shutting down never hangs (the process's exit ends it).
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3000).unref())]);
    clearTimeout(timer);
  }

  private receive(event: WorkerEvent): void {
    switch (event.type) {
      case 'result': {
        const pending = this.pending.get(event.id);
        this.pending.delete(event.id);
        if (event.error !== undefined) pending?.reject(new Error(event.error));
        else pending?.resolve(event.result);
        return;
      }
      case 'pipeDemand':
        return this.rooms.get(event.roomId)?.pipeDemandChanged(event.pipeId, event.streamIds);
      case 'peerConnection':
        return this.rooms.get(event.roomId)?.peerConnectionChanged(event.peerId, event.connected);
      case 'peerSilent':
        return this.rooms.get(event.roomId)?.peerFellSilent(event.peerId);
      case 'levels':
        return this.rooms.get(event.roomId)?.levelsMeasured(event.levels);
      case 'rates':
        return this.rooms.get(event.roomId)?.ratesMeasured(event.bitrates, event.downlinks);
      case 'load':
        this.measuredPacketsPerSecond = event.packetsPerSecond;
        return;
    }
  }
}

async function spawnWorker(options: WorkerOptions): Promise<{ thread: Worker; port: number }> {
  const thread = new Worker(new URL('./bootstrap.mjs', import.meta.url), {
    workerData: { entry: new URL('../../media-thread.ts', import.meta.url).href, options },
  });
  const port = await new Promise<number>((resolve, reject) => {
    const onExit = (code: number) => reject(new Error(`media worker exited (${code}) before it was ready`));
    thread.once('error', reject);
    thread.once('exit', onExit);
    const onReady = (event: WorkerEvent) => {
      if (event.type !== 'ready') return;
      thread.off('message', onReady);
      thread.off('error', reject);
      thread.off('exit', onExit);
      resolve(event.port);
    };
    thread.on('message', onReady);
  });
  return { thread, port };
}
