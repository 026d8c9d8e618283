import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { rtp } from '../../src/media/protocol/rtp.ts';
import { FanOutPacer } from '../../src/media/sfu/fan-out-pacer.ts';
import { VideoDownstream, VideoLayer } from '../../src/media/sfu/video-forwarding.ts';

/** A VP8 RTP packet of `ssrc`; a key frame when `key`. */
function vp8(seq: number, key: boolean, ssrc = 1111): Buffer {
  const packet = Buffer.alloc(12 + 2 + 20);
  packet[0] = 0x80;
  packet[1] = 96;
  packet.writeUInt16BE(seq & 0xffff, 2);
  packet.writeUInt32BE(seq * 3000, 4);
  packet.writeUInt32BE(ssrc, 8);
  packet[12] = 0x10;
  packet[13] = key ? 0x00 : 0x01;
  return packet;
}

/** Every packet the receivers were sent, in the order sent: which receiver, and the source's sequence number (from the payload). */
class SendLog {
  readonly sends: { receiver: number; payloadByte: number }[] = [];
  sink(receiver: number) {
    return { sendRtp: (packet: Buffer) => void this.sends.push({ receiver, payloadByte: packet[packet.length - 1]! }) };
  }
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A layer with `count` receivers attached, over `pacer`; each packet's last byte carries its number. */
function layerWithReceivers(pacer: FanOutPacer<VideoLayer>, log: SendLog, count: number, firstReceiver = 0, streamId = 1) {
  const layer = new VideoLayer(streamId, streamId, () => undefined, undefined, pacer);
  const downstreams = Array.from({ length: count }, (_, i) => {
    const downstream = new VideoDownstream(5000 + firstReceiver + i, 96, 0, log.sink(firstReceiver + i));
    downstream.attach(layer);
    return downstream;
  });
  const feed = (seq: number, key = false) => {
    const packet = vp8(seq, key);
    packet[packet.length - 1] = seq & 0xff;
    layer.receive(packet, 12, packet.length);
  };
  return { layer, downstreams, feed };
}

describe('fan-out pacing', () => {
  test('below the budget every receiver gets the packet at once', () => {
    const pacer = new FanOutPacer<VideoLayer>(100);
    const log = new SendLog();
    const { feed } = layerWithReceivers(pacer, log, 10);
    feed(1, true);
    feed(2);
    assert.equal(log.sends.length, 20);
    assert.equal(pacer.deferredPackets, 0);
  });

  test('a burst over the budget goes out over several turns, in order for each receiver, nothing lost', async () => {
    const pacer = new FanOutPacer<VideoLayer>(25);
    const log = new SendLog();
    const { feed } = layerWithReceivers(pacer, log, 10);
    for (let seq = 1; seq <= 20; seq++) feed(seq, seq === 1); // a key frame of 20 packets to 10 receivers: 200 sends
    assert.equal(log.sends.length, 25, 'one turn sends only its budget');
    let turns = 1;
    while (log.sends.length < 200) {
      const before = log.sends.length;
      await nextTurn();
      assert.ok(log.sends.length - before <= 25, 'no turn sends more than its budget');
      turns++;
      assert.ok(turns < 100, 'the backlog drains');
    }
    assert.equal(turns, 8, '200 sends at 25 a turn');
    await nextTurn();
    assert.equal(log.sends.length, 200, 'each receiver got each packet once');
    for (let receiver = 0; receiver < 10; receiver++) {
      const order = log.sends.filter((send) => send.receiver === receiver).map((send) => send.payloadByte);
      assert.deepEqual(order, Array.from({ length: 20 }, (_, i) => i + 1), `receiver ${receiver} got the packets in order`);
    }
    assert.equal(pacer.backlogPackets, 0);
  });

  test("another layer's packet is served within two turns of arriving, not after the whole backlog", async () => {
    const pacer = new FanOutPacer<VideoLayer>(10);
    const log = new SendLog();
    const big = layerWithReceivers(pacer, log, 10, 0, 1);
    const small = layerWithReceivers(pacer, log, 1, 100, 2);
    for (let seq = 1; seq <= 10; seq++) big.feed(seq, seq === 1); // 100 sends: ten turns
    small.feed(1, true);
    assert.equal(log.sends.filter((send) => send.receiver === 100).length, 0, 'this turn’s budget is spent');
    await nextTurn(); // the big layer's next packet: this turn's budget
    await nextTurn();
    assert.equal(log.sends.filter((send) => send.receiver === 100).length, 1, 'the small layer had the turn after');
    assert.ok(log.sends.filter((send) => send.receiver < 100).length < 30, 'the big layer was still sending');
  });

  test('a receiver that moved to another layer takes nothing more from the old backlog; a closed layer drops its backlog', async () => {
    const pacer = new FanOutPacer<VideoLayer>(5);
    const log = new SendLog();
    const { layer, downstreams, feed } = layerWithReceivers(pacer, log, 5);
    for (let seq = 1; seq <= 4; seq++) feed(seq, seq === 1);
    assert.equal(log.sends.length, 5, 'the first packet to all five');
    const other = new VideoLayer(9, 9, () => undefined, undefined, pacer);
    downstreams[0]!.attach(other);
    await nextTurn();
    assert.deepEqual(
      log.sends.slice(5).map((send) => send.receiver),
      [1, 2, 3, 4],
      'the second packet to the four that stayed',
    );
    layer.close();
    await nextTurn();
    await nextTurn();
    assert.equal(log.sends.length, 9, 'nothing more once the layer closed');
    assert.equal(pacer.backlogPackets, 0);
  });

  test('a thread that cannot keep up drops what waited too long, instead of queueing without end', async () => {
    const pacer = new FanOutPacer<VideoLayer>(1, 20);
    const received = new Map<number, number[]>();
    const layer = new VideoLayer(1, 1, () => undefined, undefined, pacer);
    for (let i = 0; i < 5; i++) {
      const seqs: number[] = [];
      received.set(i, seqs);
      // Each send takes at least 1 ms, as on an overloaded core: 50 sends need 50 ms, more than the 20 ms allowed.
      const slowSink = {
        sendRtp: (packet: Buffer) => {
          const until = performance.now() + 1;
          while (performance.now() < until);
          seqs.push(rtp.sequence(packet));
        },
      };
      new VideoDownstream(8000 + i, 96, 0, slowSink).attach(layer);
    }
    for (let seq = 0; seq < 10; seq++) {
      const packet = vp8(seq, seq === 0);
      layer.receive(packet, 12, packet.length);
    }
    while (pacer.backlogPackets > 0) await nextTurn();
    assert.ok(pacer.droppedPackets > 0, 'packets that waited past 20 ms were dropped');
    const delivered = [...received.values()].reduce((sum, seqs) => sum + seqs.length, 0);
    assert.ok(delivered < 50, `fewer than all 50 sends happened (${delivered})`);
    for (const seqs of received.values()) {
      for (let i = 1; i < seqs.length; i++) assert.ok(((seqs[i]! - seqs[i - 1]!) & 0xffff) < 0x8000, 'what arrives is still in order');
    }
  });

  test('a budget that is not a positive integer is refused', () => {
    assert.throws(() => new FanOutPacer(0), /positive integer/);
    assert.throws(() => new FanOutPacer(2.5), /positive integer/);
  });

  test('the rewritten sequence numbers of a paced key frame are continuous for every receiver', async () => {
    const pacer = new FanOutPacer<VideoLayer>(7);
    const captured = new Map<number, number[]>();
    const layer = new VideoLayer(1, 1, () => undefined, undefined, pacer);
    for (let i = 0; i < 6; i++) {
      const sequences: number[] = [];
      captured.set(i, sequences);
      new VideoDownstream(7000 + i, 96, 0, { sendRtp: (packet) => void sequences.push(rtp.sequence(packet)) }).attach(layer);
    }
    for (let seq = 100; seq < 112; seq++) {
      const packet = vp8(seq, seq === 100);
      layer.receive(packet, 12, packet.length);
    }
    while (pacer.backlogPackets > 0) await nextTurn();
    for (const sequences of captured.values()) {
      assert.equal(sequences.length, 12);
      for (let i = 1; i < sequences.length; i++) assert.equal((sequences[i]! - sequences[i - 1]!) & 0xffff, 1);
    }
  });
});
