import type { Logger } from 'pino';
import { MediaWorkerClient } from '../media/worker/client.ts';

export interface MediaClusterOptions {
  workers: number;
  listenIp: string;
  /** Port of the first worker; worker i listens on basePort + i (0: any free port each). */
  basePort: number;
  announcedIp: string;
  logLevel: string;
}

/**
 * This node's media workers, each a thread with its own UDP port. Regions are given workers in
 * the order they are first used, so that meetings of different regions (a primary and its
 * replicas abroad) run on different workers while there are workers to spare.
 */
export class MediaCluster {
  private readonly byRegion = new Map<string, MediaWorkerClient>();
  private nextWorker = 0;

  private constructor(readonly workers: MediaWorkerClient[]) {}

  static async start(options: MediaClusterOptions, logger: Logger): Promise<MediaCluster> {
    const workers = await Promise.all(
      Array.from({ length: options.workers }, (_, i) =>
        MediaWorkerClient.start(
          {
            listenIp: options.listenIp,
            port: options.basePort === 0 ? 0 : options.basePort + i,
            announcedIp: options.announcedIp,
            logLevel: options.logLevel,
            name: `media-${i}`,
          },
          logger,
        ),
      ),
    );
    logger.info({ ports: workers.map((w) => w.port) }, 'media workers listening');
    return new MediaCluster(workers);
  }

  workerFor(region: string): MediaWorkerClient {
    let worker = this.byRegion.get(region);
    if (!worker?.available) {
      // A worker that could not be started again gets no more meetings; its regions move on.
      const available = this.workers.filter((w) => w.available);
      const pool = available.length > 0 ? available : this.workers;
      worker = pool[this.nextWorker++ % pool.length]!;
      this.byRegion.set(region, worker);
    }
    return worker;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.close()));
  }
}
