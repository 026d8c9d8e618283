import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { DemoEvent } from './protocol.ts';

interface EventStreamsEvents {
  /** The last open stream of a channel closed (its page went away, or its connection broke). */
  lastClosed: [channel: string];
}

/** A page that reads no more than this is cut off rather than buffered for. */
const MAX_BUFFERED_BYTES = 1024 * 1024;

/**
 * Server-sent event streams, grouped in channels (one per webinar participant; a participant may have a few pages
 * or a reconnecting EventSource open at once). Comments keep idle streams alive through proxies.
 */
export class EventStreams extends EventEmitter<EventStreamsEvents> {
  private readonly channels = new Map<string, Set<ServerResponse>>();
  private readonly keepAlive: NodeJS.Timeout;

  constructor(
    private readonly maxPerChannel = 4,
    keepAliveMs = 15_000,
  ) {
    super();
    this.keepAlive = setInterval(() => {
      for (const streams of this.channels.values()) for (const stream of streams) this.write(stream, ': keep-alive\n\n');
    }, keepAliveMs).unref();
  }

  /** Answers `response` as an event stream of `channel`, starting with `first`. */
  open(channel: string, response: ServerResponse, first: DemoEvent[]): void {
    let streams = this.channels.get(channel);
    if (!streams) this.channels.set(channel, (streams = new Set()));
    // The oldest stream of a channel gives way: a page reloaded many times must not hold connections forever.
    if (streams.size >= this.maxPerChannel) [...streams][0]!.end();
    streams.add(response);
    // A page gone mid-write is noticed by 'close'; its write error must not become an unhandled one.
    response.on('error', () => response.destroy());
    response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    this.write(response, 'retry: 2000\n\n');
    for (const event of first) this.write(response, frame(event));
    response.on('close', () => {
      const current = this.channels.get(channel);
      if (!current?.delete(response) || current.size > 0) return;
      this.channels.delete(channel);
      this.emit('lastClosed', channel);
    });
  }

  isOpen(channel: string): boolean {
    return this.channels.has(channel);
  }

  /** Sends `event` on every stream of `channel`; false if it has none. */
  send(channel: string, event: DemoEvent): boolean {
    const streams = this.channels.get(channel);
    if (!streams) return false;
    const text = frame(event);
    for (const stream of streams) this.write(stream, text);
    return true;
  }

  /** Ends every stream of `channel`. */
  end(channel: string): void {
    for (const stream of this.channels.get(channel) ?? []) stream.end();
  }

  close(): void {
    clearInterval(this.keepAlive);
    for (const streams of [...this.channels.values()]) for (const stream of streams) stream.end();
    this.channels.clear();
  }

  private write(stream: ServerResponse, text: string): void {
    if (stream.writableLength > MAX_BUFFERED_BYTES) stream.destroy();
    else if (!stream.writableEnded && !stream.destroyed) stream.write(text);
  }
}

const frame = (event: DemoEvent) => `data: ${JSON.stringify(event)}\n\n`;
