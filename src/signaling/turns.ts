import { performance } from 'node:perf_hooks';

/**
 * Runs costly jobs one at a time, in the order they came, each on its own turn of the event loop
 * and with a rest after it in proportion to its length: jobs take at most `maxShare` of the
 * thread's time, and the loop serves I/O (API requests, other sockets) between two of them. A
 * burst of jobs from many clients is spread out instead of holding the thread for all of them.
 */
export class TurnQueue {
  private readonly waiting: (() => void)[] = [];
  private scheduled = false;
  private readonly restPerMs: number;
  /** When the rest after the last job ends. */
  private restUntil = 0;

  constructor(maxShare: number) {
    if (!(maxShare > 0 && maxShare <= 1)) throw new RangeError('maxShare is a fraction of the thread, in (0, 1]');
    this.restPerMs = 1 / maxShare - 1;
  }

  /** Runs `job` on a later turn; `job` handles its own errors (one that escapes is the process's uncaught exception). */
  take(job: () => void): void {
    this.waiting.push(job);
    this.schedule();
  }

  get length(): number {
    return this.waiting.length;
  }

  private schedule(): void {
    if (this.scheduled || this.waiting.length === 0) return;
    this.scheduled = true;
    const run = () => {
      this.scheduled = false;
      const job = this.waiting.shift();
      const started = performance.now();
      try {
        job?.();
      } finally {
        const ended = performance.now();
        this.restUntil = ended + (ended - started) * this.restPerMs;
        this.schedule();
      }
    };
    const restMs = this.restUntil - performance.now();
    // An immediate queued while immediates run waits for the next turn, after the I/O poll.
    if (restMs < 1) setImmediate(run);
    else setTimeout(run, restMs);
  }
}

/**
 * This thread's turns for parsing clients' SDP offers: a large offer holds the thread 10-25 ms, so
 * a burst of them from many sockets (legitimate, when a meeting starts, or not) is spread out.
 */
export const sdpParseTurns = new TurnQueue(0.25);
