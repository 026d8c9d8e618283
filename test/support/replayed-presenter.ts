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
 *
 * With `simulcast`, the camera is published as the SDK publishes it with simulcast on (the recorded offer
 * chrome-simulcast-publish: rids low, mid paused, hi; SSRCs announced only by the mid and rid header extensions on
 * each packet): `hi` is the stream above, `low` a 320×192 layer of ~300 kb/s (one packet per delta frame, 8 per key
 * frame). Viewers subscribe to `hi`, so each still receives the ~1.5 Mb/s stream.
 */

/** The recorded offers' SSRCs: what the server expects this client to send (simulcast video's come from its rids). */
const CAMERA_OFFER = { name: 'chrome-camera-and-subscription', audioSsrc: 4081466887, videoSsrc: 1145014417 } as const;
const SIMULCAST_OFFER = { name: 'chrome-simulcast-publish', audioSsrc: 554263795 } as const;
/** The simulcast offer's header extension ids (sdes:mid, sdes:rtp-stream-id) and the video m-line's mid. */
const MID_EXTENSION_ID = 4;
const RID_EXTENSION_ID = 10;
const VIDEO_MID = '1';
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
/** Chrome's pacer: 2.5 × the target bitrate (~1.5 Mb/s, ~1.8 with the low layer), in bytes per ms. */
const PACING_FACTOR = 2.5;
/** At most two 5 ms ticks' worth of pacing budget saved up. */
const PACING_MAX_CREDIT_MS = 10;
const LOW_LAYER = { deltaFramePackets: 1, keyFramePackets: 8, bitsPerSecond: 300_000 };
const HIGH_LAYER_BITS_PER_SECOND = 1_500_000;

/** One video stream sent: its SSRC, sequence numbers, size and (simulcast) rid. */
interface SentLayer {
  ssrc: number;
  rid?: string;
  seq: number;
  deltaFramePackets: number;
  keyFramePackets: number;
  /** The RTP header with its extensions (mid, rid), written once. */
  header: Buffer;
}

/** The RTP header of a layer: 12 bytes, then, for simulcast, an RFC 8285 one-byte extension block with mid and rid. */
function layerHeader(ssrc: number, rid: string | undefined): Buffer {
  if (rid === undefined) {
    const header = Buffer.alloc(12);
    header[0] = 0x80;
    header.writeUInt32BE(ssrc, 8);
    return header;
  }
  const elements = Buffer.concat([
    Buffer.from([(MID_EXTENSION_ID << 4) | (VIDEO_MID.length - 1)]),
    Buffer.from(VIDEO_MID),
    Buffer.from([(RID_EXTENSION_ID << 4) | (rid.length - 1)]),
    Buffer.from(rid),
  ]);
  const words = Math.ceil(elements.length / 4);
  const header = Buffer.alloc(12 + 4 + words * 4);
  header[0] = 0x90; // V=2, X=1
  header.writeUInt32BE(ssrc, 8);
  header.writeUInt16BE(0xbede, 12);
  header.writeUInt16BE(words, 14);
  elements.copy(header, 16);
  return header;
}
/** Frames a late wake-up may send at once; beyond that the stream skips, as a starved encoder would. */
const MAX_CATCH_UP_FRAMES = 10;

export const PUBLISHER_VIDEO = { packetPayloadBytes: VIDEO_PACKET_PAYLOAD, deltaFramePackets: DELTA_FRAME_PACKETS, keyFramePackets: KEY_FRAME_PACKETS, keyFrameIntervalMs: KEY_FRAME_INTERVAL_MS, framesPerSecond: 30 };

export class Publisher {
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

  /** The video layers sent, lowest first; the last is the one viewers take. */
  private readonly layers: SentLayer[];
  private readonly audioSsrc: number;
  private readonly pacingBytesPerMs: number;

  private constructor(
    readonly session: JoinedSession,
    private readonly opusFrames: Buffer[],
    readonly simulcast: boolean,
  ) {
    const layer = (ssrc: number, rid: string | undefined, deltaFramePackets: number, keyFramePackets: number): SentLayer => ({
      ssrc,
      ...(rid ? { rid } : {}),
      seq: Math.floor(Math.random() * 0x8000),
      deltaFramePackets,
      keyFramePackets,
      header: layerHeader(ssrc, rid),
    });
    const randomSsrc = () => randomBytes(4).readUInt32BE(0);
    this.layers = simulcast
      ? [layer(randomSsrc(), 'low', LOW_LAYER.deltaFramePackets, LOW_LAYER.keyFramePackets), layer(randomSsrc(), 'hi', DELTA_FRAME_PACKETS, KEY_FRAME_PACKETS)]
      : [layer(CAMERA_OFFER.videoSsrc, undefined, DELTA_FRAME_PACKETS, KEY_FRAME_PACKETS)];
    this.audioSsrc = simulcast ? SIMULCAST_OFFER.audioSsrc : CAMERA_OFFER.audioSsrc;
    this.pacingBytesPerMs = (PACING_FACTOR * (HIGH_LAYER_BITS_PER_SECOND + (simulcast ? LOW_LAYER.bitsPerSecond : 0))) / 8 / 1000;
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

  /** Joins `primary` and publishes; `simulcast` publishes the camera as two simulcast layers (see above). */
  static async join(api: ChimeSDKMeetingsClient, primary: Meeting, { simulcast = false }: { simulcast?: boolean } = {}): Promise<Publisher> {
    const session = await joinMeeting(api, primary, 'presenter', {
      publish: true,
      offer: simulcast ? SIMULCAST_OFFER.name : CAMERA_OFFER.name,
      checkIntervalMs: 2500,
      authenticateOneIn: 1,
    });
    const backend = loadOpusBackend();
    const tone = new ToneEncoder(440, backend);
    const opusFrames = Array.from({ length: 50 }, () => tone.frame());
    tone.free();
    return new Publisher(session, opusFrames, simulcast);
  }

  /** The server's stream id of the camera (with simulcast, of its `hi` layer): what viewers subscribe to. */
  get videoStreamId(): number {
    const allocations = this.session.ack.allocations ?? [];
    // The SDK's SUBSCRIBE lists the camera's layers lowest first; the server allocates a stream to each.
    const allocation = this.simulcast ? allocations.filter((a) => a.trackLabel !== 'AmazonChimeExpressAudio').at(-1) : (allocations.find((a) => a.trackLabel === 'AmazonChimeExpressVideo') ?? allocations[0]);
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

  /** One video frame of every layer, its packets queued for the pacer. */
  private sendFrame(): void {
    const now = performance.now();
    const key = (this.keyFrameWanted && now - this.lastKeyFrameAt >= MIN_KEY_FRAME_GAP_MS) || now - this.lastKeyFrameAt >= KEY_FRAME_INTERVAL_MS;
    if (key) {
      this.keyFrameWanted = false;
      this.lastKeyFrameAt = now;
      this.sent.keyFrames++;
    }
    for (const layer of this.layers) {
      const packets = key ? layer.keyFramePackets : layer.deltaFramePackets;
      const headerLength = layer.header.length;
      for (let i = 0; i < packets; i++) {
        const packet = Buffer.allocUnsafe(headerLength + VIDEO_PACKET_PAYLOAD);
        layer.header.copy(packet, 0);
        packet[1] = (i === packets - 1 ? 0x80 : 0) | VP8_PAYLOAD_TYPE;
        packet.writeUInt16BE(layer.seq++ & 0xffff, 2);
        this.payloadBytes.copy(packet, headerLength);
        packet[headerLength] = i === 0 ? 0x10 : 0x00; // RFC 7741: S=1 on the frame's first packet, partition 0
        if (i === 0) packet[headerLength + 1] = key ? 0x9c : 0x9d; // VP8 frame tag: bit 0 clear on a key frame
        this.paced.push(packet);
      }
    }
  }

  /**
   * Sends what the pacing budget allows, each packet stamped with its send time on the 90 kHz clock
   * (performance.now), which the viewers in this process read the same way: their one-way delay is arrival
   * time minus this, up to a constant the server's rewrite adds.
   */
  private releasePaced(): void {
    const now = performance.now();
    this.pacingCredit = Math.min(PACING_MAX_CREDIT_MS * this.pacingBytesPerMs, this.pacingCredit + (now - this.pacedAt) * this.pacingBytesPerMs);
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
    packet.writeUInt32BE(this.audioSsrc, 8);
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
