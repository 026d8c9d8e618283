import { EventEmitter } from 'node:events';

/** Browsers send an ICE consent check every ~5 s (RFC 7675) and RTCP every second or so, besides their media. */
const SILENCE_CHECK_MS = 5_000;
/** Checks in a row that found nothing: two of 5 s each make a client silent after 10 to 15 s. */
const SILENT_CHECKS = 2;

export interface SilenceWatchEvents {
  /** Nothing arrived from the client for `SILENT_CHECKS` checks in a row (10–15 s by default). Said once per silence. */
  silent: [];
}

/**
 * Whether a client still sends anything at all: the service reports an attendee dropped after 10–15 s without its
 * packets. A packet costs one boolean store; a timer looks at it every `checkMs`. It watches only once the client has
 * sent something (before ICE there is nothing to miss), and again after a silence if the client comes back.
 */
export class SilenceWatch extends EventEmitter<SilenceWatchEvents> {
  private heard = false;
  private silentChecks = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly checkMs: number = SILENCE_CHECK_MS) {
    super();
  }

  /** A datagram arrived from the client (an authenticated check, or anything from the address ICE selected). */
  packet(): void {
    this.heard = true;
    if (this.timer === undefined && !this.stopped) this.start();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private start(): void {
    this.silentChecks = 0;
    this.timer = setInterval(() => this.check(), this.checkMs);
    this.timer.unref();
  }

  private check(): void {
    if (this.heard) {
      this.heard = false;
      this.silentChecks = 0;
      return;
    }
    if (++this.silentChecks < SILENT_CHECKS) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.emit('silent');
  }
}
