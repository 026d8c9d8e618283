import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  BadRequestException,
  ChimeSDKMeetingsClient,
  ChimeSDKMeetingsServiceException,
  CreateAttendeeCommand,
  CreateMeetingCommand,
  GetAttendeeCommand,
  GetMeetingCommand,
  StartMeetingTranscriptionCommand,
  StopMeetingTranscriptionCommand,
} from '@aws-sdk/client-chime-sdk-meetings';
import type { MeetingStore } from '../../src/meetings/meeting-store.ts';
import { FileStore } from '../../src/store/file-store.ts';
import { clientFor, errorOf, startTestAmphi, tempDataDir, TEST_KEY, type TestAmphi } from '../support/helpers.ts';
import { rawRequest, type RawResponse } from '../support/raw-request.ts';

let server: TestAmphi;
let meetingId: string;

before(async () => {
  server = await startTestAmphi();
  const { Meeting } = await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'errors' }));
  meetingId = Meeting!.MeetingId!;
});
after(() => server.stop());

const create = (input: Record<string, unknown>) =>
  server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'ext', ...input } as any));

describe('validation of every member', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['unknown region', { MediaRegion: 'mars-1' }, /MediaRegion mars-1 is not a valid media region/],
    ['short ExternalMeetingId', { ExternalMeetingId: 'x' }, /ExternalMeetingId.*greater than or equal to 2/],
    ['long ExternalMeetingId', { ExternalMeetingId: 'x'.repeat(65) }, /ExternalMeetingId.*less than or equal to 64/],
    ['reserved ExternalMeetingId', { ExternalMeetingId: 'AWS:meeting' }, /reserved prefix/],
    ['ExternalMeetingId with forbidden characters', { ExternalMeetingId: 'a<b>' }, /ExternalMeetingId.*regular expression/],
    ['bad ClientRequestToken', { ClientRequestToken: 'has space' }, /ClientRequestToken.*regular expression/],
    ['short MeetingHostId', { MeetingHostId: 'h' }, /MeetingHostId/],
    ['enum MaxResolution', { MeetingFeatures: { Video: { MaxResolution: '8K' } } }, /Video.MaxResolution.*enum value set/],
    ['EchoReduction enum', { MeetingFeatures: { Audio: { EchoReduction: 'MAYBE' } } }, /EchoReduction/],
    ['MaxCount as a string', { MeetingFeatures: { Attendee: { MaxCount: '25' } } }, /MaxCount.*must be a number/],
    ['MaxCount 0', { MeetingFeatures: { Attendee: { MaxCount: 0 } } }, /MaxCount.*greater than or equal to 1/],
    ['MaxCount 251', { MeetingFeatures: { Attendee: { MaxCount: 251 } } }, /MaxCount.*less than or equal to 250/],
    ['FHD needs MaxCount 25 or less', { MeetingFeatures: { Video: { MaxResolution: 'FHD' }, Attendee: { MaxCount: 100 } } }, /at most 25/],
    ['TenantIds empty', { TenantIds: [] }, /TenantIds.*greater than or equal to 1/],
    ['TenantIds six', { TenantIds: ['aa', 'bb', 'cc', 'dd', 'ee', 'ff'] }, /TenantIds.*less than or equal to 5/],
    ['TenantId with a run of four', { TenantIds: ['abbbbc'] }, /TenantIds.0.*regular expression/],
    ['notification ARN', { NotificationsConfiguration: { SnsTopicArn: 'not-an-arn' } }, /SnsTopicArn/],
    ['network type', { MediaPlacementNetworkType: 'IPv6Only' }, /MediaPlacementNetworkType/],
    ['tag key pattern', { Tags: [{ Key: 'bad key!', Value: 'v' }] }, /Tags.0.Key/],
    ['tag without value', { Tags: [{ Key: 'k' }] }, /Tags.0.Value.*must not be null/],
    ['51 tags', { Tags: Array.from({ length: 51 }, (_, i) => ({ Key: `k${i}`, Value: 'v' })) }, /Tags.*less than or equal to 50/],
  ];
  for (const [name, input, message] of cases) {
    test(`CreateMeeting refuses ${name}`, async () => {
      const error = await errorOf(create(input));
      assert.equal(error.name, 'BadRequestException');
      assert.equal(error.$metadata.httpStatusCode, 400);
      assert.match(error.message, message);
      assert.equal(error.Code, 'BadRequest');
    });
  }

  test('CreateMeeting without the required members names each of them', async () => {
    const response = await rawRequest(server.amphi.url, { method: 'POST', path: '/meetings', body: '{}' });
    assert.equal(response.status, 400);
    for (const member of ['ClientRequestToken', 'MediaRegion', 'ExternalMeetingId']) {
      assert.match(response.json.Message, new RegExp(`'${member}' failed to satisfy constraint: Member must not be null`));
    }
  });

  test('CreateAttendee refuses bad ExternalUserId and capabilities', async () => {
    for (const input of [
      { ExternalUserId: 'a' },
      { ExternalUserId: 'aws:user' },
      { ExternalUserId: 'ok-user', Capabilities: { Audio: 'SendReceive', Video: 'Loud', Content: 'None' } },
      { ExternalUserId: 'ok-user', Capabilities: { Audio: 'SendReceive' } },
    ]) {
      const error = await errorOf(server.client.send(new CreateAttendeeCommand({ MeetingId: meetingId, ...(input as any) })));
      assert.equal(error.name, 'BadRequestException', JSON.stringify(input));
    }
  });

  test('a path label that is not a GuidString is a BadRequestException', async () => {
    const error = await errorOf(server.client.send(new GetMeetingCommand({ MeetingId: 'not-a-guid' })));
    assert.equal(error.name, 'BadRequestException');
    assert.match(error.message, /meetingId.*regular expression/);
  });

  test('uppercase ids find the same meeting; ids are returned in lowercase', async () => {
    const { Meeting } = await server.client.send(new GetMeetingCommand({ MeetingId: meetingId.toUpperCase() }));
    assert.equal(Meeting!.MeetingId, meetingId);
  });
});

/** The service's error shape: status, X-Amzn-ErrorType, {Code, Message, RequestId} with the header's request id. */
function assertAwsError(response: RawResponse, status: number, type: string, code: string) {
  assert.equal(response.status, status, response.text);
  assert.equal(response.headers['x-amzn-errortype'], type, response.text);
  assert.match(String(response.headers['content-type']), /^application\/json/);
  assert.equal(response.json?.Code, code, response.text);
  assert.equal(typeof response.json.Message, 'string');
  assert.ok(response.headers['x-amzn-requestid'], 'a request id header');
  assert.equal(response.json.RequestId, response.headers['x-amzn-requestid']);
}

describe('malformed requests', () => {
  test('malformed JSON is a BadRequestException', async () => {
    const response = await rawRequest(server.amphi.url, { method: 'POST', path: '/meetings', body: '{"MediaRegion": ' });
    assert.equal(response.status, 400);
    assert.equal(response.headers['x-amzn-errortype'], 'BadRequestException');
    assert.match(response.json.Message, /not valid JSON/);
  });

  test('a body of the wrong JSON type is a BadRequestException', async () => {
    for (const body of ['[]', '"text"', '42', 'null']) {
      const response = await rawRequest(server.amphi.url, { method: 'POST', path: '/meetings', body });
      assert.equal(response.status, 400, body);
      assert.match(response.json.Message, /must be a structure|must not be null/, body);
    }
  });

  test('an unknown operation on a known path is a BadRequestException', async () => {
    const response = await rawRequest(server.amphi.url, { method: 'POST', path: '/meetings', query: { operation: 'explode' }, body: '{}' });
    assert.equal(response.status, 400);
    assert.match(response.json.Message, /Unknown operation 'explode'/);
  });

  test('an unknown path is a 404 UnknownOperationException, in its header and its body alike', async () => {
    for (const path of ['/nowhere', '/']) {
      const response = await rawRequest(server.amphi.url, { method: 'GET', path });
      assertAwsError(response, 404, 'UnknownOperationException', 'UnknownOperation');
      assert.match(response.json.Message, new RegExp(`No operation matches GET ${path}$`));
    }
  });

  test('the SDK client parses an unknown route as UnknownOperationException', async () => {
    // An endpoint with a path prefix the service does not have puts every operation on an unknown route.
    const lost = new ChimeSDKMeetingsClient({ region: 'us-east-1', endpoint: `${server.amphi.url}/prefix`, credentials: TEST_KEY, maxAttempts: 1 });
    const error = await errorOf(lost.send(new GetMeetingCommand({ MeetingId: meetingId })));
    assert.ok(error instanceof ChimeSDKMeetingsServiceException, String(error));
    assert.equal(error.name, 'UnknownOperationException');
    assert.equal(error.$metadata.httpStatusCode, 404);
  });

  test('a path label over 2,048 characters is a BadRequestException in the AWS error shape', async () => {
    const long = 'a'.repeat(2_100);
    for (const path of [`/meetings/${long}`, `/meetings/${meetingId}/attendees/${long}`, `/meetings/${long}/attendees`]) {
      const response = await rawRequest(server.amphi.url, { method: 'GET', path });
      assertAwsError(response, 400, 'BadRequestException', 'BadRequest');
      assert.match(response.json.Message, /longer than 2048 characters/);
      assert.ok(response.text.length < 600, 'the long label is not echoed whole');
    }
  });

  test('the SDK client parses an over-long id as BadRequestException', async () => {
    const meeting = await errorOf(server.client.send(new GetMeetingCommand({ MeetingId: 'a'.repeat(2_100) })));
    assert.ok(meeting instanceof BadRequestException, String(meeting));
    assert.equal(meeting.$metadata.httpStatusCode, 400);
    assert.equal(meeting.Code, 'BadRequest');
    const attendee = await errorOf(server.client.send(new GetAttendeeCommand({ MeetingId: meetingId, AttendeeId: 'b'.repeat(5_000) })));
    assert.ok(attendee instanceof BadRequestException, String(attendee));
  });

  test('bad percent-escapes in the path are a BadRequestException in the AWS error shape, signed or not', async () => {
    for (const path of ['/meetings/%zz', '/meetings/%E0%A4%A', `/meetings/${meetingId}/attendees/%`, '/nowhere/%G0']) {
      for (const sign of [true, false]) {
        const response = await rawRequest(server.amphi.url, { method: 'GET', path, sign });
        assertAwsError(response, 400, 'BadRequestException', 'BadRequest');
        assert.match(response.json.Message, /not valid percent-encoding/, path);
      }
    }
  });

  test('an oversized body is refused with 413 before anything else', async () => {
    const body = JSON.stringify({ ExternalMeetingId: 'x'.repeat(300 * 1024) });
    const response = await rawRequest(server.amphi.url, { method: 'POST', path: '/meetings', body });
    assert.equal(response.status, 413);
    assert.equal(response.headers['x-amzn-errortype'], 'BadRequestException');
  });

  test('the server still answers after all of that', async () => {
    const { Meeting } = await server.client.send(new GetMeetingCommand({ MeetingId: meetingId }));
    assert.equal(Meeting!.MeetingId, meetingId);
  });
});

describe('service errors', () => {
  test('transcription is answered with UnprocessableEntityException, after validating the request', async () => {
    const start = await errorOf(
      server.client.send(
        new StartMeetingTranscriptionCommand({
          MeetingId: meetingId,
          TranscriptionConfiguration: { EngineTranscribeSettings: { LanguageCode: 'en-US', Region: 'auto' } },
        }),
      ),
    );
    assert.equal(start.name, 'UnprocessableEntityException');
    assert.equal(start.$metadata.httpStatusCode, 422);
    assert.match(start.message, /no transcription engine/);
    const stop = await errorOf(server.client.send(new StopMeetingTranscriptionCommand({ MeetingId: meetingId })));
    assert.equal(stop.name, 'UnprocessableEntityException');
    const invalid = await errorOf(
      server.client.send(new StartMeetingTranscriptionCommand({ MeetingId: meetingId, TranscriptionConfiguration: {} })),
    );
    assert.equal(invalid.name, 'BadRequestException');
    const neither = await errorOf(
      server.client.send(
        new StartMeetingTranscriptionCommand({ MeetingId: meetingId, TranscriptionConfiguration: { EngineTranscribeSettings: { Region: 'auto' } } }),
      ),
    );
    assert.match(neither.message, /LanguageCode or IdentifyLanguage/);
    const missing = await errorOf(
      server.client.send(
        new StartMeetingTranscriptionCommand({
          MeetingId: '0a0a0a0a-0000-4000-8000-000000000000',
          TranscriptionConfiguration: { EngineTranscribeSettings: { LanguageCode: 'en-US' } },
        }),
      ),
    );
    assert.equal(missing.name, 'NotFoundException');
  });

  test('more active meetings than the quota is LimitExceededException (retried by the client)', async () => {
    const limited = await startTestAmphi({ env: { AMPHI_MAX_MEETINGS: '2' } });
    try {
      await limited.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'm1' }));
      await limited.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'm2' }));
      const error = await errorOf(limited.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'm3' })));
      assert.equal(error.name, 'LimitExceededException');
      assert.match(error.message, /maximum of 2 active meetings/);
    } finally {
      await limited.stop();
    }
  });

  test('over the API rate is ThrottlingException 429', async () => {
    const throttled = await startTestAmphi({ env: { AMPHI_API_RATE_LIMIT: '2' } });
    try {
      const { Meeting } = await throttled.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'rate' }));
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, () => throttled.client.send(new GetMeetingCommand({ MeetingId: Meeting!.MeetingId }))),
      );
      const refused = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason);
      assert.ok(refused.length >= 3, `burst of 4 then refusals, got ${refused.length} refused`);
      for (const error of refused) {
        assert.equal(error.name, 'ThrottlingException');
        assert.equal(error.$metadata.httpStatusCode, 429);
      }
    } finally {
      await throttled.stop();
    }
  });

  test('an unexpected failure is ServiceFailureException 500 and the next request is served', async () => {
    const dataDir = tempDataDir();
    const real = await FileStore.open(dataDir);
    let failNext = true;
    // A store whose next read breaks, like a disk or network failure would.
    const flaky = new Proxy(real, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver);
        if (property === 'getMeeting' && typeof value === 'function') {
          return async (...args: unknown[]) => {
            if (failNext) {
              failNext = false;
              throw new Error('disk on fire');
            }
            return (value as Function).apply(target, args);
          };
        }
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }) as MeetingStore;
    const failing = await startTestAmphi({ dataDir, start: { store: flaky } });
    try {
      const { Meeting } = await failing.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'flaky' }));
      const error = await errorOf(failing.client.send(new GetMeetingCommand({ MeetingId: Meeting!.MeetingId })));
      assert.equal(error.name, 'ServiceFailureException');
      assert.equal(error.$metadata.httpStatusCode, 500);
      assert.doesNotMatch(error.message, /disk on fire/, 'internal details stay in the log');
      const again = await failing.client.send(new GetMeetingCommand({ MeetingId: Meeting!.MeetingId }));
      assert.equal(again.Meeting!.MeetingId, Meeting!.MeetingId);
    } finally {
      await failing.stop();
    }
  });

  test('while shutting down, calls get ServiceUnavailableException 503 with Retry-After', async () => {
    const draining = await startTestAmphi();
    try {
      const { Meeting } = await draining.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'drain' }));
      draining.amphi.drain();
      const error = await errorOf(draining.client.send(new GetMeetingCommand({ MeetingId: Meeting!.MeetingId })));
      assert.equal(error.name, 'ServiceUnavailableException');
      assert.equal(error.$metadata.httpStatusCode, 503);
      assert.equal(error.RetryAfterSeconds, '5');
      const health = await fetch(`${draining.amphi.url}/healthz`);
      assert.equal(health.status, 503);
      assert.equal((await health.json()).status, 'draining');
    } finally {
      await draining.stop();
    }
  });
});

describe('client retries', () => {
  test('LimitExceededException is retried by the client, as the service\'s is', async () => {
    const limited = await startTestAmphi({ env: { AMPHI_MAX_MEETINGS: '1' } });
    try {
      const client = clientFor(limited.amphi.url, undefined, 3);
      await client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'only' }));
      const error = await errorOf(client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'second' })));
      assert.equal(error.name, 'LimitExceededException');
      assert.equal(error.$metadata.attempts, 3);
    } finally {
      await limited.stop();
    }
  });
});
