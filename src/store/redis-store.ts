/**
 * The MeetingStore of cluster mode: every node reads and writes the same Redis, so any node answers
 * for any meeting. Observable results are those of the embedded FileStore (same orders, same
 * indexes, same quirks); the contract test suite runs both.
 *
 * Keys, all under one prefix (default `amphi:`), records as JSON:
 *   <p>meetings                     HASH  MeetingId → meeting record
 *   <p>meeting-order                ZSET  MeetingId, scored by <p>sequence: listMeetings' order (first put)
 *   <p>request-tokens               HASH  ClientRequestToken → MeetingId
 *   <p>replicas:<PrimaryMeetingId>  ZSET  replica MeetingIds, in the order they were put
 *   <p>attendees:<MeetingId>        HASH  AttendeeId → attendee record
 *   <p>attendee-order:<MeetingId>   ZSET  AttendeeId, in the order they were put (listAllAttendees, deleteMeeting)
 *   <p>external-user-ids:<MeetingId> HASH ExternalUserId → AttendeeId
 *   <p>join-tokens                  HASH  JoinToken → ["MeetingId","AttendeeId"] (the record is stored once)
 *   <p>sequence                     STRING counter for the ordered sets' scores
 *   <p>lock:<key>                   STRING the holder's random token, with a TTL (redis-lock.ts)
 * The id always ends a key name, so no id can make one key look like another. Every write that
 * touches several keys is one Lua script (redis-scripts.ts), atomic for every node. Scripts
 * derive some key names from records, so the store needs one Redis server (or a primary with
 * replicas), not Redis Cluster.
 */
import type { Redis, RedisOptions } from 'ioredis';
import type { AttendeeRecord, MeetingRecord } from '../meetings/model.ts';
import { StoreUnavailableError, type AttendeePage, type MeetingStore } from '../meetings/meeting-store.ts';
import { connectRedis } from './redis-connection.ts';
import { LockLostError, LockTimeoutError, LockUnavailableError, RedisLock } from './redis-lock.ts';
import {
  DELETE_ATTENDEE,
  DELETE_MEETING,
  FIND_BY_JOIN_TOKEN,
  LOOK_UP,
  MALFORMED_REPLY,
  ORDERED_VALUES,
  PUT_ATTENDEES,
  PUT_MEETING,
  type LuaScript,
} from './redis-scripts.ts';

export { LockLostError, LockTimeoutError, LockUnavailableError } from './redis-lock.ts';

export interface RedisStoreOptions {
  /** Prefix of every key the store uses; default `amphi:`. */
  keyPrefix?: string;
  /** A lock outlives a dead holder by at most this; default 5 s. */
  lockTtlMs?: number;
  /** How long withLock waits for a held key; default 30 s. */
  lockWaitMs?: number;
  /** Passed to ioredis (timeouts, retries, TLS). */
  redis?: RedisOptions;
}

/** Redis holds a value the store cannot read as the record it expects. */
export class MalformedRecordError extends Error {
  override name = 'MalformedRecordError';
}

const MEETING_MEMBERS = ['MeetingId', 'ClientRequestToken'] as const;
const ATTENDEE_MEMBERS = ['MeetingId', 'AttendeeId', 'ExternalUserId', 'JoinToken'] as const;

export class RedisMeetingStore implements MeetingStore {
  private readonly lock: RedisLock;
  private closed = false;

  private constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    options: RedisStoreOptions,
  ) {
    this.lock = new RedisLock(redis, `${prefix}lock:`, {
      ttlMs: options.lockTtlMs ?? 5_000,
      waitMs: options.lockWaitMs ?? 30_000,
    });
  }

  /** Connects to `url` (e.g. `redis://127.0.0.1:6379`); rejects if Redis cannot be reached. */
  static async open(url: string, options: RedisStoreOptions = {}): Promise<RedisMeetingStore> {
    const redis = await connectRedis(url, options.redis);
    return new RedisMeetingStore(redis, options.keyPrefix ?? 'amphi:', options);
  }

  withLock<T>(key: string, section: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error('store is closed'));
    // Only the lock's own failures mean unavailability; the section's errors (the service's rules) pass unchanged. A
    // lease lost while the section ran (Redis out of reach for longer than the lock's TTL) is one of them: the call
    // may or may not have taken effect, as with any 503, and the SDK's retry (idempotent where a token is given)
    // sees the state as it is.
    return this.lock.run(key, section).catch((error: unknown) => {
      if (error instanceof LockTimeoutError || error instanceof LockUnavailableError || error instanceof LockLostError) {
        throw new StoreUnavailableError(error.message, { cause: error });
      }
      throw error;
    });
  }

  // ---- meetings ----

  async getMeeting(meetingId: string) {
    const json = await this.command(() => this.redis.hget(this.key('meetings'), meetingId));
    return json === null ? undefined : this.meeting(json, `${this.key('meetings')}[${meetingId}]`);
  }

  async putMeeting(meeting: MeetingRecord): Promise<void> {
    const keys = [this.key('meetings'), this.key('meeting-order'), this.key('request-tokens'), this.key('sequence')];
    if (meeting.PrimaryMeetingId) keys.push(this.key('replicas:', meeting.PrimaryMeetingId));
    await this.run(PUT_MEETING, keys, [meeting.MeetingId, JSON.stringify(meeting), meeting.ClientRequestToken]);
  }

  async deleteMeeting(meetingId: string): Promise<AttendeeRecord[]> {
    const keys = [
      this.key('meetings'),
      this.key('meeting-order'),
      this.key('request-tokens'),
      this.key('attendees:', meetingId),
      this.key('attendee-order:', meetingId),
      this.key('external-user-ids:', meetingId),
      this.key('join-tokens'),
    ];
    const removed = await this.run(DELETE_MEETING, keys, [meetingId, this.prefix]);
    return this.attendees(removed, this.key('attendees:', meetingId));
  }

  async listMeetings(): Promise<MeetingRecord[]> {
    const values = await this.run(ORDERED_VALUES, [this.key('meeting-order'), this.key('meetings')], []);
    return strings(values).map((json) => this.meeting(json, this.key('meetings')));
  }

  countMeetings(): Promise<number> {
    return this.command(() => this.redis.hlen(this.key('meetings')));
  }

  async findMeetingByRequestToken(clientRequestToken: string) {
    const json = await this.run(LOOK_UP, [this.key('request-tokens'), this.key('meetings')], [clientRequestToken]);
    return typeof json === 'string' ? this.meeting(json, `${this.key('meetings')} (ClientRequestToken ${clientRequestToken})`) : undefined;
  }

  listReplicaIds(primaryMeetingId: string): Promise<string[]> {
    return this.command(() => this.redis.zrange(this.key('replicas:', primaryMeetingId), 0, -1));
  }

  // ---- attendees ----

  async getAttendee(meetingId: string, attendeeId: string) {
    const hash = this.key('attendees:', meetingId);
    const json = await this.command(() => this.redis.hget(hash, attendeeId));
    return json === null ? undefined : this.attendee(json, `${hash}[${attendeeId}]`);
  }

  putAttendee(attendee: AttendeeRecord): Promise<void> {
    return this.putAttendees([attendee]);
  }

  async putAttendees(attendees: AttendeeRecord[]): Promise<void> {
    if (attendees.length === 0) return;
    const args: string[] = [this.prefix];
    for (const attendee of attendees) {
      args.push(attendee.MeetingId, attendee.AttendeeId, attendee.ExternalUserId, attendee.JoinToken, JSON.stringify(attendee));
    }
    await this.run(PUT_ATTENDEES, [this.key('join-tokens'), this.key('sequence')], args);
  }

  async deleteAttendee(meetingId: string, attendeeId: string) {
    const hash = this.key('attendees:', meetingId);
    const keys = [hash, this.key('attendee-order:', meetingId), this.key('external-user-ids:', meetingId), this.key('join-tokens')];
    const json = await this.run(DELETE_ATTENDEE, keys, [attendeeId]);
    return typeof json === 'string' ? this.attendee(json, `${hash}[${attendeeId}]`) : undefined;
  }

  countAttendees(meetingId: string): Promise<number> {
    return this.command(() => this.redis.hlen(this.key('attendees:', meetingId)));
  }

  async listAttendees(meetingId: string, limit: number, afterAttendeeId?: string): Promise<AttendeePage> {
    // At most a few hundred attendees a meeting: sorting here keeps the embedded store's exact order (UTF-16, not bytes).
    const sorted = (await this.listAllAttendees(meetingId)).sort((a, b) => (a.AttendeeId < b.AttendeeId ? -1 : 1));
    const start = afterAttendeeId === undefined ? 0 : sorted.findIndex((a) => a.AttendeeId > afterAttendeeId);
    if (start < 0) return { attendees: [] };
    const attendees = sorted.slice(start, start + limit);
    const more = start + limit < sorted.length;
    return more ? { attendees, lastAttendeeId: attendees[attendees.length - 1]!.AttendeeId } : { attendees };
  }

  async listAllAttendees(meetingId: string): Promise<AttendeeRecord[]> {
    const hash = this.key('attendees:', meetingId);
    return this.attendees(await this.run(ORDERED_VALUES, [this.key('attendee-order:', meetingId), hash], []), hash);
  }

  async findAttendeeByExternalUserId(meetingId: string, externalUserId: string) {
    const hash = this.key('attendees:', meetingId);
    const json = await this.run(LOOK_UP, [this.key('external-user-ids:', meetingId), hash], [externalUserId]);
    return typeof json === 'string' ? this.attendee(json, `${hash} (ExternalUserId ${externalUserId})`) : undefined;
  }

  async findAttendeeByJoinToken(joinToken: string) {
    const json = await this.run(FIND_BY_JOIN_TOKEN, [this.key('join-tokens')], [joinToken, this.prefix]);
    if (typeof json !== 'string') return undefined;
    const attendee = this.attendee(json, `${this.key('join-tokens')} (an attendee's JoinToken)`);
    // The index names a place; the record there must still carry this token.
    return attendee.JoinToken === joinToken ? attendee : undefined;
  }

  /** Disconnects; waiting lock callers reject. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.lock.close();
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }

  // ---- helpers ----

  private key(name: string, id = ''): string {
    return `${this.prefix}${name}${id}`;
  }

  private async run(script: LuaScript, keys: string[], args: string[]): Promise<unknown> {
    if (this.closed) throw new Error('store is closed');
    try {
      return await script.run(this.redis, keys, args);
    } catch (error) {
      if (error instanceof Error && error.message.startsWith(`${MALFORMED_REPLY} `)) {
        throw new MalformedRecordError(`Redis holds a malformed ${error.message.slice(MALFORMED_REPLY.length + 1)}`);
      }
      throw unavailableIfDisconnected(error);
    }
  }

  private async command<T>(call: () => Promise<T>): Promise<T> {
    if (this.closed) throw new Error('store is closed');
    try {
      return await call();
    } catch (error) {
      throw unavailableIfDisconnected(error);
    }
  }

  private meeting(json: string, where: string): MeetingRecord {
    return parseRecord(json, MEETING_MEMBERS, 'meeting', where) as unknown as MeetingRecord;
  }

  private attendee(json: string, where: string): AttendeeRecord {
    return parseRecord(json, ATTENDEE_MEMBERS, 'attendee', where) as unknown as AttendeeRecord;
  }

  private attendees(values: unknown, where: string): AttendeeRecord[] {
    return strings(values).map((json) => this.attendee(json, where));
  }
}

/** Redis's answers to a command are its own; anything else (no connection, a timeout, Redis loading) is unavailability. */
const TRANSIENT_REPLY = /^(LOADING|BUSY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN)\b/;
function unavailableIfDisconnected(error: unknown): unknown {
  if (!(error instanceof Error) || error instanceof MalformedRecordError || error instanceof StoreUnavailableError) return error;
  if (error.name === 'ReplyError' && !TRANSIENT_REPLY.test(error.message)) return error;
  return new StoreUnavailableError(`Redis is unavailable: ${error.message}`, { cause: error });
}

function parseRecord(json: string, members: readonly string[], kind: string, where: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new MalformedRecordError(`Redis holds a malformed ${kind} record at ${where}: not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new MalformedRecordError(`Redis holds a malformed ${kind} record at ${where}: not a JSON object`);
  }
  const record = value as Record<string, unknown>;
  const missing = members.filter((member) => typeof record[member] !== 'string');
  if (missing.length > 0) {
    throw new MalformedRecordError(`Redis holds a malformed ${kind} record at ${where}: no string ${missing.join(', ')}`);
  }
  return record;
}

/** A script's array reply of strings (nil entries cannot occur: the scripts skip them). */
function strings(reply: unknown): string[] {
  if (!Array.isArray(reply)) return [];
  return reply.filter((item): item is string => typeof item === 'string');
}
