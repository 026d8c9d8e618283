import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, GetMeetingCommand } from '@aws-sdk/client-chime-sdk-meetings';
import { errorOf, startTestAmphi, type TestAmphi } from '../support/helpers.ts';

const MINUTE = 60_000;
let server: TestAmphi;

before(async () => {
  server = await startTestAmphi();
});
after(() => server.stop());

const createMeeting = async (PrimaryMeetingId?: string) =>
  (await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'life', PrimaryMeetingId }))).Meeting!
    .MeetingId!;
const exists = async (meetingId: string) => {
  try {
    await server.client.send(new GetMeetingCommand({ MeetingId: meetingId }));
    return true;
  } catch (error) {
    assert.equal((error as Error).name, 'NotFoundException');
    return false;
  }
};

describe('idle deletion', () => {
  test('a meeting nobody joins is deleted after 5 minutes, not before', async () => {
    const meetingId = await createMeeting();
    server.clock.advance(4 * MINUTE + 59_000);
    assert.deepEqual(await server.amphi.lifecycle.sweep(), []);
    assert.ok(await exists(meetingId));
    server.clock.advance(1_000);
    assert.deepEqual(await server.amphi.lifecycle.sweep(), [meetingId]);
    assert.equal(await exists(meetingId), false);
  });

  test('a connected attendee keeps the meeting; 5 contiguous minutes after the last one leaves, it is deleted', async () => {
    const meetingId = await createMeeting();
    const { Attendee } = await server.client.send(new CreateAttendeeCommand({ MeetingId: meetingId, ExternalUserId: 'stayer' }));
    const lifecycle = server.amphi.lifecycle;
    lifecycle.attendeeConnected(meetingId, Attendee!.AttendeeId!);
    server.clock.advance(30 * MINUTE);
    await lifecycle.sweep();
    assert.ok(await exists(meetingId), 'connected meetings stay');

    lifecycle.attendeeDisconnected(meetingId, Attendee!.AttendeeId!);
    server.clock.advance(3 * MINUTE);
    await lifecycle.sweep();
    lifecycle.attendeeConnected(meetingId, Attendee!.AttendeeId!); // back before the 5 minutes ran out
    server.clock.advance(3 * MINUTE);
    lifecycle.attendeeDisconnected(meetingId, Attendee!.AttendeeId!);
    server.clock.advance(4 * MINUTE);
    await lifecycle.sweep();
    assert.ok(await exists(meetingId), 'the idle time restarts at each disconnection');
    server.clock.advance(1 * MINUTE);
    await lifecycle.sweep();
    assert.equal(await exists(meetingId), false);
  });

  test('two sessions of one attendee: the meeting stays connected until both end', async () => {
    const meetingId = await createMeeting();
    const lifecycle = server.amphi.lifecycle;
    lifecycle.attendeeConnected(meetingId, 'a');
    lifecycle.attendeeConnected(meetingId, 'a');
    lifecycle.attendeeDisconnected(meetingId, 'a');
    assert.equal(lifecycle.connectedAttendees(meetingId), 1);
    server.clock.advance(10 * MINUTE);
    await lifecycle.sweep();
    assert.ok(await exists(meetingId));
    lifecycle.attendeeDisconnected(meetingId, 'a');
    server.clock.advance(5 * MINUTE);
    await lifecycle.sweep();
    assert.equal(await exists(meetingId), false);
  });

  test('replicas are not deleted for idleness; they go with their primary', async () => {
    const primaryId = await createMeeting();
    const replicaId = await createMeeting(primaryId);
    server.amphi.lifecycle.attendeeConnected(primaryId, 'presenter');
    server.clock.advance(20 * MINUTE);
    await server.amphi.lifecycle.sweep();
    assert.ok(await exists(replicaId), 'an idle replica of a live primary stays');
    server.amphi.lifecycle.attendeeDisconnected(primaryId, 'presenter');
    server.clock.advance(5 * MINUTE);
    const ended = await server.amphi.lifecycle.sweep();
    assert.ok(ended.includes(primaryId));
    assert.equal(await exists(primaryId), false);
    assert.equal(await exists(replicaId), false);
  });
});

describe('maximum age', () => {
  test('a meeting is deleted at 24 hours even while connected', async () => {
    const meetingId = await createMeeting();
    server.amphi.lifecycle.attendeeConnected(meetingId, 'marathon');
    server.clock.advance(24 * 60 * MINUTE - 1);
    await server.amphi.lifecycle.sweep();
    assert.ok(await exists(meetingId));
    server.clock.advance(1);
    assert.deepEqual(await server.amphi.lifecycle.sweep(), [meetingId]);
    const error = await errorOf(server.client.send(new GetMeetingCommand({ MeetingId: meetingId })));
    assert.equal(error.message, `Meeting ${meetingId} not found`);
  });

  test('ending a meeting tells the media plane, with the reason', async () => {
    const primaryId = await createMeeting();
    const replicaId = await createMeeting(primaryId);
    const ended: [string, string][] = [];
    const listener = (meeting: { MeetingId: string }, reason: string) => ended.push([meeting.MeetingId, reason]);
    const unsubscribe = server.amphi.service.events.subscribe('meetingEnded', listener);
    server.clock.advance(5 * MINUTE);
    await server.amphi.lifecycle.sweep();
    unsubscribe();
    assert.deepEqual(ended, [
      [replicaId, 'primaryDeleted'],
      [primaryId, 'idle'],
    ]);
  });
});
