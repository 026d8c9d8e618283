/**
 * The two sides of the primary → replica hop benchmark, each with its own room and its end of a real pipe (SRTP
 * AEAD_AES_128_GCM over UDP on 127.0.0.1), so they can run in one process (hop.ts) or in two (cross-node-hop.ts,
 * as between two nodes). The primary side feeds its room like a primary would: the shared mix at 50 packets/s
 * and a 1,200-byte video stream at 200 packets/s, paced like real media so each packet meets an idle event loop.
 * The replica side has one listener and one video viewer, and records each packet's delay from the moment the
 * primary's room handed it to PrimaryPipeEnd to the moment ReplicaPipeEnd's room hands it to the viewer.
 *
 * Packets carry their send time from CLOCK_MONOTONIC (process.hrtime), which every process of a machine reads
 * alike, so a delay measured across two processes is as exact as one measured inside one.
 */
import { EventEmitter } from 'node:events';
import { AudioRelay } from '../../src/replication/audio-relay.ts';
import type { AudioHub } from '../../src/media/audio/audio-hub.ts';
import type { MixerSink } from '../../src/media/audio/audio-mixer.ts';
import { PipeTransport, type PipeKeys } from '../../src/media/transport/pipe-transport.ts';
import { PrimaryPipeEnd, ReplicaPipeEnd } from '../../src/replication/pipe-ends.ts';
import { MediaRoom } from '../../src/media/sfu/room.ts';
import { VideoDownstream, VideoLayer } from '../../src/media/sfu/video-forwarding.ts';

const CAMERA_STREAM_ID = 7;
const CAMERA_GROUP_ID = 1;
const CAMERA_SSRC = 0x1234;
const VIDEO_PACKET_BYTES = 1200;

export interface PipeAddress {
  address: string;
  port: number;
}

/** Writes the monotonic clock, in nanoseconds, at `offset`. */
const stamp = (packet: Buffer, offset: number) => packet.writeBigUInt64BE(process.hrtime.bigint(), offset);
/** Milliseconds since the stamp at `offset`. */
const since = (packet: Buffer, offset: number) => Number(process.hrtime.bigint() - packet.readBigUInt64BE(offset)) / 1e6;

export class PrimarySide {
  private audioTimer?: NodeJS.Timeout;
  private videoTimer?: NodeJS.Timeout;
  private seq = 0;
  private audioFrames = 0;
  private videoPackets = 0;
  private counted = { audio: 0, video: 0 };

  private constructor(
    private readonly room: MediaRoom,
    private readonly end: PrimaryPipeEnd,
    private readonly pipe: PipeTransport,
    private readonly sharedSink: MixerSink,
    private readonly camera: VideoLayer,
  ) {}

  static async open(listenIp = '127.0.0.1'): Promise<PrimarySide> {
    // Nothing mixes in this room: the side feeds the sink PrimaryPipeEnd adds for the shared mix itself, with stamped frames.
    const sinks: MixerSink[] = [];
    const hub: AudioHub = {
      addSource: () => undefined,
      removeSource: () => undefined,
      push: () => undefined,
      addSink: (sink) => void sinks.push(sink),
      removeSink: () => undefined,
      levels: () => [],
      talkerIds: () => [],
      close: () => undefined,
    };
    const room = new MediaRoom('primary', hub);
    const pipe = await PipeTransport.open(listenIp);
    const end = new PrimaryPipeEnd(room, pipe);
    room.adopt('pipe', end);
    // The primary's camera, a layer of the primary room the replica's viewer subscribes to.
    const camera = new VideoLayer(CAMERA_STREAM_ID, CAMERA_GROUP_ID, () => undefined);
    camera.ssrc = CAMERA_SSRC;
    room.addLayer(camera);
    return new PrimarySide(room, end, pipe, sinks[0]!, camera);
  }

  get port(): number {
    return this.pipe.port;
  }

  connect(remote: PipeAddress, keys: PipeKeys): void {
    this.end.connect(remote, keys);
  }

  /** What the replica's viewers subscribe to (its 'demand'), relayed by whoever connects the two sides. */
  sendStreams(streamIds: number[]): void {
    this.end.sendStreams(streamIds);
  }

  start(): void {
    this.audioTimer = setInterval(() => {
      const frame = Buffer.alloc(80);
      stamp(frame, 0);
      this.sharedSink.deliver(frame, 30, (++this.audioFrames * 960) >>> 0);
    }, 20);
    this.videoTimer = setInterval(() => {
      const packet = this.videoPacket(this.videoPackets++ % 300 === 0);
      this.camera.receive(packet, 12, packet.length);
    }, 5);
  }

  /** Counts packets sent from now on (after the warm-up). */
  resetCounts(): void {
    this.counted = { audio: this.audioFrames, video: this.videoPackets };
  }

  /** Stops sending; returns how many packets were sent since the last resetCounts. */
  stop(): { audio: number; video: number } {
    clearInterval(this.audioTimer);
    clearInterval(this.videoTimer);
    return { audio: this.audioFrames - this.counted.audio, video: this.videoPackets - this.counted.video };
  }

  close(): void {
    this.stop();
    this.end.close();
    this.room.close();
  }

  private videoPacket(key: boolean): Buffer {
    const packet = Buffer.alloc(VIDEO_PACKET_BYTES);
    packet[0] = 0x80;
    packet[1] = 96;
    packet.writeUInt16BE(this.seq++ & 0xffff, 2);
    packet.writeUInt32BE((this.seq * 450) >>> 0, 4);
    packet.writeUInt32BE(CAMERA_SSRC, 8);
    // VP8 payload descriptor: start of a partition; a key frame when the P bit is clear.
    packet[12] = 0x10;
    packet[13] = key ? 0x00 : 0x01;
    stamp(packet, packet.length - 8);
    return packet;
  }
}

export interface ReplicaSideEvents {
  /** The primary's streams the viewer wants now: hand them to PrimarySide.sendStreams. */
  demand: [streamIds: number[]];
}

export class ReplicaSide extends EventEmitter<ReplicaSideEvents> {
  private audioDelaysMs: number[] = [];
  private videoDelaysMs: number[] = [];

  private constructor(
    private readonly room: MediaRoom<AudioRelay>,
    private readonly end: ReplicaPipeEnd,
    private readonly pipe: PipeTransport,
  ) {
    super();
    end.on('demand', (streamIds) => this.emit('demand', streamIds));
  }

  static async open(listenIp = '127.0.0.1'): Promise<ReplicaSide> {
    const room = new MediaRoom('replica', new AudioRelay());
    const pipe = await PipeTransport.open(listenIp);
    const end = new ReplicaPipeEnd(room, pipe);
    room.adopt('pipe', end);
    return new ReplicaSide(room, end, pipe);
  }

  get port(): number {
    return this.pipe.port;
  }

  connect(remote: PipeAddress, keys: PipeKeys): void {
    this.end.connect(remote, keys);
  }

  /** The replica learns of the primary's camera; a listener joins and a viewer subscribes (a 'demand' follows). */
  subscribe(): void {
    this.end.setStreams([{ streamId: CAMERA_STREAM_ID, groupId: CAMERA_GROUP_ID }]);
    const listener: MixerSink = { deliver: (payload) => void (payload.length >= 8 && this.audioDelaysMs.push(since(payload, 0))) };
    this.room.mixer.addSink(listener, 'viewer');
    const downstream = new VideoDownstream(99, 96, 0, { sendRtp: (packet) => void this.videoDelaysMs.push(since(packet, packet.length - 8)) });
    downstream.attach(this.room.layer(CAMERA_STREAM_ID));
  }

  /** Forgets the delays so far (the warm-up's). */
  reset(): void {
    this.audioDelaysMs = [];
    this.videoDelaysMs = [];
  }

  delays(): { audio: number[]; video: number[] } {
    return { audio: this.audioDelaysMs, video: this.videoDelaysMs };
  }

  close(): void {
    this.end.close();
    this.room.close();
  }
}
