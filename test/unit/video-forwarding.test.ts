import assert from 'node:assert/strict';
import { describe, mock, test } from 'node:test';
import { buildNack, buildPli, rtp, visitRtcp } from '../../src/media/protocol/rtp.ts';
import { VideoDownstream, VideoLayer } from '../../src/media/sfu/video-forwarding.ts';

/** A VP8 RTP packet: key frames start with S=1, PID=0 and a frame tag whose low bit is 0. */
function vp8(seq: number, timestamp: number, options: { key?: boolean; start?: boolean; ssrc?: number; marker?: boolean } = {}): Buffer {
  const packet = Buffer.alloc(12 + 2 + 20);
  packet[0] = 0x80;
  packet[1] = (options.marker ? 0x80 : 0) | 96;
  packet.writeUInt16BE(seq & 0xffff, 2);
  packet.writeUInt32BE(timestamp >>> 0, 4);
  packet.writeUInt32BE(options.ssrc ?? 1111, 8);
  packet[12] = options.start === false ? 0x00 : 0x10;
  packet[13] = options.key ? 0x00 : 0x01;
  packet.fill(seq & 0xff, 14);
  return packet;
}

class Capture {
  readonly packets: Buffer[] = [];
  sendRtp(packet: Buffer): void {
    this.packets.push(Buffer.from(packet));
  }
}

function setup(absSendTimeId = 0) {
  const requests: number[] = [];
  const layer = new VideoLayer(10, 1, (ssrc) => requests.push(ssrc));
  layer.ssrc = 1111;
  const capture = new Capture();
  const downstream = new VideoDownstream(0xabcdef01, 100, absSendTimeId, capture);
  const feed = (packet: Buffer) => layer.receive(packet, 12, packet.length);
  return { layer, downstream, capture, feed, requests };
}

describe('video forwarding', () => {
  test('a new receiver starts at a key frame, with its own SSRC, payload type and numbering', () => {
    const { layer, downstream, capture, feed, requests } = setup();
    downstream.attach(layer);
    assert.deepEqual(requests, [1111], 'attaching asks the publisher for a key frame');
    feed(vp8(500, 9000));
    feed(vp8(501, 9000, { start: false }));
    assert.equal(capture.packets.length, 0, 'delta frames before the first key frame are dropped');
    feed(vp8(502, 12000, { key: true }));
    feed(vp8(503, 12000, { start: false }));
    feed(vp8(504, 15000));
    assert.equal(capture.packets.length, 3);
    const [first, second, third] = capture.packets as [Buffer, Buffer, Buffer];
    for (const packet of capture.packets) {
      assert.equal(rtp.ssrc(packet), 0xabcdef01);
      assert.equal(rtp.payloadType(packet), 100);
    }
    assert.equal((rtp.sequence(second) - rtp.sequence(first)) & 0xffff, 1);
    assert.equal((rtp.sequence(third) - rtp.sequence(first)) & 0xffff, 2);
    assert.equal((rtp.timestamp(third) - rtp.timestamp(first)) >>> 0, 3000);
    assert.deepEqual(first.subarray(12), vp8(502, 12000, { key: true }).subarray(12), 'payload untouched');
  });

  test('switching to another layer continues the numbering from the next key frame', () => {
    const { layer, downstream, capture, feed } = setup();
    const hi = new VideoLayer(11, 1, () => undefined);
    downstream.attach(layer);
    feed(vp8(1, 1000, { key: true }));
    feed(vp8(2, 4000));
    downstream.attach(hi);
    hi.receive(vp8(7000, 555_000), 12, 34);
    hi.receive(vp8(7001, 558_000, { key: true }), 12, 34);
    hi.receive(vp8(7002, 561_000), 12, 34);
    feed(vp8(3, 7000)); // the old layer no longer reaches this receiver
    const sequences = capture.packets.map((p) => rtp.sequence(p));
    assert.equal(capture.packets.length, 4);
    for (let i = 1; i < sequences.length; i++) assert.equal((sequences[i]! - sequences[i - 1]!) & 0xffff, 1, 'no gap, no jump');
    const timestamps = capture.packets.map((p) => rtp.timestamp(p));
    assert.ok(((timestamps[2]! - timestamps[1]!) >>> 0) > 0 && ((timestamps[2]! - timestamps[1]!) >>> 0) < 90_000, 'timestamps keep moving forward');
    assert.equal((timestamps[3]! - timestamps[2]!) >>> 0, 3000);
  });

  test('NACKs are answered from the history with the receiver numbering', () => {
    const { layer, downstream, capture, feed } = setup();
    downstream.attach(layer);
    for (let seq = 65530; seq < 65546; seq++) feed(vp8(seq, 90_000 + Math.floor((seq - 65530) / 3) * 3000, { key: seq === 65530 }));
    const lost = capture.packets[8]!;
    const nacked: number[] = [];
    visitRtcp(buildNack(1, 0xabcdef01, [rtp.sequence(lost)]), { nack: (_ssrc, seq) => nacked.push(seq) });
    assert.deepEqual(nacked, [rtp.sequence(lost)], 'the NACK codec round-trips');
    const before = capture.packets.length;
    downstream.retransmit(rtp.sequence(lost));
    assert.equal(capture.packets.length, before + 1);
    assert.deepEqual(capture.packets.at(-1), lost, 'the retransmission is the packet the receiver missed');
    downstream.retransmit((rtp.sequence(capture.packets[0]!) - 50) & 0xffff);
    assert.equal(capture.packets.length, before + 1, 'nothing from before the stream started');
  });

  test('key-frame requests of many receivers are merged: at most one a second reaches the publisher', () => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    try {
      const { layer, requests } = setup();
      for (let i = 0; i < 250; i++) layer.requestKeyFrame();
      assert.equal(requests.length, 1, 'the first goes out at once');
      mock.timers.tick(500);
      for (let i = 0; i < 250; i++) layer.requestKeyFrame();
      assert.equal(requests.length, 1);
      mock.timers.tick(500);
      assert.equal(requests.length, 2, 'the rest are merged into one, a second after the first');
      mock.timers.tick(5000);
      assert.equal(requests.length, 2);
    } finally {
      mock.timers.reset();
    }
    const plis: number[] = [];
    visitRtcp(buildPli(1, 1111), { pli: (ssrc) => plis.push(ssrc) });
    assert.deepEqual(plis, [1111]);
  });

  test('a paused receiver gets nothing; abs-send-time is written when negotiated', () => {
    const { layer, downstream, capture, feed } = setup(3);
    downstream.attach(layer);
    feed(vp8(1, 0, { key: true }));
    assert.equal(capture.packets[0]![0]! & 0x10, 0x10, 'extension bit');
    assert.equal(capture.packets[0]!.readUInt16BE(12), 0xbede);
    assert.equal(capture.packets[0]![16]! >> 4, 3);
    downstream.paused = true;
    feed(vp8(2, 3000));
    assert.equal(capture.packets.length, 1);
  });
});

describe('repairing what the publisher lost on its way', () => {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  test('while someone watches, a gap is asked of the publisher (NACK); the repair reaches the subscriber once, duplicates go nowhere', async () => {
    const asked: { ssrc: number; sequences: number[] }[] = [];
    const layer = new VideoLayer(10, 1, () => undefined, (ssrc, sequences) => asked.push({ ssrc, sequences }));
    layer.ssrc = 1111;
    const capture = new Capture();
    const feed = (packet: Buffer) => layer.receive(packet, 12, packet.length);
    feed(vp8(1, 3000, { key: true }));
    feed(vp8(3, 6000));
    await sleep(25);
    feed(vp8(4, 9000));
    assert.deepEqual(asked, [], 'nobody watches: nothing is asked for');

    new VideoDownstream(0xabcdef01, 100, 0, capture).attach(layer);
    feed(vp8(5, 12000, { key: true }));
    assert.deepEqual(asked, [{ ssrc: 1111, sequences: [2] }], 'the gap from before is asked for once someone watches');
    asked.length = 0;
    feed(vp8(8, 15000));
    await sleep(25);
    feed(vp8(9, 18000));
    assert.deepEqual(asked, [{ ssrc: 1111, sequences: [6, 7] }]);
    assert.equal(layer.resendRequests, 3);

    feed(vp8(6, 12000, { start: false }));
    feed(vp8(6, 12000, { start: false }));
    assert.equal(layer.recovered, 1);
    assert.equal(layer.duplicates, 1);
    const sequences = capture.packets.map((packet) => rtp.sequence(packet));
    assert.equal(sequences.length, 4, 'the key frame, 8, 9 and the repaired 6, once');
    assert.equal((sequences[3]! - sequences[0]!) & 0xffff, 1, 'the repair keeps its place in the numbering');
    assert.ok(layer.fromHistory(6), 'and is in the history for receivers that ask for it');
  });

  test('a layer without a way to ask (a replica’s pipe) tracks no gaps', () => {
    const layer = new VideoLayer(10, 1, () => undefined);
    layer.ssrc = 1111;
    new VideoDownstream(1, 100, 0, new Capture()).attach(layer);
    layer.receive(vp8(1, 0, { key: true }), 12, 34);
    layer.receive(vp8(9, 0), 12, 34);
    assert.equal(layer.resendRequests, 0);
  });
});
