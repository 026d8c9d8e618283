import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

/** Sends request `index`; resolves when its answer has been read, rejects on any failure. */
export type Send = (index: number) => Promise<void>;

/**
 * Closed loop: `concurrency` requests in flight until `total` have completed, as fast as
 * the server answers. Any failure aborts the run: a CPU-per-request figure over failed
 * requests would mean nothing.
 */
export async function runClosedLoop(total: number, concurrency: number, send: Send): Promise<{ elapsedMs: number }> {
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < total) await send(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  return { elapsedMs: performance.now() - started };
}

export interface FixedRateResult {
  /** From each request's scheduled send time to its answer: what a caller sees, queueing included. */
  latenciesMs: number[];
  /** How late the generator actually started each request; should stay near zero. */
  sendLagMs: number[];
  failures: number;
  firstFailure?: string;
  /** Requests not sent because `maxInFlight` were already waiting: the server fell far behind. */
  skipped: number;
  elapsedMs: number;
}

/**
 * Open loop: request i is due at start + i/rate whatever happened to the earlier ones, so a
 * slow answer cannot hold back the load (no coordinated omission). Latency counts from the
 * due time, so a generator that falls behind shows up as latency rather than hiding it.
 */
export async function runAtFixedRate(
  ratePerSecond: number,
  durationMs: number,
  send: Send,
  maxInFlight = 1_000,
): Promise<FixedRateResult> {
  const total = Math.round((ratePerSecond * durationMs) / 1000);
  const intervalMs = 1000 / ratePerSecond;
  const latenciesMs: number[] = [];
  const sendLagMs: number[] = [];
  const pending = new Set<Promise<void>>();
  let failures = 0;
  let firstFailure: string | undefined;
  let skipped = 0;

  const start = performance.now() + 5;
  for (let index = 0; index < total; index++) {
    const due = start + index * intervalMs;
    const wait = due - performance.now();
    // Timers fire a millisecond late at best, so short waits are spent as one tick with a batch sent after it.
    if (wait >= 1) await sleep(Math.floor(wait));
    if (pending.size >= maxInFlight) {
      skipped++;
      continue;
    }
    const sentAt = performance.now();
    sendLagMs.push(Math.max(0, sentAt - due));
    // A request sent a fraction of a millisecond early is timed from when it actually left.
    const timedFrom = Math.max(due, sentAt);
    const request: Promise<void> = send(index).then(
      () => {
        latenciesMs.push(performance.now() - timedFrom);
      },
      (error: unknown) => {
        failures++;
        firstFailure ??= error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      },
    );
    pending.add(request);
    void request.finally(() => pending.delete(request));
  }
  // Every request carries the client's own timeout, so this wait is bounded too.
  await Promise.all(pending);
  return { latenciesMs, sendLagMs, failures, firstFailure, skipped, elapsedMs: performance.now() - start };
}

/** Nearest-rank percentile (0 < p ≤ 100) of unsorted values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
