import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  BatchCreateAttendeeCommand,
  BatchUpdateAttendeeCapabilitiesExceptCommand,
  CreateAttendeeCommand,
  CreateMeetingCommand,
  CreateMeetingWithAttendeesCommand,
  DeleteAttendeeCommand,
  DeleteMeetingCommand,
  GetAttendeeCommand,
  GetMeetingCommand,
  ListAttendeesCommand,
  ListTagsForResourceCommand,
  paginateListAttendees,
  TagResourceCommand,
  UntagResourceCommand,
  UpdateAttendeeCapabilitiesCommand,
} from '@aws-sdk/client-chime-sdk-meetings';
import { errorOf, startTestAmphi, type TestAmphi } from '../support/helpers.ts';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
let server: TestAmphi;

before(async () => {
  server = await startTestAmphi();
});
after(() => server.stop());

const createMeeting = (extra: Record<string, unknown> = {}) =>
  server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'ext-meeting', ...extra }));

describe('meetings', () => {
  test('CreateMeeting returns the meeting with MediaPlacement pointing at Amphi', async () => {
    const { Meeting, $metadata } = await createMeeting({ MeetingHostId: 'host-1', TenantIds: ['tenant-a'] });
    assert.equal($metadata.httpStatusCode, 200);
    assert.match($metadata.requestId!, GUID);
    assert.match(Meeting!.MeetingId!, GUID);
    assert.equal(Meeting!.ExternalMeetingId, 'ext-meeting');
    assert.equal(Meeting!.MeetingHostId, 'host-1');
    assert.equal(Meeting!.MediaRegion, 'us-east-1');
    assert.deepEqual(Meeting!.TenantIds, ['tenant-a']);
    assert.equal(Meeting!.PrimaryMeetingId, undefined);
    assert.equal(Meeting!.MeetingArn, `arn:aws:chime:us-east-1:111122223333:meeting/${Meeting!.MeetingId}`);
    const placement = Meeting!.MediaPlacement!;
    const base = server.amphi.url.replace('http', 'ws');
    assert.equal(placement.SignalingUrl, `${base}/control/${Meeting!.MeetingId}`);
    assert.equal(placement.EventIngestionUrl, `${server.amphi.url}/v1/client-events`);
    for (const key of ['AudioHostUrl', 'AudioFallbackUrl', 'TurnControlUrl', 'ScreenDataUrl', 'ScreenViewingUrl', 'ScreenSharingUrl'] as const) {
      assert.equal(typeof placement[key], 'string', key);
    }
  });

  test('MeetingFeatures are echoed as requested, with real JSON numbers', async () => {
    const features = { Audio: { EchoReduction: 'AVAILABLE' as const }, Video: { MaxResolution: 'FHD' as const }, Attendee: { MaxCount: 20 } };
    const { Meeting } = await createMeeting({ MeetingFeatures: features });
    assert.deepEqual(Meeting!.MeetingFeatures, features);
    const fetched = await server.client.send(new GetMeetingCommand({ MeetingId: Meeting!.MeetingId }));
    assert.equal(fetched.Meeting!.MeetingFeatures!.Attendee!.MaxCount, 20);
  });

  test('GetMeeting returns what CreateMeeting returned; DeleteMeeting answers 204 and the meeting is gone', async () => {
    const { Meeting } = await createMeeting();
    const fetched = await server.client.send(new GetMeetingCommand({ MeetingId: Meeting!.MeetingId }));
    assert.deepEqual(fetched.Meeting, Meeting);
    const deleted = await server.client.send(new DeleteMeetingCommand({ MeetingId: Meeting!.MeetingId }));
    assert.equal(deleted.$metadata.httpStatusCode, 204);
    const error = await errorOf(server.client.send(new GetMeetingCommand({ MeetingId: Meeting!.MeetingId })));
    assert.equal(error.name, 'NotFoundException');
    assert.equal(error.message, `Meeting ${Meeting!.MeetingId} not found`);
    assert.equal(error.$metadata.httpStatusCode, 404);
    assert.equal(error.Code, 'NotFound');
  });

  test('a retry with the same ClientRequestToken returns the same meeting', async () => {
    const first = await createMeeting({ ClientRequestToken: 'retry-token-1' });
    const second = await createMeeting({ ClientRequestToken: 'retry-token-1' });
    assert.equal(second.Meeting!.MeetingId, first.Meeting!.MeetingId);
    const other = await createMeeting({ ClientRequestToken: 'retry-token-2' });
    assert.notEqual(other.Meeting!.MeetingId, first.Meeting!.MeetingId);
  });

  test('the same ClientRequestToken for a different request is a ConflictException', async () => {
    await createMeeting({ ClientRequestToken: 'reused-token' });
    const error = await errorOf(createMeeting({ ClientRequestToken: 'reused-token', ExternalMeetingId: 'another' }));
    assert.equal(error.name, 'ConflictException');
    assert.equal(error.$metadata.httpStatusCode, 409);
  });

  test('simultaneous requests with one ClientRequestToken: one succeeds, the others conflict or return the same meeting', async () => {
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => createMeeting({ ClientRequestToken: 'simultaneous' })));
    const ids = new Set(results.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<any>).value.Meeting.MeetingId));
    assert.equal(ids.size, 1);
    for (const result of results) {
      if (result.status === 'rejected') assert.equal(result.reason.name, 'ConflictException');
    }
  });

  test('CreateMeetingWithAttendees creates both and reports bad items in Errors', async () => {
    const result = await server.client.send(
      new CreateMeetingWithAttendeesCommand({
        MediaRegion: 'eu-west-1',
        ExternalMeetingId: 'with-attendees',
        Attendees: [
          { ExternalUserId: 'user-1', Capabilities: { Audio: 'SendReceive', Video: 'Receive', Content: 'None' } },
          { ExternalUserId: 'user-2' },
          { ExternalUserId: 'x' },
        ],
      }),
    );
    assert.equal(result.Meeting!.MediaRegion, 'eu-west-1');
    assert.equal(result.Attendees!.length, 2);
    assert.deepEqual(result.Attendees![0]!.Capabilities, { Audio: 'SendReceive', Video: 'Receive', Content: 'None' });
    assert.deepEqual(result.Attendees![1]!.Capabilities, { Audio: 'SendReceive', Video: 'SendReceive', Content: 'SendReceive' });
    assert.equal(result.Errors!.length, 1);
    assert.equal(result.Errors![0]!.ExternalUserId, 'x');
    assert.equal(result.Errors![0]!.ErrorCode, 'BadRequest');
    const listed = await server.client.send(new ListAttendeesCommand({ MeetingId: result.Meeting!.MeetingId }));
    assert.equal(listed.Attendees!.length, 2);
  });

  test('CreateMeetingWithAttendees takes at most 10 attendees', async () => {
    const error = await errorOf(
      server.client.send(
        new CreateMeetingWithAttendeesCommand({
          MediaRegion: 'us-east-1',
          ExternalMeetingId: 'too-many',
          Attendees: Array.from({ length: 11 }, (_, i) => ({ ExternalUserId: `user-${i}` })),
        }),
      ),
    );
    assert.equal(error.name, 'BadRequestException');
    assert.match(error.message, /Attendees.*less than or equal to 10/);
  });
});

describe('replicas', () => {
  test('a replica names its primary, may be in another region, and shows PrimaryMeetingId', async () => {
    const primary = (await createMeeting()).Meeting!;
    const replica = (await createMeeting({ MediaRegion: 'ap-northeast-1', PrimaryMeetingId: primary.MeetingId })).Meeting!;
    assert.equal(replica.PrimaryMeetingId, primary.MeetingId);
    assert.equal(replica.MediaRegion, 'ap-northeast-1');
    const fetched = await server.client.send(new GetMeetingCommand({ MeetingId: replica.MeetingId }));
    assert.equal(fetched.Meeting!.PrimaryMeetingId, primary.MeetingId);
  });

  test('a replica of a replica is refused', async () => {
    const primary = (await createMeeting()).Meeting!;
    const replica = (await createMeeting({ PrimaryMeetingId: primary.MeetingId })).Meeting!;
    const error = await errorOf(createMeeting({ PrimaryMeetingId: replica.MeetingId }));
    assert.equal(error.name, 'BadRequestException');
    assert.match(error.message, /is a replica meeting/);
  });

  test('a missing primary is refused', async () => {
    const error = await errorOf(createMeeting({ PrimaryMeetingId: '0a0a0a0a-0000-4000-8000-000000000000' }));
    assert.equal(error.name, 'BadRequestException');
    assert.equal(error.message, 'Primary meeting 0a0a0a0a-0000-4000-8000-000000000000 not found');
  });

  test('at most 4 replicas per primary by default', async () => {
    const primary = (await createMeeting()).Meeting!;
    for (let i = 0; i < 4; i++) await createMeeting({ PrimaryMeetingId: primary.MeetingId });
    const error = await errorOf(createMeeting({ PrimaryMeetingId: primary.MeetingId }));
    assert.equal(error.name, 'LimitExceededException');
    assert.equal(error.$metadata.httpStatusCode, 400);
  });

  test('deleting a primary deletes its replicas and their attendees', async () => {
    const primary = (await createMeeting()).Meeting!;
    const replicas = [
      (await createMeeting({ PrimaryMeetingId: primary.MeetingId })).Meeting!,
      (await createMeeting({ PrimaryMeetingId: primary.MeetingId, MediaRegion: 'eu-central-1' })).Meeting!,
    ];
    const attendee = (await server.client.send(new CreateAttendeeCommand({ MeetingId: replicas[0]!.MeetingId, ExternalUserId: 'viewer' })))
      .Attendee!;
    await server.client.send(new DeleteMeetingCommand({ MeetingId: primary.MeetingId }));
    for (const replica of replicas) {
      const error = await errorOf(server.client.send(new GetMeetingCommand({ MeetingId: replica.MeetingId })));
      assert.equal(error.name, 'NotFoundException');
    }
    assert.equal(await server.amphi.service.attendeeForJoinToken(attendee.JoinToken!), undefined);
  });

  test('deleting a replica leaves its primary', async () => {
    const primary = (await createMeeting()).Meeting!;
    const replica = (await createMeeting({ PrimaryMeetingId: primary.MeetingId })).Meeting!;
    await server.client.send(new DeleteMeetingCommand({ MeetingId: replica.MeetingId }));
    const fetched = await server.client.send(new GetMeetingCommand({ MeetingId: primary.MeetingId }));
    assert.equal(fetched.Meeting!.MeetingId, primary.MeetingId);
  });
});

describe('attendees', () => {
  test('CreateAttendee, GetAttendee, DeleteAttendee', async () => {
    const meeting = (await createMeeting()).Meeting!;
    const { Attendee } = await server.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: 'alice@example.com' }));
    assert.match(Attendee!.AttendeeId!, GUID);
    assert.equal(Attendee!.ExternalUserId, 'alice@example.com');
    assert.deepEqual(Attendee!.Capabilities, { Audio: 'SendReceive', Video: 'SendReceive', Content: 'SendReceive' });
    const fetched = await server.client.send(new GetAttendeeCommand({ MeetingId: meeting.MeetingId, AttendeeId: Attendee!.AttendeeId }));
    assert.deepEqual(fetched.Attendee, Attendee);
    const deleted = await server.client.send(new DeleteAttendeeCommand({ MeetingId: meeting.MeetingId, AttendeeId: Attendee!.AttendeeId }));
    assert.equal(deleted.$metadata.httpStatusCode, 204);
    const error = await errorOf(server.client.send(new GetAttendeeCommand({ MeetingId: meeting.MeetingId, AttendeeId: Attendee!.AttendeeId })));
    assert.equal(error.name, 'NotFoundException');
    assert.equal(error.message, `Attendee ${Attendee!.AttendeeId} not found`);
  });

  test('the JoinToken is unforgeable, a valid subprotocol token, and revoked by DeleteAttendee', async () => {
    const meeting = (await createMeeting()).Meeting!;
    const { Attendee } = await server.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: 'token-user' }));
    const token = Attendee!.JoinToken!;
    assert.match(token, /^[A-Za-z0-9]+$/, 'HTTP token characters only, no = or separators');
    const [attendeeId, secret] = Buffer.from(token, 'base64').toString().split(':');
    assert.equal(attendeeId, Attendee!.AttendeeId);
    assert.match(secret!, /^[0-9a-f]{64}$/, '256 random bits');
    const service = server.amphi.service;
    assert.equal((await service.attendeeForJoinToken(token))?.AttendeeId, Attendee!.AttendeeId);
    await server.client.send(new DeleteAttendeeCommand({ MeetingId: meeting.MeetingId, AttendeeId: Attendee!.AttendeeId }));
    assert.equal(await service.attendeeForJoinToken(token), undefined);
    assert.equal(await service.revocationOf(token), 'attendeeRemoved', 'its client\'s retries are told why');
  });

  test('a retry with the same ExternalUserId returns the same attendee', async () => {
    const meeting = (await createMeeting()).Meeting!;
    const first = await server.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: 'same-user' }));
    const second = await server.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: 'same-user' }));
    assert.deepEqual(second.Attendee, first.Attendee);
    const batch = await server.client.send(
      new BatchCreateAttendeeCommand({ MeetingId: meeting.MeetingId, Attendees: [{ ExternalUserId: 'same-user' }, { ExternalUserId: 'new-user' }] }),
    );
    assert.deepEqual(batch.Attendees![0], first.Attendee);
    const listed = await server.client.send(new ListAttendeesCommand({ MeetingId: meeting.MeetingId }));
    assert.equal(listed.Attendees!.length, 2);
  });

  test('BatchCreateAttendee creates up to 100 and reports partial failure in Errors', async () => {
    const meeting = (await createMeeting()).Meeting!;
    const attendees = Array.from({ length: 100 }, (_, i) => ({ ExternalUserId: `batch-${i}` }));
    attendees[7] = { ExternalUserId: 'aws:reserved' };
    const result = await server.client.send(new BatchCreateAttendeeCommand({ MeetingId: meeting.MeetingId, Attendees: attendees }));
    assert.equal(result.$metadata.httpStatusCode, 200);
    assert.equal(result.Attendees!.length, 99);
    assert.deepEqual(result.Errors, [
      {
        ExternalUserId: 'aws:reserved',
        ErrorCode: 'BadRequest',
        ErrorMessage: "1 validation error detected: Value at 'Attendees.8.ExternalUserId' failed to satisfy constraint: Member must not start with the reserved prefix aws:",
      },
    ]);
    const tooMany = await errorOf(
      server.client.send(
        new BatchCreateAttendeeCommand({ MeetingId: meeting.MeetingId, Attendees: Array.from({ length: 101 }, (_, i) => ({ ExternalUserId: `x-${i}` })) }),
      ),
    );
    assert.equal(tooMany.name, 'BadRequestException');
  });

  test('a meeting holds at most 250 attendees; the batch reports the overflow per item', async () => {
    const meeting = (await createMeeting()).Meeting!;
    for (let batch = 0; batch < 2; batch++) {
      await server.client.send(
        new BatchCreateAttendeeCommand({
          MeetingId: meeting.MeetingId,
          Attendees: Array.from({ length: 100 }, (_, i) => ({ ExternalUserId: `cap-${batch}-${i}` })),
        }),
      );
    }
    const last = await server.client.send(
      new BatchCreateAttendeeCommand({ MeetingId: meeting.MeetingId, Attendees: Array.from({ length: 60 }, (_, i) => ({ ExternalUserId: `cap-2-${i}` })) }),
    );
    assert.equal(last.Attendees!.length, 50);
    assert.equal(last.Errors!.length, 10);
    assert.equal(last.Errors![0]!.ErrorCode, 'ResourceLimitExceeded');
    const error = await errorOf(server.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: 'one-more' })));
    assert.equal(error.name, 'LimitExceededException');
    assert.match(error.message, /maximum of 250 attendees/);
  });

  test('MaxCount and the high-definition limit of 25 cap attendees', async () => {
    const small = (await createMeeting({ MeetingFeatures: { Attendee: { MaxCount: 2 } } })).Meeting!;
    const result = await server.client.send(
      new BatchCreateAttendeeCommand({ MeetingId: small.MeetingId, Attendees: [{ ExternalUserId: 'a1' }, { ExternalUserId: 'a2' }, { ExternalUserId: 'a3' }] }),
    );
    assert.equal(result.Attendees!.length, 2);
    assert.equal(result.Errors![0]!.ExternalUserId, 'a3');

    const hd = (await createMeeting({ MeetingFeatures: { Video: { MaxResolution: 'FHD' } } })).Meeting!;
    await server.client.send(
      new BatchCreateAttendeeCommand({ MeetingId: hd.MeetingId, Attendees: Array.from({ length: 25 }, (_, i) => ({ ExternalUserId: `hd-${i}` })) }),
    );
    const error = await errorOf(server.client.send(new CreateAttendeeCommand({ MeetingId: hd.MeetingId, ExternalUserId: 'hd-26' })));
    assert.equal(error.name, 'LimitExceededException');

    const refused = await errorOf(createMeeting({ MeetingFeatures: { Content: { MaxResolution: 'UHD' }, Attendee: { MaxCount: 26 } } }));
    assert.equal(refused.name, 'BadRequestException');
  });

  test('ListAttendees pages through 250 attendees with max-results and an opaque next-token', async () => {
    const meeting = (await createMeeting()).Meeting!;
    const created = new Set<string>();
    for (let batch = 0; batch < 3; batch++) {
      const size = batch < 2 ? 100 : 50;
      const result = await server.client.send(
        new BatchCreateAttendeeCommand({
          MeetingId: meeting.MeetingId,
          Attendees: Array.from({ length: size }, (_, i) => ({ ExternalUserId: `page-${batch}-${i}` })),
        }),
      );
      for (const attendee of result.Attendees!) created.add(attendee.AttendeeId!);
    }
    assert.equal(created.size, 250);
    const seen: string[] = [];
    let pages = 0;
    for await (const page of paginateListAttendees({ client: server.client, pageSize: 30 }, { MeetingId: meeting.MeetingId })) {
      pages++;
      assert.ok(page.Attendees!.length <= 30);
      seen.push(...page.Attendees!.map((a) => a.AttendeeId!));
    }
    assert.equal(pages, 9);
    assert.equal(seen.length, 250);
    assert.deepEqual(new Set(seen), created);

    const first = await server.client.send(new ListAttendeesCommand({ MeetingId: meeting.MeetingId, MaxResults: 100 }));
    assert.equal(first.Attendees!.length, 100);
    assert.ok(first.NextToken);
    const all = await server.client.send(new ListAttendeesCommand({ MeetingId: meeting.MeetingId }));
    assert.equal(all.Attendees!.length, 100, 'default page size is 100');

    for (const bad of [0, 101]) {
      const error = await errorOf(server.client.send(new ListAttendeesCommand({ MeetingId: meeting.MeetingId, MaxResults: bad })));
      assert.equal(error.name, 'BadRequestException');
    }
    const forged = await errorOf(server.client.send(new ListAttendeesCommand({ MeetingId: meeting.MeetingId, NextToken: 'not-a-token' })));
    assert.equal(forged.name, 'BadRequestException');
  });

  test('UpdateAttendeeCapabilities and BatchUpdateAttendeeCapabilitiesExcept', async () => {
    const meeting = (await createMeeting()).Meeting!;
    const ids: string[] = [];
    for (const user of ['cap-a', 'cap-b', 'cap-c']) {
      ids.push((await server.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: user }))).Attendee!.AttendeeId!);
    }
    const changed: string[] = [];
    server.amphi.service.events.subscribe('attendeeCapabilitiesChanged', (attendee) => changed.push(attendee.AttendeeId));
    const updated = await server.client.send(
      new UpdateAttendeeCapabilitiesCommand({
        MeetingId: meeting.MeetingId,
        AttendeeId: ids[0],
        Capabilities: { Audio: 'Receive', Video: 'None', Content: 'None' },
      }),
    );
    assert.deepEqual(updated.Attendee!.Capabilities, { Audio: 'Receive', Video: 'None', Content: 'None' });
    const result = await server.client.send(
      new BatchUpdateAttendeeCapabilitiesExceptCommand({
        MeetingId: meeting.MeetingId,
        ExcludedAttendeeIds: [{ AttendeeId: ids[0] }],
        Capabilities: { Audio: 'Send', Video: 'Send', Content: 'Send' },
      }),
    );
    assert.equal(result.$metadata.httpStatusCode, 200);
    const fetched = await Promise.all(ids.map((id) => server.client.send(new GetAttendeeCommand({ MeetingId: meeting.MeetingId, AttendeeId: id }))));
    assert.deepEqual(fetched[0]!.Attendee!.Capabilities, { Audio: 'Receive', Video: 'None', Content: 'None' });
    assert.deepEqual(fetched[1]!.Attendee!.Capabilities, { Audio: 'Send', Video: 'Send', Content: 'Send' });
    assert.deepEqual(fetched[2]!.Attendee!.Capabilities, { Audio: 'Send', Video: 'Send', Content: 'Send' });
    assert.deepEqual(changed.sort(), [...ids].sort(), 'the media plane is told of every change');
  });
});

describe('capability rules', () => {
  const attend = (meetingId: string | undefined, Capabilities?: Record<string, string>) =>
    server.client.send(new CreateAttendeeCommand({ MeetingId: meetingId, ExternalUserId: `u-${Math.random()}`, Capabilities: Capabilities as any }));

  test('video None: video capabilities are refused and the default is None', async () => {
    const meeting = (await createMeeting({ MeetingFeatures: { Video: { MaxResolution: 'None' }, Content: { MaxResolution: 'None' } } })).Meeting!;
    const { Attendee } = await attend(meeting.MeetingId);
    assert.deepEqual(Attendee!.Capabilities, { Audio: 'SendReceive', Video: 'None', Content: 'None' });
    for (const Video of ['SendReceive', 'Send', 'Receive']) {
      const error = await errorOf(attend(meeting.MeetingId, { Audio: 'SendReceive', Video, Content: 'None' }));
      assert.equal(error.name, 'BadRequestException', Video);
    }
  });

  test('video None with content: defaults to Video Receive and Content SendReceive', async () => {
    const meeting = (await createMeeting({ MeetingFeatures: { Video: { MaxResolution: 'None' } } })).Meeting!;
    const { Attendee } = await attend(meeting.MeetingId);
    assert.deepEqual(Attendee!.Capabilities, { Audio: 'SendReceive', Video: 'Receive', Content: 'SendReceive' });
    const error = await errorOf(attend(meeting.MeetingId, { Audio: 'SendReceive', Video: 'Send', Content: 'None' }));
    assert.equal(error.name, 'BadRequestException');
  });

  test('content None: content capabilities are refused', async () => {
    const meeting = (await createMeeting({ MeetingFeatures: { Content: { MaxResolution: 'None' } } })).Meeting!;
    assert.deepEqual((await attend(meeting.MeetingId)).Attendee!.Capabilities, { Audio: 'SendReceive', Video: 'SendReceive', Content: 'None' });
    const error = await errorOf(attend(meeting.MeetingId, { Audio: 'None', Video: 'SendReceive', Content: 'Send' }));
    assert.equal(error.name, 'BadRequestException');
  });

  test('receiving content requires receiving video', async () => {
    const meeting = (await createMeeting()).Meeting!;
    for (const Content of ['SendReceive', 'Receive']) {
      for (const Video of ['Send', 'None']) {
        const error = await errorOf(attend(meeting.MeetingId, { Audio: 'None', Video, Content }));
        assert.equal(error.name, 'BadRequestException', `${Video}/${Content}`);
      }
    }
    await attend(meeting.MeetingId, { Audio: 'None', Video: 'None', Content: 'Send' });
    await attend(meeting.MeetingId, { Audio: 'None', Video: 'Receive', Content: 'None' });
    const meetingForUpdate = (await createMeeting()).Meeting!;
    const attendee = (await attend(meetingForUpdate.MeetingId)).Attendee!;
    const error = await errorOf(
      server.client.send(
        new UpdateAttendeeCapabilitiesCommand({
          MeetingId: meetingForUpdate.MeetingId,
          AttendeeId: attendee.AttendeeId,
          Capabilities: { Audio: 'None', Video: 'None', Content: 'Receive' },
        }),
      ),
    );
    assert.equal(error.name, 'BadRequestException');
  });
});

describe('client events', () => {
  test("EventIngestionUrl takes the browser SDK's client-event POSTs, with CORS", async () => {
    const { Meeting } = await createMeeting();
    const url = Meeting!.MediaPlacement!.EventIngestionUrl!;
    const preflight = await fetch(url, { method: 'OPTIONS', headers: { origin: 'http://app.example', 'access-control-request-headers': 'content-type' } });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), '*');
    const posted = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ events: [{ name: 'meetingStartRequested' }] }) });
    assert.equal(posted.status, 200);
    assert.deepEqual(await posted.json(), {});
  });
});

describe('tags', () => {
  test('tag, list and untag a meeting ARN; tags given at creation are kept', async () => {
    const meeting = (await createMeeting({ Tags: [{ Key: 'team', Value: 'blue' }] })).Meeting!;
    const arn = meeting.MeetingArn!;
    const tagged = await server.client.send(new TagResourceCommand({ ResourceARN: arn, Tags: [{ Key: 'env', Value: 'prod' }, { Key: 'team', Value: 'red' }] }));
    assert.equal(tagged.$metadata.httpStatusCode, 204);
    const listed = await server.client.send(new ListTagsForResourceCommand({ ResourceARN: arn }));
    assert.deepEqual(listed.Tags, [
      { Key: 'team', Value: 'red' },
      { Key: 'env', Value: 'prod' },
    ]);
    const untagged = await server.client.send(new UntagResourceCommand({ ResourceARN: arn, TagKeys: ['team'] }));
    assert.equal(untagged.$metadata.httpStatusCode, 204);
    assert.deepEqual((await server.client.send(new ListTagsForResourceCommand({ ResourceARN: arn }))).Tags, [{ Key: 'env', Value: 'prod' }]);
  });

  test('unknown resources are ResourceNotFoundException with ResourceName', async () => {
    const meeting = (await createMeeting()).Meeting!;
    for (const arn of [
      'arn:aws:chime:us-east-1:111122223333:meeting/0a0a0a0a-0000-4000-8000-000000000000',
      meeting.MeetingArn!.replace('111122223333', '999999999999'),
      'arn:aws:s3:::bucket',
    ]) {
      const error = await errorOf(server.client.send(new ListTagsForResourceCommand({ ResourceARN: arn })));
      assert.equal(error.name, 'ResourceNotFoundException', arn);
      assert.equal(error.ResourceName, arn);
      assert.equal(error.$metadata.httpStatusCode, 404);
    }
  });

  test('more than 50 tags is TooManyTagsException', async () => {
    const meeting = (await createMeeting()).Meeting!;
    const tags = Array.from({ length: 50 }, (_, i) => ({ Key: `k${i}`, Value: 'v' }));
    await server.client.send(new TagResourceCommand({ ResourceARN: meeting.MeetingArn, Tags: tags }));
    const error = await errorOf(server.client.send(new TagResourceCommand({ ResourceARN: meeting.MeetingArn, Tags: [{ Key: 'one-more', Value: 'v' }] })));
    assert.equal(error.name, 'TooManyTagsException');
    assert.equal(error.ResourceName, meeting.MeetingArn);
  });
});
