import type { ISdkStreamDescriptor } from 'amazon-chime-sdk-js/build/signalingprotocol/SignalingProtocol.js';
import type { AttendeeRecord } from '../meetings/model.ts';
import { FrameType, SdkStreamMediaType, type OutgoingFrame } from './frames.ts';
import { MAX_VIDEO_SOURCES, streamRefs, type Publication, type StreamRef } from './publications.ts';

/**
 * Whom a participant is connected as: a signaling session of this node, or the stand-in of a viewer of a replica on
 * another node. Compared by identity.
 */
export interface SessionRef {
  /** The attendee as the connection's meeting knows it (`#content` appended for a content share). */
  readonly attendeeId: string;
  readonly content: boolean;
}

/**
 * Someone present in a primary meeting: a direct session, or a replica attendee promoted into it as one of the
 * primary's attendees. A promotion is this one object: the primary's roster holds it by attendee id, the replica
 * it came through holds it by session.
 */
export interface Participant<Via = unknown> {
  readonly audioStreamId: number;
  readonly attendeeId: string;
  readonly externalUserId: string;
  muted: boolean;
  /** Whose capabilities apply: the session's own attendee, or the primary attendee it was promoted as. */
  attendee: AttendeeRecord;
  readonly session: SessionRef;
  publication?: Publication;
  /** Set for a promoted replica attendee: the replica it sits in. */
  readonly via?: Via;
  /** Its connection was replaced by a new one of the same attendee, which takes over once present (or after a while). */
  successorWait?: NodeJS.Timeout;
}

export type PresenceInfo = { audioStreamId: number; attendeeId: string; externalUserId: string; muted: boolean };

export function presenceInfo(participant: Participant<unknown>): PresenceInfo {
  return { audioStreamId: participant.audioStreamId, attendeeId: participant.attendeeId, externalUserId: participant.externalUserId, muted: participant.muted };
}

/** The INDEX a receiver gets: the sources it may subscribe to, whether it may publish, who is present. */
export interface IndexRequest {
  /** The receiver's own participant, whose sources are left out. */
  self: Participant<unknown> | undefined;
  mayPublish: boolean;
  /** Counts the receiver ahead, until its first SUBSCRIBE makes it present. */
  countReceiver: boolean;
}

/** A primary meeting's participants by attendee id, with the facts derived from them; `Via` is a replica's type. */
export class Roster<Via> {
  private readonly byAttendee = new Map<string, Participant<Via>>();
  private nextAudioStreamId = 1;

  get size(): number {
    return this.byAttendee.size;
  }

  get(attendeeId: string): Participant<Via> | undefined {
    return this.byAttendee.get(attendeeId);
  }

  all(): IterableIterator<Participant<Via>> {
    return this.byAttendee.values();
  }

  /** Adds a participant; returns the one of the same attendee it replaces, if any. */
  add(session: SessionRef, attendee: AttendeeRecord, muted: boolean, via?: Via): { participant: Participant<Via>; replaced: Participant<Via> | undefined } {
    const participant: Participant<Via> = {
      audioStreamId: this.nextAudioStreamId++,
      attendeeId: via ? attendee.AttendeeId : session.attendeeId,
      externalUserId: attendee.ExternalUserId,
      muted,
      attendee,
      session,
      ...(via ? { via } : {}),
    };
    const replaced = this.byAttendee.get(participant.attendeeId);
    this.byAttendee.set(participant.attendeeId, participant);
    return { participant, replaced };
  }

  /** Removes the participant if it is still the current one of its attendee. */
  remove(participant: Participant<Via>): boolean {
    if (this.byAttendee.get(participant.attendeeId) !== participant) return false;
    this.byAttendee.delete(participant.attendeeId);
    return true;
  }

  /** Seats taken by attendees (content shares don't count). */
  seatsTaken(): number {
    let count = 0;
    for (const participant of this.byAttendee.values()) if (!participant.session.content) count++;
    return count;
  }

  promotedCount(): number {
    let count = 0;
    for (const participant of this.byAttendee.values()) if (participant.via) count++;
    return count;
  }

  publishingCount(): number {
    let count = 0;
    for (const participant of this.byAttendee.values()) if (participant.publication) count++;
    return count;
  }

  /** The published streams, except those of participants promoted through `via` (if given). */
  streams(exceptVia?: Via): StreamRef[] {
    const streams: StreamRef[] = [];
    for (const participant of this.byAttendee.values()) if (!exceptVia || participant.via !== exceptVia) streams.push(...streamRefs(participant.publication));
    return streams;
  }

  /** Streams of participants promoted through `via`. */
  streamsVia(via: Via): StreamRef[] {
    const streams: StreamRef[] = [];
    for (const participant of this.byAttendee.values()) if (participant.via === via) streams.push(...streamRefs(participant.publication));
    return streams;
  }

  /** The group (source) of a published stream. */
  groupOf(streamId: number): number | undefined {
    return groupIn(this.byAttendee.values(), streamId);
  }

  presence(): PresenceInfo[] {
    return [...this.byAttendee.values()].map(presenceInfo);
  }

  index(request: IndexRequest, bitrateOf: (streamId: number) => number): OutgoingFrame {
    return indexFrame([...this.byAttendee.values()], request, bitrateOf);
  }

  /** Each published layer's received bitrate, for BITRATES. */
  bitrates(bitrateOf: (streamId: number) => number): { sourceStreamId: number; avgBitrateBps: number }[] {
    return publishedBitrates(this.byAttendee.values(), bitrateOf);
  }
}

/** What the derived facts below need of a participant (a roster's, or a copy of another node's). */
export interface PublishingParticipant {
  readonly attendeeId: string;
  readonly externalUserId: string;
  readonly publication?: Publication | undefined;
}

/** The group (source) of a published stream. */
export function groupIn(participants: Iterable<PublishingParticipant>, streamId: number): number | undefined {
  for (const participant of participants) {
    const layer = participant.publication?.layers.find((l) => l.streamId === streamId);
    if (layer) return layer.groupId;
  }
  return undefined;
}

/** Each published layer's received bitrate, for BITRATES. */
export function publishedBitrates(participants: Iterable<PublishingParticipant>, bitrateOf: (streamId: number) => number): { sourceStreamId: number; avgBitrateBps: number }[] {
  const bitrates = [];
  for (const participant of participants) {
    for (const layer of participant.publication?.layers ?? []) bitrates.push({ sourceStreamId: layer.streamId, avgBitrateBps: bitrateOf(layer.streamId) });
  }
  return bitrates;
}

/** The INDEX of a meeting with these participants; `request.self` is one of them (by identity) or none. */
export function indexFrame(
  participants: readonly PublishingParticipant[],
  { self, mayPublish, countReceiver }: { self: PublishingParticipant | undefined; mayPublish: boolean; countReceiver: boolean },
  bitrateOf: (streamId: number) => number,
): OutgoingFrame {
  const sources: ISdkStreamDescriptor[] = [];
  let publishing = 0;
  for (const participant of participants) {
    if (participant.publication) publishing++;
    if (participant === self || !participant.publication) continue;
    const simulcast = participant.publication.layers.length > 1;
    for (const layer of participant.publication.layers) {
      if (simulcast && layer.maxBitrateKbps === 0) continue; // a paused simulcast layer
      sources.push({
        streamId: layer.streamId,
        groupId: layer.groupId,
        attendeeId: participant.attendeeId,
        externalUserId: participant.externalUserId,
        mediaType: SdkStreamMediaType.VIDEO,
        trackLabel: layer.trackLabel,
        maxBitrateKbps: layer.maxBitrateKbps,
        avgBitrateBps: bitrateOf(layer.streamId),
        ...(layer.width ? { width: layer.width, height: layer.height } : {}),
        ...(layer.framerate ? { framerate: layer.framerate } : {}),
      });
    }
  }
  const atCapacity = !mayPublish || (!self?.publication && publishing >= MAX_VIDEO_SOURCES);
  return { type: FrameType.INDEX, index: { atCapacity, sources, numParticipants: participants.length + (countReceiver ? 1 : 0) } };
}
