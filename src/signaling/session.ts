import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { RawData, WebSocket } from 'ws';
import type { AttendeeRecord } from '../meetings/model.ts';
import type { Clock } from '../util/clock.ts';
import type {
  ISdkDataMessagePayload,
  ISdkMeetingSessionCredentials,
  ISdkRemoteVideoUpdateFrame,
  ISdkSubscribeFrame,
} from 'amazon-chime-sdk-js/build/signalingprotocol/SignalingProtocol.js';
import { performance } from 'node:perf_hooks';
import { AudioStatus, CloseCode, CONTENT_MODALITY, decodeFrame, encodeFrame, FrameError, FrameType, SdkPingPongType, type OutgoingFrame } from './frames.ts';
import { ByteBudget } from './byte-budget.ts';
import { maxFrameBytesFor } from './frame-limits.ts';
import { ReadPause, type ReadPauseReason } from './read-pause.ts';
import { sdpParseTurns } from './turns.ts';

/** What a session hands its client's frames to: its meeting's conference. */
export interface SessionHost {
  join(session: SignalingSession): void;
  subscribe(session: SignalingSession, sub: ISdkSubscribeFrame): Promise<void>;
  setMuted(session: SignalingSession, muted: boolean): void;
  dataMessage(session: SignalingSession, messages: ISdkDataMessagePayload[]): void;
  pauseResume(session: SignalingSession, pause: boolean, streamIds: number[]): void;
  remoteVideoUpdate(session: SignalingSession, update: ISdkRemoteVideoUpdateFrame): Promise<void> | undefined;
  primaryMeetingJoin(session: SignalingSession, credentials: ISdkMeetingSessionCredentials): Promise<void>;
  primaryMeetingLeave(session: SignalingSession): void;
}

export interface SignalingSessionEvents {
  /** The session ended, for good; `dropped`: its connection failed rather than being ended by the client or the meeting. */
  closed: [reason: string, dropped: boolean];
  /** Reading the client's socket stopped: it sent over its byte budget, or it doesn't read what it is sent. */
  readPaused: [reason: ReadPauseReason];
}

/** No frame for this long (the client pings every 10 s) means the client is gone. */
const SILENCE_TIMEOUT_MS = 35_000;
/** Frames one client may send per second before it is cut off as a flood. */
const MAX_FRAMES_PER_SECOND = 200;
/** Malformed frames tolerated before the connection is closed. */
const MAX_BAD_FRAMES = 20;
/**
 * Bytes a client may send: a renegotiation sends a few SUBSCRIBEs in a row (see SDP_BURST_BYTES),
 * inside the burst; everything else a client sends is a few kB per second. Over it, the socket is
 * not read until the budget is back (the client is slowed, never cut off).
 */
export const INBOUND_BYTES_PER_SECOND = 256 * 1024;
export const INBOUND_BURST_BYTES = 512 * 1024;
/**
 * Of those, SDP offers (SUBSCRIBE), whose parsing costs far more per byte: a renegotiation's
 * SUBSCRIBEs (6-30 kB each, one of up to 256 KiB from Chrome with many transceivers) fit the burst.
 */
export const SDP_BYTES_PER_SECOND = 64 * 1024;
export const SDP_BURST_BYTES = 384 * 1024;
/**
 * Over this much queued for a client that doesn't read, its socket isn't read either (its requests
 * would only queue more answers) and periodic frames that the next one replaces are not queued.
 */
export const OUTBOUND_HIGH_WATER_BYTES = 1024 * 1024;
const OUTBOUND_LOW_WATER_BYTES = OUTBOUND_HIGH_WATER_BYTES / 2;
/** Frames a backed-up client can miss: the next one (every 2 s, every 200 ms) supersedes them. */
const DROPPABLE_WHEN_BACKED_UP = new Set<number>([FrameType.BITRATES, FrameType.AUDIO_METADATA]);

export type SessionState = 'connected' | 'joined' | 'closed';

/**
 * One client's signaling WebSocket. Decodes frames, enforces the protocol's order and limits,
 * and hands valid requests to its conference. Nothing a client sends can throw out of here.
 */
export class SignalingSession extends EventEmitter<SignalingSessionEvents> {
  readonly id = randomUUID();
  /** The attendee as the meeting knows it: `<AttendeeId>#content` for a content share. */
  readonly attendeeId: string;
  readonly externalUserId: string;
  readonly joinToken: string;
  readonly connectedAt: number;
  state: SessionState = 'connected';
  private current: AttendeeRecord;
  /** Set once the client has sent JOIN. */
  joinFlags = 0;
  private rosterSentFlag = false;
  /** The client was told its session ends (AUDIO_STATUS): nothing is sent after that. */
  private finalStatusSent = false;
  private lastFrameAt: number;
  private framesThisSecond = 0;
  private secondStartedAt: number;
  private badFrames = 0;
  /** Real time, not the clock: the budget paces real bytes with real timers. */
  private readonly inboundBudget = new ByteBudget(INBOUND_BYTES_PER_SECOND, INBOUND_BURST_BYTES, () => performance.now());
  private readonly sdpBudget = new ByteBudget(SDP_BYTES_PER_SECOND, SDP_BURST_BYTES, () => performance.now());
  private readonly readPause: ReadPause;
  /** Frames received after a SUBSCRIBE still waiting for its turn: they are handled after it, in order. */
  private readonly inbox: ReturnType<typeof decodeFrame>[] = [];
  private awaitingTurn = false;
  private receivedBytes = 0;
  private readonly watchdog: NodeJS.Timeout;
  readonly log: Logger;

  constructor(
    private readonly ws: WebSocket,
    readonly conference: SessionHost,
    attendee: AttendeeRecord,
    readonly content: boolean,
    logger: Logger,
    /** Time for the flood limit and the silence timeout. */
    private readonly clock: Clock,
  ) {
    super();
    this.connectedAt = this.lastFrameAt = this.secondStartedAt = clock.now();
    this.current = attendee;
    this.attendeeId = attendee.AttendeeId + (content ? CONTENT_MODALITY : '');
    this.externalUserId = attendee.ExternalUserId;
    this.joinToken = attendee.JoinToken;
    this.log = logger.child({ meetingId: attendee.MeetingId, attendeeId: this.attendeeId, session: this.id.slice(0, 8) });
    this.readPause = new ReadPause(ws);
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    // A socket that closes without LEAVE is a dropped connection (the others' clients are told so).
    ws.on('close', () => this.close(CloseCode.Normal, 'socket closed', true));
    ws.on('error', (error) => this.log.debug({ err: error }, 'signaling socket error'));
    this.watchdog = setInterval(() => {
      if (this.clock.now() - this.lastFrameAt > SILENCE_TIMEOUT_MS) {
        this.log.info('signaling went silent; closing');
        this.close(CloseCode.Normal, 'silent', true);
      }
    }, 5_000);
    this.watchdog.unref();
  }

  /** Bytes of frames read from the client so far. */
  get bytesReceived(): number {
    return this.receivedBytes;
  }

  /** Whether the client has its meeting's full roster; presence and volumes wait for it. */
  get rosterSent(): boolean {
    return this.rosterSentFlag;
  }

  /** The client got its meeting's full roster: presence and volumes may follow. */
  rosterDelivered(): void {
    this.rosterSentFlag = true;
  }

  /** UpdateAttendeeCapabilities: the attendee record this session acts as. */
  attendeeUpdated(attendee: AttendeeRecord): void {
    this.current = attendee;
  }

  /** The attendee record this session acts as (its capabilities change live). */
  get attendee(): AttendeeRecord {
    return this.current;
  }

  send(frame: OutgoingFrame): void {
    if (this.state === 'closed' || this.finalStatusSent || this.ws.readyState !== this.ws.OPEN) return;
    if (this.readPause.has('backpressure') && DROPPABLE_WHEN_BACKED_UP.has(frame.type ?? -1)) return;
    this.ws.send(encodeFrame(frame, this.clock.now()), () => this.resumeIfDrained());
    if (this.ws.bufferedAmount > OUTBOUND_HIGH_WATER_BYTES && this.readPause.hold('backpressure')) {
      this.log.info({ bufferedBytes: this.ws.bufferedAmount }, 'client does not read its signaling; reading it paused');
      this.emit('readPaused', 'backpressure');
    }
  }

  /** Called as each sent frame reaches the kernel: reading resumes once the backlog is half gone. */
  private resumeIfDrained(): void {
    if (this.readPause.has('backpressure') && this.ws.bufferedAmount <= OUTBOUND_LOW_WATER_BYTES) this.readPause.release('backpressure');
  }

  /** Ends the session with an AUDIO_STATUS the client maps to a terminal status, then closes. */
  end(audioStatus: number, closeCode: number = CloseCode.Normal): void {
    this.sendFinalStatus(audioStatus);
    this.close(audioStatus === AudioStatus.MeetingEnded ? CloseCode.MeetingEnded : closeCode, `status ${audioStatus}`);
  }

  /**
   * Tells the client its session ends with `audioStatus` (AUDIO_STATUS), the last frame it gets; the socket closes
   * later, with `end` or `close`.
   */
  sendFinalStatus(audioStatus: number): void {
    if (this.finalStatusSent) return;
    this.send({ type: FrameType.AUDIO_STATUS, audioStatus: { audioStatus } });
    this.finalStatusSent = true;
  }

  /** `dropped`: the connection failed, rather than being ended by the client (LEAVE) or by the meeting. */
  close(code: number = CloseCode.Normal, reason = '', dropped = false): void {
    if (this.state === 'closed') return;
    clearInterval(this.watchdog);
    this.inbox.length = 0;
    // A paused socket would not read the client's answer to our close frame.
    this.readPause.clear();
    try {
      this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
    }
    this.state = 'closed';
    this.emit('closed', reason, dropped);
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.state === 'closed') return;
    this.lastFrameAt = this.clock.now();
    if (this.lastFrameAt - this.secondStartedAt >= 1000) {
      this.secondStartedAt = this.lastFrameAt;
      this.framesThisSecond = 0;
    }
    if (++this.framesThisSecond > MAX_FRAMES_PER_SECOND) {
      this.log.warn('signaling flood; closing');
      this.close(CloseCode.BadRequest, 'too many frames', true);
      return;
    }
    const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    this.receivedBytes += buffer.length;
    let waitMs = this.inboundBudget.charge(buffer.length);
    let frame;
    try {
      if (!isBinary) throw new FrameError('text frames are not part of the protocol');
      frame = decodeFrame(buffer);
      const limit = maxFrameBytesFor(frame.type);
      if (buffer.length > limit) throw new FrameError(`frame type ${frame.type} of ${buffer.length} bytes is over its ${limit} byte limit`);
      if (frame.type === FrameType.SUBSCRIBE) waitMs = Math.max(waitMs, this.sdpBudget.charge(buffer.length));
    } catch (error) {
      this.pauseForBudget(waitMs);
      this.rejectFrame(error instanceof Error ? error.message : String(error));
      return;
    }
    this.pauseForBudget(waitMs);
    this.deliver(frame);
  }

  /**
   * Hands a frame to dispatch in the order received. A SUBSCRIBE waits for its turn to have its
   * offer parsed (sdpParseTurns); the socket isn't read meanwhile, and frames already read wait behind it.
   */
  private deliver(frame: ReturnType<typeof decodeFrame>): void {
    if (this.awaitingTurn) {
      this.inbox.push(frame);
      return;
    }
    if (frame.type === FrameType.SUBSCRIBE && this.state === 'joined') {
      this.awaitingTurn = true;
      this.readPause.hold('turn');
      sdpParseTurns.take(() => {
        this.awaitingTurn = false;
        if (!this.open) return;
        try {
          this.readPause.release('turn');
          this.handle(frame);
          while (this.inbox.length > 0 && !this.awaitingTurn && this.open) this.deliver(this.inbox.shift()!);
        } catch (error) {
          // handle() catches what the conference throws; this is a last guard for the shared queue.
          this.log.error({ err: error }, 'signaling frames could not be handled; closing');
          this.close(CloseCode.InternalError, 'internal error', true);
        }
      });
      return;
    }
    this.handle(frame);
  }

  /** Not closed (a getter, so a check after a call that may close is not narrowed away). */
  private get open(): boolean {
    return this.state !== 'closed';
  }

  private handle(frame: ReturnType<typeof decodeFrame>): void {
    const failed = (error: unknown) => {
      // A request the conference could not handle fails alone; the session and the meeting go on.
      this.log.warn({ err: error, type: frame.type }, 'frame handling failed');
      this.send({ type: FrameType.NOTIFICATION, notification: { level: 3, message: `request failed: ${(error as Error).message}` } });
    };
    try {
      const pending = this.dispatch(frame);
      if (pending) pending.catch(failed);
    } catch (error) {
      failed(error);
    }
  }

  /** Over a byte budget, the socket isn't read until it is back (`waitMs`). */
  private pauseForBudget(waitMs: number): void {
    if (waitMs > 0 && this.readPause.holdForBudget(waitMs)) {
      this.log.debug({ waitMs }, 'signaling over its byte budget; reading paused');
      this.emit('readPaused', 'budget');
    }
  }

  private rejectFrame(reason: string): void {
    this.badFrames++;
    this.log.debug({ reason }, 'malformed signaling frame');
    if (this.badFrames > MAX_BAD_FRAMES) this.close(CloseCode.BadRequest, 'too many malformed frames', true);
  }

  private dispatch(frame: ReturnType<typeof decodeFrame>): Promise<void> | void {
    switch (frame.type) {
      case FrameType.PING_PONG:
        if (frame.pingPong?.type === SdkPingPongType.PING) {
          this.send({ type: FrameType.PING_PONG, pingPong: { type: SdkPingPongType.PONG, pingId: frame.pingPong.pingId } });
        }
        return;
      case FrameType.JOIN:
        if (this.state !== 'connected') return this.rejectFrame('JOIN sent twice');
        this.joinFlags = frame.join?.flags ?? 0;
        this.state = 'joined';
        return this.conference.join(this);
      case FrameType.LEAVE:
        this.send({ type: FrameType.LEAVE_ACK, leaveAck: {} });
        return this.close(CloseCode.Normal, 'left');
      case FrameType.CLIENT_METRIC:
      case FrameType.MEETING_SESSION_TIMING:
        return; // accepted; nothing to act on
    }
    if (this.state !== 'joined') return this.rejectFrame(`frame type ${frame.type} before JOIN`);
    switch (frame.type) {
      case FrameType.SUBSCRIBE:
        if (!frame.sub) return this.rejectFrame('SUBSCRIBE without its body');
        return this.conference.subscribe(this, frame.sub);
      case FrameType.AUDIO_CONTROL:
        return this.conference.setMuted(this, frame.audioControl?.muted === true);
      case FrameType.DATA_MESSAGE:
        return this.conference.dataMessage(this, frame.dataMessage?.messages ?? []);
      case FrameType.PAUSE:
      case FrameType.RESUME:
        return this.conference.pauseResume(this, frame.type === FrameType.PAUSE, frame.pause?.streamIds ?? []);
      case FrameType.REMOTE_VIDEO_UPDATE:
        // Client-side adaptation switches simulcast layers with this frame, without a SUBSCRIBE.
        return this.conference.remoteVideoUpdate(this, frame.remoteVideoUpdate ?? {});
      case FrameType.PRIMARY_MEETING_JOIN:
        return this.conference.primaryMeetingJoin(this, frame.primaryMeetingJoin?.credentials ?? {});
      case FrameType.PRIMARY_MEETING_LEAVE:
        return this.conference.primaryMeetingLeave(this);
      default:
        return this.rejectFrame(`unexpected frame type ${frame.type}`);
    }
  }
}
