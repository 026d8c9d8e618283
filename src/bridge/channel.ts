import { EventEmitter } from 'node:events';
import type { WebSocket } from 'ws';
import type { z } from 'zod';

/** A request the other node did not answer in time: the bridge is treated as broken. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Messages queued towards a node that reads too slowly before the bridge gives up on it. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
/** A ping this often; a node that answered none since the last one is gone (its machine, or the network). */
const HEARTBEAT_MS = 5_000;

export class BridgeClosedError extends Error {}

export interface BridgeChannelEvents<Incoming> {
  /** A message that is not an answer. */
  message: [message: Incoming];
  closed: [reason: string];
}

type Envelope = { id?: number; replyTo?: number; error?: string; body?: unknown };

/**
 * One WebSocket between two nodes carrying JSON messages, some of them requests answered by id (`serve`). Each side gives
 * the schema of what it accepts: a message that doesn't match it (a node of another version, a bug) is logged by
 * the owner through `invalid` and dropped, never trusted.
 */
export class BridgeChannel<Incoming, Outgoing> extends EventEmitter<BridgeChannelEvents<Incoming>> {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (body: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();
  private closedReason: string | undefined;
  private answeredPing = true;
  private answerer: ((request: Incoming) => Promise<unknown>) | undefined;
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    private readonly ws: WebSocket,
    private readonly schema: z.ZodType<Incoming>,
    private readonly invalid: (problem: string) => void,
  ) {
    super();
    ws.on('message', (data, isBinary) => this.receive(data as Buffer, isBinary));
    ws.on('close', (code, reason) => this.markClosed(`closed by the other node (${code}${reason.length > 0 ? ` ${reason.toString()}` : ''})`));
    ws.on('error', (error) => this.markClosed(`connection failed: ${error.message}`));
    ws.on('pong', () => (this.answeredPing = true));
    this.heartbeat = setInterval(() => {
      if (!this.answeredPing) {
        ws.terminate();
        this.markClosed('the other node stopped answering');
        return;
      }
      this.answeredPing = false;
      ws.ping();
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  get closed(): boolean {
    return this.closedReason !== undefined;
  }

  send(message: Outgoing): void {
    this.write({ body: message });
  }

  /** Sends a request; its answer's body (validated by the caller) or an error. */
  request(message: Outgoing): Promise<unknown> {
    if (this.closedReason) return Promise.reject(new BridgeClosedError(this.closedReason));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new BridgeClosedError('the other node did not answer in time'));
        this.close('a request timed out');
      }, REQUEST_TIMEOUT_MS);
      timer.unref();
      this.pending.set(id, { resolve, reject, timer });
      this.write({ id, body: message });
    });
  }

  /** Answers the other node's requests with what `answer` resolves to, or the error it throws. */
  serve(answer: (request: Incoming) => Promise<unknown>): void {
    this.answerer = answer;
  }

  close(reason = 'closed'): void {
    if (this.closedReason) return;
    this.ws.close(1000, reason.slice(0, 120));
    this.markClosed(reason);
  }

  private write(envelope: Envelope): void {
    if (this.closedReason || this.ws.readyState !== this.ws.OPEN) return;
    if (this.ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.ws.terminate();
      this.markClosed('the other node reads too slowly');
      return;
    }
    this.ws.send(JSON.stringify(envelope));
  }

  private receive(data: Buffer, isBinary: boolean): void {
    if (this.closedReason) return;
    let envelope: Envelope;
    try {
      if (isBinary) throw new Error('binary message');
      envelope = JSON.parse(data.toString('utf8')) as Envelope;
      if (typeof envelope !== 'object' || envelope === null) throw new Error('not an object');
    } catch (error) {
      this.invalid(`unreadable message: ${(error as Error).message}`);
      return;
    }
    if (typeof envelope.replyTo === 'number') {
      const waiting = this.pending.get(envelope.replyTo);
      if (!waiting) return;
      this.pending.delete(envelope.replyTo);
      clearTimeout(waiting.timer);
      if (typeof envelope.error === 'string') waiting.reject(new Error(envelope.error));
      else waiting.resolve(envelope.body);
      return;
    }
    const parsed = this.schema.safeParse(envelope.body);
    if (!parsed.success) {
      this.invalid(`unexpected message: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
      if (typeof envelope.id === 'number') this.write({ replyTo: envelope.id, error: 'unexpected message' });
      return;
    }
    if (typeof envelope.id === 'number') this.answer(envelope.id, parsed.data);
    else this.emit('message', parsed.data);
  }

  private answer(id: number, request: Incoming): void {
    if (!this.answerer) return this.write({ replyTo: id, error: 'this node takes no requests' });
    this.answerer(request).then(
      (body) => this.write({ replyTo: id, body }),
      (error: unknown) => this.write({ replyTo: id, error: (error as Error).message }),
    );
  }

  private markClosed(reason: string): void {
    if (this.closedReason) return;
    this.closedReason = reason;
    clearInterval(this.heartbeat);
    for (const waiting of this.pending.values()) {
      clearTimeout(waiting.timer);
      waiting.reject(new BridgeClosedError(reason));
    }
    this.pending.clear();
    this.emit('closed', reason);
  }
}
