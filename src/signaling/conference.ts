import type { Logger } from 'pino';
import type { ISdkDataMessagePayload, ISdkMeetingSessionCredentials, ISdkStreamDescriptor, ISdkSubscribeFrame } from 'amazon-chime-sdk-js/build/signalingprotocol/SignalingProtocol.js';
import type { ConnectionReporter } from '../meetings/lifecycle.ts';
import type { AttendeeRecord, Capability, MeetingRecord } from '../meetings/model.ts';
import type { MeetingService } from '../meetings/service.ts';
import { parseOffer, SdpError } from '../media/sdp.ts';
import type { PublishedLayer } from '../media/peer.ts';
import type { MediaWorkerClient, RemotePeer, RemoteRoom } from '../media/worker-client.ts';
import { AudioStatus, FrameType, SdkStreamMediaType, SdkStreamServiceType, type OutgoingFrame } from './frames.ts';
import type { SignalingSession } from './session.ts';

/** The service's limits: video sources per meeting, content shares, data messages. */
export const MAX_VIDEO_SOURCES = 25;
export const MAX_CONTENT_SHARES = 2;
export const VIDEO_SUBSCRIPTION_LIMIT = 25;
const DATA_TOPIC = /^[a-zA-Z0-9_-]{1,36}$/;
const DATA_MAX_BYTES = 2048;
const DATA_MAX_LIFETIME_MS = 5 * 60_000;
const DATA_BUFFERED_MAX = 1024;
/** Per attendee: sustained data messages per second, and burst. */
const DATA_RATE = 10;
const DATA_BURST = 20;
const METADATA_INTERVAL_MS = 200;
const BITRATES_INTERVAL_MS = 2_000;

const sends = (c: Capability) => c === 'SendReceive' || c === 'Send';
const receives = (c: Capability) => c === 'SendReceive' || c === 'Receive';

interface Presence {
  audioStreamId: number;
  attendeeId: string;
  externalUserId: string;
  muted: boolean;
  session: SignalingSession;
}

interface Publication {
  groupId: number;
  layers: PublishedLayer[];
}

interface SessionMedia {
  peer: RemotePeer;
  publication?: Publication;
  dataTokens: number;
  dataRefilledAt: number;
}

/**
 * One meeting's live state on this node: who is connected and present, which video streams
 * are published, the buffered data messages; it answers each session's requests and keeps
 * every client's roster, index and media in step. Media itself lives in the MediaRoom.
 */
export class Conference {
  readonly sessions = new Set<SignalingSession>();
  private readonly media = new Map<SignalingSession, SessionMedia>();
  private readonly presence = new Map<string, Presence>();
  private readonly bufferedData: { payload: ISdkDataMessagePayload; expiresAt: number }[] = [];
  private readonly room: RemoteRoom;
  private nextAudioStreamId = 1;
  private nextStreamId = 1;
  private nextGroupId = 1;
  private readonly timers: NodeJS.Timeout[] = [];
  onEmpty: () => void = () => undefined;
  readonly log: Logger;

  constructor(
    readonly meeting: MeetingRecord,
    private readonly meetings: MeetingService,
    private readonly connections: ConnectionReporter,
    private readonly worker: MediaWorkerClient,
    logger: Logger,
  ) {
    this.log = logger.child({ meetingId: meeting.MeetingId });
    this.room = worker.createRoom(meeting.MeetingId);
    this.timers.push(setInterval(() => this.sendAudioMetadata(), METADATA_INTERVAL_MS));
    this.timers.push(setInterval(() => this.sendBitrates(), BITRATES_INTERVAL_MS));
    for (const timer of this.timers) timer.unref();
  }

  /** A new authenticated connection; the same credentials connected elsewhere are pushed out. */
  admit(session: SignalingSession): void {
    for (const other of this.sessions) {
      if (other.attendeeId === session.attendeeId) {
        other.log.info('same attendee joined from another device');
        other.end(AudioStatus.JoinedFromAnotherDevice);
      }
    }
    this.sessions.add(session);
  }

  join(session: SignalingSession): void {
    const joined = [...this.sessions].filter((s) => s !== session && s.state === 'joined');
    const cap = this.meetings.attendeeCapOf(this.meeting.MeetingFeatures);
    const overCapacity = session.content
      ? joined.filter((s) => s.content).length >= MAX_CONTENT_SHARES
      : joined.filter((s) => !s.content).length >= cap;
    if (overCapacity) {
      session.log.info('meeting at capacity');
      session.end(AudioStatus.CallAtCapacity);
      return;
    }
    const peer = this.worker.createPeer(this.room, session.attendeeId);
    peer.onConnectionChange = (connected) => session.log.debug({ connected }, 'media transport');
    this.media.set(session, { peer, dataTokens: DATA_BURST, dataRefilledAt: Date.now() });
    this.connections.attendeeConnected(this.meeting.MeetingId, session.attendeeId);
    session.send({
      type: FrameType.JOIN_ACK,
      joinack: { videoSubscriptionLimit: VIDEO_SUBSCRIPTION_LIMIT, wantsCompressedSdp: false },
    });
    session.send(this.indexFor(session));
    const now = Date.now();
    const late = this.bufferedData.filter((entry) => entry.expiresAt > now).map((entry) => entry.payload);
    if (late.length > 0) session.send({ type: FrameType.DATA_MESSAGE, dataMessage: { messages: late } });
  }

  async subscribe(session: SignalingSession, sub: ISdkSubscribeFrame): Promise<void> {
    const media = this.media.get(session);
    if (!media) return;
    session.log.trace({ sdpOffer: sub.sdpOffer, receiveStreamIds: sub.receiveStreamIds, sendStreams: sub.sendStreams }, 'SUBSCRIBE');
    let offer;
    try {
      offer = parseOffer(sub.sdpOffer ?? '');
    } catch (error) {
      if (!(error instanceof SdpError)) throw error;
      session.log.warn({ reason: error.message }, 'unusable SDP offer');
      session.send({ type: FrameType.SUBSCRIBE_ACK, error: { status: 400, description: error.message } });
      return;
    }
    const caps = session.attendee.Capabilities;
    const videoDescriptors = (sub.sendStreams ?? []).filter((s) => s.mediaType === SdkStreamMediaType.VIDEO);
    const wantsToPublish = (sub.duplex === SdkStreamServiceType.TX || sub.duplex === SdkStreamServiceType.DUPLEX) && videoDescriptors.length > 0;
    const mayPublish = sends(caps.Video) && (media.publication !== undefined || this.publishingSessions() < MAX_VIDEO_SOURCES);
    const hadPublication = media.publication;
    media.publication = wantsToPublish && mayPublish ? this.allocate(media.publication, videoDescriptors) : undefined;

    const subscriptions = receives(caps.Video) ? (sub.receiveStreamIds ?? []).filter((id) => id !== 0) : [];
    const result = await media.peer.negotiate({
      offer,
      sendAudio: receives(caps.Audio),
      receiveAudio: sends(caps.Audio),
      publish: media.publication?.layers ?? [],
      subscriptions: subscriptions.slice(0, VIDEO_SUBSCRIPTION_LIMIT),
      audioMuted: sub.audioMuted === true,
    });
    if (!this.media.has(session)) return; // gone while the worker answered
    session.log.trace({ sdpAnswer: result.answer, tracks: result.tracks }, 'SUBSCRIBE_ACK');
    session.send({
      type: FrameType.SUBSCRIBE_ACK,
      suback: {
        duplex: sub.duplex,
        sdpAnswer: result.answer,
        allocations: (media.publication?.layers ?? []).map((layer) => ({ trackLabel: layer.trackLabel, streamId: layer.streamId, groupId: layer.groupId })),
        tracks: result.tracks,
      },
    });
    if (!this.presence.has(session.attendeeId)) this.markPresent(session, sub.audioMuted === true);
    if (!samePublication(hadPublication, media.publication)) this.broadcastIndex();
  }

  setMuted(session: SignalingSession, muted: boolean): void {
    const entry = this.presence.get(session.attendeeId);
    this.media.get(session)?.peer.setMuted(muted);
    if (!entry || entry.muted === muted) return;
    entry.muted = muted;
    this.broadcast({ type: FrameType.AUDIO_STREAM_ID_INFO, audioStreamIdInfo: { streams: [{ audioStreamId: entry.audioStreamId, muted }] } });
  }

  dataMessage(session: SignalingSession, messages: ISdkDataMessagePayload[]): void {
    const media = this.media.get(session);
    if (!media) return;
    const now = Date.now();
    media.dataTokens = Math.min(DATA_BURST, media.dataTokens + ((now - media.dataRefilledAt) / 1000) * DATA_RATE);
    media.dataRefilledAt = now;
    const delivered: ISdkDataMessagePayload[] = [];
    const refused: ISdkDataMessagePayload[] = [];
    for (const message of messages.slice(0, DATA_BURST)) {
      const topic = message.topic ?? '';
      const data = message.data ?? new Uint8Array();
      const lifetimeMs = Math.max(0, Math.min(Number(message.lifetimeMs ?? 0), DATA_MAX_LIFETIME_MS));
      const stamped = { topic, data, lifetimeMs, senderAttendeeId: session.attendeeId, senderExternalUserId: session.externalUserId };
      if (!DATA_TOPIC.test(topic) || data.length > DATA_MAX_BYTES || media.dataTokens < 1) {
        // The client reports a message that comes back with ingest time 0 as throttled or rejected.
        refused.push({ ...stamped, ingestTimeNs: 0 });
        continue;
      }
      media.dataTokens -= 1;
      const payload = { ...stamped, ingestTimeNs: now * 1_000_000 };
      delivered.push(payload);
      if (lifetimeMs > 0) {
        if (this.bufferedData.length >= DATA_BUFFERED_MAX) this.bufferedData.shift();
        this.bufferedData.push({ payload, expiresAt: now + lifetimeMs });
      }
    }
    if (refused.length > 0) session.send({ type: FrameType.DATA_MESSAGE, dataMessage: { messages: refused } });
    if (delivered.length > 0) this.broadcast({ type: FrameType.DATA_MESSAGE, dataMessage: { messages: delivered } }, session);
  }

  pauseResume(session: SignalingSession, pause: boolean, streamIds: number[]): void {
    this.media.get(session)?.peer.setPaused(streamIds, pause);
  }

  primaryMeetingJoin(session: SignalingSession, _credentials: ISdkMeetingSessionCredentials): void {
    // Promotion is a replica attendee's move; in a meeting without a primary there is nothing to join.
    if (!this.meeting.PrimaryMeetingId) {
      session.send({ type: FrameType.PRIMARY_MEETING_JOIN_ACK, primaryMeetingJoinAck: {}, error: { status: 403, description: 'not a replica meeting attendee' } });
      return;
    }
    session.send({ type: FrameType.PRIMARY_MEETING_JOIN_ACK, primaryMeetingJoinAck: {}, error: { status: 503, description: 'promotion is not available yet' } });
  }

  primaryMeetingLeave(_session: SignalingSession): void {}

  /** The session is gone (LEAVE, socket closed, pushed out): everything it held is released. */
  detach(session: SignalingSession, reason: string): void {
    if (!this.sessions.delete(session)) return;
    const media = this.media.get(session);
    this.media.delete(session);
    if (media) {
      media.peer.close();
      this.connections.attendeeDisconnected(this.meeting.MeetingId, session.attendeeId);
    }
    const entry = this.presence.get(session.attendeeId);
    if (entry && entry.session === session) {
      this.presence.delete(session.attendeeId);
      this.broadcast({ type: FrameType.AUDIO_STREAM_ID_INFO, audioStreamIdInfo: { streams: [{ audioStreamId: entry.audioStreamId }] } });
    }
    if (media?.publication) this.broadcastIndex();
    session.log.info({ reason }, 'session ended');
    session.close();
    if (this.sessions.size === 0) this.onEmpty();
  }

  end(audioStatus: number): void {
    for (const session of [...this.sessions]) session.end(audioStatus);
    this.close();
  }

  removeAttendee(attendeeId: string, audioStatus: number): void {
    for (const session of [...this.sessions]) {
      if (session.attendee.AttendeeId === attendeeId) session.end(audioStatus);
    }
  }

  updateCapabilities(attendee: AttendeeRecord): void {
    for (const session of this.sessions) {
      if (session.attendee.AttendeeId !== attendee.AttendeeId) continue;
      session.attendee = attendee;
      const media = this.media.get(session);
      if (!media) continue;
      const caps = attendee.Capabilities;
      media.peer.applyCapabilities({ sendAudio: receives(caps.Audio), receiveAudio: sends(caps.Audio), receiveVideo: receives(caps.Video) });
      if (media.publication && !sends(caps.Video)) {
        media.publication = undefined;
        media.peer.unpublish();
        this.broadcastIndex();
      } else {
        session.send(this.indexFor(session));
      }
    }
  }

  /** A snapshot of the live state, for operators and tests. */
  stats() {
    return Promise.all(
      [...this.media].map(async ([session, media]) => ({
        attendeeId: session.attendeeId,
        externalUserId: session.externalUserId,
        present: this.presence.get(session.attendeeId)?.session === session,
        muted: this.presence.get(session.attendeeId)?.muted ?? false,
        published: (media.publication?.layers ?? []).map((layer) => ({ ...layer, bitrateBps: this.room.bitrateOf(layer.streamId) })),
        downlinkBps: media.peer.estimatedDownlinkBps(),
        media: await media.peer.stats(),
      })),
    );
  }

  close(): void {
    for (const timer of this.timers) clearInterval(timer);
    for (const media of this.media.values()) media.peer.close();
    this.media.clear();
    this.worker.closeRoom(this.room);
  }

  // ---- state shared with clients ----

  private markPresent(session: SignalingSession, muted: boolean): void {
    const entry: Presence = {
      audioStreamId: this.nextAudioStreamId++,
      attendeeId: session.attendeeId,
      externalUserId: session.externalUserId,
      muted,
      session,
    };
    this.presence.set(session.attendeeId, entry);
    session.send({
      type: FrameType.AUDIO_STREAM_ID_INFO,
      audioStreamIdInfo: { streams: [...this.presence.values()].map(presenceInfo) },
    });
    this.broadcast({ type: FrameType.AUDIO_STREAM_ID_INFO, audioStreamIdInfo: { streams: [presenceInfo(entry)] } }, session);
  }

  private allocate(previous: Publication | undefined, descriptors: ISdkStreamDescriptor[]): Publication {
    const groupId = previous?.groupId ?? this.nextGroupId++;
    const layers = descriptors.map((descriptor, index): PublishedLayer => {
      const kept = previous?.layers[index];
      return {
        streamId: kept?.streamId ?? this.nextStreamId++,
        groupId,
        trackLabel: descriptor.trackLabel || kept?.trackLabel || `amphi-video-${groupId}`,
        maxBitrateKbps: descriptor.maxBitrateKbps ?? 0,
        width: descriptor.width ?? 0,
        height: descriptor.height ?? 0,
        framerate: descriptor.framerate ?? 0,
        layerIndex: index,
        layerCount: descriptors.length,
      };
    });
    return { groupId, layers };
  }

  private publishingSessions(): number {
    let count = 0;
    for (const media of this.media.values()) if (media.publication) count++;
    return count;
  }

  private indexFor(session: SignalingSession): OutgoingFrame {
    const own = this.media.get(session);
    const sources: ISdkStreamDescriptor[] = [];
    for (const [other, media] of this.media) {
      if (other === session || !media.publication) continue;
      const simulcast = media.publication.layers.length > 1;
      for (const layer of media.publication.layers) {
        if (simulcast && layer.maxBitrateKbps === 0) continue; // a paused simulcast layer
        sources.push({
          streamId: layer.streamId,
          groupId: layer.groupId,
          attendeeId: other.attendeeId,
          externalUserId: other.externalUserId,
          mediaType: SdkStreamMediaType.VIDEO,
          trackLabel: layer.trackLabel,
          maxBitrateKbps: layer.maxBitrateKbps,
          avgBitrateBps: this.room.bitrateOf(layer.streamId),
          ...(layer.width ? { width: layer.width, height: layer.height } : {}),
          ...(layer.framerate ? { framerate: layer.framerate } : {}),
        });
      }
    }
    const atCapacity = !sends(session.attendee.Capabilities.Video) || (!own?.publication && this.publishingSessions() >= MAX_VIDEO_SOURCES);
    return {
      type: FrameType.INDEX,
      index: { atCapacity, sources, numParticipants: this.presence.size },
    };
  }

  private broadcastIndex(): void {
    for (const session of this.sessions) if (session.state === 'joined') session.send(this.indexFor(session));
  }

  private broadcast(frame: OutgoingFrame, except?: SignalingSession): void {
    for (const session of this.sessions) if (session !== except && session.state === 'joined') session.send(frame);
  }

  private sendAudioMetadata(): void {
    if (this.presence.size === 0) return;
    const levels = this.room.audioLevels();
    const attendeeStates = [];
    for (const entry of this.presence.values()) {
      const level = levels.get(entry.attendeeId);
      // Listed attendees get their volume; the client treats everyone unlisted as silent.
      if (level !== undefined && !entry.muted) attendeeStates.push({ audioStreamId: entry.audioStreamId, volume: level, signalStrength: 2 });
    }
    this.broadcast({ type: FrameType.AUDIO_METADATA, audioMetadata: { attendeeStates } });
  }

  private sendBitrates(): void {
    const bitrates = [];
    for (const media of this.media.values()) {
      for (const layer of media.publication?.layers ?? []) bitrates.push({ sourceStreamId: layer.streamId, avgBitrateBps: this.room.bitrateOf(layer.streamId) });
    }
    if (bitrates.length === 0) return;
    for (const [session, media] of this.media) {
      if (session.state !== 'joined') continue;
      session.send({ type: FrameType.BITRATES, bitrates: { bitrates, serverAvailableOutgoingBitrate: media.peer.estimatedDownlinkBps() } });
    }
  }
}

function presenceInfo(entry: Presence) {
  return { audioStreamId: entry.audioStreamId, attendeeId: entry.attendeeId, externalUserId: entry.externalUserId, muted: entry.muted };
}

function samePublication(a: Publication | undefined, b: Publication | undefined): boolean {
  if (!a || !b) return a === b;
  return (
    a.layers.length === b.layers.length &&
    a.layers.every((layer, i) => layer.streamId === b.layers[i]!.streamId && layer.maxBitrateKbps === b.layers[i]!.maxBitrateKbps)
  );
}
