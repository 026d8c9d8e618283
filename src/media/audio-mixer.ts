import OpusScript from 'opusscript';

/**
 * Server-side audio mixing the way Chime (and Asterisk's softmix) does it: talkers are picked
 * without decoding, from the RFC 6464 audio level each packet carries; only those few are
 * decoded; each talker gets a mix without its own voice, and every other listener shares one
 * encoded mix per 20 ms frame.
 */

export const SAMPLE_RATE = 48_000;
export const FRAME_MS = 20;
export const FRAME_SAMPLES = (SAMPLE_RATE * FRAME_MS) / 1000;

const OPUS_SET_COMPLEXITY = 4010;
const OPUS_SET_INBAND_FEC = 4012;
/** Audio level (-dBov) above which a source counts as talking; 127 is silence. */
const TALKING_LEVEL = 60;
/** A talker stays selected this long after going quiet, so short pauses don't flap the selection. */
const TALKER_HOLD_MS = 600;
/** A newcomer must be this many dB louder than the quietest talker to replace it. */
const REPLACE_MARGIN_DB = 6;
const MAX_QUEUED_FRAMES = 6;
const START_DEPTH = 2;
const MAX_CONCEALED_FRAMES = 2;
const LOST_PACKET = Buffer.alloc(0);

export interface MixerSink {
  /**
   * Called once per frame with the encoded opus payload for this listener (a shared buffer: copy
   * to keep) and the frame's audio level in -dBov (0 loudest, 127 silence), for RFC 6464.
   */
  deliver(payload: Buffer, level: number): void;
}

/** Audio level of a PCM frame in -dBov, as RFC 6464 carries it. */
export function levelOf(sumOfSquares: number, samples: number): number {
  const rms = Math.sqrt(sumOfSquares / samples) / 32768;
  return rms <= 0 ? 127 : Math.min(127, Math.max(0, Math.round(-20 * Math.log10(rms))));
}

interface Source {
  id: string;
  /** Smoothed audio level in -dBov (0 loudest, 127 silence). */
  level: number;
  lastLoudAt: number;
  queue: Buffer[];
  playing: boolean;
  decoder?: OpusScript;
  pcm: Int16Array;
  hasFrame: boolean;
  /** Frames in a row filled in for lost or corrupt ones. */
  concealed: number;
}

interface Talker {
  source: Source;
  encoder: OpusScript;
  payload: Buffer;
  level: number;
}

export interface MixerOptions {
  maxTalkers?: number;
  now?: () => number;
}

export class AudioMixer {
  private readonly sources = new Map<string, Source>();
  private readonly sinks = new Map<MixerSink, string | undefined>();
  private readonly talkers = new Map<string, Talker>();
  private readonly maxTalkers: number;
  private readonly now: () => number;
  private readonly sum = new Int32Array(FRAME_SAMPLES);
  private readonly mixPcm = Buffer.alloc(FRAME_SAMPLES * 2);
  private sharedEncoder: OpusScript | undefined;
  /** Level of the frame encode() produced last. */
  private lastLevel = 127;
  private timer: NodeJS.Timeout | undefined;
  private nextTickAt = 0;
  /** Frames produced; for tests and metrics. */
  ticks = 0;

  constructor(options: MixerOptions = {}) {
    this.maxTalkers = options.maxTalkers ?? 3;
    this.now = options.now ?? (() => performance.now());
  }

  addSource(id: string): void {
    if (!this.sources.has(id)) {
      this.sources.set(id, { id, level: 127, lastLoudAt: -Infinity, queue: [], playing: false, pcm: new Int16Array(FRAME_SAMPLES), hasFrame: false, concealed: MAX_CONCEALED_FRAMES });
    }
  }

  removeSource(id: string): void {
    const source = this.sources.get(id);
    if (!source) return;
    this.dropTalker(id);
    source.decoder?.delete();
    this.sources.delete(id);
  }

  /** Takes one opus frame of a source, with the level from its RTP header (-1 when absent). */
  push(id: string, payload: Buffer, level: number): void {
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
    while (source.queue.length >= depth) source.queue.shift();
    source.queue.push(Buffer.from(payload));
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

  start(): void {
    if (this.timer) return;
    this.nextTickAt = this.now() + FRAME_MS;
    const loop = () => {
      try {
        this.tick();
      } catch (error) {
        // A failed frame is lost and the next one comes on time; the error is still reported
        // (the worker logs uncaught errors) without stopping this loop.
        queueMicrotask(() => {
          throw error;
        });
      }
      // Scheduled against absolute time so timer lateness doesn't accumulate.
      this.nextTickAt += FRAME_MS;
      const delay = this.nextTickAt - this.now();
      if (delay < -5 * FRAME_MS) this.nextTickAt = this.now() + FRAME_MS; // fell far behind: resynchronise
      this.timer = setTimeout(loop, Math.max(0, delay));
    };
    this.timer = setTimeout(loop, FRAME_MS);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const id of [...this.talkers.keys()]) this.dropTalker(id);
    for (const source of this.sources.values()) {
      source.decoder?.delete();
      source.decoder = undefined;
    }
    this.sharedEncoder?.delete();
    this.sharedEncoder = undefined;
  }

  /** Produces one 20 ms frame for every sink. */
  tick(): void {
    this.ticks++;
    this.selectTalkers();
    this.sum.fill(0);
    let mixed = 0;
    for (const talker of this.talkers.values()) {
      const source = talker.source;
      source.hasFrame = false;
      if (!source.playing && source.queue.length >= START_DEPTH) source.playing = true;
      if (!source.playing) continue;
      const payload = source.queue.shift();
      if (!payload) source.playing = false; // ran dry: rebuffer before playing again
      if (payload && this.decodeInto(source, payload)) {
        source.concealed = 0;
      } else if (source.concealed < MAX_CONCEALED_FRAMES && this.decodeInto(source, LOST_PACKET)) {
        // A lost or corrupt frame: opus' own concealment (an empty packet) rather than a cut.
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
    if (mixed === 0 && this.talkers.size === 0) {
      for (const sink of this.sinks.keys()) sink.deliver(OPUS_SILENCE_FRAME, 127);
      return;
    }
    // While anyone holds the floor the encoders run on, even through a gap, so each listener's
    // decoder follows one continuous encoder.
    const shared = this.encode(this.sharedEncoderInstance(), undefined);
    const sharedLevel = this.lastLevel;
    for (const talker of this.talkers.values()) {
      talker.payload = talker.source.hasFrame ? this.encode(talker.encoder, talker.source) : shared;
      talker.level = talker.source.hasFrame ? this.lastLevel : sharedLevel;
    }
    for (const [sink, ownId] of this.sinks) {
      const talker = ownId === undefined ? undefined : this.talkers.get(ownId);
      if (talker) sink.deliver(talker.payload, talker.level);
      else sink.deliver(shared, sharedLevel);
    }
  }

  private decodeInto(source: Source, payload: Buffer): boolean {
    try {
      source.decoder ??= new OpusScript(SAMPLE_RATE, 1, OpusScript.Application.VOIP);
      const decoded = source.decoder.decode(payload);
      const samples = Math.min(FRAME_SAMPLES, decoded.length >> 1);
      for (let i = 0; i < samples; i++) source.pcm[i] = decoded.readInt16LE(i * 2);
      for (let i = samples; i < FRAME_SAMPLES; i++) source.pcm[i] = 0;
      return samples > 0;
    } catch {
      return false; // a corrupt packet costs one frame, not the meeting's audio
    }
  }

  /** Encodes the sum, minus `exclude`'s own voice when given. */
  private encode(encoder: OpusScript, exclude: Source | undefined): Buffer {
    const sum = this.sum;
    const own = exclude?.hasFrame ? exclude.pcm : undefined;
    const out = this.mixPcm;
    let squares = 0;
    for (let i = 0; i < FRAME_SAMPLES; i++) {
      let sample = own ? sum[i]! - own[i]! : sum[i]!;
      if (sample > 32767) sample = 32767;
      else if (sample < -32768) sample = -32768;
      squares += sample * sample;
      out.writeInt16LE(sample, i * 2);
    }
    this.lastLevel = levelOf(squares, FRAME_SAMPLES);
    return encoder.encode(out, FRAME_SAMPLES);
  }

  private sharedEncoderInstance(): OpusScript {
    return (this.sharedEncoder ??= newEncoder());
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
    this.talkers.set(source.id, { source, encoder: newEncoder(), payload: OPUS_SILENCE_FRAME, level: 127 });
  }

  private dropTalker(id: string): void {
    const talker = this.talkers.get(id);
    if (!talker) return;
    talker.encoder.delete();
    talker.source.queue.length = 0;
    talker.source.playing = false;
    talker.source.decoder?.delete();
    talker.source.decoder = undefined;
    this.talkers.delete(id);
  }
}

function encodeSilence(): Buffer {
  const encoder = newEncoder();
  const silence = Buffer.alloc(FRAME_SAMPLES * 2);
  let frame = encoder.encode(silence, FRAME_SAMPLES);
  for (let i = 0; i < 10; i++) frame = encoder.encode(silence, FRAME_SAMPLES);
  encoder.delete();
  return frame;
}

function newEncoder(): OpusScript {
  const encoder = new OpusScript(SAMPLE_RATE, 1, OpusScript.Application.VOIP);
  encoder.encoderCTL(OPUS_SET_COMPLEXITY, 5);
  encoder.encoderCTL(OPUS_SET_INBAND_FEC, 1);
  encoder.setBitrate(32_000);
  return encoder;
}

/**
 * What listeners get while nobody talks: a frame of silence from an encoder like the mix's own,
 * in its steady state. (A minimal CELT-only silence frame also decodes to silence, but Chrome
 * then takes about half a second to play the first real speech after it.)
 */
export const OPUS_SILENCE_FRAME = encodeSilence();
