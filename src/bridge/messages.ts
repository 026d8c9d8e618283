import { z } from 'zod';
import { CAPABILITIES } from '../meetings/model.ts';

/**
 * What crosses a bridge between a primary's node and a replica's node. Viewers of the replica are named by a number
 * the replica's node gives each promoted one; signaling frames travel encoded as the clients receive them (base64),
 * so the replica's node forwards exactly what the primary's clients get.
 */

const count = z.number().int().nonnegative();
const streamId = z.number().int().nonnegative().max(0xffffff);
const viewer = count;
const pipe = z.string().min(1).max(64);
const base64 = z.string().max(1_000_000);

const layer = z.object({
  streamId,
  groupId: count,
  trackLabel: z.string().max(256),
  maxBitrateKbps: count,
  width: count,
  height: count,
  framerate: count,
  layerIndex: count,
  layerCount: count,
});
const publication = z.object({ groupId: count, layers: z.array(layer).max(16) });
const streamRef = z.object({ streamId, groupId: count });
const presence = z.object({ audioStreamId: count, attendeeId: z.string().max(128), externalUserId: z.string().max(256), muted: z.boolean() });
const capability = z.enum(CAPABILITIES);
const capabilities = z.object({ Audio: capability, Video: capability, Content: capability });
/** `viewer` and `capabilities`: a viewer of this replica promoted into the primary, and what it may do there now. */
const participant = presence.extend({ publication: publication.optional(), viewer: viewer.optional(), capabilities: capabilities.optional() });
const bitrates = z.array(z.tuple([streamId, count])).max(10_000);
const key = z.object({ key: base64, salt: base64 });
const descriptor = z.object({
  streamId: count.optional(),
  groupId: count.optional(),
  trackLabel: z.string().max(256).optional(),
  attendeeId: z.string().max(128).optional(),
  externalUserId: z.string().max(256).optional(),
  maxBitrateKbps: count.optional(),
  avgBitrateBps: count.optional(),
  mediaType: count.optional(),
  width: count.optional(),
  height: count.optional(),
  framerate: count.optional(),
});

export type ParticipantState = z.infer<typeof participant>;
export type PublicationState = z.infer<typeof publication>;

/** From the replica's node to the primary's. */
export const toPrimary = z.discriminatedUnion('t', [
  /** Request: feed this replica; answered with `attached`. */
  z.object({ t: z.literal('attach') }),
  z.object({ t: z.literal('detach') }),
  /** Request: make the viewer a participant of the primary as the attendee whose JoinToken it gave. */
  z.object({ t: z.literal('promote'), viewer, viewerAttendeeId: z.string().max(200), joinToken: z.string().max(2048) }),
  z.object({ t: z.literal('endPromotion'), viewer, dropped: z.boolean() }),
  /** Request: the promoted viewer's video, allocated in the primary's stream ids. */
  z.object({ t: z.literal('allocateVideo'), viewer, descriptors: z.array(descriptor).max(16) }),
  z.object({ t: z.literal('publish'), viewer, publication: publication.optional() }),
  z.object({ t: z.literal('mute'), viewer, muted: z.boolean() }),
  /** Request: data messages of a promoted viewer (each an encoded SdkDataMessagePayload). */
  z.object({ t: z.literal('postData'), viewer, messages: z.array(base64).max(64) }),
  /** The replica's pipe end: its viewers' demand, or it closed (its room closed). */
  z.object({ t: z.literal('pipeDemand'), pipe, streamIds: z.array(streamId).max(10_000) }),
  z.object({ t: z.literal('pipeClosed'), pipe }),
]);
export type ToPrimary = z.infer<typeof toPrimary>;

/** From the primary's node to the replica's. */
export const toReplica = z.discriminatedUnion('t', [
  /** The primary's participants and bitrates, before any frame that depends on them. */
  z.object({ t: z.literal('state'), participants: z.array(participant).max(10_000), bitrates }),
  z.object({ t: z.literal('bitrates'), bitrates }),
  z.object({ t: z.literal('relay'), frame: base64, except: viewer.optional() }),
  z.object({ t: z.literal('refreshIndex') }),
  z.object({ t: z.literal('revoke'), viewer }),
  z.object({ t: z.literal('stopPublishing'), viewer }),
  z.object({ t: z.literal('primaryEnded'), removed: z.array(presence).max(10_000) }),
  /** Request: open the replica room's pipe end; answered with its id, port and address. */
  z.object({ t: z.literal('openPipe') }),
  /** Request: the primary end's address and the pipe's keys. */
  z.object({ t: z.literal('pipeConnect'), pipe, remote: z.object({ address: z.string().max(64), port: z.number().int().min(1).max(65535) }), keys: z.object({ send: key, receive: key }) }),
  z.object({ t: z.literal('pipeStreams'), pipe, streams: z.array(streamRef).max(10_000) }),
  z.object({ t: z.literal('pipeSend'), pipe, streamIds: z.array(streamId).max(10_000) }),
  z.object({ t: z.literal('pipePromote'), pipe, slot: count, attendeeId: z.string().max(200) }),
  z.object({ t: z.literal('pipeDemote'), pipe, attendeeId: z.string().max(200) }),
  /** Request: the pipe end's counters (null once closed). */
  z.object({ t: z.literal('pipeStats'), pipe }),
  z.object({ t: z.literal('pipeClose'), pipe }),
]);
export type ToReplica = z.infer<typeof toReplica>;

/** Answers, checked by the side that asked. */
export const attachedReply = z.object({
  ok: z.boolean(),
  participants: z.array(participant).max(10_000),
  bitrates,
  /** Data messages still alive (encoded payloads; each expires at its ingest time plus its lifetime). */
  data: z.array(base64).max(2048),
});
export const promoteReply = z.union([z.object({ participant: presence }), z.object({ refusal: z.object({ status: count, description: z.string().max(500) }) })]);
export const allocateReply = z.object({ publication: publication.optional() });
export const postDataReply = z.object({ refused: z.array(base64).max(64) });
export const openPipeReply = z.object({ pipe, port: z.number().int().min(1).max(65535), address: z.string().max(64) });
export const pipeStatsReply = z.object({ rtpIn: count, rtpOut: count, rtcpIn: count, rtcpOut: count, rejected: count }).nullable();
