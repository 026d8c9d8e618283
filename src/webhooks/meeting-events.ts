import { randomUUID } from 'node:crypto';
import type { MeetingActivity, MeetingActivityEvents } from '../meetings/activity.ts';
import type { AttendeeRecord, MeetingRecord } from '../meetings/model.ts';
import type { Clock } from '../util/clock.ts';

/** The `detail.eventType` values of the Amazon Chime SDK meeting lifecycle events that Amphi sends. */
export type ChimeEventType =
  | 'chime:MeetingStarted'
  | 'chime:MeetingEnded'
  | 'chime:AttendeeAdded'
  | 'chime:AttendeeDeleted'
  | 'chime:AttendeeAuthorized'
  | 'chime:AttendeeJoined'
  | 'chime:AttendeeLeft'
  | 'chime:AttendeeDropped'
  | 'chime:AttendeeVideoStarted'
  | 'chime:AttendeeVideoStopped'
  | 'chime:AttendeeContentJoined'
  | 'chime:AttendeeContentLeft'
  | 'chime:AttendeeContentDropped'
  | 'chime:AttendeeContentVideoStarted'
  | 'chime:AttendeeContentVideoStopped';

export interface ChimeEventDetail {
  version: '0';
  eventType: ChimeEventType;
  /** Milliseconds since the epoch. */
  timestamp: number;
  meetingId: string;
  attendeeId?: string;
  externalUserId?: string;
  /** Joined, left and dropped events: how the attendee's media is connected (always VoIP here). */
  networkType?: 'Voip';
  externalMeetingId?: string;
  mediaRegion: string;
}

/** One event as the service puts it on EventBridge. */
export interface ChimeMeetingEvent {
  version: '0';
  id: string;
  'detail-type': 'Chime Meeting State Change';
  source: 'aws.chime';
  account: string;
  /** ISO 8601 to the second, as EventBridge writes it. */
  time: string;
  region: string;
  resources: string[];
  detail: ChimeEventDetail;
}

const CONTENT_SUFFIX = '#content';

/** Whose event it is: the attendee, or its content share (`#content` on both ids, as the content attendee is named). */
interface Subject {
  attendee: AttendeeRecord;
  content: boolean;
}

/** Builds the event of `eventType` for a meeting and, for attendee events, its subject. */
export function chimeEvent(eventType: ChimeEventType, meeting: MeetingRecord, accountId: string, now: number, subject?: Subject): ChimeMeetingEvent {
  const suffix = subject?.content ? CONTENT_SUFFIX : '';
  const connection = /Joined|Left|Dropped/.test(eventType);
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'Chime Meeting State Change',
    source: 'aws.chime',
    account: accountId,
    time: new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region: meeting.MediaRegion,
    resources: [],
    detail: {
      version: '0',
      eventType,
      timestamp: now,
      meetingId: meeting.MeetingId,
      ...(subject
        ? { attendeeId: subject.attendee.AttendeeId + suffix, externalUserId: subject.attendee.ExternalUserId + suffix }
        : {}),
      ...(connection ? { networkType: 'Voip' as const } : {}),
      ...(meeting.ExternalMeetingId !== undefined ? { externalMeetingId: meeting.ExternalMeetingId } : {}),
      mediaRegion: meeting.MediaRegion,
    },
  };
}

/**
 * Turns a node's meeting activity into lifecycle events handed to `deliver` (which must return at once: it is called
 * on the API's and the signaling's paths). Returns the function that stops it.
 */
export function forwardMeetingEvents(activity: MeetingActivity, deliver: (event: ChimeMeetingEvent) => void, accountId: string, clock: Clock): () => void {
  const send = (eventType: ChimeEventType, meeting: MeetingRecord, subject?: Subject) =>
    deliver(chimeEvent(eventType, meeting, accountId, clock.now(), subject));
  const subscriptions: (() => void)[] = [];
  const on = <E extends keyof MeetingActivityEvents>(event: E, listener: (...args: MeetingActivityEvents[E]) => void) => {
    // The emitter's conditional listener type can't be resolved for a generic event name.
    const subscribed = listener as Parameters<typeof activity.on<E>>[1];
    activity.on(event, subscribed);
    subscriptions.push(() => activity.off(event, subscribed));
  };
  on('meetingStarted', (meeting) => send('chime:MeetingStarted', meeting));
  on('meetingEnded', (meeting) => send('chime:MeetingEnded', meeting));
  on('attendeeAdded', (meeting, attendee) => send('chime:AttendeeAdded', meeting, { attendee, content: false }));
  on('attendeeDeleted', (meeting, attendee) => send('chime:AttendeeDeleted', meeting, { attendee, content: false }));
  on('attendeeAuthorized', (meeting, attendee, content) => send('chime:AttendeeAuthorized', meeting, { attendee, content }));
  on('attendeeJoined', (meeting, attendee, content) =>
    send(content ? 'chime:AttendeeContentJoined' : 'chime:AttendeeJoined', meeting, { attendee, content }),
  );
  on('attendeeLeft', (meeting, attendee, content, dropped) => {
    const eventType = content
      ? dropped ? 'chime:AttendeeContentDropped' : 'chime:AttendeeContentLeft'
      : dropped ? 'chime:AttendeeDropped' : 'chime:AttendeeLeft';
    send(eventType, meeting, { attendee, content });
  });
  on('videoStarted', (meeting, attendee, content) =>
    send(content ? 'chime:AttendeeContentVideoStarted' : 'chime:AttendeeVideoStarted', meeting, { attendee, content }),
  );
  on('videoStopped', (meeting, attendee, content) =>
    send(content ? 'chime:AttendeeContentVideoStopped' : 'chime:AttendeeVideoStopped', meeting, { attendee, content }),
  );
  return () => {
    for (const unsubscribe of subscriptions) unsubscribe();
  };
}
