import { EventEmitter } from 'node:events';
import type { MixerSink } from '../media/audio/audio-mixer.ts';
import type { AudioRelay, RelayUplink } from './audio-relay.ts';
import type { MediaRoom, RoomPeer } from '../media/sfu/room.ts';
import { audioLevel, buildPli, rtp, rtpHeaderLength, rtpPayloadEnd, visitRtcp, writeAudioRtpPacket } from '../media/protocol/rtp.ts';
import type { PipeKeys, PipeTransport } from '../media/transport/pipe-transport.ts';
import { VideoDownstream, VideoLayer } from '../media/sfu/video-forwarding.ts';

/**
 * The two ends of the pipe between a primary's room and one replica's room, each over a PipeTransport.
 *
 * SSRCs inside a pipe say what a stream is: the primary's shared mix, a promoted attendee's
 * personal mix or uplink voice (by promotion slot), or a video stream (by stream id).
 */
export const PipeSsrc = {
  sharedMix: 0x0a000000,
  personalMix: (slot: number) => 0x0b000000 + slot,
  uplinkAudio: (slot: number) => 0x0c000000 + slot,
  video: (streamId: number) => 0x0d000000 + streamId,
  kind: (ssrc: number) => ssrc >>> 24,
  index: (ssrc: number) => ssrc & 0xffffff,
} as const;

/** The audio level travels in a one-byte header extension with this id inside the pipe. */
const PIPE_LEVEL_EXTENSION = 1;
const VP8_PAYLOAD_TYPE = 96;
const OPUS_PAYLOAD_TYPE = 111;
const FRAME_SAMPLES = 960;
const scratch = Buffer.allocUnsafe(1600);

/**
 * Sends one audio stream into the pipe: RTP header with the pipe SSRC, optional level. Mixes
 * carry their mixer's media-clock timestamp, so the replica keeps its gaps; a voice going up
 * has its own count.
 */
class PipeAudioStream {
  private seq = 0;
  private timestamp = 0;
  constructor(
    private readonly pipe: PipeTransport,
    readonly ssrc: number,
  ) {}
  send(payload: Buffer, level = -1, timestamp?: number): void {
    this.seq = (this.seq + 1) & 0xffff;
    this.timestamp = timestamp ?? (this.timestamp + FRAME_SAMPLES) >>> 0;
    const levelId = level >= 0 ? PIPE_LEVEL_EXTENSION : 0;
    const length = writeAudioRtpPacket(scratch, OPUS_PAYLOAD_TYPE, this.seq, this.timestamp, this.ssrc, levelId, level, payload);
    this.pipe.sendRtp(scratch.subarray(0, length));
  }
}

const payloadOf = (packet: Buffer): [number, number] | undefined => {
  const header = rtpHeaderLength(packet);
  const end = rtpPayloadEnd(packet);
  return header < 0 || end < header ? undefined : [header, end];
};

type StreamRef = { streamId: number; groupId: number };

/**
 * What both ends do alike: their transport's part. Whoever builds an end hands it to its room
 * (`MediaRoom.adopt`), which tells it of new layers and closes it with itself.
 */
export interface PipeEnd extends RoomPeer {
  /** The other end's address and this pipe's keys; nothing crosses before. */
  connect(remote: { address: string; port: number }, keys: PipeKeys): void;
  stats(): PipeTransport['stats'];
}

export interface PipeEndEvents {
  /** The end closed (by its parent or with its room) and its transport with it. */
  closed: [];
}

export interface ReplicaPipeEndEvents extends PipeEndEvents {
  /** The primary's streams this replica's viewers subscribe to now. */
  demand: [streamIds: number[]];
}

/** Makes `incoming` hold one pipe-fed layer per stream, adding new ones to the room and retiring the rest. */
function syncIncomingLayers(room: MediaRoom, pipe: PipeTransport, incoming: Map<number, VideoLayer>, streams: StreamRef[], created?: (layer: VideoLayer) => void): void {
  const wanted = new Map(streams.map((s) => [s.streamId, s]));
  for (const [streamId, layer] of incoming) {
    if (!wanted.has(streamId)) {
      incoming.delete(streamId);
      room.removeLayer(layer);
    }
  }
  for (const { streamId, groupId } of wanted.values()) {
    if (incoming.has(streamId)) continue;
    // Key-frame requests for a pipe-fed layer go back through the pipe.
    const layer = new VideoLayer(streamId, groupId, (ssrc) => pipe.sendRtcp(buildPli(PipeSsrc.sharedMix, ssrc)));
    layer.ssrc = PipeSsrc.video(streamId);
    created?.(layer);
    incoming.set(streamId, layer);
    room.addLayer(layer);
  }
}

/** Makes `outgoing` hold one pipe sender per stream id, fed by the room's own layer of that id (never a pipe-fed one). */
function syncOutgoing(room: MediaRoom, pipe: PipeTransport, outgoing: Map<number, VideoDownstream>, incoming: Map<number, VideoLayer>, streamIds: number[]): void {
  const wanted = new Set(streamIds);
  for (const [streamId, downstream] of outgoing) {
    if (!wanted.has(streamId)) {
      downstream.detach();
      outgoing.delete(streamId);
    }
  }
  for (const streamId of wanted) {
    let downstream = outgoing.get(streamId);
    if (!downstream) {
      downstream = new VideoDownstream(PipeSsrc.video(streamId), VP8_PAYLOAD_TYPE, 0, pipe);
      outgoing.set(streamId, downstream);
    }
    const layer = room.layer(streamId);
    if (layer && layer !== incoming.get(streamId)) downstream.attach(layer);
  }
}

/**
 * The primary's end: the shared mix once for the whole replica; each video stream once, while
 * the replica wants it; and, for promoted attendees, their personal mix down and their voice
 * and video up into this room as primary attendees.
 */
export class PrimaryPipeEnd extends EventEmitter<PipeEndEvents> implements PipeEnd {
  private readonly shared: PipeAudioStream;
  private readonly sharedSink: MixerSink;
  private readonly outgoing = new Map<number, VideoDownstream>();
  /** The promotions this end serves, by slot: the one record of them in the primary's worker. */
  private readonly promoted = new Map<number, { attendeeId: string; sink: MixerSink }>();
  private readonly incoming = new Map<number, VideoLayer>();
  private closed = false;

  constructor(
    private readonly room: MediaRoom,
    private readonly pipe: PipeTransport,
  ) {
    super();
    this.shared = new PipeAudioStream(pipe, PipeSsrc.sharedMix);
    this.sharedSink = { deliver: (payload, level, timestamp) => this.shared.send(payload, level, timestamp) };
    room.mixer.addSink(this.sharedSink);
    pipe.on('rtp', (packet) => this.receive(packet));
    pipe.on('rtcp', (packet) =>
      visitRtcp(packet, {
        pli: (ssrc) => this.keyFrameWanted(ssrc),
        fir: (ssrc) => this.keyFrameWanted(ssrc),
      }),
    );
  }

  connect(remote: { address: string; port: number }, keys: PipeKeys): void {
    this.pipe.connect(remote, keys);
  }

  stats(): PipeTransport['stats'] {
    return { ...this.pipe.stats };
  }

  /** The streams the replica's viewers subscribe to now. */
  sendStreams(streamIds: number[]): void {
    syncOutgoing(this.room, this.pipe, this.outgoing, this.incoming, streamIds);
  }

  /** A layer appeared in the room (a publisher joined or was promoted): serve pending demand. */
  layerAvailable(layer: VideoLayer): void {
    if (layer !== this.incoming.get(layer.streamId)) this.outgoing.get(layer.streamId)?.attach(layer);
  }

  promote(slot: number, attendeeId: string): void {
    const personal = new PipeAudioStream(this.pipe, PipeSsrc.personalMix(slot));
    const sink: MixerSink = { deliver: (payload, level, timestamp) => personal.send(payload, level, timestamp) };
    this.promoted.set(slot, { attendeeId, sink });
    this.room.mixer.addSource(attendeeId);
    this.room.mixer.addSink(sink, attendeeId);
  }

  demote(slot: number): void {
    const entry = this.promoted.get(slot);
    if (!entry) return;
    this.promoted.delete(slot);
    this.room.mixer.removeSink(entry.sink);
    this.room.mixer.removeSource(entry.attendeeId);
  }

  /** Video a promoted attendee publishes through the replica enters this room as these layers. */
  receiveStreams(streams: StreamRef[]): void {
    syncIncomingLayers(this.room, this.pipe, this.incoming, streams);
  }

  private receive(packet: Buffer): void {
    const ssrc = rtp.ssrc(packet);
    const bounds = payloadOf(packet);
    if (!bounds) return;
    const kind = PipeSsrc.kind(ssrc);
    if (kind === PipeSsrc.kind(PipeSsrc.uplinkAudio(0))) {
      const entry = this.promoted.get(PipeSsrc.index(ssrc));
      if (entry) this.room.mixer.push(entry.attendeeId, packet.subarray(bounds[0], bounds[1]), audioLevel(packet, PIPE_LEVEL_EXTENSION));
    } else if (kind === PipeSsrc.kind(PipeSsrc.video(0))) {
      this.incoming.get(PipeSsrc.index(ssrc))?.receive(packet, bounds[0], bounds[1]);
    }
  }

  private keyFrameWanted(ssrc: number): void {
    if (PipeSsrc.kind(ssrc) === PipeSsrc.kind(PipeSsrc.video(0))) this.outgoing.get(PipeSsrc.index(ssrc))?.requestKeyFrame();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.room.mixer.removeSink(this.sharedSink);
    for (const slot of [...this.promoted.keys()]) this.demote(slot);
    for (const downstream of this.outgoing.values()) downstream.detach();
    for (const layer of this.incoming.values()) this.room.removeLayer(layer);
    this.pipe.close();
    this.emit('closed');
  }
}

/**
 * The replica's end: the primary's streams become this room's layers (fetched while someone
 * here subscribes, key-frame requests merged here first), the shared mix goes to every
 * listener, and a promoted attendee's voice and video go up.
 */
export class ReplicaPipeEnd extends EventEmitter<ReplicaPipeEndEvents> implements PipeEnd {
  private readonly incoming = new Map<number, VideoLayer>();
  private readonly demanded = new Set<number>();
  /**
   * Local attendees now promoted, with their slot and voice stream: the one record of who is
   * promoted in the replica's worker (the relay asks here through `uplink`).
   */
  private readonly promoted = new Map<string, { slot: number; voice: PipeAudioStream }>();
  private readonly outgoing = new Map<number, VideoDownstream>();
  private readonly uplink: RelayUplink = {
    carries: (attendeeId) => this.promoted.has(attendeeId),
    send: (attendeeId, payload, level) => this.promoted.get(attendeeId)?.voice.send(payload, level),
  };
  private closed = false;

  constructor(
    private readonly room: MediaRoom<AudioRelay>,
    private readonly pipe: PipeTransport,
  ) {
    super();
    room.mixer.attachUplink(this.uplink);
    pipe.on('rtp', (packet) => this.receive(packet));
    pipe.on('rtcp', (packet) =>
      visitRtcp(packet, {
        pli: (ssrc) => this.outgoing.get(PipeSsrc.index(ssrc))?.requestKeyFrame(),
        fir: (ssrc) => this.outgoing.get(PipeSsrc.index(ssrc))?.requestKeyFrame(),
      }),
    );
  }

  connect(remote: { address: string; port: number }, keys: PipeKeys): void {
    this.pipe.connect(remote, keys);
  }

  stats(): PipeTransport['stats'] {
    return { ...this.pipe.stats };
  }

  /** The primary's published streams (the ones not published here by a promoted attendee). */
  setStreams(streams: StreamRef[]): void {
    syncIncomingLayers(this.room, this.pipe, this.incoming, streams, (layer) => {
      layer.on('demandChange', (wanted) => {
        if (wanted) this.demanded.add(layer.streamId);
        else this.demanded.delete(layer.streamId);
        if (!this.closed) this.emit('demand', [...this.demanded]);
      });
    });
    let changed = false;
    for (const streamId of [...this.demanded]) {
      if (!this.incoming.has(streamId)) {
        this.demanded.delete(streamId);
        changed = true;
      }
    }
    if (changed) this.emit('demand', [...this.demanded]);
  }

  /** From now on the attendee's voice goes up (its last frames at once) and it hears its own mix. */
  promote(slot: number, attendeeId: string): void {
    this.promoted.set(attendeeId, { slot, voice: new PipeAudioStream(this.pipe, PipeSsrc.uplinkAudio(slot)) });
    this.room.mixer.sendKeptFrames(attendeeId);
  }

  demote(attendeeId: string): void {
    this.promoted.delete(attendeeId);
  }

  /** A promoted attendee's published layers, sent up to the primary. */
  sendStreams(streamIds: number[]): void {
    syncOutgoing(this.room, this.pipe, this.outgoing, this.incoming, streamIds);
  }

  layerAvailable(layer: VideoLayer): void {
    if (layer !== this.incoming.get(layer.streamId)) this.outgoing.get(layer.streamId)?.attach(layer);
  }

  private receive(packet: Buffer): void {
    const ssrc = rtp.ssrc(packet);
    const bounds = payloadOf(packet);
    if (!bounds) return;
    const kind = PipeSsrc.kind(ssrc);
    if (ssrc === PipeSsrc.sharedMix) {
      this.room.mixer.deliverShared(packet.subarray(bounds[0], bounds[1]), audioLevel(packet, PIPE_LEVEL_EXTENSION), rtp.timestamp(packet));
    } else if (kind === PipeSsrc.kind(PipeSsrc.personalMix(0))) {
      const slot = PipeSsrc.index(ssrc);
      for (const [attendeeId, entry] of this.promoted) {
        if (entry.slot === slot) this.room.mixer.deliverPersonal(attendeeId, packet.subarray(bounds[0], bounds[1]), audioLevel(packet, PIPE_LEVEL_EXTENSION), rtp.timestamp(packet));
      }
    } else if (kind === PipeSsrc.kind(PipeSsrc.video(0))) {
      this.incoming.get(PipeSsrc.index(ssrc))?.receive(packet, bounds[0], bounds[1]);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.room.mixer.detachUplink(this.uplink);
    this.promoted.clear();
    for (const downstream of this.outgoing.values()) downstream.detach();
    for (const layer of this.incoming.values()) this.room.removeLayer(layer);
    this.incoming.clear();
    this.pipe.close();
    this.emit('closed');
  }
}
