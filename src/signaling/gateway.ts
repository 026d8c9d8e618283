import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import type { AttendeeRecord, MeetingRecord } from '../meetings/model.ts';
import type { RevocationReason } from '../meetings/revocations.ts';
import type { MeetingService } from '../meetings/service.ts';
import type { ConnectionReporter } from '../meetings/lifecycle.ts';
import type { MediaCluster } from '../cluster/media-cluster.ts';
import { internalUrlOf, type NodeDirectory } from '../cluster/node-directory.ts';
import type { MediaWorkerClient } from '../media/worker/client.ts';
import type { Clock } from '../util/clock.ts';
import type { Conference, ConferenceContext, SignalingMetrics } from './conference.ts';
import type { LocalPrimary, RemotePrimaries } from './primary-handle.ts';
import { PrimaryConference } from './primary-conference.ts';
import { ReplicaConference } from './replica-conference.ts';
import { AudioStatus, CloseCode, CONTENT_MODALITY, encodeFrame, FrameType, MAX_FRAME_BYTES } from './frames.ts';
import { SignalingSession } from './session.ts';
import { AddressLimits, addressOf } from './address-limits.ts';
import { BurstLimiter } from '../util/burst-limiter.ts';
import { isRelayed, SignalRelay } from './signal-relay.ts';
import type { TurnCredentialIssuer } from './turn-credentials.ts';

const SESSION_PROTOCOL = '_aws_wt_session';
const CONTROL_PATH = /^\/control\/([0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})$/;

export interface GatewayParts {
  meetings: MeetingService;
  connections: ConnectionReporter;
  media: MediaCluster;
  /** Says whether a meeting's media node (MediaNodeId) is this process. */
  nodes: NodeDirectory;
  /** Time for the sessions' and conferences' rate limits and timeouts. */
  clock: Clock;
  logger: Logger;
  /** Where this node's media workers reach each other's pipe ports. */
  pipeAddress: string;
  /** Primaries hosted on other nodes (none in a single node). */
  remotePrimaries?: RemotePrimaries;
  /** Signaling sockets open at once from one address (0: no cap). Default DEFAULT_MAX_SOCKETS_PER_ADDRESS. */
  maxSocketsPerAddress?: number;
  /** Signs the attendees' TURN credentials (absent: no TURN). */
  turn?: TurnCredentialIssuer;
  /** Where promotions are counted (unset: not counted). */
  metrics?: SignalingMetrics;
}

/** Enough for an office behind one NAT address in one meeting (each client holds 1, 2 while sharing content). */
export const DEFAULT_MAX_SOCKETS_PER_ADDRESS = 100;

/**
 * The signaling endpoint at MediaPlacement.SignalingUrl (/control/<MeetingId>): authenticates
 * the JoinToken from the WebSocket subprotocols, hands each connection to a SignalingSession
 * in its meeting's Conference, and turns control-plane events (meeting ended, attendee
 * deleted, capabilities changed) into what the clients expect.
 */
export class SignalingGateway {
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_FRAME_BYTES,
    perMessageDeflate: false,
    handleProtocols: (protocols) => (protocols.has(SESSION_PROTOCOL) ? SESSION_PROTOCOL : false),
  });
  private readonly conferences = new Map<string, Conference>();
  private readonly context: ConferenceContext;
  private readonly meetings: MeetingService;
  private readonly media: MediaCluster;
  private readonly nodes: NodeDirectory;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly unsubscribes: (() => void)[];
  private readonly relay: SignalRelay;
  private readonly addressLimits: AddressLimits;
  private readonly capLogLimiter = new BurstLimiter();

  constructor(parts: GatewayParts) {
    const { meetings, connections, media, logger, pipeAddress } = parts;
    this.meetings = meetings;
    this.media = media;
    this.nodes = parts.nodes;
    this.clock = parts.clock;
    this.logger = logger;
    this.addressLimits = new AddressLimits(parts.maxSocketsPerAddress ?? DEFAULT_MAX_SOCKETS_PER_ADDRESS);
    this.relay = new SignalRelay({ logger: logger.child({ component: 'signal-relay' }) });
    this.context = {
      meetings,
      connections,
      logger,
      clock: parts.clock,
      pipeAddress,
      turn: parts.turn,
      metrics: parts.metrics,
      primaryFor: async (primaryMeetingId, replicaMeetingId) => {
        const found = await meetings.meeting(primaryMeetingId);
        // A primary whose node died goes where its region's meetings go; its attendees and replicas follow it there.
        const meeting = found && (await meetings.liveHome(found, 'placed'));
        if (!meeting) return undefined;
        if (!this.nodes.isLocal(meeting.MediaNodeId)) return parts.remotePrimaries?.connect(meeting, replicaMeetingId);
        return this.openLocalPrimary(primaryMeetingId);
      },
    };
    this.unsubscribes = [
      meetings.events.subscribe('meetingEnded', (meeting) => this.onMeetingEnded(meeting)),
      meetings.events.subscribe('attendeeDeleted', (attendee) => this.onAttendeeDeleted(attendee)),
      meetings.events.subscribe('attendeeCapabilitiesChanged', (attendee) =>
        this.conferences.get(attendee.MeetingId)?.updateCapabilities(attendee),
      ),
      meetings.events.subscribe('meetingMoved', (meeting) => this.onMeetingMoved(meeting)),
    ];
    for (const worker of media.workers) worker.on('exited', () => this.onWorkerExited(worker));
  }

  /** A WebSocket upgrade request for signaling. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.upgrade(request, socket, head).catch((error: unknown) => {
      this.logger.error({ err: error }, 'signaling upgrade failed');
      refuse(socket, 500, 'Internal Server Error');
    });
  }

  /** A primary meeting hosted on this node, its conference created if nobody is connected to it yet. */
  async openLocalPrimary(meetingId: string): Promise<LocalPrimary | undefined> {
    const meeting = await this.meetings.meeting(meetingId);
    if (!meeting || meeting.PrimaryMeetingId !== undefined || !this.isServedHere(meeting)) return undefined;
    const conference = this.conferenceFor(meeting);
    return conference instanceof PrimaryConference ? conference : undefined;
  }

  conference(meetingId: string): Conference | undefined {
    return this.conferences.get(meetingId);
  }

  primaryConference(meetingId: string): PrimaryConference | undefined {
    const conference = this.conferences.get(meetingId);
    return conference instanceof PrimaryConference ? conference : undefined;
  }

  /** The live conferences on this node (primaries and replicas), for the metrics. */
  liveConferences(): IterableIterator<Conference> {
    return this.conferences.values();
  }

  /** Client connections relayed to other nodes. */
  get relayCount(): number {
    return this.relay.count;
  }

  get sessionCount(): number {
    let count = 0;
    for (const conference of this.conferences.values()) count += conference.sessions.size;
    return count;
  }

  private async upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    const path = (request.url ?? '').split('?')[0] ?? '';
    const match = CONTROL_PATH.exec(path);
    if (!match) return refuse(socket, 404, 'Not Found');
    if (!this.takeAddressSlot(request, socket)) return refuse(socket, 429, 'Too Many Requests');
    const meetingId = match[1]!.toLowerCase();
    const offered = String(request.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean);
    const token = offered.find((p) => p !== SESSION_PROTOCOL);
    if (!offered.includes(SESSION_PROTOCOL) || !token) return refuse(socket, 401, 'Unauthorized');
    const content = token.endsWith(CONTENT_MODALITY);
    const baseToken = content ? token.slice(0, -CONTENT_MODALITY.length) : token;

    const attendee = await this.meetings.attendeeForJoinToken(baseToken);
    const meeting = attendee && attendee.MeetingId === meetingId ? await this.meetings.meeting(meetingId) : undefined;
    if (!attendee || !meeting) {
      const revocation = await this.meetings.revocationOf(baseToken);
      // A token that never existed is refused at the handshake; a revoked one gets the precise status.
      if (!revocation) return refuse(socket, 403, 'Forbidden');
      return this.wss.handleUpgrade(request, socket, head, (ws) => endRevoked(ws, revocation, this.clock.now()));
    }
    await this.route(request, socket, head, meeting, attendee, content);
  }

  /**
   * Serves the connection here if this node hosts the meeting, or relays it to the node that does. A client's own
   * connection (not a relayed one) for a meeting whose node is dead re-homes the meeting here: its region's front sent
   * it to this live node. A node that refuses the relay's connection is dead too, whatever the registry says yet.
   */
  private async route(request: IncomingMessage, socket: Duplex, head: Buffer, found: MeetingRecord, attendee: AttendeeRecord, content: boolean): Promise<void> {
    let meeting = found;
    if (!this.nodes.isLocal(found.MediaNodeId) && !isRelayed(request)) {
      let homed: MeetingRecord | undefined;
      try {
        homed = await this.meetings.liveHome(found, 'here');
      } catch (error) {
        this.logger.warn({ err: error, meetingId: found.MeetingId }, 'could not re-home a meeting whose node is dead');
        return refuse(socket, 503, 'Service Unavailable');
      }
      if (!homed) return refuse(socket, 403, 'Forbidden'); // deleted meanwhile: its retries learn why
      if (homed.MediaNodeId !== found.MediaNodeId) {
        this.logger.info({ meetingId: found.MeetingId, from: found.MediaNodeId, to: homed.MediaNodeId }, "a dead node's meeting re-homed");
      }
      meeting = homed;
    }
    if (this.nodes.isLocal(meeting.MediaNodeId)) {
      this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(ws, meeting, attendee, content));
      return;
    }
    await this.relayToHost(request, socket, head, meeting, () => {
      this.nodes.markUnreachable(meeting.MediaNodeId);
      this.route(request, socket, head, meeting, attendee, content).catch((error: unknown) => {
        this.logger.error({ err: error }, 'signaling upgrade failed');
        refuse(socket, 500, 'Internal Server Error');
      });
    });
  }

  /** Counts the socket against its address's cap until it closes; false at the cap. */
  private takeAddressSlot(request: IncomingMessage, socket: Duplex): boolean {
    const address = addressOf(request, isRelayed(request));
    const release = this.addressLimits.admit(address);
    if (!release) {
      const suppressed = this.capLogLimiter.admit(address);
      if (suppressed >= 0) this.logger.warn({ address, max: this.addressLimits.max, suppressed }, 'too many signaling sockets from one address; refused');
      return false;
    }
    if (socket.destroyed) release();
    else socket.once('close', release);
    return true;
  }

  /**
   * Another node hosts the meeting (a load balancer sent the client here): the connection is relayed to it, frame
   * for frame. A connection relayed once is not relayed again: the nodes disagree on where the meeting is.
   */
  private async relayToHost(request: IncomingMessage, socket: Duplex, head: Buffer, meeting: MeetingRecord, onHostDown: () => void): Promise<void> {
    const log = { meetingId: meeting.MeetingId, mediaNodeId: meeting.MediaNodeId, localNodeId: this.nodes.localNodeId };
    if (isRelayed(request)) {
      this.logger.warn(log, 'relayed connection for a meeting this node does not host; refused');
      return refuse(socket, 421, 'Misdirected Request');
    }
    const hostUrl = internalUrlOf(await this.nodes.node(meeting.MediaNodeId));
    if (!hostUrl) {
      this.logger.warn(log, "the meeting's node is not alive; refused");
      return refuse(socket, 503, 'Service Unavailable');
    }
    this.logger.debug(log, 'signaling relayed to the hosting node');
    // A relayed connection is not re-homed here (see route): its node decided where the meeting is.
    this.relay.relay(request, socket, head, hostUrl, `/control/${meeting.MeetingId}`, isRelayed(request) ? undefined : onHostDown);
  }

  private accept(ws: WebSocket, meeting: MeetingRecord, attendee: AttendeeRecord, content: boolean): void {
    const conference = this.conferenceFor(meeting);
    const session = new SignalingSession(ws, conference, attendee, content, this.logger, this.clock);
    conference.admit(session);
    // The service reports no authorization of a content share's token (its content events start at ContentJoined).
    if (!content) this.meetings.activity.emit('attendeeAuthorized', meeting, attendee, false);
  }

  /** The meeting's live conference on this node, created on first use on the least-loaded media worker (a replica's apart from its primary's when it can). */
  private conferenceFor(meeting: MeetingRecord): Conference {
    let conference = this.conferences.get(meeting.MeetingId);
    if (conference) return conference;
    const primary = meeting.PrimaryMeetingId === undefined ? undefined : this.conferences.get(meeting.PrimaryMeetingId);
    const worker = this.media.workerFor(primary?.room.worker);
    const created = meeting.PrimaryMeetingId === undefined ? new PrimaryConference(meeting, this.context, worker) : new ReplicaConference(meeting, this.context, worker);
    this.conferences.set(meeting.MeetingId, created);
    created.on('empty', () => {
      if (this.conferences.get(meeting.MeetingId) === created) this.conferences.delete(meeting.MeetingId);
      created.close();
    });
    return created;
  }

  /** Whether the meeting's media lives on this node (its MediaNodeId is this process's). */
  private isServedHere(meeting: MeetingRecord): boolean {
    if (this.nodes.isLocal(meeting.MediaNodeId)) return true;
    this.logger.warn(
      { meetingId: meeting.MeetingId, mediaNodeId: meeting.MediaNodeId, localNodeId: this.nodes.localNodeId },
      'meeting is placed on another media node; refused here',
    );
    return false;
  }

  /**
   * A media worker died with its rooms: the conferences on it, and the replicas fed from them,
   * end with 503, which the SDK answers by reconnecting (to a fresh room on the restarted worker).
   */
  private onWorkerExited(worker: MediaWorkerClient): void {
    const lost = new Set<Conference>();
    for (const conference of this.conferences.values()) {
      if (conference.room.worker !== worker) continue;
      lost.add(conference);
      for (const replicaId of conference.linkedReplicaIds()) {
        const replica = this.conferences.get(replicaId);
        if (replica) lost.add(replica);
      }
    }
    if (lost.size > 0) this.logger.warn({ worker: worker.name, conferences: lost.size }, 'media worker lost; its clients reconnect');
    // Every client hears its status before a primary's end reaches its replicas' clients.
    for (const conference of lost) conference.sendFinalStatus(AudioStatus.ServiceUnavailable);
    for (const conference of lost) {
      if (this.conferences.get(conference.meeting.MeetingId) === conference) this.conferences.delete(conference.meeting.MeetingId);
      conference.end(AudioStatus.ServiceUnavailable);
    }
  }

  /**
   * Another node re-homed a meeting this node was thought dead for (cut off from Redis, not stopped): its sessions
   * here end with 503, and the SDK reconnects through the front to the new host. Only one node hosts a meeting.
   */
  private onMeetingMoved(meeting: MeetingRecord): void {
    if (this.nodes.isLocal(meeting.MediaNodeId)) return;
    const conference = this.conferences.get(meeting.MeetingId);
    if (!conference) return;
    this.logger.warn({ meetingId: meeting.MeetingId, mediaNodeId: meeting.MediaNodeId }, 'meeting re-homed on another node; its sessions here end');
    this.conferences.delete(meeting.MeetingId);
    conference.end(AudioStatus.ServiceUnavailable);
  }

  /**
   * This node was taken for dead (its registry entry expired: cut off from Redis) and is back: the moves it may have
   * missed meanwhile are read from the records, and the conferences of meetings re-homed elsewhere end here.
   */
  async endMovedConferences(): Promise<void> {
    for (const meetingId of [...this.conferences.keys()]) {
      const meeting = await this.meetings.meeting(meetingId);
      if (meeting) this.onMeetingMoved(meeting);
    }
  }

  private onMeetingEnded(meeting: MeetingRecord): void {
    const conference = this.conferences.get(meeting.MeetingId);
    if (!conference) return;
    conference.end(AudioStatus.MeetingEnded);
    this.conferences.delete(meeting.MeetingId);
  }

  private onAttendeeDeleted(attendee: AttendeeRecord): void {
    this.conferences.get(attendee.MeetingId)?.removeAttendee(attendee.AttendeeId, AudioStatus.AttendeeRemoved);
  }

  close(): void {
    for (const unsubscribe of this.unsubscribes) unsubscribe();
    // Every client hears its status before a primary's end reaches its replicas' clients.
    for (const conference of this.conferences.values()) conference.sendFinalStatus(AudioStatus.ServiceUnavailable);
    for (const conference of this.conferences.values()) conference.end(AudioStatus.ServiceUnavailable);
    this.conferences.clear();
    this.relay.close();
    this.wss.close();
  }
}

/** Ends a client whose credentials were revoked, with the status its SDK maps to a terminal one. */
function endRevoked(ws: WebSocket, reason: RevocationReason, now: number): void {
  const meetingEnded = reason === 'meetingEnded';
  ws.send(encodeFrame({ type: FrameType.AUDIO_STATUS, audioStatus: { audioStatus: meetingEnded ? AudioStatus.MeetingEnded : AudioStatus.AttendeeRemoved } }, now));
  ws.close(meetingEnded ? CloseCode.MeetingEnded : CloseCode.Normal, meetingEnded ? 'meeting ended' : 'attendee removed');
}

function refuse(socket: Duplex, status: number, text: string): void {
  if (socket.writable) socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  socket.destroy();
}
