import type { MidSubscription, NegotiationInput, NegotiationResult, SubscriptionUpdate } from '../sfu/peer.ts';
import type { MediaWorkerStats } from './media-worker.ts';
import type { ThreadLoadSnapshot } from './thread-load.ts';

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
  /** How often a client's silence is looked at (default 5 s); tests shorten it. */
  silenceCheckMs?: number;
}

export interface PeerStats {
  connected: boolean;
  transport: { rtpIn: number; rtpOut: number; rtcpIn: number; rtcpOut: number; srtpErrors: number };
  downlinkBps: number;
  /** Date.now() when this listener's audio last turned from silence to speech. */
  voiceStartedAt: number;
  talking: boolean;
  /** Per subscribed stream: packets forwarded, asked for again (NACK), sent again from history, and asked for but no longer held. */
  subscriptions: { mid: string; streamId: number; ssrc: number; forwarded: number; nacked: number; retransmitted: number; missed: number }[];
  /**
   * Per published layer: packets and key frames received, key-frame requests and packets asked again (NACK) sent
   * to the publisher, and lost packets that came after all (repaired or late).
   */
  layers: { streamId: number; ssrc: number; packets: number; keyFrames: number; keyFrameRequests: number; resendRequests: number; recovered: number }[];
}

export interface PipeStats {
  rtpIn: number;
  rtpOut: number;
  rtcpIn: number;
  rtcpOut: number;
  rejected: number;
}

export type StreamRef = { streamId: number; groupId: number };

/** A worker's media statistics and its thread's load (CPU time, event-loop lag). */
export type WorkerStats = MediaWorkerStats & { thread: ThreadLoadSnapshot };

/** Ids are chosen by the main thread; closing a room closes its peers and pipe ends. */
export interface WorkerMethods {
  /** `replica`: the room relays its primary's mix from a pipe instead of mixing its own. */
  createRoom(roomId: string, replica: boolean): void;
  closeRoom(roomId: string): void;
  createPeer(roomId: string, peerId: string, attendeeId: string): void;
  closePeer(peerId: string): void;
  negotiate(peerId: string, input: NegotiationInput): NegotiationResult;
  /** REMOTE_VIDEO_UPDATE without an offer (MediaPeer.updateSubscriptions); answers what the receive m-lines carry. */
  updateSubscriptions(peerId: string, update: SubscriptionUpdate): MidSubscription[];
  setMuted(peerId: string, muted: boolean): void;
  setPaused(peerId: string, streamIds: number[], paused: boolean): void;
  applyCapabilities(peerId: string, capabilities: { sendAudio: boolean; receiveAudio: boolean; receiveVideo: boolean }): void;
  unpublish(peerId: string): void;
  peerStats(peerId: string): PeerStats | undefined;
  /** Opens the primary's end of a pipe in a mixing room (UDP on an ephemeral port); answers the port. */
  openPrimaryPipe(roomId: string, pipeId: string): Promise<number>;
  /** Opens the replica's end of a pipe in a replica room; answers the port. */
  openReplicaPipe(roomId: string, pipeId: string): Promise<number>;
  /** Either end: the other end's address and the pipe's keys. */
  connectPipe(pipeId: string, remote: { address: string; port: number }, keys: PipeKeysWire): void;
  closePipe(pipeId: string): void;
  pipeStats(pipeId: string): PipeStats | undefined;
  /** Primary end: the primary's streams the replica's viewers want now. */
  primaryPipeSendStreams(pipeId: string, streamIds: number[]): void;
  /** Primary end: the streams promoted attendees send up, as layers of the primary's room. */
  primaryPipeReceiveStreams(pipeId: string, streams: StreamRef[]): void;
  /** Primary end: the slot's voice becomes a mixer source, and its mix-minus goes down. */
  primaryPipePromote(pipeId: string, slot: number, primaryAttendeeId: string): void;
  primaryPipeDemote(pipeId: string, slot: number): void;
  /** Replica end: the primary's streams, as layers of the replica's room. */
  replicaPipeSetStreams(pipeId: string, streams: StreamRef[]): void;
  /** Replica end: promoted attendees' published streams to send up. */
  replicaPipeSendStreams(pipeId: string, streamIds: number[]): void;
  /** Replica end: the attendee's voice goes up in the slot, and it hears the slot's mix. */
  replicaPipePromote(pipeId: string, slot: number, attendeeId: string): void;
  replicaPipeDemote(pipeId: string, attendeeId: string): void;
  /** The worker's media clock (frames, lateness), opus codecs, mixer failures, traffic and thread load. */
  workerStats(): WorkerStats;
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

/** What a call answers once the worker is done with it. */
export type WorkerAnswer<M extends keyof WorkerMethods> = Awaited<ReturnType<WorkerMethods[M]>>;

/** How handles reach their worker thread: calls answered in order, and calls nobody waits for. */
export interface WorkerChannel {
  readonly name: string;
  call<M extends keyof WorkerMethods>(method: M, ...args: Parameters<WorkerMethods[M]>): Promise<WorkerAnswer<M>>;
  /** A call whose answer nobody waits for; a failure is logged. Dropped once the worker is stopped. */
  fire<M extends keyof WorkerMethods>(method: M, ...args: Parameters<WorkerMethods[M]>): void;
}

export type WorkerEvent =
  | { type: 'ready'; port: number }
  | { type: 'result'; id: number; result?: unknown; error?: string }
  | { type: 'peerConnection'; roomId: string; peerId: string; connected: boolean }
  /** The client of this peer sent nothing for 10–15 s after it had sent something: it is gone. */
  | { type: 'peerSilent'; roomId: string; peerId: string }
  /** A replica's viewers now subscribe to these streams of the primary. */
  | { type: 'pipeDemand'; roomId: string; pipeId: string; streamIds: number[] }
  /** Every 200 ms per room: audio level (-dBov) of each talking attendee. */
  | { type: 'levels'; roomId: string; levels: [string, number][] }
  /** Every second per room: received bitrate per published stream, downlink estimate per peer. */
  | { type: 'rates'; roomId: string; bitrates: [number, number][]; downlinks: [string, number][] }
  /** Every second: RTP packets the worker sent and received per second over the last second (its load, for placement). */
  | { type: 'load'; packetsPerSecond: number };
