import { constants } from 'node:os';
import type { Logger } from 'pino';
import type { Amphi } from '../app.ts';
import { DEFAULT_IN_FLIGHT_LIMIT_MS } from '../app.ts';

/**
 * A second signal within this long of the first is the same request delivered twice, not an operator insisting:
 * `npm start` forwards the signal it gets to Amphi, and a terminal's Ctrl-C or systemd's stop signals the whole
 * process group, so Amphi often receives one stop request as two signals at once.
 */
export const SAME_REQUEST_MS = 1_000;
/** Time allowed beyond the grace period and the in-flight limit for conferences, workers and the store to stop. */
const STOP_MARGIN_MS = 10_000;

const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const;
type StopSignal = (typeof STOP_SIGNALS)[number];

/**
 * How `amphi serve` stops. On SIGTERM or SIGINT: drain for `drainMs` (503 to new calls and /healthz, sessions
 * go on), then close (calls in flight finished, conferences ended, workers stopped) and exit 0. A second signal
 * during the shutdown (a second or more after the first) exits at once with 128 + its number, as a shell
 * reports a process killed by it; a shutdown that overruns its bound exits 1.
 */
export function stopOnSignals(amphi: Amphi, drainMs: number, logger: Logger): void {
  let firstAt: number | undefined;
  const onSignal = (signal: StopSignal) => {
    const now = Date.now();
    if (firstAt === undefined) {
      firstAt = now;
      void shutDown(amphi, drainMs, signal, logger);
    } else if (now - firstAt >= SAME_REQUEST_MS) {
      logger.warn({ signal }, 'second stop signal: exiting now, calls in flight and sessions are cut');
      process.exit(128 + constants.signals[signal]);
    }
  };
  for (const signal of STOP_SIGNALS) process.on(signal, () => onSignal(signal));
}

async function shutDown(amphi: Amphi, drainMs: number, signal: StopSignal, logger: Logger): Promise<void> {
  const overrun = setTimeout(() => {
    logger.error('shutdown did not end in time; exiting');
    process.exit(1);
  }, drainMs + DEFAULT_IN_FLIGHT_LIMIT_MS + STOP_MARGIN_MS);
  overrun.unref();
  amphi.drain();
  if (drainMs > 0) {
    logger.info(
      { signal, drainSeconds: drainMs / 1000 },
      `draining: answering 503 for ${drainMs / 1000} s, then stopping (send ${signal} again to stop at once)`,
    );
    await new Promise((resolve) => setTimeout(resolve, drainMs));
  }
  logger.info({ signal }, 'shutting down');
  try {
    await amphi.close();
  } catch (error) {
    logger.error({ err: error }, 'shutdown failed');
    process.exit(1);
  }
  logger.info('stopped');
  process.exit(0);
}
