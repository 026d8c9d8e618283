import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, DeleteAttendeeCommand, DeleteMeetingCommand } from '@aws-sdk/client-chime-sdk-meetings';
import type { MeetingEndReason } from '../../src/meetings/events.ts';
import { LocalMeetingEventBus } from '../../src/meetings/local-event-bus.ts';
import type { AttendeeRecord, MeetingRecord } from '../../src/meetings/model.ts';
import { startTestAmphi, type TestAmphi } from '../support/helpers.ts';

const meeting: MeetingRecord = {
  MeetingId: 'm-1',
  MediaRegion: 'us-east-1',
  TenantIds: [],
  ClientRequestToken: 'request-1',
  RequestFingerprint: 'fingerprint-1',
  MediaNodeId: 'local',
  Tags: [],
  CreatedAt: 0,
};
const attendee: AttendeeRecord = {
  MeetingId: 'm-1',
  AttendeeId: 'a-1',
  ExternalUserId: 'user-1',
  JoinToken: 't-1',
  Capabilities: { Audio: 'SendReceive', Video: 'SendReceive', Content: 'SendReceive' },
  CreatedAt: 0,
};

describe('LocalMeetingEventBus', () => {
  test('delivers each event, with its typed payload, to its own subscribers only', () => {
    const bus = new LocalMeetingEventBus();
    const ended: [string, MeetingEndReason][] = [];
    const deleted: string[] = [];
    bus.subscribe('meetingEnded', (m, reason) => ended.push([m.MeetingId, reason]));
    bus.subscribe('attendeeDeleted', (a) => deleted.push(a.AttendeeId));
    bus.publish('meetingEnded', meeting, 'idle');
    bus.publish('attendeeDeleted', attendee);
    bus.publish('attendeeCapabilitiesChanged', attendee); // nobody listens: nothing happens
    assert.deepEqual(ended, [['m-1', 'idle']]);
    assert.deepEqual(deleted, ['a-1']);
  });

  test('subscribers are called in order, synchronously, until they unsubscribe', () => {
    const bus = new LocalMeetingEventBus();
    const calls: string[] = [];
    const listener = () => calls.push('shared');
    const first = bus.subscribe('attendeeDeleted', () => calls.push('first'));
    const twice = [bus.subscribe('attendeeDeleted', listener), bus.subscribe('attendeeDeleted', listener)];
    bus.publish('attendeeDeleted', attendee);
    assert.deepEqual(calls, ['first', 'shared', 'shared'], 'delivered before publish returns');
    first();
    twice[0]!();
    first(); // a second unsubscribe is harmless
    bus.publish('attendeeDeleted', attendee);
    assert.deepEqual(calls, ['first', 'shared', 'shared', 'shared'], 'each subscription ends on its own');
  });

  test('a subscriber may unsubscribe while being called; the others of that publish still are', () => {
    const bus = new LocalMeetingEventBus();
    const calls: string[] = [];
    const once = bus.subscribe('meetingEnded', () => {
      calls.push('once');
      once();
    });
    bus.subscribe('meetingEnded', () => calls.push('always'));
    bus.publish('meetingEnded', meeting, 'deleted');
    bus.publish('meetingEnded', meeting, 'deleted');
    assert.deepEqual(calls, ['once', 'always', 'always']);
  });
});

describe('the service publishes on its bus', () => {
  let server: TestAmphi;
  before(async () => {
    server = await startTestAmphi();
  });
  after(() => server.stop());

  test('DeleteAttendee and DeleteMeeting, after the change is stored', async () => {
    const service = server.amphi.service;
    const { Meeting } = await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'bus' }));
    const meetingId = Meeting!.MeetingId!;
    const { Attendee } = await server.client.send(new CreateAttendeeCommand({ MeetingId: meetingId, ExternalUserId: 'leaver' }));
    const seen: string[] = [];
    const lookups: Promise<unknown>[] = [];
    const unsubscribes = [
      service.events.subscribe('attendeeDeleted', (a) => {
        seen.push(`deleted ${a.AttendeeId}`);
        lookups.push(service.attendeeForJoinToken(a.JoinToken));
      }),
      service.events.subscribe('meetingEnded', (m, reason) => seen.push(`ended ${m.MeetingId} ${reason}`)),
    ];
    await server.client.send(new DeleteAttendeeCommand({ MeetingId: meetingId, AttendeeId: Attendee!.AttendeeId }));
    await server.client.send(new DeleteMeetingCommand({ MeetingId: meetingId }));
    for (const unsubscribe of unsubscribes) unsubscribe();
    assert.deepEqual(seen, [`deleted ${Attendee!.AttendeeId}`, `ended ${meetingId} deleted`]);
    assert.deepEqual(await Promise.all(lookups), [undefined], 'the deletion was stored before it was published');
  });
});
