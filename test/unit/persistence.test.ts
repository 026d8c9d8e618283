import assert from 'node:assert/strict';
import { appendFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import {
  CreateAttendeeCommand,
  CreateMeetingCommand,
  DeleteAttendeeCommand,
  GetAttendeeCommand,
  GetMeetingCommand,
  ListAttendeesCommand,
  ListTagsForResourceCommand,
  TagResourceCommand,
} from '@aws-sdk/client-chime-sdk-meetings';
import { FileStore } from '../../src/store/file-store.ts';
import { errorOf, startTestAmphi, tempDataDir } from '../support/helpers.ts';

describe('the embedded store', () => {
  test('meetings, replicas, attendees, tags and deletions survive a restart', async () => {
    const dataDir = tempDataDir();
    const first = await startTestAmphi({ dataDir });
    const primary = (await first.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'durable', ClientRequestToken: 'durable-token' })))
      .Meeting!;
    const replica = (await first.client.send(new CreateMeetingCommand({ MediaRegion: 'eu-west-1', ExternalMeetingId: 'durable-replica', PrimaryMeetingId: primary.MeetingId })))
      .Meeting!;
    const kept = (await first.client.send(new CreateAttendeeCommand({ MeetingId: primary.MeetingId, ExternalUserId: 'kept' }))).Attendee!;
    const removed = (await first.client.send(new CreateAttendeeCommand({ MeetingId: primary.MeetingId, ExternalUserId: 'removed' }))).Attendee!;
    await first.client.send(new DeleteAttendeeCommand({ MeetingId: primary.MeetingId, AttendeeId: removed.AttendeeId }));
    await first.client.send(new TagResourceCommand({ ResourceARN: primary.MeetingArn, Tags: [{ Key: 'k', Value: 'v' }] }));
    await first.stop(false);

    const second = await startTestAmphi({ dataDir });
    try {
      const fetched = await second.client.send(new GetMeetingCommand({ MeetingId: primary.MeetingId }));
      assert.equal(fetched.Meeting!.ExternalMeetingId, 'durable');
      assert.equal((await second.client.send(new GetMeetingCommand({ MeetingId: replica.MeetingId }))).Meeting!.PrimaryMeetingId, primary.MeetingId);
      assert.deepEqual((await second.client.send(new GetAttendeeCommand({ MeetingId: primary.MeetingId, AttendeeId: kept.AttendeeId }))).Attendee, kept);
      const error = await errorOf(second.client.send(new GetAttendeeCommand({ MeetingId: primary.MeetingId, AttendeeId: removed.AttendeeId })));
      assert.equal(error.name, 'NotFoundException');
      assert.equal((await second.client.send(new ListAttendeesCommand({ MeetingId: primary.MeetingId }))).Attendees!.length, 1);
      assert.deepEqual((await second.client.send(new ListTagsForResourceCommand({ ResourceARN: primary.MeetingArn }))).Tags, [{ Key: 'k', Value: 'v' }]);
      // Idempotency outlives the restart too.
      const retried = await second.client.send(
        new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'durable', ClientRequestToken: 'durable-token' }),
      );
      assert.equal(retried.Meeting!.MeetingId, primary.MeetingId);
      assert.equal((await second.amphi.service.attendeeForJoinToken(kept.JoinToken!))?.AttendeeId, kept.AttendeeId);
      assert.equal(await second.amphi.service.attendeeForJoinToken(removed.JoinToken!), undefined);
    } finally {
      await second.stop();
    }
  });

  test('an acknowledged write is in the journal file before the call returns', async () => {
    const dataDir = tempDataDir();
    const server = await startTestAmphi({ dataDir });
    try {
      const { Meeting } = await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'acked' }));
      const journal = readFileSync(path.join(dataDir, 'meetings.journal'), 'utf8');
      assert.ok(journal.includes(Meeting!.MeetingId!));
    } finally {
      await server.stop();
    }
  });

  test('a journal cut short by a crash loads up to its last whole line; damage elsewhere is reported', async () => {
    const dataDir = tempDataDir();
    const store = await FileStore.open(dataDir);
    await store.putMeeting({
      MeetingId: '0a0a0a0a-0000-4000-8000-000000000001',
      MediaRegion: 'us-east-1',
      ExternalMeetingId: 'crash',
      TenantIds: [],
      ClientRequestToken: 'crash-token',
      RequestFingerprint: 'x',
      MediaNodeId: 'local',
      Tags: [],
      CreatedAt: 1,
    });
    await store.close();
    const file = path.join(dataDir, 'meetings.journal');
    appendFileSync(file, '{"op":"putMeeting","meeting":{"Meeti');
    const reopened = await FileStore.open(dataDir);
    assert.equal((await reopened.getMeeting('0a0a0a0a-0000-4000-8000-000000000001'))?.ExternalMeetingId, 'crash');
    await reopened.close();

    appendFileSync(file, 'garbage\n{"op":"deleteMeeting","meetingId":"x"}\n');
    await assert.rejects(FileStore.open(dataDir), /meetings.journal:2 is not a valid journal entry/);
  });

  test('the journal is compacted when it grows well past the live state', async () => {
    const dataDir = tempDataDir();
    // 10,050 writes one after another: an fsync each would make this test about the disk, not about compaction.
    const store = await FileStore.open(dataDir, { fsync: 'never' });
    const meeting = {
      MeetingId: '0a0a0a0a-0000-4000-8000-000000000002',
      MediaRegion: 'us-east-1',
      ExternalMeetingId: 'churn',
      TenantIds: [],
      ClientRequestToken: 'churn-token',
      RequestFingerprint: 'x',
      MediaNodeId: 'local',
      Tags: [],
      CreatedAt: 1,
    };
    for (let i = 0; i < 10_050; i++) await store.putMeeting({ ...meeting, CreatedAt: i });
    await store.close();
    const lines = readFileSync(path.join(dataDir, 'meetings.journal'), 'utf8').trim().split('\n');
    assert.ok(lines.length < 100, `compacted to ${lines.length} lines`);
    const reopened = await FileStore.open(dataDir);
    assert.equal((await reopened.getMeeting(meeting.MeetingId))?.CreatedAt, 10_049);
    await reopened.close();
  });
});
