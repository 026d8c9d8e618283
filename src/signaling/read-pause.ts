import { performance } from 'node:perf_hooks';
import type { WebSocket } from 'ws';

/**
 * Why a client's socket is not being read: over its byte budget, not reading what it is sent, or
 * a SUBSCRIBE of its waiting for its turn to be parsed.
 */
export type ReadPauseReason = 'budget' | 'backpressure' | 'turn';

/**
 * Stops and restarts reading one client's WebSocket for one or more reasons at once: reading
 * resumes only when none is left. While the socket isn't read, TCP flow control slows the sender
 * down; nothing it sent is lost.
 */
export class ReadPause {
  private readonly reasons = new Set<ReadPauseReason>();
  private budgetTimer: NodeJS.Timeout | undefined;
  private budgetUntil = 0;

  constructor(private readonly ws: WebSocket) {}

  get paused(): boolean {
    return this.reasons.size > 0;
  }

  has(reason: ReadPauseReason): boolean {
    return this.reasons.has(reason);
  }

  /** Stops reading for `reason`; returns whether that reason is new. */
  hold(reason: ReadPauseReason): boolean {
    if (this.reasons.has(reason)) return false;
    this.reasons.add(reason);
    this.ws.pause();
    return true;
  }

  /**
   * Stops reading for the byte budget during `ms`, or longer if a hold for it already lasts longer;
   * returns whether that reason is new. Frames received meanwhile are still counted by the caller,
   * and may extend the hold.
   */
  holdForBudget(ms: number): boolean {
    const added = this.hold('budget');
    const until = performance.now() + ms;
    if (!added && until <= this.budgetUntil) return false;
    clearTimeout(this.budgetTimer);
    this.budgetUntil = until;
    this.budgetTimer = setTimeout(() => {
      this.budgetTimer = undefined;
      this.release('budget');
    }, ms);
    this.budgetTimer.unref();
    return added;
  }

  release(reason: ReadPauseReason): void {
    if (!this.reasons.delete(reason)) return;
    if (this.reasons.size === 0) this.ws.resume();
  }

  /** Forgets every reason and reads again: the session is closing, and the peer's close frame must be read. */
  clear(): void {
    clearTimeout(this.budgetTimer);
    this.budgetTimer = undefined;
    if (this.reasons.size === 0) return;
    this.reasons.clear();
    this.ws.resume();
  }
}
