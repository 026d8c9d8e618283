import { createHash } from 'node:crypto';
import type { NodeDirectory } from '../cluster/node-directory.ts';
import type { MeetingStore } from './meeting-store.ts';
import type { Clock } from '../util/clock.ts';
import { checkCapabilities, defaultCapabilities } from './capabilities.ts';
import {
  attendeeNotFound,
  badRequest,
  conflict,
  limitExceeded,
  meetingNotFound,
  resourceNotFound,
  ServiceError,
  tooManyTags,
  unprocessable,
} from './errors.ts';
import { MeetingActivity } from './activity.ts';
import type { MeetingEndReason, MeetingEventBus } from './events.ts';
import type { AttendeeCapabilities, AttendeeRecord, MeetingRecord, Tag } from './model.ts';
import { isMediaRegion } from './regions.ts';
import type { RevocationReason, TokenRevocations } from './revocations.ts';
import {
  batchCreateAttendeeRequest,
  batchUpdateCapabilitiesExceptRequest,
  createAttendeeRequest,
  createMeetingRequest,
  createMeetingWithAttendeesRequest,
  GUID_PATTERN,
  parseInput,
  startTranscriptionRequest,
  tagResourceRequest,
  untagResourceRequest,
  updateCapabilitiesRequest,
  type CreateMeetingInput,
} from './schemas.ts';
import { newId, newJoinToken } from './tokens.ts';

export interface MeetingRules {
  accountId: string;
  maxReplicasPerPrimary: number;
  /** Active meetings the account may hold at once (the service's default quota is 250). */
  maxActiveMeetings: number;
}

export const MAX_ATTENDEES = 250;
export const MAX_ATTENDEES_HIGH_DEFINITION = 25;
export const MAX_TAGS = 50;
const DEFAULT_PAGE_SIZE = 100;

/** Lock keys: creating or ending meetings (quota, replicas), and one meeting's attendees and tags. */
const MEETINGS_LOCK = 'meetings';
const meetingLock = (meetingId: string) => `meeting:${meetingId}`;

/**
 * The state a service shares with the other nodes' services (local implementations in one
 * process; networked ones when several nodes run), and this node's view of time and of the media nodes.
 */
export interface MeetingServiceParts {
  store: MeetingStore;
  events: MeetingEventBus;
  revocations: TokenRevocations;
  clock: Clock;
  /** Where new meetings' media sessions go, and which node this process is. */
  nodes: NodeDirectory;
  /** Base URL clients reach this node at (known once its port is bound): MediaPlacement of its own meetings. */
  localPublicUrl: () => string;
  /** Where this node reports what its calls did (meeting lifecycle events); a fresh one when not given. */
  activity?: MeetingActivity;
}

interface AttendeeBatch {
  meeting: MeetingRecord;
  cap: number;
  count: number;
  byExternalUserId: Map<string, AttendeeRecord>;
  records: AttendeeRecord[];
}

export interface AttendeeError {
  ExternalUserId: string;
  ErrorCode: string;
  ErrorMessage: string;
}

/**
 * The Chime SDK Meetings rules, independent of HTTP: meetings, replicas, attendees, quotas,
 * idempotency, tags. Inputs arrive as parsed JSON and are validated here.
 */
export class MeetingService {
  /**
   * Read directly only inside the control plane and by conference.ts's promotion (until it uses
   * `attendeeForJoinToken`); everyone else reads through the service.
   */
  private readonly store: MeetingStore;
  /** Where the service announces ended meetings, deleted attendees and changed capabilities. */
  readonly events: MeetingEventBus;
  /** What this node did to meetings and attendees, and (reported by the signaling layer) what connections did. */
  readonly activity: MeetingActivity;
  private readonly revocations: TokenRevocations;
  private readonly clock: Clock;
  private readonly nodes: NodeDirectory;
  private readonly localPublicUrl: () => string;
  private readonly requestsInFlight = new Set<string>();

  constructor(
    parts: MeetingServiceParts,
    readonly rules: MeetingRules,
  ) {
    this.store = parts.store;
    this.events = parts.events;
    this.activity = parts.activity ?? new MeetingActivity();
    this.revocations = parts.revocations;
    this.clock = parts.clock;
    this.nodes = parts.nodes;
    this.localPublicUrl = parts.localPublicUrl;
  }

  // ---- meetings ----

  async createMeeting(body: unknown) {
    const input = parseInput(createMeetingRequest, body);
    const meeting = await this.createMeetingRecord(input);
    return { Meeting: this.renderMeeting(meeting) };
  }

  async createMeetingWithAttendees(body: unknown) {
    const { Attendees, ...meetingInput } = parseInput(createMeetingWithAttendeesRequest, body);
    const meeting = await this.createMeetingRecord(meetingInput);
    const { attendees, errors } = await this.createAttendees(meeting.MeetingId, Attendees);
    return { Meeting: this.renderMeeting(meeting), Attendees: attendees, Errors: errors };
  }

  private async createMeetingRecord(input: CreateMeetingInput): Promise<MeetingRecord> {
    const token = input.ClientRequestToken;
    if (this.requestsInFlight.has(token)) {
      throw conflict(`A request with ClientRequestToken ${token} is already in progress`);
    }
    this.requestsInFlight.add(token);
    try {
      return await this.store.withLock(MEETINGS_LOCK, () => this.insertMeeting(input));
    } finally {
      this.requestsInFlight.delete(token);
    }
  }

  private async insertMeeting(input: CreateMeetingInput): Promise<MeetingRecord> {
    const { ClientRequestToken: token, Tags: tags = [], ...rest } = input;
    const fingerprint = fingerprintOf(rest);
    const previous = await this.store.findMeetingByRequestToken(token);
    if (previous) {
      // A retry of the same request gets the meeting it created; another request may not reuse the token.
      if (previous.RequestFingerprint !== fingerprint) {
        throw conflict(`ClientRequestToken ${token} was already used for a different CreateMeeting request`);
      }
      return previous;
    }
    if (!isMediaRegion(input.MediaRegion)) {
      throw badRequest(`MediaRegion ${input.MediaRegion} is not a valid media region`);
    }
    this.attendeeCapOf(input.MeetingFeatures); // rejects an impossible MaxCount early
    if (input.PrimaryMeetingId !== undefined) await this.checkReplicaQuota(input.PrimaryMeetingId);
    if ((await this.store.countMeetings()) >= this.rules.maxActiveMeetings) {
      throw limitExceeded(`The account already has the maximum of ${this.rules.maxActiveMeetings} active meetings`);
    }
    checkTagSet(tags);
    const meetingId = newId();
    const node = await this.nodes.placeMeeting(input.MediaRegion);
    const meeting: MeetingRecord = {
      MeetingId: meetingId,
      ...rest,
      TenantIds: input.TenantIds ?? [],
      ClientRequestToken: token,
      RequestFingerprint: fingerprint,
      MediaNodeId: node.id,
      MediaNodeUrl: node.publicUrl,
      Tags: dedupeTags(tags),
      CreatedAt: this.clock.now(),
    };
    await this.store.putMeeting(meeting);
    this.activity.emit('meetingStarted', meeting);
    return meeting;
  }

  private async checkReplicaQuota(primaryMeetingId: string): Promise<void> {
    const primary = GUID_PATTERN.test(primaryMeetingId)
      ? await this.store.getMeeting(primaryMeetingId.toLowerCase())
      : undefined;
    if (!primary) throw badRequest(`Primary meeting ${primaryMeetingId} not found`);
    if (primary.PrimaryMeetingId) {
      throw badRequest(`Meeting ${primaryMeetingId} is a replica meeting and cannot be the primary of another replica`);
    }
    const replicas = await this.store.listReplicaIds(primary.MeetingId);
    if (replicas.length >= this.rules.maxReplicasPerPrimary) {
      throw limitExceeded(
        `Primary meeting ${primaryMeetingId} already has the maximum of ${this.rules.maxReplicasPerPrimary} replica meetings`,
      );
    }
  }

  async getMeeting(meetingId: string) {
    return { Meeting: this.renderMeeting(await this.requireMeeting(meetingId)) };
  }

  async deleteMeeting(meetingId: string): Promise<void> {
    const meeting = await this.requireMeeting(meetingId);
    await this.endMeeting(meeting.MeetingId, 'deleted');
  }

  /** Ends a meeting and, for a primary, its replicas first. Returns false if it was already gone. */
  async endMeeting(meetingId: string, reason: MeetingEndReason): Promise<boolean> {
    return this.store.withLock(MEETINGS_LOCK, async () => {
      const meeting = await this.store.getMeeting(meetingId);
      if (!meeting) return false;
      for (const replicaId of await this.store.listReplicaIds(meetingId)) {
        await this.removeMeeting(replicaId, 'primaryDeleted');
      }
      await this.removeMeeting(meetingId, reason);
      return true;
    });
  }

  private async removeMeeting(meetingId: string, reason: MeetingEndReason): Promise<void> {
    await this.store.withLock(meetingLock(meetingId), async () => {
      const meeting = await this.store.getMeeting(meetingId);
      if (!meeting) return;
      const attendees = await this.store.deleteMeeting(meetingId);
      // Their clients' retries are told the meeting ended, rather than that their tokens are unknown.
      await this.revocations.revoke(attendees.map((attendee) => attendee.JoinToken), 'meetingEnded');
      // Reported before its consequences (the sessions it ends) are.
      this.activity.emit('meetingEnded', meeting);
      this.events.publish('meetingEnded', meeting, reason);
    });
  }

  // ---- attendees ----

  async createAttendee(meetingId: string, body: unknown) {
    const input = parseInput(createAttendeeRequest, body);
    const meeting = await this.requireMeeting(meetingId);
    const attendee = await this.store.withLock(meetingLock(meeting.MeetingId), async () => {
      const current = await this.requireMeeting(meeting.MeetingId);
      const batch = await this.attendeeBatch(current);
      const created = await this.planAttendee(batch, input.ExternalUserId, input.Capabilities);
      await this.store.putAttendees(batch.records);
      this.announceAdded(batch);
      return created;
    });
    return { Attendee: renderAttendee(attendee) };
  }

  async batchCreateAttendee(meetingId: string, body: unknown) {
    const { Attendees } = parseInput(batchCreateAttendeeRequest, body);
    const meeting = await this.requireMeeting(meetingId);
    const { attendees, errors } = await this.createAttendees(meeting.MeetingId, Attendees);
    return { Attendees: attendees, Errors: errors };
  }

  /** Creates each item on its own: a bad or refused item becomes an entry of Errors. */
  private async createAttendees(meetingId: string, items: unknown[]) {
    return this.store.withLock(meetingLock(meetingId), async () => {
      const meeting = await this.requireMeeting(meetingId);
      const batch = await this.attendeeBatch(meeting);
      const attendees: ReturnType<typeof renderAttendee>[] = [];
      const errors: AttendeeError[] = [];
      for (const [index, item] of items.entries()) {
        try {
          const input = parseInput(createAttendeeRequest, item, `Attendees.${index + 1}`);
          attendees.push(renderAttendee(await this.planAttendee(batch, input.ExternalUserId, input.Capabilities)));
        } catch (error) {
          if (!(error instanceof ServiceError)) throw error;
          const externalUserId = (item as { ExternalUserId?: unknown } | null)?.ExternalUserId;
          errors.push({
            ExternalUserId: typeof externalUserId === 'string' ? externalUserId : '',
            ErrorCode: error.code,
            ErrorMessage: error.message,
          });
        }
      }
      // One journal write for the whole batch.
      await this.store.putAttendees(batch.records);
      this.announceAdded(batch);
      return { attendees, errors };
    });
  }

  /** Caller holds the meeting's lock: attendees are planned against one count, then written together. */
  private async attendeeBatch(meeting: MeetingRecord): Promise<AttendeeBatch> {
    return {
      meeting,
      cap: this.attendeeCapOf(meeting.MeetingFeatures),
      count: await this.store.countAttendees(meeting.MeetingId),
      byExternalUserId: new Map(),
      records: [],
    };
  }

  private async planAttendee(batch: AttendeeBatch, externalUserId: string, capabilities: AttendeeCapabilities | undefined): Promise<AttendeeRecord> {
    const { meeting } = batch;
    // ExternalUserId is the attendee's idempotency token within its meeting.
    const existing = batch.byExternalUserId.get(externalUserId) ?? (await this.store.findAttendeeByExternalUserId(meeting.MeetingId, externalUserId));
    if (existing) return existing;
    const chosen = capabilities ?? defaultCapabilities(meeting.MeetingFeatures);
    checkCapabilities(chosen, meeting.MeetingFeatures);
    if (batch.count >= batch.cap) {
      throw limitExceeded(`Meeting ${meeting.MeetingId} already has the maximum of ${batch.cap} attendees`);
    }
    const attendeeId = newId();
    const attendee: AttendeeRecord = {
      MeetingId: meeting.MeetingId,
      AttendeeId: attendeeId,
      ExternalUserId: externalUserId,
      JoinToken: newJoinToken(attendeeId),
      Capabilities: { Audio: chosen.Audio, Video: chosen.Video, Content: chosen.Content },
      CreatedAt: this.clock.now(),
    };
    batch.count++;
    batch.byExternalUserId.set(externalUserId, attendee);
    batch.records.push(attendee);
    return attendee;
  }

  /** The batch's new attendees (not the ones an ExternalUserId already named), once stored. */
  private announceAdded(batch: AttendeeBatch): void {
    for (const attendee of batch.records) this.activity.emit('attendeeAdded', batch.meeting, attendee);
  }

  /** MaxCount, 250 by default, and 25 at most for high-definition meetings (FHD video or UHD content). */
  attendeeCapOf(features: MeetingRecord['MeetingFeatures']): number {
    const highDefinition = features?.Video?.MaxResolution === 'FHD' || features?.Content?.MaxResolution === 'UHD';
    const requested = features?.Attendee?.MaxCount;
    if (!highDefinition) return requested ?? MAX_ATTENDEES;
    if (requested !== undefined && requested > MAX_ATTENDEES_HIGH_DEFINITION) {
      throw badRequest(
        `MeetingFeatures.Attendee.MaxCount must be at most ${MAX_ATTENDEES_HIGH_DEFINITION} when Video.MaxResolution is FHD or Content.MaxResolution is UHD`,
      );
    }
    return requested ?? MAX_ATTENDEES_HIGH_DEFINITION;
  }

  async getAttendee(meetingId: string, attendeeId: string) {
    return { Attendee: renderAttendee(await this.requireAttendee(meetingId, attendeeId)) };
  }

  async listAttendees(meetingId: string, query: { maxResults?: string; nextToken?: string }) {
    const meeting = await this.requireMeeting(meetingId);
    let limit = DEFAULT_PAGE_SIZE;
    if (query.maxResults !== undefined) {
      limit = Number(query.maxResults);
      if (!/^\d+$/.test(query.maxResults) || limit < 1 || limit > 100) {
        throw badRequest(`1 validation error detected: Value '${query.maxResults}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 100`);
      }
    }
    const after = query.nextToken ? decodeNextToken(query.nextToken, meeting.MeetingId) : undefined;
    const page = await this.store.listAttendees(meeting.MeetingId, limit, after);
    return {
      Attendees: page.attendees.map(renderAttendee),
      ...(page.lastAttendeeId ? { NextToken: encodeNextToken(meeting.MeetingId, page.lastAttendeeId) } : {}),
    };
  }

  async deleteAttendee(meetingId: string, attendeeId: string): Promise<void> {
    const meeting = await this.requireMeeting(meetingId);
    const attendee = await this.requireAttendee(meeting.MeetingId, attendeeId);
    const removed = await this.store.withLock(meetingLock(attendee.MeetingId), async () => {
      const removed = await this.store.deleteAttendee(attendee.MeetingId, attendee.AttendeeId);
      if (removed) await this.revocations.revoke([removed.JoinToken], 'attendeeRemoved');
      return removed;
    });
    if (!removed) return;
    // Reported before its consequences (the attendee's sessions ending) are.
    this.activity.emit('attendeeDeleted', meeting, removed);
    this.events.publish('attendeeDeleted', removed);
  }

  async updateAttendeeCapabilities(meetingId: string, attendeeId: string, body: unknown) {
    const { Capabilities } = parseInput(updateCapabilitiesRequest, body);
    const meeting = await this.requireMeeting(meetingId);
    const updated = await this.store.withLock(meetingLock(meeting.MeetingId), async () => {
      const attendee = await this.requireAttendee(meeting.MeetingId, attendeeId);
      checkCapabilities(Capabilities, meeting.MeetingFeatures);
      const next = { ...attendee, Capabilities: { ...Capabilities } };
      await this.store.putAttendee(next);
      return next;
    });
    this.events.publish('attendeeCapabilitiesChanged', updated);
    return { Attendee: renderAttendee(updated) };
  }

  async batchUpdateAttendeeCapabilitiesExcept(meetingId: string, body: unknown): Promise<void> {
    const { ExcludedAttendeeIds, Capabilities } = parseInput(batchUpdateCapabilitiesExceptRequest, body);
    const meeting = await this.requireMeeting(meetingId);
    checkCapabilities(Capabilities, meeting.MeetingFeatures);
    const excluded = new Set(ExcludedAttendeeIds.map((entry) => entry.AttendeeId.toLowerCase()));
    const updated = await this.store.withLock(meetingLock(meeting.MeetingId), async () => {
      const changed: AttendeeRecord[] = [];
      for (const attendee of await this.store.listAllAttendees(meeting.MeetingId)) {
        if (excluded.has(attendee.AttendeeId)) continue;
        const next = { ...attendee, Capabilities: { ...Capabilities } };
        await this.store.putAttendee(next);
        changed.push(next);
      }
      return changed;
    });
    for (const attendee of updated) this.events.publish('attendeeCapabilitiesChanged', attendee);
  }

  // ---- transcription ----

  async startMeetingTranscription(meetingId: string, body: unknown): Promise<never> {
    parseInput(startTranscriptionRequest, body);
    await this.requireMeeting(meetingId);
    throw unprocessable('Amphi has no transcription engine: StartMeetingTranscription is not supported by this server');
  }

  async stopMeetingTranscription(meetingId: string): Promise<never> {
    await this.requireMeeting(meetingId);
    throw unprocessable(`Meeting ${meetingId} has no transcription running: Amphi has no transcription engine`);
  }

  // ---- tags ----

  meetingArn(meeting: MeetingRecord): string {
    return `arn:aws:chime:${meeting.MediaRegion}:${this.rules.accountId}:meeting/${meeting.MeetingId}`;
  }

  async tagResource(body: unknown): Promise<void> {
    const { ResourceARN, Tags } = parseInput(tagResourceRequest, body);
    await this.updateTags(ResourceARN, (current) => {
      const merged = dedupeTags([...current, ...Tags]);
      if (merged.length > MAX_TAGS) {
        throw tooManyTags(`Resource ${ResourceARN} would have ${merged.length} tags; the maximum is ${MAX_TAGS}`, ResourceARN);
      }
      return merged;
    });
  }

  async untagResource(body: unknown): Promise<void> {
    const { ResourceARN, TagKeys } = parseInput(untagResourceRequest, body);
    const removed = new Set(TagKeys);
    await this.updateTags(ResourceARN, (current) => current.filter((tag) => !removed.has(tag.Key)));
  }

  async listTagsForResource(arn: string | undefined) {
    if (!arn) throw badRequest(`1 validation error detected: Value at 'resourceARN' failed to satisfy constraint: Member must not be null`);
    const meeting = await this.meetingOfArn(arn);
    return { Tags: meeting.Tags.map((tag) => ({ Key: tag.Key, Value: tag.Value })) };
  }

  private async updateTags(arn: string, change: (current: Tag[]) => Tag[]): Promise<void> {
    const meeting = await this.meetingOfArn(arn);
    await this.store.withLock(meetingLock(meeting.MeetingId), async () => {
      const current = await this.store.getMeeting(meeting.MeetingId);
      if (!current) throw resourceNotFound(`Resource ${arn} not found`, arn);
      await this.store.putMeeting({ ...current, Tags: change(current.Tags) });
    });
  }

  private async meetingOfArn(arn: string): Promise<MeetingRecord> {
    const match = /^arn:aws:chime:([a-z0-9-]+):(\d{12}):meeting\/([^/]+)$/.exec(arn);
    const meetingId = match?.[3]?.toLowerCase();
    const meeting = meetingId && GUID_PATTERN.test(meetingId) ? await this.store.getMeeting(meetingId) : undefined;
    if (!match || !meeting || match[2] !== this.rules.accountId || match[1] !== meeting.MediaRegion) {
      throw resourceNotFound(`Resource ${arn} not found`, arn);
    }
    return meeting;
  }

  // ---- lookups for the media plane and the lifecycle rules ----

  /**
   * The meeting with a live media node: as it is while the node it names is alive (or is this one); else re-homed,
   * on this node (`'here'`: a client of it reached this node through its region's front) or on the node placement
   * picks for its region (`'placed'`). The move is a compare-and-set under the meeting's lock: only a record that
   * still names the dead node is changed, so of several nodes re-homing one meeting at once exactly one wins and
   * the others get the winner's record. Undefined: the meeting is gone.
   */
  async liveHome(meeting: MeetingRecord, to: 'here' | 'placed'): Promise<MeetingRecord | undefined> {
    if (this.nodes.isLocal(meeting.MediaNodeId) || (await this.nodes.node(meeting.MediaNodeId))) return meeting;
    const target = to === 'here' ? await this.nodes.node(this.nodes.localNodeId) : await this.nodes.placeMeeting(meeting.MediaRegion);
    if (!target) throw new Error('this node does not describe itself');
    let moved: MeetingRecord | undefined;
    const current = await this.store.withLock(meetingLock(meeting.MeetingId), async () => {
      const current = await this.store.getMeeting(meeting.MeetingId);
      if (!current || current.MediaNodeId !== meeting.MediaNodeId) return current;
      // MediaNodeUrl stays: the URL clients hold (the region's front, shared by its nodes) must go on working.
      moved = { ...current, MediaNodeId: target.id };
      await this.store.putMeeting(moved);
      return moved;
    });
    // A node that was only cut off, not dead, must stop hosting it (its clients reconnect to the new host).
    if (moved) this.events.publish('meetingMoved', moved, meeting.MediaNodeId);
    return current;
  }

  /** The meeting, or undefined for an unknown (or malformed) id. */
  async meeting(meetingId: string): Promise<MeetingRecord | undefined> {
    return this.store.getMeeting(meetingId.toLowerCase());
  }

  async allMeetings(): Promise<MeetingRecord[]> {
    return this.store.listMeetings();
  }

  /** The attendee a JoinToken (without `#content`) belongs to. */
  async attendeeForJoinToken(joinToken: string): Promise<AttendeeRecord | undefined> {
    return this.store.findAttendeeByJoinToken(joinToken);
  }

  /** Why a JoinToken no longer works, while that is remembered (see TokenRevocations). */
  async revocationOf(joinToken: string): Promise<RevocationReason | undefined> {
    return this.revocations.reasonFor(joinToken);
  }

  // ---- lookups and rendering ----

  async requireMeeting(meetingId: string): Promise<MeetingRecord> {
    checkGuid(meetingId, 'meetingId');
    const meeting = await this.store.getMeeting(meetingId.toLowerCase());
    if (!meeting) throw meetingNotFound(meetingId);
    return meeting;
  }

  async requireAttendee(meetingId: string, attendeeId: string): Promise<AttendeeRecord> {
    const meeting = await this.requireMeeting(meetingId);
    checkGuid(attendeeId, 'attendeeId');
    const attendee = await this.store.getAttendee(meeting.MeetingId, attendeeId.toLowerCase());
    if (!attendee) throw attendeeNotFound(attendeeId);
    return attendee;
  }

  renderMeeting(meeting: MeetingRecord) {
    // The URL the meeting was placed at, for its whole life: it stays renderable when its node is gone, and the same
    // after a re-homing, so the URL its clients hold stays the one they are given (records older than the field, and
    // the embedded node's after a restart: this node's URL).
    const nodeUrl = meeting.MediaNodeUrl ?? this.localPublicUrl();
    const http = nodeUrl.replace(/\/+$/, '');
    const ws = http.replace(/^http/, 'ws');
    const host = new URL(http).host;
    const id = meeting.MeetingId;
    return {
      MeetingId: id,
      MeetingHostId: meeting.MeetingHostId ?? null,
      ExternalMeetingId: meeting.ExternalMeetingId ?? null,
      MediaRegion: meeting.MediaRegion,
      MediaPlacement: {
        AudioHostUrl: `${host}/audio/${id}`,
        AudioFallbackUrl: `${ws}/calls/${id}`,
        SignalingUrl: `${ws}/control/${id}`,
        TurnControlUrl: `${http}/v2/turn_sessions`,
        ScreenDataUrl: `${ws}/v2/screen/${id}`,
        ScreenViewingUrl: `${ws}/ws/connect?passcode=null&viewer_uuid=null&X-BitHub-Call-Id=${id}`,
        ScreenSharingUrl: `${ws}/v2/screen/${id}`,
        EventIngestionUrl: `${http}/v1/client-events`,
      },
      ...(meeting.MeetingFeatures ? { MeetingFeatures: meeting.MeetingFeatures } : {}),
      PrimaryMeetingId: meeting.PrimaryMeetingId ?? null,
      TenantIds: meeting.TenantIds,
      MeetingArn: this.meetingArn(meeting),
    };
  }
}

export function renderAttendee(attendee: AttendeeRecord) {
  return {
    ExternalUserId: attendee.ExternalUserId,
    AttendeeId: attendee.AttendeeId,
    JoinToken: attendee.JoinToken,
    Capabilities: attendee.Capabilities,
  };
}

function checkGuid(value: string, member: string): void {
  if (!GUID_PATTERN.test(value)) {
    throw badRequest(
      `1 validation error detected: Value '${value}' at '${member}' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}`,
    );
  }
}

function checkTagSet(tags: Tag[]): void {
  if (dedupeTags(tags).length > MAX_TAGS) throw badRequest(`A meeting can have at most ${MAX_TAGS} tags`);
}

/** Later values win for a repeated key, as TagResource overwrites existing keys. */
function dedupeTags(tags: Tag[]): Tag[] {
  const byKey = new Map<string, string>();
  for (const tag of tags) byKey.set(tag.Key, tag.Value);
  return [...byKey].map(([Key, Value]) => ({ Key, Value }));
}

function fingerprintOf(value: unknown): string {
  return createHash('sha256').update(stableJson(value)).digest('base64url');
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function encodeNextToken(meetingId: string, lastAttendeeId: string): string {
  return Buffer.from(`${meetingId}/${lastAttendeeId}`).toString('base64url');
}

function decodeNextToken(token: string, meetingId: string): string {
  const [forMeeting, after] = Buffer.from(token, 'base64url').toString().split('/');
  if (forMeeting !== meetingId || !after || !GUID_PATTERN.test(after)) {
    throw badRequest(`Invalid NextToken: ${token.slice(0, 100)}`);
  }
  return after;
}
