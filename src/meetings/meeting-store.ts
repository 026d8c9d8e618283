import type { AttendeeRecord, MeetingRecord } from './model.ts';

export interface AttendeePage {
  attendees: AttendeeRecord[];
  /** Id of the last attendee returned when more remain after it. */
  lastAttendeeId?: string;
}

/**
 * Persistence of meetings, attendees, replicas and tags. Every method is async so that a
 * networked implementation (Redis for several nodes) fits the same interface; callers
 * serialise conflicting writes themselves with `withLock` (see MeetingService).
 */
export interface MeetingStore {
  /**
   * Runs `section` while no other section holds `key`, for everyone sharing this store (one
   * process for the file store; every node for a networked store, with a distributed lock), so
   * check-then-write sequences such as "count attendees, then add one" cannot interleave.
   * Sections on different keys run concurrently; a section may take another key inside it.
   */
  withLock<T>(key: string, section: () => Promise<T>): Promise<T>;

  getMeeting(meetingId: string): Promise<MeetingRecord | undefined>;
  putMeeting(meeting: MeetingRecord): Promise<void>;
  /** Removes the meeting and all its attendees; returns the attendees that were removed. */
  deleteMeeting(meetingId: string): Promise<AttendeeRecord[]>;
  listMeetings(): Promise<MeetingRecord[]>;
  countMeetings(): Promise<number>;
  findMeetingByRequestToken(clientRequestToken: string): Promise<MeetingRecord | undefined>;
  listReplicaIds(primaryMeetingId: string): Promise<string[]>;

  getAttendee(meetingId: string, attendeeId: string): Promise<AttendeeRecord | undefined>;
  putAttendee(attendee: AttendeeRecord): Promise<void>;
  /** Several attendees in one write (a batch creation). */
  putAttendees(attendees: AttendeeRecord[]): Promise<void>;
  deleteAttendee(meetingId: string, attendeeId: string): Promise<AttendeeRecord | undefined>;
  countAttendees(meetingId: string): Promise<number>;
  /** Attendees ordered by AttendeeId, starting after `afterAttendeeId`. */
  listAttendees(meetingId: string, limit: number, afterAttendeeId?: string): Promise<AttendeePage>;
  listAllAttendees(meetingId: string): Promise<AttendeeRecord[]>;
  findAttendeeByExternalUserId(meetingId: string, externalUserId: string): Promise<AttendeeRecord | undefined>;
  findAttendeeByJoinToken(joinToken: string): Promise<AttendeeRecord | undefined>;

  /** Flushes pending writes and releases files or connections. */
  close(): Promise<void>;
}

/**
 * The store can't be reached now (a networked store lost its server, or a lock stayed held too long): nothing was
 * changed by the call that got it, and the same call may succeed when retried. The API answers 503.
 */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}
