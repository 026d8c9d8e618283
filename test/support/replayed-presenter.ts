import { randomBytes } from 'node:crypto';
import type { ChimeSDKMeetingsClient, Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import { loadOpusBackend } from '../../src/media/audio/opus/backend.ts';
import { visitRtcp } from '../../src/media/protocol/rtp.ts';
import { ToneEncoder } from './audio-tones.ts';
import { joinMeeting, leave, type JoinedSession } from './media-session.ts';

/**
 * The presenter in the primary: a camera at ~1.5 Mb/s and a microphone, sent as RTP replayed from a
 * pre-built loop rather than from a browser (steadier, and no browser on the load's core).
 *
 * Video: VP8 RTP as Chrome packetizes a 640×384 camera at 30 frames/s: 1,150-byte packets, a delta frame
 * of 5 packets every 33 ms and a key frame of 40 packets every 3 s (and on a PLI, at most once a second),
 * i.e. ~1.5 Mb/s and ~163 packets/s, released as Chrome's pacer releases them: at 2.5 times the target bitrate in
 * 5 ms bursts, so a key frame leaves over ~100 ms rather than at once. Each packet's RTP timestamp is the time it
 * leaves (a real sender gives the packets of one frame one timestamp; Amphi only rewrites timestamps, so this costs
 * it nothing), which lets the viewers measure the delay Amphi adds to every packet. The payloads are the RFC 7741 descriptor and VP8 frame tag (all the
 * server reads) followed by random bytes: Amphi never decodes video, so encoded pictures would cost it the
 * same. Audio: a 440 Hz tone encoded once with libopus (50 frames, looped), 20 ms frames with the
 * ssrc-audio-level extension marking speech, so the primary's mixer decodes and mixes it for real.
 * One camera, no simulcast: the replica's viewers all take the one layer.
 */

/** The recorded offer's SSRCs (chrome-camera-and-subscription): what the server expects this client to send. */
const AUDIO_SSRC = 4081466887;
const VIDEO_SSRC = 1145014417;
const OPUS_PAYLOAD_TYPE = 111;
const VP8_PAYLOAD_TYPE = 96;
/** ssrc-audio-level's id in the recorded offer. */
const AUDIO_LEVEL_EXTENSION_ID = 1;
const SPEECH_LEVEL = 30;

const FRAME_INTERVAL_MS = 1000 / 30;
const VIDEO_PACKET_PAYLOAD = 1150;
const DELTA_FRAME_PACKETS = 5;
const KEY_FRAME_PACKETS = 40;
const KEY_FRAME_INTERVAL_MS = 3000;
const MIN_KEY_FRAME_GAP_MS = 1000;
const AUDIO_FRAME_MS = 20;
/** Chrome's pacer: 2.5 × the ~1.5 Mb/s target, in bytes per ms; at most two ticks' worth saved up. */
const PACING_BYTES_PER_MS = (2.5 * 1_500_000) / 8 / 1000;
const PACING_MAX_CREDIT_BYTES = PACING_BYTES_PER_MS * 10;
/** Frames a late wake-up may send at once; beyond that the stream skips, as a starved encoder would. */
const MAX_CATCH_UP_FRAMES = 10;

export const PUBLISHER_VIDEO = { packetPayloadBytes: VIDEO_PACKET_PAYLOAD, deltaFramePackets: DELTA_FRAME_PACKETS, keyFramePackets: KEY_FRAME_PACKETS, keyFrameIntervalMs: KEY_FRAME_INTERVAL_MS, framesPerSecond: 30 };

export class Publisher {
  private videoSeq = Math.floor(Math.random() * 0x8000);
  private audioSeq = Math.floor(Math.random() * 0x8000);
  private audioTimestamp = Math.floor(Math.random() * 0x7fffffff);
  private audioFrame = 0;
  private lastKeyFrameAt = -Infinity;
  private keyFrameWanted = true;
  private timer: NodeJS.Timeout | undefined;
  private startedAt = 0;
  private framesSent = 0;
  private audioFramesSent = 0;
  private readonly payloadBytes = randomBytes(VIDEO_PACKET_PAYLOAD);
  /** Video packets built and waiting for the pacer, oldest first. */
  private readonly paced: Buffer[] = [];
  private pacingCredit = 0;
  private pacedAt = 0;
  /** Packets sent and the key frames among the frames. */
  readonly sent = { video: 0, audio: 0, keyFrames: 0, pliReceived: 0 };

  private constructor(
    readonly session: JoinedSession,
    private readonly opusFrames: Buffer[],
  ) {
    session.media.on('rtcp', (packet) =>
      visitRtcp(packet, {
        pli: () => {
          this.sent.pliReceived++;
          this.keyFrameWanted = true;
        },
        fir: () => void (this.keyFrameWanted = true),
      }),
    );
  }

  static async join(api: ChimeSDKMeetingsClient, primary: Meeting): Promise<Publisher> {
    const session = await joinMeeting(api, primary, 'presenter', { publish: true, checkIntervalMs: 2500, authenticateOneIn: 1 });
    const backend = loadOpusBackend();
    const tone = new ToneEncoder(440, backend);
    const opusFrames = Array.from({ length: 50 }, () => tone.frame());
    tone.free();
    return new Publisher(session, opusFrames);
  }

  /** The server's stream id of the camera (what viewers subscribe to). */
  get videoStreamId(): number {
    const allocation = this.session.ack.allocations?.find((a) => a.trackLabel === 'AmazonChimeExpressVideo') ?? this.session.ack.allocations?.[0];
    if (allocation?.streamId === undefined || allocation.streamId === null) throw new Error('the server allocated no stream for the camera');
    return allocation.streamId;
  }

  /**
   * Sends what is due by the clock (30 video frames and 50 audio frames a second), catching up after a late
   * wake-up (up to 10 frames), so a busy machine delays the stream but does not thin it.
   */
  start(): void {
    this.startedAt = performance.now();
    this.timer = setInterval(() => {
      const elapsed = performance.now() - this.startedAt;
      const videoDue = Math.floor(elapsed / FRAME_INTERVAL_MS);
      if (videoDue - this.framesSent > MAX_CATCH_UP_FRAMES) this.framesSent = videoDue - MAX_CATCH_UP_FRAMES;
      while (this.framesSent < videoDue) {
        this.framesSent++;
        this.sendFrame();
      }
      const audioDue = Math.floor(elapsed / AUDIO_FRAME_MS);
      if (audioDue - this.audioFramesSent > MAX_CATCH_UP_FRAMES) this.audioFramesSent = audioDue - MAX_CATCH_UP_FRAMES;
      while (this.audioFramesSent < audioDue) {
        this.audioFramesSent++;
        this.sendAudio();
      }
      this.releasePaced();
    }, 5);
  }

  close(): void {
    clearInterval(this.timer);
    leave(this.session);
  }

  /** One video frame, its packets queued for the pacer. */
  private sendFrame(): void {
    const now = performance.now();
    const key = (this.keyFrameWanted && now - this.lastKeyFrameAt >= MIN_KEY_FRAME_GAP_MS) || now - this.lastKeyFrameAt >= KEY_FRAME_INTERVAL_MS;
    if (key) {
      this.keyFrameWanted = false;
      this.lastKeyFrameAt = now;
      this.sent.keyFrames++;
    }
    const packets = key ? KEY_FRAME_PACKETS : DELTA_FRAME_PACKETS;
    for (let i = 0; i < packets; i++) {
      const packet = Buffer.allocUnsafe(12 + VIDEO_PACKET_PAYLOAD);
      packet[0] = 0x80;
      packet[1] = (i === packets - 1 ? 0x80 : 0) | VP8_PAYLOAD_TYPE;
      packet.writeUInt16BE(this.videoSeq++ & 0xffff, 2);
      packet.writeUInt32BE(VIDEO_SSRC, 8);
      this.payloadBytes.copy(packet, 12);
      packet[12] = i === 0 ? 0x10 : 0x00; // RFC 7741: S=1 on the frame's first packet, partition 0
      if (i === 0) packet[13] = key ? 0x9c : 0x9d; // VP8 frame tag: bit 0 clear on a key frame
      this.paced.push(packet);
    }
  }

  /**
   * Sends what the pacing budget allows, each packet stamped with its send time on the 90 kHz clock
   * (performance.now), which the viewers in this process read the same way: their one-way delay is arrival
   * time minus this, up to a constant the server's rewrite adds.
   */
  private releasePaced(): void {
    const now = performance.now();
    this.pacingCredit = Math.min(PACING_MAX_CREDIT_BYTES, this.pacingCredit + (now - this.pacedAt) * PACING_BYTES_PER_MS);
    this.pacedAt = now;
    while (this.paced.length > 0 && this.pacingCredit > 0) {
      const packet = this.paced.shift()!;
      packet.writeUInt32BE(Math.round(performance.now() * 90) >>> 0, 4);
      this.session.media.sendRtp(packet);
      this.pacingCredit -= packet.length;
      this.sent.video++;
    }
  }

  private sendAudio(): void {
    const payload = this.opusFrames[this.audioFrame++ % this.opusFrames.length]!;
    const packet = Buffer.allocUnsafe(12 + 8 + payload.length);
    packet[0] = 0x90; // V=2, X=1
    packet[1] = OPUS_PAYLOAD_TYPE;
    packet.writeUInt16BE(this.audioSeq++ & 0xffff, 2);
    packet.writeUInt32BE(this.audioTimestamp >>> 0, 4);
    this.audioTimestamp += 960;
    packet.writeUInt32BE(AUDIO_SSRC, 8);
    // RFC 8285 one-byte header extension: ssrc-audio-level (RFC 6464), voice active.
    packet.writeUInt16BE(0xbede, 12);
    packet.writeUInt16BE(1, 14);
    packet[16] = (AUDIO_LEVEL_EXTENSION_ID << 4) | 0;
    packet[17] = 0x80 | SPEECH_LEVEL;
    packet[18] = 0;
    packet[19] = 0;
    payload.copy(packet, 20);
    this.session.media.sendRtp(packet);
    this.sent.audio++;
  }
}
