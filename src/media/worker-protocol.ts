import type { NegotiationInput, NegotiationResult } from './peer.ts';

/**
 * Messages between the main thread (signaling) and a media worker thread. Calls are answered
 * in the order they were sent; events flow from the worker on their own.
 */
export interface WorkerOptions {
  listenIp: string;
  port: number;
  announcedIp: string;
  logLevel: string;
  name: string;
}

export interface PeerStats {
  connected: boolean;
  transport: { rtpIn: number; rtpOut: number; rtcpIn: number; rtcpOut: number; srtpErrors: number };
  downlinkBps: number;
  talking: boolean;
  subscriptions: { mid: string; streamId: number; ssrc: number; forwarded: number }[];
  layers: { streamId: number; ssrc: number; packets: number; keyFrames: number }[];
}

export interface WorkerMethods {
  createRoom(roomId: string): void;
  closeRoom(roomId: string): void;
  createPeer(roomId: string, peerId: string, attendeeId: string): void;
  closePeer(peerId: string): void;
  negotiate(peerId: string, input: NegotiationInput): NegotiationResult;
  setMuted(peerId: string, muted: boolean): void;
  setPaused(peerId: string, streamIds: number[], paused: boolean): void;
  applyCapabilities(peerId: string, capabilities: { sendAudio: boolean; receiveAudio: boolean; receiveVideo: boolean }): void;
  unpublish(peerId: string): void;
  peerStats(peerId: string): PeerStats | undefined;
}

export type WorkerCall = { [M in keyof WorkerMethods]: { type: 'call'; id: number; method: M; args: Parameters<WorkerMethods[M]> } }[keyof WorkerMethods];

export type WorkerEvent =
  | { type: 'ready'; port: number }
  | { type: 'result'; id: number; result?: unknown; error?: string }
  | { type: 'peerConnection'; peerId: string; connected: boolean }
  /** Every 200 ms per room: audio level (-dBov) of each talking attendee. */
  | { type: 'levels'; roomId: string; levels: [string, number][] }
  /** Every second per room: received bitrate per published stream, downlink estimate per peer. */
  | { type: 'rates'; roomId: string; bitrates: [number, number][]; downlinks: [string, number][] };
