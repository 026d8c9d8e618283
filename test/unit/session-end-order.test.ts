import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, type Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import { AudioStatus, FrameType, SdkStreamServiceType } from '../../src/signaling/frames.ts';
import { startTestAmphi } from '../support/helpers.ts';
import { RawClient } from '../support/raw-signaling.ts';

/**
 * When a node stops, every client's last frame is its AUDIO_STATUS 503, and nothing about the others leaving comes
 * before it: the SDK renegotiates on a new INDEX or roster and holds its reconnect back until that renegotiation
 * times out (15 s), so a client told of departures first would come back 15 s late.
 */
const offer = (JSON.parse(readFileSync(path.join(import.meta.dirname, '../support/fixtures/offers/chrome-first-offer.json'), 'utf8')) as { sdpOffer: string }).sdpOffer;
/** Frames that tell a client the meeting changed (what the SDK reacts to by renegotiating or updating its roster). */
const CHANGES = new Set<number>([FrameType.INDEX, FrameType.AUDIO_STREAM_ID_INFO, FrameType.PRIMARY_MEETING_LEAVE]);

describe('a node that stops', () => {
  test("tells every client its status first: no departure fanned out before it, nothing after it", async () => {
    const server = await startTestAmphi({ env: { AMPHI_DRAIN_SECONDS: '0' } });
    try {
      const create = async (input: { ExternalMeetingId: string; PrimaryMeetingId?: string }) =>
        (await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ...input }))).Meeting!;
      const primary = await create({ ExternalMeetingId: 'stopping' });
      const replica = await create({ ExternalMeetingId: 'stopping-r', PrimaryMeetingId: primary.MeetingId });
      const connect = async (meeting: Meeting, name: string) => {
        const { Attendee } = await server.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: name }));
        const client = await RawClient.connect(meeting.MediaPlacement!.SignalingUrl!, Attendee!.JoinToken!);
        await client.join();
        client.send({ type: FrameType.SUBSCRIBE, sub: { duplex: SdkStreamServiceType.RX, sdpOffer: offer, receiveStreamIds: [0] } });
        await client.next(FrameType.SUBSCRIBE_ACK);
        return client;
      };
      const clients = [await connect(primary, 'aa'), await connect(primary, 'bb'), await connect(primary, 'cc'), await connect(replica, 'viewer')];
      // Everyone has seen everyone arrive: what comes from here on is the stop.
      const names = (client: RawClient) =>
        new Set(client.frames.flatMap((f) => (f.type === FrameType.AUDIO_STREAM_ID_INFO ? f.audioStreamIdInfo!.streams!.map((s) => s.externalUserId) : [])));
      for (let waited = 0; !clients.every((c) => ['aa', 'bb', 'cc'].every((n) => names(c).has(n))); waited += 20) {
        assert.ok(waited < 5000, 'everyone present');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const marks = clients.map((c) => c.frames.length);

      await server.amphi.close();

      for (const [i, client] of clients.entries()) {
        await client.closed();
        const frames = client.frames.slice(marks[i]);
        const status = frames.findIndex((f) => f.type === FrameType.AUDIO_STATUS);
        assert.ok(status >= 0, `client ${i} got an AUDIO_STATUS`);
        assert.equal(frames[status]!.audioStatus?.audioStatus, AudioStatus.ServiceUnavailable);
        assert.equal(status, frames.length - 1, `client ${i}: nothing after its status`);
        assert.deepEqual(frames.slice(0, status).filter((f) => CHANGES.has(f.type!)), [], `client ${i}: no change announced before its status`);
      }
    } finally {
      await server.stop();
    }
  });
});
