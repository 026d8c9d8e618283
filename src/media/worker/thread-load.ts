import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

export interface ThreadLoadSnapshot {
  /** CPU time this thread used since it started (user + system); undefined where the OS doesn't say per thread. */
  cpuSeconds: number | undefined;
  /** How late this thread's event loop ran its timers: the 99th percentile over the last window. */
  eventLoopLagSeconds: number;
}

const RESOLUTION_MS = 10;
/** Linux reports thread times in USER_HZ ticks, 100 per second on every architecture. */
const TICKS_PER_SECOND = 100;

/**
 * The load of the thread it runs on: CPU time and event-loop lag. A media worker keeps one and reports it when the
 * main thread asks (at a scrape), so measuring costs the packet path nothing but a 10 ms timer.
 */
export class ThreadLoad {
  private readonly delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  private readonly windowTimer: NodeJS.Timeout;
  private lastWindowLagSeconds: number | undefined;

  constructor(windowMs = 10_000) {
    this.delay.enable();
    this.windowTimer = setInterval(() => {
      this.lastWindowLagSeconds = this.currentLagSeconds();
      this.delay.reset();
    }, windowMs);
    this.windowTimer.unref();
  }

  snapshot(): ThreadLoadSnapshot {
    return { cpuSeconds: threadCpuSeconds(), eventLoopLagSeconds: this.lastWindowLagSeconds ?? this.currentLagSeconds() };
  }

  close(): void {
    clearInterval(this.windowTimer);
    this.delay.disable();
  }

  /** The samples include the timer's own period: what counts is how much later than that it fired. */
  private currentLagSeconds(): number {
    if (this.delay.count === 0) return 0;
    return Math.max(0, this.delay.percentile(99) / 1e6 - RESOLUTION_MS) / 1000;
  }
}

/**
 * The calling thread's CPU time. Node 22.19/23.9 and later answer it directly; before them, Linux's
 * /proc/thread-self does (read synchronously: an asynchronous read would run on another thread).
 */
function threadCpuSeconds(): number | undefined {
  const own = (process as { threadCpuUsage?: () => { user: number; system: number } }).threadCpuUsage;
  if (own) {
    const { user, system } = own.call(process);
    return (user + system) / 1e6;
  }
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'utf8');
    // After the command name (which may hold spaces) come the fields from the 3rd on; utime and stime are the 14th and 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks / TICKS_PER_SECOND : undefined;
  } catch {
    return undefined;
  }
}
