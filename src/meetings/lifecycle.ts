import type { NodeDirectory } from '../cluster/node-directory.ts';
import type { Clock } from '../util/clock.ts';
import type { MeetingRecord } from './model.ts';
import type { MeetingService } from './service.ts';

/**
 * What the media plane reports about connections. A meeting counts as connected while any
 * attendee has a live media session in it (a promoted replica attendee counts for the
 * primary it was promoted into).
 */
export interface ConnectionReporter {
  attendeeConnected(meetingId: string, attendeeId: string): void;
  attendeeDisconnected(meetingId: string, attendeeId: string): void;
}

export interface LifecycleOptions {
  /** A primary with no attendee connected for this long is deleted (service: 5 minutes). */
  idleTimeoutMs: number;
  /** Any meeting older than this is deleted (service: 24 hours). */
  maxAgeMs: number;
  /** How often the rules are checked. */
  sweepIntervalMs: number;
}

export const DEFAULT_LIFECYCLE: LifecycleOptions = {
  idleTimeoutMs: 5 * 60_000,
  maxAgeMs: 24 * 3_600_000,
  sweepIntervalMs: 5_000,
};

/**
 * Idle and maximum-age deletion. Replicas are never deleted for idleness: they live as long
 * as their primary, and deleting the primary cascades to them.
 *
 * A node knows only its own connections, so it judges idleness only for the meetings it hosts
 * (MediaNodeId is this node) and for those of a dead node, whose idle clock starts when this
 * node first sees them orphaned (their clients may come back elsewhere). Several nodes may judge
 * the same orphan or the same old meeting: ending a meeting twice is harmless under its lock.
 * Maximum age is judged everywhere.
 */
export class MeetingLifecycle implements ConnectionReporter {
  /** meetingId → attendeeId → live sessions (an attendee may briefly hold two, e.g. while moving device). */
  private readonly connections = new Map<string, Map<string, number>>();
  /** meetingId → when its last connection ended; absent while connected or never connected. */
  private readonly idleSince = new Map<string, number>();
  /** meetingId → when this node first saw its hosting node dead. */
  private readonly orphanedSince = new Map<string, number>();
  /** Meetings another node hosted at the last sweep: one hosted here since was re-homed here (its clock restarts). */
  private readonly hostedElsewhere = new Set<string>();
  private readonly startedAt: number;
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<string[]> | undefined;

  constructor(
    private readonly meetings: MeetingService,
    private readonly clock: Clock,
    private readonly nodes: NodeDirectory,
    private readonly options: LifecycleOptions = DEFAULT_LIFECYCLE,
  ) {
    this.startedAt = clock.now();
    meetings.events.subscribe('meetingEnded', (meeting) => {
      this.connections.delete(meeting.MeetingId);
      this.idleSince.delete(meeting.MeetingId);
      this.orphanedSince.delete(meeting.MeetingId);
      this.hostedElsewhere.delete(meeting.MeetingId);
    });
  }

  attendeeConnected(meetingId: string, attendeeId: string): void {
    let attendees = this.connections.get(meetingId);
    if (!attendees) this.connections.set(meetingId, (attendees = new Map()));
    attendees.set(attendeeId, (attendees.get(attendeeId) ?? 0) + 1);
    this.idleSince.delete(meetingId);
  }

  attendeeDisconnected(meetingId: string, attendeeId: string): void {
    const attendees = this.connections.get(meetingId);
    const count = attendees?.get(attendeeId);
    if (!attendees || count === undefined) return;
    if (count > 1) attendees.set(attendeeId, count - 1);
    else attendees.delete(attendeeId);
    if (attendees.size === 0) {
      this.connections.delete(meetingId);
      this.idleSince.set(meetingId, this.clock.now());
    }
  }

  connectedAttendees(meetingId: string): number {
    return this.connections.get(meetingId)?.size ?? 0;
  }

  start(): void {
    this.timer ??= setInterval(() => void this.sweep().catch(() => undefined), this.options.sweepIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Applies the rules once; returns the ids of the meetings it ended. */
  sweep(): Promise<string[]> {
    this.sweeping ??= this.runSweep().finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  private async runSweep(): Promise<string[]> {
    const now = this.clock.now();
    const ended: string[] = [];
    const seen = new Set<string>();
    for (const meeting of await this.meetings.allMeetings()) {
      seen.add(meeting.MeetingId);
      if (now - meeting.CreatedAt >= this.options.maxAgeMs) {
        if (await this.meetings.endMeeting(meeting.MeetingId, 'maxAge')) ended.push(meeting.MeetingId);
        continue;
      }
      if (meeting.PrimaryMeetingId || this.connections.has(meeting.MeetingId)) continue;
      const idleFrom = await this.idleFrom(meeting, now);
      if (idleFrom !== undefined && now - idleFrom >= this.options.idleTimeoutMs) {
        if (await this.meetings.endMeeting(meeting.MeetingId, 'idle')) ended.push(meeting.MeetingId);
      }
    }
    // Meetings ended elsewhere leave no orphan clock behind.
    for (const meetingId of this.orphanedSince.keys()) if (!seen.has(meetingId)) this.orphanedSince.delete(meetingId);
    for (const meetingId of this.hostedElsewhere) if (!seen.has(meetingId)) this.hostedElsewhere.delete(meetingId);
    return ended;
  }

  /** Since when this node counts the meeting idle; undefined: another, live node judges it. */
  private async idleFrom(meeting: MeetingRecord, now: number): Promise<number | undefined> {
    if (this.nodes.isLocal(meeting.MediaNodeId)) {
      if (this.hostedElsewhere.delete(meeting.MeetingId) && !this.idleSince.has(meeting.MeetingId)) {
        // Re-homed here (its node died): idle since it was seen orphaned, else from now, not from its creation.
        this.idleSince.set(meeting.MeetingId, this.orphanedSince.get(meeting.MeetingId) ?? now);
      }
      this.orphanedSince.delete(meeting.MeetingId);
      // Connections are not persisted: after a restart the idle clock starts again.
      return this.idleSince.get(meeting.MeetingId) ?? Math.max(meeting.CreatedAt, this.startedAt);
    }
    this.hostedElsewhere.add(meeting.MeetingId);
    if (await this.nodes.node(meeting.MediaNodeId)) {
      this.orphanedSince.delete(meeting.MeetingId);
      return undefined;
    }
    let orphanedAt = this.orphanedSince.get(meeting.MeetingId);
    if (orphanedAt === undefined) this.orphanedSince.set(meeting.MeetingId, (orphanedAt = now));
    return Math.max(meeting.CreatedAt, orphanedAt);
  }
}
