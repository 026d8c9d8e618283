import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MIX_ENCODER_SETTINGS } from '../../src/media/audio/audio-mixer.ts';
import { loadOpusBackend } from '../../src/media/audio/opus/backend.ts';
import { OPUS_FRAME_BYTES, OPUS_FRAME_SAMPLES, OPUS_SAMPLE_RATE } from '../../src/media/audio/opus/codec.ts';
import { OpusCodecPool } from '../../src/media/audio/opus/codec-pool.ts';

/** Frames of a tone, as PCM (s16le). */
const toneFrames = Array.from({ length: 50 }, (_, frame) => {
  const pcm = Buffer.alloc(OPUS_FRAME_BYTES);
  for (let i = 0; i < OPUS_FRAME_SAMPLES; i++) pcm.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * (frame * OPUS_FRAME_SAMPLES + i)) / OPUS_SAMPLE_RATE)), i * 2);
  return pcm;
});
const rms = (pcm: Int16Array) => Math.sqrt(pcm.reduce((sum, x) => sum + x * x, 0) / pcm.length);

for (const name of ['native', 'wasm'] as const) {
  describe(`opus codecs (${name})`, () => {
    const backend = loadOpusBackend(name);

    test('the chosen backend is the one asked for', () => {
      assert.equal(backend.name, name);
    });

    test('20,000 lifecycles as talkers come and go: every round trip decodes the tone, memory stays bounded', () => {
      // As the mixer churns: about six codecs alive, each encodes and decodes a few frames, the oldest goes.
      const codecs = new OpusCodecPool(backend, MIX_ENCODER_SETTINGS);
      const alive: { encoder: ReturnType<OpusCodecPool['takeEncoder']>; decoder: ReturnType<OpusCodecPool['takeDecoder']> }[] = [];
      const pcm = new Int16Array(OPUS_FRAME_SAMPLES);
      let bad = 0;
      for (let cycle = 0; cycle < 20_000; cycle++) {
        const pair = { encoder: codecs.takeEncoder(), decoder: codecs.takeDecoder() };
        alive.push(pair);
        for (let k = 0; k < 3; k++) pair.decoder.decodeInto(pair.encoder.encode(toneFrames[(cycle + k) % 50]!), pcm);
        if (rms(pcm) < 2000) bad++;
        if (alive.length > 6) {
          const old = alive.shift()!;
          codecs.giveEncoder(old.encoder);
          codecs.giveDecoder(old.decoder);
        }
      }
      assert.equal(bad, 0);
      const stats = codecs.stats();
      assert.ok(stats.encodersCreated <= 7 && stats.decodersCreated <= 7, `reused, not reallocated: ${JSON.stringify(stats)}`);
    });

    // Native codecs are freed only by the garbage collector, so they are always used through the pool.
    if (name === 'wasm') test('20,000 codecs created and freed without a pool', () => {
      const pcm = new Int16Array(OPUS_FRAME_SAMPLES);
      const alive: { free(): void }[] = [];
      let bad = 0;
      for (let cycle = 0; cycle < 20_000; cycle++) {
        const encoder = backend.createEncoder(MIX_ENCODER_SETTINGS);
        const decoder = backend.createDecoder();
        alive.push(encoder, decoder);
        for (let k = 0; k < 3; k++) decoder.decodeInto(encoder.encode(toneFrames[(cycle + k) % 50]!), pcm);
        if (rms(pcm) < 2000) bad++;
        while (alive.length > 12) alive.shift()!.free();
      }
      assert.equal(bad, 0);
    });

    test('300 live encoders and decoders work side by side', () => {
      const pairs = Array.from({ length: 300 }, () => ({ encoder: backend.createEncoder(MIX_ENCODER_SETTINGS), decoder: backend.createDecoder() }));
      const pcm = new Int16Array(OPUS_FRAME_SAMPLES);
      let bad = 0;
      for (let frame = 0; frame < 10; frame++) {
        for (const { encoder, decoder } of pairs) {
          decoder.decodeInto(encoder.encode(toneFrames[frame]!), pcm);
          if (frame >= 3 && rms(pcm) < 2000) bad++;
        }
      }
      for (const { encoder, decoder } of pairs) {
        encoder.free();
        decoder.free();
      }
      assert.equal(bad, 0);
    });

    test('the mix carries in-band FEC (libopus adds it only when told to expect loss)', () => {
      const withFec = backend.createEncoder(MIX_ENCODER_SETTINGS);
      const withoutFec = backend.createEncoder({ ...MIX_ENCODER_SETTINGS, inbandFec: false, expectedLossPercent: 0 });
      let differing = 0;
      for (const frame of toneFrames) if (!withFec.encode(frame).equals(withoutFec.encode(frame))) differing++;
      assert.ok(differing > 40, `${differing} of 50 packets differ`);
      withFec.free();
      withoutFec.free();
    });

    test('a reset codec behaves like a new one: what it encodes decodes as a new encoder\'s does', () => {
      const used = backend.createEncoder(MIX_ENCODER_SETTINGS);
      const other = Array.from({ length: 20 }, (_, f) => {
        const pcm = Buffer.alloc(OPUS_FRAME_BYTES);
        for (let i = 0; i < OPUS_FRAME_SAMPLES; i++) pcm.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 1500 * (f * OPUS_FRAME_SAMPLES + i)) / OPUS_SAMPLE_RATE)), i * 2);
        return pcm;
      });
      for (const frame of other) used.encode(frame); // another talker's voice first
      used.reset();
      const fresh = backend.createEncoder(MIX_ENCODER_SETTINGS);
      const [fromUsed, fromFresh] = [backend.createDecoder(), backend.createDecoder()];
      const [a, b] = [new Int16Array(OPUS_FRAME_SAMPLES), new Int16Array(OPUS_FRAME_SAMPLES)];
      let error = 0;
      let signal = 0;
      for (const frame of toneFrames.slice(0, 30)) {
        fromUsed.decodeInto(used.encode(frame), a);
        fromFresh.decodeInto(fresh.encode(frame), b);
        for (let i = 0; i < OPUS_FRAME_SAMPLES; i++) {
          error += (a[i]! - b[i]!) ** 2;
          signal += b[i]! ** 2;
        }
      }
      // Bit-exact without FEC; with FEC libopus' loss-protection decisions differ slightly after a reset.
      assert.ok(10 * Math.log10(signal / error) > 20, `reset and new encoders agree to ${(10 * Math.log10(signal / error)).toFixed(1)} dB`);
      for (const codec of [used, fresh, fromUsed, fromFresh]) codec.free();
    });

    test('a lost frame is concealed; a corrupt one throws; a freed codec refuses work', () => {
      const encoder = backend.createEncoder(MIX_ENCODER_SETTINGS);
      const decoder = backend.createDecoder();
      const pcm = new Int16Array(OPUS_FRAME_SAMPLES);
      for (const frame of toneFrames.slice(0, 10)) decoder.decodeInto(encoder.encode(frame), pcm);
      assert.equal(decoder.decodeInto(undefined, pcm), OPUS_FRAME_SAMPLES);
      assert.ok(rms(pcm) > 500, 'concealment continues the tone');
      assert.throws(() => decoder.decodeInto(Buffer.from([0xff, 0xff, 0xff, 0x00]), pcm));
      decoder.free();
      encoder.free();
      assert.throws(() => decoder.decodeInto(undefined, pcm), /after free/);
      assert.throws(() => encoder.encode(toneFrames[0]!), /after free/);
    });
  });
}
