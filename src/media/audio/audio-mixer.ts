import { EventEmitter } from 'node:events';
import type { FrameListener } from './frame-clock.ts';
import { OPUS_FRAME_BYTES, OPUS_FRAME_SAMPLES, OPUS_SAMPLE_RATE, type OpusDecoder, type OpusEncoder, type OpusEncoderSettings } from './opus/codec.ts';
import type { OpusCodecPool } from './opus/codec-pool.ts';

/**
 * Server-side audio mixing the way Chime (and Asterisk's softmix) does it: talkers are picked
 * without decoding, from the RFC 6464 audio level each packet carries; only those few are
 * decoded; each talker gets a mix without its own voice, and every other listener shares one
 * encoded mix per 20 ms frame.
 */

export const SAMPLE_RATE = OPUS_SAMPLE_RATE;
export const FRAME_SAMPLES = OPUS_FRAME_SAMPLES;
export { FRAME_MS } from './frame-clock.ts';

/** What the mix is encoded with: wideband speech at 32 kb/s, with in-band FEC for 10% loss. */
export const MIX_ENCODER_SETTINGS: OpusEncoderSettings = { bitrate: 32_000, complexity: 5, inbandFec: true, expectedLossPercent: 10 };

/** Audio level (-dBov) above which a source counts as talking; 127 is silence. */
const TALKING_LEVEL = 60;
/** A talker stays selected this long after going quiet, so short pauses don't flap the selection. */
const TALKER_HOLD_MS = 600;
/** A newcomer must be this many dB louder than the quietest talker to replace it. */
const REPLACE_MARGIN_DB = 6;
/** A talker's frames waiting to be mixed: enough to ride out a 200 ms stall of this thread. */
const MAX_QUEUED_FRAMES = 10;
const START_DEPTH = 2;
/** A frame at most this many behind the last one mixed came late (1 s); further behind, the sender started a new stream. */
const LATE_FRAMES = 50;
/**
 * A talker whose queue stays deeper than needed this many frames in a row (its sender's clock
 * runs fast, or a burst left a backlog) loses one frame, so its delay does not build up.
 */
const EXCESS_FRAMES_BEFORE_DROP = 50;
/** The bindings conceal 120 ms per lost frame (see opus/native-backend.ts): one in a row, then silence. */
const MAX_CONCEALED_FRAMES = 1;
/** Frames the shared encoder goes on with after the floor empties: its look-ahead is 6.5 ms. */
const TAIL_FRAMES = 2;

export interface MixerSink {
  /**
   * Called once per frame with the encoded opus payload for this listener (a shared buffer: copy
   * to keep), the frame's audio level in -dBov (0 loudest, 127 silence) for RFC 6464, and the
   * frame's time on the media clock in 48 kHz units (uint32; a gap means frames were skipped).
   */
  deliver(payload: Buffer, level: number, timestamp: number): void;
}

/** Media-clock time of a frame, as an RTP timestamp (48 kHz, wrapping at 2^32). */
export function frameTimestamp(frame: number): number {
  return (frame * FRAME_SAMPLES) % 4294967296;
}

/** Audio level of a PCM frame in -dBov, as RFC 6464 carries it. */
export function levelOf(sumOfSquares: number, samples: number): number {
  const rms = Math.sqrt(sumOfSquares / samples) / 32768;
  return rms <= 0 ? 127 : Math.min(127, Math.max(0, Math.round(-20 * Math.log10(rms))));
}

/** A frame waiting to be mixed, with its RTP sequence number (-1: unknown). */
interface QueuedFrame {
  payload: Buffer;
  seq: number;
}

/** Whether RTP sequence number `a` comes after `b` (modulo wrap-around). */
const after = (a: number, b: number) => a !== b && ((a - b) & 0xffff) < 0x8000;

interface Source {
  id: string;
  /** Smoothed audio level in -dBov (0 loudest, 127 silence). */
  level: number;
  lastLoudAt: number;
  /** In sequence-number order: a jittery path delivers frames out of order. */
  queue: QueuedFrame[];
  /** The sequence number of the last frame taken for mixing (-1: none yet, or unknown): anything older comes too late. */
  lastSeq: number;
  playing: boolean;
  decoder?: OpusDecoder;
  pcm: Int16Array;
  hasFrame: boolean;
  /** Frames in a row filled in for lost or corrupt ones. */
  concealed: number;
  /** Frames in a row that left more than START_DEPTH frames queued. */
  excess: number;
}

interface Talker {
  source: Source;
  encoder: OpusEncoder;
  payload: Buffer;
  level: number;
}

export interface MixerOptions {
  codecs: OpusCodecPool;
  maxTalkers?: number;
  now?: () => number;
}

export interface MixerStats {
  frames: number;
  /** Frames waiting in the deepest talker's queue. */
  backlog: number;
  /** Times the mixer threw away its codec state after a failure. */
  rebuilds: number;
  talkers: number;
  /** Frames that arrived before one they precede and were put back in order, and those that came after their turn (dropped). */
  reordered: number;
  late: number;
}

export interface MixerEvents {
  /** A frame failed (`rebuilt`: its codec state was rebuilt) or a listener threw; the mixer goes on. */
  failure: [error: unknown, rebuilt: boolean];
}

export class AudioMixer extends EventEmitter<MixerEvents> implements FrameListener {
  private readonly sources = new Map<string, Source>();
  private readonly sinks = new Map<MixerSink, string | undefined>();
  private readonly talkers = new Map<string, Talker>();
  private readonly codecs: OpusCodecPool;
  private readonly silence: Buffer;
  private readonly maxTalkers: number;
  private readonly now: () => number;
  private readonly sum = new Int32Array(FRAME_SAMPLES);
  private readonly mixPcm = Buffer.alloc(OPUS_FRAME_BYTES);
  private readonly mixSamples = new Int16Array(this.mixPcm.buffer, this.mixPcm.byteOffset, FRAME_SAMPLES);
  private sharedEncoder: OpusEncoder | undefined;
  /** Level of the frame encode() produced last. */
  private lastLevel = 127;
  private sharedPayload: Buffer = Buffer.alloc(0);
  private sharedLevel = 127;
  private frames = 0;
  private rebuilds = 0;
  private reordered = 0;
  private late = 0;
  private tail = 0;
  private closed = false;

  constructor(options: MixerOptions) {
    super();
    this.codecs = options.codecs;
    this.silence = silenceFrame(options.codecs);
    this.maxTalkers = options.maxTalkers ?? 3;
    this.now = options.now ?? (() => performance.now());
  }

  /** What listeners get while nobody talks. */
  get silenceFrame(): Buffer {
    return this.silence;
  }

  addSource(id: string): void {
    if (!this.sources.has(id)) {
      this.sources.set(id, { id, level: 127, lastLoudAt: -Infinity, queue: [], lastSeq: -1, playing: false, pcm: new Int16Array(FRAME_SAMPLES), hasFrame: false, concealed: MAX_CONCEALED_FRAMES, excess: 0 });
    }
  }

  removeSource(id: string): void {
    const source = this.sources.get(id);
    if (!source) return;
    this.dropTalker(id);
    this.sources.delete(id);
  }

  /**
   * Takes one opus frame of a source, with the level from its RTP header (-1 when absent) and its
   * RTP sequence number, by which frames that arrive out of order are mixed in order (-1: unknown,
   * taken in arrival order).
   */
  push(id: string, payload: Buffer, level: number, seq = -1): void {
    const source = this.sources.get(id);
    if (!source) return;
    const now = this.now();
    if (level >= 0) {
      // Fast attack, slow release, like a VU meter: a word lifts the level at once.
      source.level = level < source.level ? level : source.level + (level - source.level) * 0.1;
      if (level <= TALKING_LEVEL) source.lastLoudAt = now;
    }
    // Everyone's last few frames are kept (undecoded), so a new talker starts with its first words.
    const depth = this.talkers.has(id) ? MAX_QUEUED_FRAMES : START_DEPTH;
    const queue = source.queue;
    let at = queue.length;
    if (seq >= 0) {
      if (source.lastSeq >= 0 && !after(seq, source.lastSeq)) {
        if (((source.lastSeq - seq) & 0xffff) <= LATE_FRAMES) return void this.late++;
        // Far behind: the sender numbers a new stream (a renegotiation); what is queued was the old one's.
        queue.length = 0;
        source.lastSeq = -1;
        at = 0;
      }
      while (at > 0 && queue[at - 1]!.seq >= 0 && after(queue[at - 1]!.seq, seq)) at--;
      if (at > 0 && queue[at - 1]!.seq === seq) return; // a duplicate
      if (at < queue.length) this.reordered++;
    }
    queue.splice(at, 0, { payload: Buffer.from(payload), seq });
    while (queue.length > depth) queue.shift();
  }

  /** A listener; `ownSourceId` is left out of what it hears (mix-minus). */
  addSink(sink: MixerSink, ownSourceId?: string): void {
    this.sinks.set(sink, ownSourceId);
  }

  removeSink(sink: MixerSink): void {
    this.sinks.delete(sink);
  }

  /** Current levels of the sources that are talking, for the clients' volume indicators. */
  levels(): { id: string; level: number }[] {
    const result: { id: string; level: number }[] = [];
    for (const source of this.sources.values()) if (source.level <= TALKING_LEVEL) result.push({ id: source.id, level: Math.round(source.level) });
    return result;
  }

  talkerIds(): string[] {
    return [...this.talkers.keys()];
  }

  stats(): MixerStats {
    let backlog = 0;
    for (const talker of this.talkers.values()) backlog = Math.max(backlog, talker.source.queue.length);
    return { frames: this.frames, backlog, rebuilds: this.rebuilds, talkers: this.talkers.size, reordered: this.reordered, late: this.late };
  }

  /**
   * Produces frame number `frame` of the media clock for every sink. A codec failure costs that
   * one frame (listeners get silence): the codec state is rebuilt and the failure reported.
   * A `late` frame (a later one is due too) is mixed, so queues and codecs move on, but not sent:
   * it would reach listeners late, in a burst with the next ones, and their jitter buffers
   * (Chrome's NetEq) would grow to absorb such bursts and stay large for many seconds. The next
   * frame's timestamp leaves a gap instead, which they conceal.
   */
  produce(frame: number, late = false): void {
    if (this.closed) return;
    const timestamp = frameTimestamp(frame);
    this.frames++;
    let shared = this.silence;
    let sharedLevel = 127;
    try {
      if (this.mix()) {
        shared = this.sharedPayload;
        sharedLevel = this.sharedLevel;
      }
    } catch (error) {
      this.rebuild();
      this.emit('failure', error, true);
    }
    if (late) return;
    for (const [sink, ownId] of this.sinks) {
      const talker = ownId === undefined ? undefined : this.talkers.get(ownId);
      try {
        if (talker) sink.deliver(talker.payload, talker.level, timestamp);
        else sink.deliver(shared, sharedLevel, timestamp);
      } catch (error) {
        this.emit('failure', error, false); // one listener's failure is not the others'
      }
    }
  }

  /** Gives every codec back to the pool; the mixer produces nothing more. */
  close(): void {
    this.closed = true;
    for (const id of [...this.talkers.keys()]) this.dropTalker(id);
    if (this.sharedEncoder) this.codecs.giveEncoder(this.sharedEncoder);
    this.sharedEncoder = undefined;
  }

  /** Decodes the talkers and encodes this frame's mixes; false when there is nothing to encode. */
  private mix(): boolean {
    this.selectTalkers();
    this.sum.fill(0);
    let mixed = 0;
    for (const talker of this.talkers.values()) {
      const source = talker.source;
      source.hasFrame = false;
      if (!source.playing && source.queue.length >= START_DEPTH) source.playing = true;
      if (!source.playing) continue;
      if (source.queue.length > START_DEPTH + 1) source.excess++;
      else source.excess = 0;
      if (source.excess >= EXCESS_FRAMES_BEFORE_DROP) {
        // Decoded but not mixed, so the decoder's state stays continuous.
        this.decodeInto(source, this.takeFrame(source));
        source.excess = 0;
      }
      const payload = this.takeFrame(source);
      if (!payload) source.playing = false; // ran dry: rebuffer before playing again
      if (payload && this.decodeInto(source, payload)) {
        source.concealed = 0;
      } else if (source.concealed < MAX_CONCEALED_FRAMES && this.decodeInto(source, undefined)) {
        // A lost or corrupt frame: opus' own concealment rather than a cut.
        source.concealed++;
      } else {
        continue;
      }
      source.hasFrame = true;
      mixed++;
      const pcm = source.pcm;
      const sum = this.sum;
      for (let i = 0; i < FRAME_SAMPLES; i++) sum[i]! += pcm[i]!;
    }
    if (this.talkers.size > 0) this.tail = TAIL_FRAMES;
    else if (mixed === 0) {
      // The floor has emptied: the shared encoder still plays out the end of the last talk spurt
      // (a word cut off by a mute or a leave) before listeners get the silence frame, rather than
      // at the start of the next spurt, when it would resume.
      if (this.tail === 0 || !this.sharedEncoder) return false;
      this.tail--;
    }
    // While anyone holds the floor the encoders run on, even through a gap, so each listener's
    // decoder follows one continuous encoder.
    this.sharedPayload = this.encode((this.sharedEncoder ??= this.codecs.takeEncoder()), undefined);
    this.sharedLevel = this.lastLevel;
    for (const talker of this.talkers.values()) {
      talker.payload = talker.source.hasFrame ? this.encode(talker.encoder, talker.source) : this.sharedPayload;
      talker.level = talker.source.hasFrame ? this.lastLevel : this.sharedLevel;
    }
    return true;
  }

  /** The source's next frame in sequence order, if any. */
  private takeFrame(source: Source): Buffer | undefined {
    const frame = source.queue.shift();
    if (!frame) return undefined;
    if (frame.seq >= 0) source.lastSeq = frame.seq;
    return frame.payload;
  }

  /** Decodes a packet (or conceals a lost one) into the source's PCM; false when it is corrupt. */
  private decodeInto(source: Source, payload: Buffer | undefined): boolean {
    source.decoder ??= this.codecs.takeDecoder();
    try {
      return source.decoder.decodeInto(payload, source.pcm) > 0;
    } catch {
      return false; // a corrupt packet costs one frame, not the meeting's audio
    }
  }

  /** Encodes the sum, minus `exclude`'s own voice when given. */
  private encode(encoder: OpusEncoder, exclude: Source | undefined): Buffer {
    const sum = this.sum;
    const own = exclude?.hasFrame ? exclude.pcm : undefined;
    const out = this.mixSamples;
    let squares = 0;
    for (let i = 0; i < FRAME_SAMPLES; i++) {
      let sample = own ? sum[i]! - own[i]! : sum[i]!;
      if (sample > 32767) sample = 32767;
      else if (sample < -32768) sample = -32768;
      squares += sample * sample;
      out[i] = sample;
    }
    this.lastLevel = levelOf(squares, FRAME_SAMPLES);
    return encoder.encode(this.mixPcm);
  }

  /** After a failure no codec of this mixer is trusted: all are discarded, talkers start over. */
  private rebuild(): void {
    this.rebuilds++;
    for (const talker of this.talkers.values()) this.codecs.discard(talker.encoder);
    this.talkers.clear();
    for (const source of this.sources.values()) {
      if (source.decoder) this.codecs.discard(source.decoder);
      source.decoder = undefined;
      source.queue.length = 0;
      source.lastSeq = -1;
      source.playing = false;
    }
    if (this.sharedEncoder) this.codecs.discard(this.sharedEncoder);
    this.sharedEncoder = undefined;
  }

  private selectTalkers(): void {
    const now = this.now();
    for (const [id, talker] of this.talkers) {
      if (now - talker.source.lastLoudAt > TALKER_HOLD_MS) this.dropTalker(id);
    }
    const candidates = [...this.sources.values()]
      .filter((s) => !this.talkers.has(s.id) && now - s.lastLoudAt <= TALKER_HOLD_MS && s.level <= TALKING_LEVEL)
      .sort((a, b) => a.level - b.level);
    for (const candidate of candidates) {
      if (this.talkers.size < this.maxTalkers) {
        this.promote(candidate);
        continue;
      }
      let quietest: Talker | undefined;
      for (const talker of this.talkers.values()) if (!quietest || talker.source.level > quietest.source.level) quietest = talker;
      if (quietest && candidate.level + REPLACE_MARGIN_DB < quietest.source.level) {
        this.dropTalker(quietest.source.id);
        this.promote(candidate);
      }
    }
  }

  private promote(source: Source): void {
    source.playing = false;
    this.talkers.set(source.id, { source, encoder: this.codecs.takeEncoder(), payload: this.silence, level: 127 });
  }

  private dropTalker(id: string): void {
    const talker = this.talkers.get(id);
    if (!talker) return;
    this.codecs.giveEncoder(talker.encoder);
    talker.source.queue.length = 0;
    talker.source.lastSeq = -1;
    talker.source.playing = false;
    if (talker.source.decoder) this.codecs.giveDecoder(talker.source.decoder);
    talker.source.decoder = undefined;
    this.talkers.delete(id);
  }
}

const silenceFrames = new WeakMap<OpusCodecPool, Buffer>();

/**
 * What listeners get while nobody talks: a frame of silence from an encoder like the mix's own,
 * in its steady state. (A minimal CELT-only silence frame also decodes to silence, but Chrome
 * then takes about half a second to play the first real speech after it.)
 */
function silenceFrame(codecs: OpusCodecPool): Buffer {
  let frame = silenceFrames.get(codecs);
  if (frame) return frame;
  const encoder = codecs.takeEncoder();
  const silence = Buffer.alloc(OPUS_FRAME_BYTES);
  for (let i = 0; i < 11; i++) frame = encoder.encode(silence);
  codecs.giveEncoder(encoder);
  silenceFrames.set(codecs, frame!);
  return frame!;
}
