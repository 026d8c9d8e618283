import type { NegotiationInput, NegotiationResult } from '../sfu/peer.ts';
import type { MediaWorkerStats } from './media-worker.ts';

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
  /** Date.now() when this listener's audio last turned from silence to speech. */
  voiceStartedAt: number;
  talking: boolean;
  subscriptions: { mid: string; streamId: number; ssrc: number; forwarded: number }[];
  layers: { streamId: number; ssrc: number; packets: number; keyFrames: number }[];
}

export interface PipeStats {
  rtpIn: number;
  rtpOut: number;
  rtcpIn: number;
  rtcpOut: number;
  rejected: number;
}

export interface WorkerMethods {
  createRoom(roomId: string, replica: boolean): void;
  closeRoom(roomId: string): void;
  createPeer(roomId: string, peerId: string, attendeeId: string): void;
  closePeer(peerId: string): void;
  negotiate(peerId: string, input: NegotiationInput): NegotiationResult;
  setMuted(peerId: string, muted: boolean): void;
  setPaused(peerId: string, streamIds: number[], paused: boolean): void;
  applyCapabilities(peerId: string, capabilities: { sendAudio: boolean; receiveAudio: boolean; receiveVideo: boolean }): void;
  unpublish(peerId: string): void;
  peerStats(peerId: string): PeerStats | undefined;
  /** Opens this end of a pipe in a room (UDP on an ephemeral port); returns the port. */
  createPipe(pipeId: string, roomId: string): number;
  connectPipe(pipeId: string, remote: { address: string; port: number }, keys: PipeKeysWire): void;
  /** Primary end: what the replica wants; replica end: a promoted attendee's streams to send up. */
  pipeSendStreams(pipeId: string, streamIds: number[]): void;
  /** Replica end: the primary's streams; primary end: the streams coming up from promoted attendees. */
  pipeSetStreams(pipeId: string, streams: { streamId: number; groupId: number }[]): void;
  pipePromote(pipeId: string, slot: number, attendeeId: string): void;
  pipeDemote(pipeId: string, slot: number, attendeeId: string): void;
  closePipe(pipeId: string): void;
  pipeStats(pipeId: string): PipeStats | undefined;
  /** The worker's media clock (frames, lateness), opus codecs and mixer failures. */
  workerStats(): MediaWorkerStats;
  /**
   * Closes everything and ends the thread with `exitCode` once the answer is sent: between two
   * packets, never in the middle of native codec work as `Worker.terminate()` can be.
   */
  exit(exitCode: number): void;
}

export interface PipeKeysWire {
  send: { key: Uint8Array; salt: Uint8Array };
  receive: { key: Uint8Array; salt: Uint8Array };
}

export type WorkerCall = { [M in keyof WorkerMethods]: { type: 'call'; id: number; method: M; args: Parameters<WorkerMethods[M]> } }[keyof WorkerMethods];

export type WorkerEvent =
  | { type: 'ready'; port: number }
  | { type: 'result'; id: number; result?: unknown; error?: string }
  | { type: 'peerConnection'; peerId: string; connected: boolean }
  /** A replica's viewers now subscribe to these streams of the primary. */
  | { type: 'pipeDemand'; pipeId: string; streamIds: number[] }
  /** Every 200 ms per room: audio level (-dBov) of each talking attendee. */
  | { type: 'levels'; roomId: string; levels: [string, number][] }
  /** Every second per room: received bitrate per published stream, downlink estimate per peer. */
  | { type: 'rates'; roomId: string; bitrates: [number, number][]; downlinks: [string, number][] };
