import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { MeetingEventBus, MeetingEventListener, MeetingEventName, MeetingEvents } from '../meetings/events.ts';
import { LocalMeetingEventBus } from '../meetings/local-event-bus.ts';

const EVENT_NAMES: ReadonlySet<string> = new Set<MeetingEventName>(['meetingEnded', 'attendeeDeleted', 'attendeeCapabilitiesChanged', 'meetingMoved']);

interface WireEvent {
  origin: string;
  event: MeetingEventName;
  args: unknown[];
}

/**
 * Control-plane events for every node on one Redis. A node's own events reach its subscribers at once and in
 * order, exactly as on a single node; they are also published on one channel (`<prefix>events`), and each node
 * hands the events of the others to its subscribers as they arrive. Delivery to other nodes is Redis pub/sub: at
 * most once, in publish order, to nodes connected at the time.
 */
export class RedisMeetingEventBus implements MeetingEventBus {
  private readonly local = new LocalMeetingEventBus();
  private readonly origin = randomUUID();
  private readonly channel: string;
  private readonly ready: Promise<void>;

  /**
   * `publisher`: a connection for commands; `subscriber`: a connection of its own, which this bus puts in
   * subscriber mode (Redis allows nothing else on it). The caller owns and closes both.
   */
  constructor(
    private readonly publisher: Redis,
    private readonly subscriber: Redis,
    private readonly logger: Logger,
    prefix = 'amphi:',
  ) {
    this.channel = `${prefix}events`;
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.channel) this.receive(message);
    });
    this.ready = subscriber.subscribe(this.channel).then(() => undefined);
    this.ready.catch((error: unknown) => this.logger.error({ err: error }, 'could not subscribe to control-plane events'));
  }

  /** Resolves once events of other nodes are received. */
  whenReady(): Promise<void> {
    return this.ready;
  }

  publish<E extends MeetingEventName>(event: E, ...args: MeetingEvents[E]): void {
    this.local.publish(event, ...args);
    const wire: WireEvent = { origin: this.origin, event, args };
    this.publisher.publish(this.channel, JSON.stringify(wire)).catch((error: unknown) => {
      this.logger.error({ err: error, event }, 'could not publish a control-plane event to the other nodes');
    });
  }

  subscribe<E extends MeetingEventName>(event: E, listener: MeetingEventListener<E>): () => void {
    return this.local.subscribe(event, listener);
  }

  private receive(message: string): void {
    let wire: WireEvent;
    try {
      wire = JSON.parse(message) as WireEvent;
      if (typeof wire.origin !== 'string' || !EVENT_NAMES.has(wire.event) || !Array.isArray(wire.args)) throw new Error('not an event');
    } catch (error) {
      this.logger.warn({ err: error }, 'malformed control-plane event ignored');
      return;
    }
    if (wire.origin === this.origin) return; // delivered locally when published
    try {
      this.local.publish(wire.event, ...(wire.args as MeetingEvents[typeof wire.event]));
    } catch (error) {
      this.logger.error({ err: error, event: wire.event }, 'a subscriber failed on an event of another node');
    }
  }
}
