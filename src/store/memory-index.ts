import type { AttendeeRecord, MeetingRecord } from '../meetings/model.ts';
import type { AttendeePage } from '../meetings/meeting-store.ts';

/**
 * The in-memory state of the embedded store and its secondary indexes. Synchronous, so the
 * file store can apply a change and enqueue its journal entry in the same tick.
 */
export class MemoryIndex {
  readonly meetings = new Map<string, MeetingRecord>();
  private readonly attendees = new Map<string, Map<string, AttendeeRecord>>();
  private readonly byRequestToken = new Map<string, string>();
  private readonly byJoinToken = new Map<string, AttendeeRecord>();
  private readonly byExternalUserId = new Map<string, Map<string, string>>();
  private readonly replicas = new Map<string, Set<string>>();

  getMeeting(meetingId: string): MeetingRecord | undefined {
    return this.meetings.get(meetingId);
  }

  putMeeting(meeting: MeetingRecord): void {
    this.meetings.set(meeting.MeetingId, meeting);
    this.byRequestToken.set(meeting.ClientRequestToken, meeting.MeetingId);
    if (meeting.PrimaryMeetingId) {
      let set = this.replicas.get(meeting.PrimaryMeetingId);
      if (!set) this.replicas.set(meeting.PrimaryMeetingId, (set = new Set()));
      set.add(meeting.MeetingId);
    }
  }

  deleteMeeting(meetingId: string): AttendeeRecord[] {
    const meeting = this.meetings.get(meetingId);
    if (!meeting) return [];
    this.meetings.delete(meetingId);
    if (this.byRequestToken.get(meeting.ClientRequestToken) === meetingId) {
      this.byRequestToken.delete(meeting.ClientRequestToken);
    }
    if (meeting.PrimaryMeetingId) {
      const set = this.replicas.get(meeting.PrimaryMeetingId);
      set?.delete(meetingId);
      if (set?.size === 0) this.replicas.delete(meeting.PrimaryMeetingId);
    }
    const removed = [...(this.attendees.get(meetingId)?.values() ?? [])];
    for (const attendee of removed) this.byJoinToken.delete(attendee.JoinToken);
    this.attendees.delete(meetingId);
    this.byExternalUserId.delete(meetingId);
    return removed;
  }

  findMeetingByRequestToken(token: string): MeetingRecord | undefined {
    const id = this.byRequestToken.get(token);
    return id === undefined ? undefined : this.meetings.get(id);
  }

  listReplicaIds(primaryMeetingId: string): string[] {
    return [...(this.replicas.get(primaryMeetingId) ?? [])];
  }

  getAttendee(meetingId: string, attendeeId: string): AttendeeRecord | undefined {
    return this.attendees.get(meetingId)?.get(attendeeId);
  }

  putAttendee(attendee: AttendeeRecord): void {
    let forMeeting = this.attendees.get(attendee.MeetingId);
    if (!forMeeting) this.attendees.set(attendee.MeetingId, (forMeeting = new Map()));
    const previous = forMeeting.get(attendee.AttendeeId);
    if (previous) this.byJoinToken.delete(previous.JoinToken);
    forMeeting.set(attendee.AttendeeId, attendee);
    this.byJoinToken.set(attendee.JoinToken, attendee);
    let external = this.byExternalUserId.get(attendee.MeetingId);
    if (!external) this.byExternalUserId.set(attendee.MeetingId, (external = new Map()));
    external.set(attendee.ExternalUserId, attendee.AttendeeId);
  }

  deleteAttendee(meetingId: string, attendeeId: string): AttendeeRecord | undefined {
    const forMeeting = this.attendees.get(meetingId);
    const attendee = forMeeting?.get(attendeeId);
    if (!forMeeting || !attendee) return undefined;
    forMeeting.delete(attendeeId);
    this.byJoinToken.delete(attendee.JoinToken);
    const external = this.byExternalUserId.get(meetingId);
    if (external?.get(attendee.ExternalUserId) === attendeeId) external.delete(attendee.ExternalUserId);
    return attendee;
  }

  countAttendees(meetingId: string): number {
    return this.attendees.get(meetingId)?.size ?? 0;
  }

  allAttendees(meetingId: string): AttendeeRecord[] {
    return [...(this.attendees.get(meetingId)?.values() ?? [])];
  }

  listAttendees(meetingId: string, limit: number, afterAttendeeId?: string): AttendeePage {
    const sorted = this.allAttendees(meetingId).sort((a, b) => (a.AttendeeId < b.AttendeeId ? -1 : 1));
    const start = afterAttendeeId === undefined ? 0 : sorted.findIndex((a) => a.AttendeeId > afterAttendeeId);
    if (start < 0) return { attendees: [] };
    const attendees = sorted.slice(start, start + limit);
    const more = start + limit < sorted.length;
    return more ? { attendees, lastAttendeeId: attendees[attendees.length - 1]!.AttendeeId } : { attendees };
  }

  findAttendeeByExternalUserId(meetingId: string, externalUserId: string): AttendeeRecord | undefined {
    const id = this.byExternalUserId.get(meetingId)?.get(externalUserId);
    return id === undefined ? undefined : this.getAttendee(meetingId, id);
  }

  findAttendeeByJoinToken(joinToken: string): AttendeeRecord | undefined {
    return this.byJoinToken.get(joinToken);
  }

  get liveRecordCount(): number {
    let count = this.meetings.size;
    for (const forMeeting of this.attendees.values()) count += forMeeting.size;
    return count;
  }

  *records(): Generator<JournalEntry> {
    for (const meeting of this.meetings.values()) yield { op: 'putMeeting', meeting };
    for (const forMeeting of this.attendees.values()) {
      for (const attendee of forMeeting.values()) yield { op: 'putAttendee', attendee };
    }
  }

  apply(entry: JournalEntry): void {
    switch (entry.op) {
      case 'putMeeting':
        return this.putMeeting(entry.meeting);
      case 'deleteMeeting':
        this.deleteMeeting(entry.meetingId);
        return;
      case 'putAttendee':
        return this.putAttendee(entry.attendee);
      case 'deleteAttendee':
        this.deleteAttendee(entry.meetingId, entry.attendeeId);
        return;
    }
  }
}

/** One change, as the embedded store journals it. Replaying an entry twice is harmless. */
export type JournalEntry =
  | { op: 'putMeeting'; meeting: MeetingRecord }
  | { op: 'deleteMeeting'; meetingId: string }
  | { op: 'putAttendee'; attendee: AttendeeRecord }
  | { op: 'deleteAttendee'; meetingId: string; attendeeId: string };
