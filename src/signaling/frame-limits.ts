import { FrameType, MAX_FRAME_BYTES } from './frames.ts';

// The size a frame of each type may have, from the largest one a legitimate client sends. The
// WebSocket's own limit (MAX_FRAME_BYTES) is for the SDP-bearing frame; every other type has a
// small one, so a client can't make the server decode megabytes of padding in frames that carry
// a few bytes of meaning.

/** JOIN, LEAVE, PING_PONG, AUDIO_CONTROL, PAUSE/RESUME (a stream id list: 2-3 bytes per attendee, 250 at most), PRIMARY_MEETING_JOIN (a JoinToken), MEETING_SESSION_TIMING: all under 2 KiB. */
export const SMALL_FRAME_BYTES = 16 * 1024;
/**
 * Frames whose size grows with the meeting or the payload: DATA_MESSAGE (the server takes up to
 * 20 messages of 2 KiB of data and a 36-character topic each, ~42 KiB; the SDK sends one), CLIENT_METRIC
 * (~30 metrics for each sent and received stream, ~15 KiB with 25 video tiles and simulcast) and
 * REMOTE_VIDEO_UPDATE (an attendee id, stream id and bitrate per tile; ~60 bytes each, 250 at most).
 */
export const LISTING_FRAME_BYTES = 64 * 1024;

const LIMITS = new Map<number, number>([
  // SUBSCRIBE carries the SDP offer: 6-30 kB usually, more from Chrome with many transceivers.
  [FrameType.SUBSCRIBE, MAX_FRAME_BYTES],
  [FrameType.DATA_MESSAGE, LISTING_FRAME_BYTES],
  [FrameType.CLIENT_METRIC, LISTING_FRAME_BYTES],
  [FrameType.REMOTE_VIDEO_UPDATE, LISTING_FRAME_BYTES],
]);

/** The largest a client's frame of `type` may be, in bytes on the wire (type byte included). */
export function maxFrameBytesFor(type: number): number {
  return LIMITS.get(type) ?? SMALL_FRAME_BYTES;
}
