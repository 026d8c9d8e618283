import { randomUUID } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { NegotiationInput, NegotiationResult } from './peer.ts';
import type { PeerStats, WorkerCall, WorkerEvent, WorkerMethods, WorkerOptions } from './worker-protocol.ts';

/**
 * The main thread's handle on a media worker thread: calls go in order, answers come back in
 * order; levels, rates and connection changes arrive as events and are kept for signaling's
 * periodic frames, which never wait on the worker.
 */
export class MediaWorkerClient {
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  private nextId = 1;
  readonly rooms = new Map<string, RemoteRoom>();
  readonly peers = new Map<string, RemotePeer>();
  /** Replica ends of pipes on this worker report their viewers' demand here. */
  onPipeDemand: (pipeId: string, streamIds: number[]) => void = () => undefined;
  port = 0;
  private exited = false;
  private closing = false;

  private constructor(
    private readonly thread: Worker,
    readonly name: string,
    private readonly logger: Logger,
  ) {
    thread.on('message', (event: WorkerEvent) => this.receive(event));
    thread.on('error', (error) => logger.error({ err: error, worker: name }, 'media worker failed'));
    thread.on('exit', (code) => {
      this.exited = true;
      if (this.closing) logger.debug({ worker: name }, 'media worker stopped');
      else logger.error({ worker: name, code }, 'media worker exited');
      for (const { reject } of this.pending.values()) reject(new Error(`media worker ${name} exited (${code})`));
      this.pending.clear();
    });
  }

  static async start(options: WorkerOptions, logger: Logger): Promise<MediaWorkerClient> {
    const thread = new Worker(new URL('./worker-bootstrap.mjs', import.meta.url), {
      workerData: { entry: new URL('./worker-thread.ts', import.meta.url).href, options },
    });
    const client = new MediaWorkerClient(thread, options.name, logger);
    client.port = await new Promise<number>((resolve, reject) => {
      thread.once('error', reject);
      const onReady = (event: WorkerEvent) => {
        if (event.type !== 'ready') return;
        thread.off('message', onReady);
        thread.off('error', reject);
        resolve(event.port);
      };
      thread.on('message', onReady);
    });
    return client;
  }

  call<M extends keyof WorkerMethods>(method: M, ...args: Parameters<WorkerMethods[M]>): Promise<ReturnType<WorkerMethods[M]>> {
    if (this.exited) return Promise.reject(new Error(`media worker ${this.name} is not running`));
    const id = this.nextId++;
    const promise = new Promise<ReturnType<WorkerMethods[M]>>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
    });
    this.thread.postMessage({ type: 'call', id, method, args } as WorkerCall);
    return promise;
  }

  /** A call whose answer nobody waits for; a failure is logged. */
  fire<M extends keyof WorkerMethods>(method: M, ...args: Parameters<WorkerMethods[M]>): void {
    this.call(method, ...args).catch((error: unknown) => this.logger.warn({ err: error, method }, 'media worker call failed'));
  }

  createRoom(meetingId: string, replica: boolean): RemoteRoom {
    const room = new RemoteRoom(this, `${meetingId}/${randomUUID().slice(0, 8)}`);
    this.rooms.set(room.id, room);
    this.fire('createRoom', room.id, replica);
    return room;
  }

  closeRoom(room: RemoteRoom): void {
    if (!this.rooms.delete(room.id)) return;
    for (const [id, peer] of this.peers) if (peer.room === room) this.peers.delete(id);
    this.fire('closeRoom', room.id);
  }

  createPeer(room: RemoteRoom, attendeeId: string): RemotePeer {
    const peer = new RemotePeer(this, room, randomUUID());
    this.peers.set(peer.id, peer);
    this.fire('createPeer', room.id, peer.id, attendeeId);
    return peer;
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.thread.terminate();
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
        return this.onPipeDemand(event.pipeId, event.streamIds);
      case 'peerConnection':
        return this.peers.get(event.peerId)?.connectionChanged(event.connected);
      case 'levels': {
        const room = this.rooms.get(event.roomId);
        if (room) room.levels = new Map(event.levels);
        return;
      }
      case 'rates': {
        const room = this.rooms.get(event.roomId);
        if (room) room.bitrates = new Map(event.bitrates);
        for (const [peerId, bps] of event.downlinks) {
          const peer = this.peers.get(peerId);
          if (peer) peer.downlinkBps = bps;
        }
        return;
      }
    }
  }
}

export class RemoteRoom {
  levels = new Map<string, number>();
  bitrates = new Map<number, number>();
  constructor(
    readonly worker: MediaWorkerClient,
    readonly id: string,
  ) {}

  audioLevels(): Map<string, number> {
    return this.levels;
  }

  bitrateOf(streamId: number): number {
    return this.bitrates.get(streamId) ?? 0;
  }
}

export class RemotePeer {
  onConnectionChange: (connected: boolean) => void = () => undefined;
  connected = false;
  downlinkBps = 0;
  private closed = false;

  constructor(
    private readonly worker: MediaWorkerClient,
    readonly room: RemoteRoom,
    readonly id: string,
  ) {}

  negotiate(input: NegotiationInput): Promise<NegotiationResult> {
    return this.worker.call('negotiate', this.id, input);
  }
  setMuted(muted: boolean): void {
    this.worker.fire('setMuted', this.id, muted);
  }
  setPaused(streamIds: number[], paused: boolean): void {
    this.worker.fire('setPaused', this.id, streamIds, paused);
  }
  applyCapabilities(capabilities: { sendAudio: boolean; receiveAudio: boolean; receiveVideo: boolean }): void {
    this.worker.fire('applyCapabilities', this.id, capabilities);
  }
  unpublish(): void {
    this.worker.fire('unpublish', this.id);
  }
  estimatedDownlinkBps(): number {
    return this.downlinkBps;
  }
  stats(): Promise<PeerStats | undefined> {
    return this.worker.call('peerStats', this.id);
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.worker.peers.delete(this.id);
    this.worker.fire('closePeer', this.id);
  }
  connectionChanged(connected: boolean): void {
    this.connected = connected;
    this.onConnectionChange(connected);
  }
}
