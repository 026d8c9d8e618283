import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import type { AttendeeRecord } from '../../src/meetings/model.ts';
import { CloseCode, FrameType, SdkPingPongType } from '../../src/signaling/frames.ts';
import { SignalingSession, type SessionHost } from '../../src/signaling/session.ts';
import { ManualClock } from '../../src/util/clock.ts';
import { RawClient } from '../support/raw-signaling.ts';

const attendee: AttendeeRecord = {
  MeetingId: '11111111-2222-3333-4444-555555555555',
  AttendeeId: '66666666-7777-8888-9999-000000000000',
  ExternalUserId: 'clocked',
  JoinToken: 'token',
  Capabilities: { Audio: 'SendReceive', Video: 'SendReceive', Content: 'SendReceive' },
  CreatedAt: 0,
};

/** A conference that does nothing with its sessions' frames. */
function idleHost(): SessionHost {
  return {
    join: () => undefined,
    subscribe: async () => undefined,
    setMuted: () => undefined,
    dataMessage: () => undefined,
    pauseResume: () => undefined,
    remoteVideoUpdate: () => undefined,
    primaryMeetingJoin: async () => undefined,
    primaryMeetingLeave: () => undefined,
  };
}

let wss: WebSocketServer;
let url: string;
const accepted: WebSocket[] = [];

before(async () => {
  wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  wss.on('connection', (ws) => accepted.push(ws));
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`;
});
after(() => new Promise<void>((resolve) => wss.close(() => resolve())));

/** A session on the server end of a fresh connection, driven by `clock`; the client end to talk to it. */
async function connect(clock: ManualClock, detached: string[]): Promise<{ session: SignalingSession; client: RawClient }> {
  const client = await RawClient.connect(url, 'token');
  while (accepted.length === 0) await new Promise((r) => setTimeout(r, 5));
  const session = new SignalingSession(accepted.shift()!, idleHost(), attendee, false, pino({ level: 'silent' }), clock);
  session.on('closed', (reason) => detached.push(reason));
  return { session, client };
}

const ping = (client: RawClient, pingId: number) => client.send({ type: FrameType.PING_PONG, pingPong: { type: SdkPingPongType.PING, pingId } });

describe('SignalingSession reads time from its clock', () => {
  test('the flood limit counts frames per second of the given clock', async () => {
    const clock = new ManualClock();
    const detached: string[] = [];
    const { session, client } = await connect(clock, detached);
    assert.equal(session.connectedAt, clock.now());
    // 150 frames in each of three seconds of the clock: under the limit of 200 a second.
    for (let second = 0; second < 3; second++) {
      for (let i = 0; i < 150; i++) ping(client, second * 1000 + i);
      assert.equal((await client.next(FrameType.PING_PONG)).pingPong?.pingId, second * 1000);
      while (client.frames.length < 149) await new Promise((r) => setTimeout(r, 5));
      client.frames.length = 0;
      clock.advance(1_000);
    }
    assert.equal(session.state, 'connected');
    // The clock stands still: the next 201 frames are one second's worth, and one too many.
    for (let i = 0; i < 201; i++) ping(client, i);
    assert.equal(await client.closed(), CloseCode.BadRequest);
    assert.equal(session.state, 'closed');
    assert.ok(detached.includes('too many frames'), detached.join());
  });
});
