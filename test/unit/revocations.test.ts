import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, DeleteAttendeeCommand, DeleteMeetingCommand } from '@aws-sdk/client-chime-sdk-meetings';
import { LocalTokenRevocations } from '../../src/meetings/local-revocations.ts';
import { ManualClock } from '../../src/util/clock.ts';
import { startTestAmphi, type TestAmphi } from '../support/helpers.ts';

const MINUTE = 60_000;

describe('LocalTokenRevocations', () => {
  test('remembers a token with its reason, then forgets it after the memory time', async () => {
    const clock = new ManualClock();
    const revocations = new LocalTokenRevocations(clock, { memoryMs: 10 * MINUTE, maxEntries: 100 });
    await revocations.revoke(['ended-1', 'ended-2'], 'meetingEnded');
    await revocations.revoke(['removed'], 'attendeeRemoved');
    assert.equal(await revocations.reasonFor('ended-2'), 'meetingEnded');
    assert.equal(await revocations.reasonFor('removed'), 'attendeeRemoved');
    assert.equal(await revocations.reasonFor('never-issued'), undefined);
    clock.advance(10 * MINUTE);
    assert.equal(await revocations.reasonFor('ended-1'), 'meetingEnded', 'still remembered at exactly the memory time');
    clock.advance(1);
    assert.equal(await revocations.reasonFor('ended-1'), undefined);
    assert.equal(await revocations.reasonFor('removed'), undefined);
  });

  test('expired revocations are dropped when new ones come, not only when asked for', async () => {
    const clock = new ManualClock();
    const revocations = new LocalTokenRevocations(clock, { memoryMs: MINUTE, maxEntries: 100 });
    await revocations.revoke(['a', 'b', 'c'], 'attendeeRemoved');
    clock.advance(2 * MINUTE);
    await revocations.revoke(['d'], 'attendeeRemoved');
    assert.equal(revocations.size, 1);
  });

  test('holds at most maxEntries, forgetting the oldest first; revoking again makes a token the newest', async () => {
    const clock = new ManualClock();
    const revocations = new LocalTokenRevocations(clock, { memoryMs: 10 * MINUTE, maxEntries: 3 });
    await revocations.revoke(['t1', 't2', 't3'], 'attendeeRemoved');
    await revocations.revoke(['t1'], 'meetingEnded');
    await revocations.revoke(['t4', 't5'], 'meetingEnded');
    assert.equal(revocations.size, 3);
    assert.equal(await revocations.reasonFor('t2'), undefined);
    assert.equal(await revocations.reasonFor('t3'), undefined);
    assert.equal(await revocations.reasonFor('t1'), 'meetingEnded', 'the later reason wins');
    assert.equal(await revocations.reasonFor('t5'), 'meetingEnded');
    await revocations.revoke(Array.from({ length: 50 }, (_, i) => `bulk-${i}`), 'meetingEnded');
    assert.equal(revocations.size, 3);
    assert.equal(await revocations.reasonFor('bulk-49'), 'meetingEnded');
  });
});

describe('the service records revocations where it deletes', () => {
  let server: TestAmphi;
  before(async () => {
    server = await startTestAmphi();
  });
  after(() => server.stop());

  const newMeeting = async (PrimaryMeetingId?: string) =>
    (await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'revoked', PrimaryMeetingId }))).Meeting!.MeetingId!;
  const newAttendee = async (MeetingId: string, ExternalUserId: string) =>
    (await server.client.send(new CreateAttendeeCommand({ MeetingId, ExternalUserId }))).Attendee!;

  test('DeleteAttendee revokes its token; ending a primary revokes every token of it and of its replicas', async () => {
    const service = server.amphi.service;
    const primaryId = await newMeeting();
    const replicaId = await newMeeting(primaryId);
    const removed = await newAttendee(primaryId, 'removed');
    const host = await newAttendee(primaryId, 'host');
    const viewer = await newAttendee(replicaId, 'viewer');
    assert.equal(await service.revocationOf(host.JoinToken!), undefined, 'a live token is not revoked');

    await server.client.send(new DeleteAttendeeCommand({ MeetingId: primaryId, AttendeeId: removed.AttendeeId }));
    assert.equal(await service.revocationOf(removed.JoinToken!), 'attendeeRemoved');

    await server.client.send(new DeleteMeetingCommand({ MeetingId: primaryId }));
    assert.equal(await service.revocationOf(host.JoinToken!), 'meetingEnded');
    assert.equal(await service.revocationOf(viewer.JoinToken!), 'meetingEnded');
    assert.equal(await service.revocationOf(removed.JoinToken!), 'attendeeRemoved', 'an earlier removal keeps its reason');

    server.clock.advance(10 * MINUTE + 1);
    assert.equal(await service.revocationOf(host.JoinToken!), undefined, 'forgotten on the control plane\'s clock');
  });
});
