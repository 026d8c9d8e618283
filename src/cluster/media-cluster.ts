import type { Logger } from 'pino';
import { MediaWorkerClient } from '../media/worker/client.ts';
import type { WorkerChannel } from '../media/worker/protocol.ts';

export interface MediaClusterOptions {
  workers: number;
  listenIp: string;
  /** Port of the first worker; worker i listens on basePort + i (0: any free port each). */
  basePort: number;
  announcedIp: string;
  logLevel: string;
  /** How often a client's silence is looked at (default 5 s); tests shorten it. */
  silenceCheckMs?: number;
}

/**
 * This node's media workers, each a thread with its own UDP port. A new meeting's room goes to the
 * least-loaded worker (by the packets it moves and the connections it serves), so that meetings (a primary and its replicas
 * among them) spread over every core.
 */
export class MediaCluster {
  private constructor(readonly workers: MediaWorkerClient[]) {}

  static async start(options: MediaClusterOptions, logger: Logger): Promise<MediaCluster> {
    const starts = await Promise.allSettled(
      Array.from({ length: options.workers }, (_, i) =>
        MediaWorkerClient.start(
          {
            listenIp: options.listenIp,
            port: options.basePort === 0 ? 0 : options.basePort + i,
            announcedIp: options.announcedIp,
            logLevel: options.logLevel,
            name: `media-${i}`,
            silenceCheckMs: options.silenceCheckMs,
          },
          logger,
        ),
      ),
    );
    const workers = starts.flatMap((start) => (start.status === 'fulfilled' ? [start.value] : []));
    const failed = starts.find((start) => start.status === 'rejected');
    if (failed) {
      // The workers that did start would keep the process alive: stop them before giving up.
      await Promise.all(workers.map((worker) => worker.close()));
      throw failed.reason;
    }
    logger.info({ ports: workers.map((w) => w.port) }, 'media workers listening');
    return new MediaCluster(workers);
  }

  /**
   * The worker for a new room: the least loaded (its packet rate, connections and rooms, `MediaWorkerClient.load`); on a
   * tie, not `apart` (a replica's primary's worker, so the pipe's two ends use two cores), then the first. A
   * worker that could not be started again gets no more rooms.
   */
  workerFor(apart?: WorkerChannel): MediaWorkerClient {
    const available = this.workers.filter((w) => w.available);
    const pool = available.length > 0 ? available : this.workers;
    return pool.reduce((best, worker) => {
      const difference = worker.load - best.load;
      if (difference !== 0) return difference < 0 ? worker : best;
      return best === apart && worker !== apart ? worker : best;
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.close()));
  }
}
