import protocol from 'amazon-chime-sdk-js/build/signalingprotocol/SignalingProtocol.js';
import type { ISdkSignalFrame } from 'amazon-chime-sdk-js/build/signalingprotocol/SignalingProtocol.js';

/**
 * The Chime signaling wire format: one binary WebSocket message per frame, a type byte
 * (0x05, "RTC"; the client also accepts 0x02) followed by an SdkSignalFrame protobuf. The
 * encoder and decoder are the browser SDK's own generated protobufjs code.
 */
export const proto = protocol;
export const { SdkSignalFrame, SdkStreamServiceType, SdkStreamMediaType, SdkPingPongType, SdkServerSideNetworkAdaption } = protocol;
export const FrameType = SdkSignalFrame.Type;
export type SignalFrame = ISdkSignalFrame;
/** A frame to send; the timestamp is filled in. */
export type OutgoingFrame = Omit<ISdkSignalFrame, 'timestampMs'>;

const FRAME_TYPE_RTC = 0x05;
const FRAME_TYPE_RTC_LEGACY = 0x02;
/** Larger than any frame the client sends (the biggest, SUBSCRIBE, carries a ~6-30 kB SDP offer). */
export const MAX_FRAME_BYTES = 256 * 1024;

export class FrameError extends Error {}

/** `timestampMs`: the frame's wall-clock time, from the sender's clock. */
export function encodeFrame(frame: OutgoingFrame, timestampMs: number): Buffer {
  const message = SdkSignalFrame.create({ timestampMs, ...frame } as ISdkSignalFrame);
  const body = SdkSignalFrame.encode(message).finish();
  const out = Buffer.allocUnsafe(body.length + 1);
  out[0] = FRAME_TYPE_RTC;
  out.set(body, 1);
  return out;
}

/** Decodes one frame; anything malformed is a FrameError, never a crash. */
export function decodeFrame(data: Buffer): InstanceType<typeof SdkSignalFrame> {
  if (data.length < 2) throw new FrameError('frame too short');
  if (data.length > MAX_FRAME_BYTES) throw new FrameError(`frame of ${data.length} bytes is over the ${MAX_FRAME_BYTES} byte limit`);
  if (data[0] !== FRAME_TYPE_RTC && data[0] !== FRAME_TYPE_RTC_LEGACY) {
    throw new FrameError(`unknown frame type byte 0x${data[0]!.toString(16)}`);
  }
  try {
    return SdkSignalFrame.decode(data.subarray(1));
  } catch (error) {
    throw new FrameError(`malformed SdkSignalFrame: ${(error as Error).message}`);
  }
}

/** AUDIO_STATUS codes the client maps to session statuses. */
export const AudioStatus = {
  OK: 200,
  JoinedFromAnotherDevice: 301,
  AuthenticationRejected: 403,
  CallAtCapacity: 409,
  MeetingEnded: 410,
  AttendeeRemoved: 411,
  InternalServerError: 500,
  ServiceUnavailable: 503,
} as const;

/** WebSocket close codes the client maps while joining. */
export const CloseCode = {
  Normal: 1000,
  MeetingEnded: 4410,
  BadRequest: 4400,
  InternalError: 4500,
} as const;

/** Appended to a JoinToken (and so to the attendee id) by a client's content-share connection. */
export const CONTENT_MODALITY = '#content';
