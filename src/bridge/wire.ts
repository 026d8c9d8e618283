import type { ISdkDataMessagePayload } from 'amazon-chime-sdk-js/build/signalingprotocol/SignalingProtocol.js';
import { decodeFrame, encodeFrame, proto, type OutgoingFrame } from '../signaling/frames.ts';

/** A signaling frame as it crosses a bridge: the clients' own encoding, in base64. */
export function frameToWire(frame: OutgoingFrame): string {
  return encodeFrame(frame, 0).toString('base64');
}

/** A frame from a bridge, to send to this node's clients (each send stamps its own time). */
export function frameFromWire(wire: string): OutgoingFrame {
  const frame = decodeFrame(Buffer.from(wire, 'base64')) as OutgoingFrame & { timestampMs?: unknown };
  delete frame.timestampMs;
  return frame;
}

export function dataToWire(payload: ISdkDataMessagePayload): string {
  return Buffer.from(proto.SdkDataMessagePayload.encode(payload).finish()).toString('base64');
}

/** A data message from a bridge; a malformed one throws. */
export function dataFromWire(wire: string): ISdkDataMessagePayload {
  return proto.SdkDataMessagePayload.decode(Buffer.from(wire, 'base64'));
}

export function bytesToWire(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

export function bytesFromWire(wire: string): Buffer {
  return Buffer.from(wire, 'base64');
}
