import { EventEmitter } from 'node:events';
import { HistogramCounts, type HistogramSnapshot } from '../../util/histogram-counts.ts';

export const FRAME_MS = 20;

/** Something driven once per 20 ms audio frame; `frame` numbers increase by one per frame. */
export interface FrameListener {
  /** `late`: a later frame is due as well (the thread woke up a frame or more late). */
  produce(frame: number, late?: boolean): void;
}

export interface FrameClockStats {
  /** Frames produced since the clock started; of those, produced late (a later one was due too). */
  frames: number;
  late: number;
  /** Frames not produced at all (the thread was more than `maxCatchUp` frames late). */
  skipped: number;
  /** Frames produced per second over the last completed window. */
  framesPerSecond: number;
  /** How late wake-ups were in the last completed window (ms): median, 99th percentile, worst. */
  lateness: { p50: number; p99: number; max: number };
  /** Every wake-up's lateness since the clock started, in seconds: the metrics' histogram. */
  latenessSeconds: HistogramSnapshot;
}

export interface FrameClockOptions {
  now?: () => number;
  /** Frames produced back to back after a late wake-up; older ones are skipped. */
  maxCatchUp?: number;
}

export interface FrameClockEvents {
  /** A listener threw while producing a frame; the clock goes on with the others. */
  listenerError: [listener: FrameListener, error: unknown];
}

const LATENESS_WINDOW = 500;
/** Upper bounds (s) of the lateness histogram: a frame is 20 ms, and more than one late is heard. */
export const LATENESS_BUCKETS_SECONDS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.1, 0.25, 1];

/**
 * One 20 ms media clock per worker thread, driving every mixer on it. Frames are numbered from
 * absolute time, so a late wake-up produces every frame that is due (up to `maxCatchUp`, then
 * skips with a gap in the frame numbers that becomes a gap in RTP timestamps) instead of
 * falling behind. Frames produced late are marked so: mixers mix them (queues and codecs keep
 * time) but send only the newest, because a burst of late packets makes listeners' jitter
 * buffers grow for many seconds. Each wake-up defers the work to the event loop's check phase,
 * so the packets that arrived while the thread was late are read first.
 */
export class FrameClock extends EventEmitter<FrameClockEvents> {
  private readonly frameListeners = new Set<FrameListener>();
  private readonly now: () => number;
  private readonly maxCatchUp: number;
  private epoch = 0;
  private nextFrame = 0;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private frames = 0;
  private late = 0;
  private skipped = 0;
  private readonly lateSamples = new Float64Array(LATENESS_WINDOW);
  private lateCount = 0;
  private lastLateness = { p50: 0, p99: 0, max: 0 };
  private window = { startedAt: 0, frames: 0, framesPerSecond: 0 };
  private readonly latenessHistogram = new HistogramCounts(LATENESS_BUCKETS_SECONDS);

  constructor(options: FrameClockOptions = {}) {
    super();
    this.now = options.now ?? (() => performance.now());
    this.maxCatchUp = options.maxCatchUp ?? 10;
  }

  add(listener: FrameListener): void {
    this.frameListeners.add(listener);
  }

  remove(listener: FrameListener): void {
    this.frameListeners.delete(listener);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.epoch = this.now();
    this.nextFrame = 1;
    this.window = { startedAt: this.epoch, frames: 0, framesPerSecond: 0 };
    this.schedule();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Produces every frame due by now; the timer calls it, and tests call it directly. */
  advance(): void {
    const now = this.now();
    const due = Math.floor((now - this.epoch) / FRAME_MS);
    if (due < this.nextFrame) return;
    this.recordLateness(now - (this.epoch + this.nextFrame * FRAME_MS));
    if (due - this.nextFrame >= this.maxCatchUp) {
      const first = due - this.maxCatchUp + 1;
      this.skipped += first - this.nextFrame;
      this.nextFrame = first;
    }
    for (; this.nextFrame <= due; this.nextFrame++) {
      this.frames++;
      if (this.nextFrame < due) this.late++;
      for (const listener of this.frameListeners) {
        try {
          listener.produce(this.nextFrame, this.nextFrame < due);
        } catch (error) {
          this.emit('listenerError', listener, error);
        }
      }
    }
  }

  stats(): FrameClockStats {
    return {
      frames: this.frames,
      late: this.late,
      skipped: this.skipped,
      framesPerSecond: this.window.framesPerSecond,
      lateness: this.lateCount >= 50 ? this.summariseLateness(false) : this.lastLateness,
      latenessSeconds: this.latenessHistogram.snapshot(),
    };
  }

  private schedule(): void {
    if (!this.running) return;
    const delay = this.epoch + this.nextFrame * FRAME_MS - this.now();
    this.timer = setTimeout(() => {
      setImmediate(() => {
        if (!this.running) return;
        this.advance();
        this.schedule();
      });
    }, Math.max(0, delay));
  }

  private recordLateness(ms: number): void {
    this.latenessHistogram.observe(ms / 1000);
    this.lateSamples[this.lateCount++] = ms;
    if (this.lateCount < LATENESS_WINDOW) return;
    this.lastLateness = this.summariseLateness(true);
    const now = this.now();
    const seconds = (now - this.window.startedAt) / 1000;
    this.window = { startedAt: now, frames: this.frames, framesPerSecond: seconds > 0 ? round((this.frames - this.window.frames) / seconds) : 0 };
  }

  private summariseLateness(reset: boolean): { p50: number; p99: number; max: number } {
    const sorted = this.lateSamples.slice(0, this.lateCount).sort();
    if (reset) this.lateCount = 0;
    const at = (q: number) => round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
    return { p50: at(0.5), p99: at(0.99), max: round(sorted[sorted.length - 1] ?? 0) };
  }
}

const round = (ms: number) => Math.round(ms * 100) / 100;
