import { EventEmitter } from 'node:events';
import type { AttendeeRecord, MeetingRecord } from './model.ts';

/**
 * What happened to meetings and attendees on this node, as the meeting lifecycle events report it: the control plane
 * says what its API calls did, the signaling layer what connections did. `content`: the attendee's content share
 * (`<AttendeeId>#content`) rather than the attendee itself.
 */
export interface MeetingActivityEvents {
  /** CreateMeeting (or CreateMeetingWithAttendees) made a new meeting; not a retried request. */
  meetingStarted: [meeting: MeetingRecord];
  /** DeleteMeeting, idle or age deletion, or the primary's deletion ended the meeting. */
  meetingEnded: [meeting: MeetingRecord];
  /** A new attendee was created; not a repeated ExternalUserId. */
  attendeeAdded: [meeting: MeetingRecord, attendee: AttendeeRecord];
  attendeeDeleted: [meeting: MeetingRecord, attendee: AttendeeRecord];
  /** A JoinToken was accepted at the signaling handshake. */
  attendeeAuthorized: [meeting: MeetingRecord, attendee: AttendeeRecord, content: boolean];
  /** A connection joined the meeting's media (JOIN), or a replica viewer was promoted into this primary. */
  attendeeJoined: [meeting: MeetingRecord, attendee: AttendeeRecord, content: boolean];
  /** That connection (or promotion) ended; `dropped`: its connection failed, rather than the client leaving or being ended. */
  attendeeLeft: [meeting: MeetingRecord, attendee: AttendeeRecord, content: boolean, dropped: boolean];
  videoStarted: [meeting: MeetingRecord, attendee: AttendeeRecord, content: boolean];
  videoStopped: [meeting: MeetingRecord, attendee: AttendeeRecord, content: boolean];
}

/**
 * Where the meeting service and the signaling layer report activity, for whoever listens (the webhooks, when
 * configured). One per node, handed to the service; listeners are called synchronously and must not throw.
 */
export class MeetingActivity extends EventEmitter<MeetingActivityEvents> {}
