import { createHmac } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { BurstLimiter } from '../util/burst-limiter.ts';

export const SIGNATURE_HEADER = 'x-amphi-signature';
export const TIMESTAMP_HEADER = 'x-amphi-timestamp';
export const EVENT_ID_HEADER = 'x-amphi-event-id';

/**
 * The signature of one delivery: `sha256=` and the hex HMAC-SHA256, under the shared secret, of the timestamp header's
 * value, a dot and the raw body. The timestamp (seconds since the epoch, new on every attempt) lets a receiver refuse
 * a replayed request.
 */
export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export interface WebhookDeliveryOptions {
  /** Events waiting at most; one more is dropped with a warning. */
  maxQueued: number;
  /** Attempts per event before it is dropped with a warning. */
  maxAttempts: number;
  /** Wait before the first retry; doubled for each next one, up to `maxRetryDelayMs`. */
  firstRetryDelayMs: number;
  maxRetryDelayMs: number;
  /** A receiver that hasn't answered within this long has failed the attempt. */
  attemptTimeoutMs: number;
  /** How long closing waits for the queue to empty before it gives up on what is left. */
  closeGraceMs: number;
}

export const DEFAULT_WEBHOOK_DELIVERY: WebhookDeliveryOptions = {
  maxQueued: 10_000,
  maxAttempts: 8,
  firstRetryDelayMs: 1_000,
  maxRetryDelayMs: 60_000,
  attemptTimeoutMs: 10_000,
  closeGraceMs: 2_000,
};

export interface WebhookSenderEvents {
  delivered: [eventId: string, attempts: number];
  dropped: [eventId: string, reason: string];
}

interface Queued {
  id: string;
  body: string;
  attempts: number;
}

/** Why an attempt failed, and whether another could succeed. */
class AttemptFailure extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

/**
 * POSTs JSON events to one URL, signed, one at a time and in order, off the caller's path: `send` only queues. A
 * failed attempt (no answer, a network error, 408, 429 or 5xx) is retried after an exponentially growing wait; other
 * answers, too many attempts or a full queue drop the event with a warning.
 */
export class WebhookSender extends EventEmitter<WebhookSenderEvents> {
  private readonly queue: Queued[] = [];
  private pumping = false;
  private closed = false;
  private readonly abort = new AbortController();
  private retryTimer: { timer: NodeJS.Timeout; resolve: () => void } | undefined;
  private readonly warnings = new BurstLimiter();
  private readonly options: WebhookDeliveryOptions;

  constructor(
    private readonly url: string,
    private readonly secret: string,
    private readonly logger: Logger,
    options: Partial<WebhookDeliveryOptions> = {},
  ) {
    super();
    this.options = { ...DEFAULT_WEBHOOK_DELIVERY, ...options };
  }

  /** Events waiting, the one being delivered included. */
  get queued(): number {
    return this.queue.length;
  }

  /** Queues an event (any JSON value with an `id`) for delivery; returns at once. */
  send(event: { id: string }): void {
    if (this.closed) return;
    if (this.queue.length >= this.options.maxQueued) {
      this.drop(event.id, `the queue is full (${this.options.maxQueued} events)`);
      return;
    }
    this.queue.push({ id: event.id, body: JSON.stringify(event), attempts: 0 });
    if (!this.pumping) void this.pump();
  }

  /** Stops taking events; waits up to the grace period for the queue to empty, then abandons the rest. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const deadline = Date.now() + this.options.closeGraceMs;
    while (this.queue.length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    if (this.queue.length > 0) this.logger.warn({ undelivered: this.queue.length }, 'webhook events left undelivered at shutdown');
    this.queue.length = 0;
    this.abort.abort();
    if (this.retryTimer) {
      clearTimeout(this.retryTimer.timer);
      this.retryTimer.resolve();
    }
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.queue.length > 0 && !this.abort.signal.aborted) {
        const head = this.queue[0]!;
        head.attempts++;
        try {
          await this.attempt(head);
          this.queue.shift();
          this.emit('delivered', head.id, head.attempts);
        } catch (error) {
          if (this.abort.signal.aborted) break;
          const failure = error instanceof AttemptFailure ? error : new AttemptFailure(String(error), true);
          if (!failure.retryable || head.attempts >= this.options.maxAttempts) {
            this.queue.shift();
            this.drop(head.id, `${failure.message} (attempt ${head.attempts})`);
            continue;
          }
          this.logger.debug({ eventId: head.id, attempt: head.attempts, reason: failure.message }, 'webhook delivery failed; retrying');
          await this.wait(Math.min(this.options.firstRetryDelayMs * 2 ** (head.attempts - 1), this.options.maxRetryDelayMs));
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  private async attempt(event: Queued): Promise<void> {
    const timestamp = String(Math.floor(Date.now() / 1000));
    let response: Response;
    try {
      response = await fetch(this.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          [TIMESTAMP_HEADER]: timestamp,
          [SIGNATURE_HEADER]: webhookSignature(this.secret, timestamp, event.body),
          [EVENT_ID_HEADER]: event.id,
        },
        body: event.body,
        redirect: 'manual',
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.options.attemptTimeoutMs)]),
      });
    } catch (error) {
      const timedOut = error instanceof Error && error.name === 'TimeoutError';
      throw new AttemptFailure(timedOut ? `no answer within ${this.options.attemptTimeoutMs} ms` : `request failed: ${(error as Error).message}`, true);
    }
    // The answer's body is not used; reading it frees the connection for the next request.
    await response.arrayBuffer().catch(() => undefined);
    if (response.ok) return;
    const status = response.status;
    throw new AttemptFailure(`the receiver answered ${status}`, status === 408 || status === 429 || status >= 500);
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.retryTimer = undefined;
        resolve();
      }, ms);
      this.retryTimer = { timer, resolve };
    });
  }

  private drop(eventId: string, reason: string): void {
    const suppressed = this.warnings.admit(reason.replace(/\(attempt \d+\)/, ''));
    // The origin only: a URL's path or query may hold a token.
    if (suppressed >= 0) this.logger.warn({ eventId, reason, receiver: new URL(this.url).origin, suppressed }, 'webhook event dropped');
    this.emit('dropped', eventId, reason);
  }
}
