import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { audioLevel, rtp, rtpHeaderLength, rtpPayloadEnd, unwrapRtx, visitRtcp, writeAudioRtpPacket } from '../../src/media/protocol/rtp.ts';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

describe('writeAudioRtpPacket', () => {
  const payload = Buffer.from('opus frame');

  test('writes the header, a one-byte level extension and the payload', () => {
    const out = Buffer.alloc(1500, 0xee);
    const length = writeAudioRtpPacket(out, 111, 0x1234, 0x89abcdef, 0x0a000001, 3, 42, payload);
    assert.equal(length, 20 + payload.length);
    const packet = out.subarray(0, length);
    assert.deepEqual(packet.subarray(0, 20), hex('90 6f 1234 89abcdef 0a000001 bede 0001 30 2a 00 00'));
    assert.deepEqual(packet.subarray(20), payload);
    assert.equal(rtpHeaderLength(packet), 20);
    assert.equal(rtpPayloadEnd(packet), length);
    assert.equal(audioLevel(packet, 3), 42);
    assert.equal(rtp.sequence(packet), 0x1234);
    assert.equal(rtp.timestamp(packet), 0x89abcdef);
    assert.equal(rtp.ssrc(packet), 0x0a000001);
  });

  test('an unknown level is sent as silence, and no extension id means no extension', () => {
    const out = Buffer.alloc(1500);
    const withUnknown = out.subarray(0, writeAudioRtpPacket(out, 111, 1, 960, 7, 1, -1, payload));
    assert.equal(audioLevel(withUnknown, 1), 127);
    const plain = Buffer.from(out.subarray(0, writeAudioRtpPacket(out, 109, 0x1ffff, 2 ** 32 + 5, 7, 0, 30, payload)));
    assert.deepEqual(plain.subarray(0, 12), hex('80 6d ffff 00000005 00000007'), 'sequence and timestamp wrap');
    assert.deepEqual(plain.subarray(12), payload);
    assert.equal(audioLevel(plain, 1), -1);
  });
});

describe('rtpHeaderLength', () => {
  test('counts CSRCs and the extension, and leaves room for a trailer when asked', () => {
    const packet = Buffer.concat([hex('92 6f 0001 00000000 00000001 00000002 00000003 bede 0001 10 05 00 00'), Buffer.alloc(10)]);
    assert.equal(rtpHeaderLength(packet), 28);
    assert.equal(rtpHeaderLength(packet, 10), 28);
    assert.equal(rtpHeaderLength(packet, 11), -1);
    assert.equal(rtpHeaderLength(packet.subarray(0, 26)), -1, 'the extension overruns');
    assert.equal(rtpHeaderLength(hex('40 6f 0001 00000000 00000001')), -1, 'not version 2');
  });
});

describe('visitRtcp reception reports', () => {
  const block = (ssrc: string, lost: string) => `${ssrc} 00 ${lost} 00000000 00000000 00000000 00000000`;
  const reports = (packet: Buffer) => {
    const seen: [number, number][] = [];
    visitRtcp(packet, { receptionReport: (ssrc, lost) => seen.push([ssrc, lost]) });
    return seen;
  };

  test('reads the blocks of an SR after its sender info, and of an RR, with signed cumulative losses', () => {
    // A compound packet as a sending browser makes it: an SR with two blocks, then an RR with one.
    const sr = hex(`82 c8 0012 00000001 00000002 00000003 00000004 00000005 00000006 ${block('0000aaaa', '000007')} ${block('0000bbbb', 'fffffe')}`);
    const rr = hex(`81 c9 0007 00000001 ${block('0000cccc', '012345')}`);
    assert.deepEqual(reports(Buffer.concat([sr, rr])), [
      [0xaaaa, 7],
      [0xbbbb, -2],
      [0xcccc, 0x012345],
    ]);
  });

  test('stops at the end of the packet when the count promises more blocks than it holds', () => {
    assert.deepEqual(reports(hex(`82 c9 0007 00000001 ${block('0000aaaa', '000003')}`)), [[0xaaaa, 3]]);
  });
});

describe('unwrapRtx', () => {
  /** An RTX packet with a one-byte extension (mid), original sequence number 0x1234, payload 'vp8!', and 3 bytes of padding. */
  const rtxPacket = () => {
    const packet = Buffer.from([
      0xb0, 97, 0x00, 0x07, 0, 0, 0x10, 0x00, 0xaa, 0xbb, 0xcc, 0xdd, // V=2, P=1, X=1; PT 97; seq 7; timestamp 4096; RTX SSRC
      0xbe, 0xde, 0x00, 0x01, 0x10, 0x31, 0x00, 0x00, // extension: id 1 = '1'
      0x12, 0x34, 0x76, 0x70, 0x38, 0x21, // OSN, then the original payload
      0x00, 0x00, 0x03, // padding
    ]);
    return packet;
  };

  test('gives back the original packet: its sequence number, payload type, SSRC and payload; header extensions kept, padding gone', () => {
    const packet = rtxPacket();
    const headerLength = rtpHeaderLength(packet);
    const original = unwrapRtx(packet, headerLength, rtpPayloadEnd(packet), 96, 0x01020304)!;
    assert.equal(rtp.sequence(original), 0x1234);
    assert.equal(rtp.payloadType(original), 96);
    assert.equal(rtp.ssrc(original), 0x01020304);
    assert.equal(rtp.timestamp(original), 4096);
    assert.equal(original[0]! & 0x20, 0, 'no padding bit');
    assert.equal(rtpHeaderLength(original), headerLength);
    assert.equal(rtpPayloadEnd(original), original.length);
    assert.equal(original.subarray(headerLength).toString(), 'vp8!');
    assert.equal(rtp.sequence(packet), 7, 'the RTX packet itself is untouched');
  });

  test('a padding-only probe (no original sequence number and payload) stands for nothing', () => {
    const probe = Buffer.from([0xa0, 97, 0, 8, 0, 0, 0, 1, 0xaa, 0xbb, 0xcc, 0xdd, 0, 0, 0, 4]);
    assert.equal(unwrapRtx(probe, rtpHeaderLength(probe), rtpPayloadEnd(probe), 96, 1), undefined);
  });
});
