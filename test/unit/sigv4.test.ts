import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { CreateMeetingCommand, GetMeetingCommand } from '@aws-sdk/client-chime-sdk-meetings';
import { clientFor, errorOf, SECOND_KEY, startTestAmphi, TEST_KEY, type TestAmphi } from '../support/helpers.ts';
import { rawRequest } from '../support/raw-request.ts';

let server: TestAmphi;
let meetingId: string;

before(async () => {
  server = await startTestAmphi();
  const { Meeting } = await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'sigv4' }));
  meetingId = Meeting!.MeetingId!;
});
after(() => server.stop());

const createBody = JSON.stringify({ ClientRequestToken: 'sigv4-raw-1', MediaRegion: 'us-east-1', ExternalMeetingId: 'raw' });

describe('SigV4', () => {
  test('a correctly signed raw request is accepted', async () => {
    const response = await rawRequest(server.amphi.url, { method: 'POST', path: '/meetings', body: createBody });
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.Meeting.ExternalMeetingId, 'raw');
  });

  test('every configured key pair is accepted', async () => {
    const client = clientFor(server.amphi.url, SECOND_KEY);
    const { Meeting } = await client.send(new GetMeetingCommand({ MeetingId: meetingId }));
    assert.equal(Meeting!.MeetingId, meetingId);
  });

  test('an unsigned request is refused with UnauthorizedException', async () => {
    const response = await rawRequest(server.amphi.url, { method: 'GET', path: `/meetings/${meetingId}`, sign: false });
    assert.equal(response.status, 401);
    assert.equal(response.headers['x-amzn-errortype'], 'UnauthorizedException');
    assert.equal(response.json.Code, 'Unauthorized');
    assert.equal(response.json.RequestId, response.headers['x-amzn-requestid']);
  });

  test('an unknown access key is refused with UnauthorizedException through the client', async () => {
    const client = clientFor(server.amphi.url, { accessKeyId: 'AKIDUNKNOWN', secretAccessKey: TEST_KEY.secretAccessKey });
    const error = await errorOf(client.send(new GetMeetingCommand({ MeetingId: meetingId })));
    assert.equal(error.name, 'UnauthorizedException');
    assert.equal(error.$metadata.httpStatusCode, 401);
  });

  test('a wrong secret is refused with ForbiddenException through the client', async () => {
    const client = clientFor(server.amphi.url, { accessKeyId: TEST_KEY.accessKeyId, secretAccessKey: 'wrong' });
    const error = await errorOf(client.send(new GetMeetingCommand({ MeetingId: meetingId })));
    assert.equal(error.name, 'ForbiddenException');
    assert.match(error.message, /signature we calculated does not match/);
  });

  test('a body changed after signing is refused, whether or not the content hash header is changed too', async () => {
    const tampered = await rawRequest(server.amphi.url, {
      method: 'POST',
      path: '/meetings',
      body: createBody,
      afterSigning: (request) => {
        request.body = createBody.replace('"raw"', '"evil"');
      },
    });
    assert.equal(tampered.status, 403);
    assert.equal(tampered.headers['x-amzn-errortype'], 'ForbiddenException');
    assert.match(tampered.json.Message, /x-amz-content-sha256/);

    const evil = createBody.replace('"raw"', '"evil"');
    const rehashed = await rawRequest(server.amphi.url, {
      method: 'POST',
      path: '/meetings',
      body: createBody,
      afterSigning: (request) => {
        request.body = evil;
        request.headers['x-amz-content-sha256'] = createHash('sha256').update(evil).digest('hex');
      },
    });
    assert.equal(rehashed.status, 403);
    assert.match(rehashed.json.Message, /signature we calculated does not match/);
  });

  test('a path changed after signing is refused', async () => {
    const response = await rawRequest(server.amphi.url, {
      method: 'GET',
      path: `/meetings/${meetingId}`,
      afterSigning: (request) => {
        request.path = `/meetings/${meetingId}/attendees`;
      },
    });
    assert.equal(response.status, 403);
  });

  test('a stale or future request is refused', async () => {
    for (const offset of [-16 * 60_000, 16 * 60_000]) {
      const response = await rawRequest(server.amphi.url, {
        method: 'GET',
        path: `/meetings/${meetingId}`,
        signingDate: new Date(Date.now() + offset),
      });
      assert.equal(response.status, 403, String(offset));
      assert.match(response.json.Message, /Signature expired/);
    }
    const recent = await rawRequest(server.amphi.url, {
      method: 'GET',
      path: `/meetings/${meetingId}`,
      signingDate: new Date(Date.now() - 2 * 60_000),
    });
    assert.equal(recent.status, 200, 'within the skew window');
  });

  test('a signature for another service is refused', async () => {
    const response = await rawRequest(server.amphi.url, { method: 'GET', path: `/meetings/${meetingId}`, service: 'chime-sdk-meetings' });
    assert.equal(response.status, 403);
    assert.equal(response.headers['x-amzn-errortype'], 'ForbiddenException');
  });

  test('a garbled Authorization header is refused without a crash', async () => {
    for (const authorization of ['AWS4-HMAC-SHA256', 'Bearer abc', 'AWS4-HMAC-SHA256 Credential=a, SignedHeaders=host, Signature=zz', '\u00ff'.repeat(10)]) {
      const response = await rawRequest(server.amphi.url, {
        method: 'GET',
        path: `/meetings/${meetingId}`,
        sign: false,
        headers: { authorization: authorization.replace(/[^\x20-\x7e]/g, 'x'), 'x-amz-date': '20260101T000000Z' },
      });
      assert.ok([401, 403].includes(response.status), `${authorization}: ${response.status}`);
      assert.ok(response.headers['x-amzn-errortype']);
    }
  });

  test('percent-encoded path labels and query values with + and spaces verify like the client signs them', async () => {
    // '%2F' inside a label and '+' in a query value are the classic canonicalisation traps.
    const label = await rawRequest(server.amphi.url, { method: 'GET', path: '/meetings/abc%2Fdef' });
    assert.equal(label.status, 400, label.text);
    assert.equal(label.headers['x-amzn-errortype'], 'BadRequestException');
    const query = await rawRequest(server.amphi.url, {
      method: 'GET',
      path: `/meetings/${meetingId}/attendees`,
      query: { 'max-results': '5', 'next-token': 'tok en/+=~' },
    });
    assert.equal(query.status, 400, query.text);
    assert.match(query.json.Message, /Invalid NextToken/);
  });
});
