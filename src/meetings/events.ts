import type { AttendeeRecord, MeetingRecord } from './model.ts';

export type MeetingEndReason = 'deleted' | 'primaryDeleted' | 'idle' | 'maxAge';

/** What the control plane tells the media plane. Payloads are plain records, so a networked bus can carry them. */
export interface MeetingEvents {
  /** A meeting ended: the media plane ends its sessions (MeetingEnded). */
  meetingEnded: [meeting: MeetingRecord, reason: MeetingEndReason];
  /** An attendee was deleted: the media plane disconnects it at once. */
  attendeeDeleted: [attendee: AttendeeRecord];
  /** A live attendee's capabilities changed. */
  attendeeCapabilitiesChanged: [attendee: AttendeeRecord];
  /** A dead node's meeting was re-homed: a node still hosting it (cut off, not dead) ends its sessions. */
  meetingMoved: [meeting: MeetingRecord, fromNodeId: string];
}

export type MeetingEventName = keyof MeetingEvents;
export type MeetingEventListener<E extends MeetingEventName> = (...args: MeetingEvents[E]) => void;

/**
 * Carries control-plane events from the node that made a change to every subscriber: the
 * signaling gateway, the lifecycle rules. Local to one process today (`LocalMeetingEventBus`);
 * a bus shared by several nodes (Redis pub/sub) implements the same interface.
 * Events are published after the change they report is stored.
 */
export interface MeetingEventBus {
  publish<E extends MeetingEventName>(event: E, ...args: MeetingEvents[E]): void;
  /** Returns the function that ends this subscription. */
  subscribe<E extends MeetingEventName>(event: E, listener: MeetingEventListener<E>): () => void;
}
