import type { MeetingEventBus, MeetingEventListener, MeetingEventName, MeetingEvents } from './events.ts';

type Subscribers = { [E in MeetingEventName]: Set<MeetingEventListener<E>> };

/**
 * The event bus of a single process: on publish, subscribers are called synchronously in
 * subscription order (as an EventEmitter would; one that throws stops the publish).
 */
export class LocalMeetingEventBus implements MeetingEventBus {
  private readonly subscribers: Subscribers = {
    meetingEnded: new Set(),
    attendeeDeleted: new Set(),
    attendeeCapabilitiesChanged: new Set(),
    meetingMoved: new Set(),
  };

  publish<E extends MeetingEventName>(event: E, ...args: MeetingEvents[E]): void {
    // A copy: a subscriber may subscribe or unsubscribe while being called.
    for (const listener of [...this.subscribers[event]]) listener(...args);
  }

  subscribe<E extends MeetingEventName>(event: E, listener: MeetingEventListener<E>): () => void {
    // Wrapped, so the same function subscribed twice is called twice and unsubscribed once per subscription.
    const subscription: MeetingEventListener<E> = (...args) => listener(...args);
    this.subscribers[event].add(subscription);
    return () => void this.subscribers[event].delete(subscription);
  }
}
