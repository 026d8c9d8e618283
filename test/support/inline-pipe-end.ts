import { EventEmitter } from 'node:events';
import { AudioMixer, MIX_ENCODER_SETTINGS } from '../../src/media/audio/audio-mixer.ts';
import { FrameClock } from '../../src/media/audio/frame-clock.ts';
import { loadOpusBackend } from '../../src/media/audio/opus/backend.ts';
import { OpusCodecPool } from '../../src/media/audio/opus/codec-pool.ts';
import { MediaRoom } from '../../src/media/sfu/room.ts';
import { VideoDownstream, VideoLayer } from '../../src/media/sfu/video-forwarding.ts';
import { PipeTransport, type PipeKeys } from '../../src/media/transport/pipe-transport.ts';
import type { PipeStats } from '../../src/media/worker/protocol.ts';
import { AudioRelay } from '../../src/replication/audio-relay.ts';
import { PrimaryPipeEnd, ReplicaPipeEnd } from '../../src/replication/pipe-ends.ts';

/** One VP8 packet of one frame: the payload descriptor's S bit set, the header's P bit clear on key frames. */
const vp8Packet = (seq: number, frame: number, keyFrame: boolean, ssrc: number) => {
  const packet = Buffer.alloc(200);
  packet[0] = 0x80;
  packet[1] = 96;
  packet.writeUInt16BE(seq & 0xffff, 2);
  packet.writeUInt32BE((frame * 3000) >>> 0, 4);
  packet.writeUInt32BE(ssrc, 8);
  packet[12] = 0x10;
  packet[13] = keyFrame ? 0 : 1;
  return packet;
};

const CAMERA_SSRC = 0x1234;
/** As an encoder does: a key frame when asked, and every few seconds anyway. */
const KEY_FRAME_EVERY_MS = 2000;

export interface InlinePipeEndEvents {
  /** Replica only: the primary's streams its viewer wants now (the test hands them to the primary). */
  demand: [streamIds: number[]];
}

export interface VideoReport {
  /** Primary: packets the camera published, and the key-frame requests that reached it. */
  sent: number;
  keyFrameRequests: number;
  /** Replica: packets the viewer got, and the longest time it got none once the first arrived. */
  received: number;
  longestStallMs: number;
}

/**
 * A pipe end built in this thread (as test/unit/pipe.test.ts builds them) rather than in a media
 * worker, so that a test can publish video into the primary's room and watch it from the
 * replica's: a worker's rooms take video from WebRTC publishers only.
 */
export class InlinePipeEnd extends EventEmitter<InlinePipeEndEvents> {
  private readonly video: VideoReport = { sent: 0, keyFrameRequests: 0, received: 0, longestStallMs: 0 };
  private lastViewedAt = 0;
  private publishing: NodeJS.Timeout | undefined;

  private constructor(
    private readonly clock: FrameClock,
    private readonly end: PrimaryPipeEnd | ReplicaPipeEnd,
    private readonly room: MediaRoom,
    private readonly transport: PipeTransport,
  ) {
    super();
    if (end instanceof ReplicaPipeEnd) end.on('demand', (streamIds) => this.emit('demand', streamIds));
  }

  static async open(role: 'primary' | 'replica', listenIp: string): Promise<InlinePipeEnd> {
    const clock = new FrameClock();
    const transport = await PipeTransport.open(listenIp);
    if (role === 'primary') {
      const room = new MediaRoom('primary', new AudioMixer({ codecs: new OpusCodecPool(loadOpusBackend(), MIX_ENCODER_SETTINGS) }));
      clock.add(room.mixer);
      clock.start();
      const end = new PrimaryPipeEnd(room, transport);
      room.adopt('pipe', end);
      return new InlinePipeEnd(clock, end, room, transport);
    }
    const room = new MediaRoom('replica', new AudioRelay());
    const end = new ReplicaPipeEnd(room, transport);
    room.adopt('pipe', end);
    return new InlinePipeEnd(clock, end, room, transport);
  }

  get port(): number {
    return this.transport.port;
  }

  connect(remote: { address: string; port: number }, keys: PipeKeys): void {
    this.end.connect(remote, keys);
  }

  stats(): PipeStats {
    return this.end.stats();
  }

  videoReport(): VideoReport {
    return { ...this.video };
  }

  /** Primary: a camera publishing `streamId` in the room, one packet per frame at `fps`. */
  publishVideo(streamId: number, fps: number): void {
    this.primary();
    let keyFrameWanted = true;
    let lastKeyFrameAt = 0;
    const camera = new VideoLayer(streamId, 1, () => {
      this.video.keyFrameRequests++;
      keyFrameWanted = true;
    });
    camera.ssrc = CAMERA_SSRC;
    this.room.addLayer(camera); // the pipe end hears of it from the room
    let frame = 0;
    this.publishing = setInterval(() => {
      const now = Date.now();
      const keyFrame = keyFrameWanted || now - lastKeyFrameAt >= KEY_FRAME_EVERY_MS;
      if (keyFrame) {
        keyFrameWanted = false;
        lastKeyFrameAt = now;
      }
      camera.receive(vp8Packet(frame, frame, keyFrame, CAMERA_SSRC), 12, 200);
      frame++;
      this.video.sent++;
    }, 1000 / fps);
  }

  /** Primary: the streams the replica's viewers want (what its `demand` said). */
  sendStreams(streamIds: number[]): void {
    this.primary().sendStreams(streamIds);
  }

  /** Replica: the primary publishes `streamId`; a viewer here watches it (which makes the replica demand it). */
  view(streamId: number): void {
    const end = this.end;
    if (!(end instanceof ReplicaPipeEnd)) throw new Error('only a replica end has viewers');
    end.setStreams([{ streamId, groupId: 1 }]);
    const viewer = new VideoDownstream(101, 96, 0, {
      sendRtp: () => {
        const now = performance.now();
        if (this.video.received > 0) this.video.longestStallMs = Math.max(this.video.longestStallMs, now - this.lastViewedAt);
        this.lastViewedAt = now;
        this.video.received++;
      },
    });
    viewer.attach(this.room.layer(streamId));
  }

  close(): void {
    clearInterval(this.publishing);
    this.clock.stop();
    this.end.close();
    this.room.close();
  }

  private primary(): PrimaryPipeEnd {
    if (!(this.end instanceof PrimaryPipeEnd)) throw new Error('only the primary end publishes');
    return this.end;
  }
}
