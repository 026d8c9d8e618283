import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  ChimeSDKMeetingsClient,
  ChimeSDKMeetingsServiceException,
  CreateMeetingCommand,
  GetMeetingCommand,
} from '@aws-sdk/client-chime-sdk-meetings';
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';
import { SigV4Verifier, type SignedRequest } from '../../src/api/sigv4.ts';
import { ServiceError } from '../../src/meetings/errors.ts';
import { ManualClock } from '../../src/util/clock.ts';
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

  test('a signature for another service is refused as a bad credential scope', async () => {
    const response = await rawRequest(server.amphi.url, { method: 'GET', path: `/meetings/${meetingId}`, service: 'chime-sdk-meetings' });
    assert.equal(response.status, 403);
    assert.equal(response.headers['x-amzn-errortype'], 'InvalidSignatureException');
    assert.equal(response.json.Code, 'InvalidSignature');
    assert.match(response.json.Message, /scoped to correct service: 'chime'/);
  });

  test('a signature scoped to an unknown region is InvalidSignatureException 403 in the AWS error shape', async () => {
    const response = await rawRequest(server.amphi.url, { method: 'GET', path: `/meetings/${meetingId}`, region: 'mars-east-1' });
    assert.equal(response.status, 403);
    assert.equal(response.headers['x-amzn-errortype'], 'InvalidSignatureException');
    assert.equal(response.json.Code, 'InvalidSignature');
    assert.match(response.json.Message, /Credential should be scoped to a valid region, not 'mars-east-1'/);
    assert.equal(response.json.RequestId, response.headers['x-amzn-requestid']);

    const long = await rawRequest(server.amphi.url, { method: 'GET', path: `/meetings/${meetingId}`, region: 'r'.repeat(4000) });
    assert.equal(long.status, 403);
    assert.ok(long.text.length < 400, 'a huge region is not echoed whole');
  });

  test('the SDK client sees an unknown signing region as InvalidSignatureException, and a known one works', async () => {
    const lost = new ChimeSDKMeetingsClient({ region: 'xx-nowhere-1', endpoint: server.amphi.url, credentials: TEST_KEY, maxAttempts: 1 });
    const error = await errorOf(lost.send(new GetMeetingCommand({ MeetingId: meetingId })));
    assert.ok(error instanceof ChimeSDKMeetingsServiceException, String(error));
    assert.equal(error.name, 'InvalidSignatureException');
    assert.equal(error.$metadata.httpStatusCode, 403);

    const frankfurt = new ChimeSDKMeetingsClient({ region: 'eu-central-1', endpoint: server.amphi.url, credentials: TEST_KEY, maxAttempts: 1 });
    const { Meeting } = await frankfurt.send(new GetMeetingCommand({ MeetingId: meetingId }));
    assert.equal(Meeting!.MeetingId, meetingId);
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

describe('SigV4 verifier memory', () => {
  const clock = new ManualClock(Date.UTC(2026, 2, 1, 12));
  const host = '127.0.0.1:8080';

  async function signed(options: { secret?: string; region?: string; service?: string; signingDate?: Date }): Promise<SignedRequest> {
    const signer = new SignatureV4({
      credentials: { accessKeyId: TEST_KEY.accessKeyId, secretAccessKey: options.secret ?? TEST_KEY.secretAccessKey },
      region: options.region ?? 'us-east-1',
      service: options.service ?? 'chime',
      sha256: Sha256,
      uriEscapePath: true,
    });
    const request = await signer.sign(
      { method: 'GET', protocol: 'http:', hostname: '127.0.0.1', path: '/meetings', query: {}, headers: { host } },
      { signingDate: options.signingDate ?? new Date(clock.now()) },
    );
    return { method: 'GET', rawUrl: '/meetings', headers: request.headers, body: Buffer.alloc(0) };
  }

  async function refusal(verifier: SigV4Verifier, request: SignedRequest): Promise<ServiceError> {
    const error = await errorOf(verifier.verify(request));
    assert.ok(error instanceof ServiceError, String(error));
    return error;
  }

  test('requests with a known key id, a wrong secret and distinct client-chosen scopes leave no trace', async () => {
    const verifier = new SigV4Verifier([TEST_KEY, SECOND_KEY], clock);
    const refusals: ServiceError[] = [];
    for (let i = 0; i < 2_000; i++) {
      refusals.push(await refusal(verifier, await signed({ secret: 'wrong', region: `xx-${'long'.repeat(50)}-${i}` })));
    }
    for (let i = 0; i < 200; i++) {
      refusals.push(await refusal(verifier, await signed({ secret: 'wrong', service: `svc${i}` })));
      // A scope date that is not the X-Amz-Date's day.
      const request = await signed({ secret: 'wrong' });
      const authorization = String(request.headers.authorization).replace(/\/(\d{8})\//, `/${String(10_000_000 + i)}/`);
      refusals.push(await refusal(verifier, { ...request, headers: { ...request.headers, authorization } }));
    }
    assert.ok(verifier.signerCount <= 2, `${verifier.signerCount} signers held: at most one per configured key, whatever clients send`);
    for (const error of refusals) {
      assert.equal(error.type, 'InvalidSignatureException', error.message);
      assert.equal(error.status, 403);
    }
  });

  test('valid requests for any known region still pass, and a wrong secret is still a signature mismatch', async () => {
    const verifier = new SigV4Verifier([TEST_KEY, SECOND_KEY], clock);
    for (const region of ['us-east-1', 'us-west-2', 'eu-central-1', 'ap-southeast-1', 'us-gov-west-1']) {
      assert.equal(await verifier.verify(await signed({ region })), TEST_KEY.accessKeyId, region);
    }
    const mismatch = await refusal(verifier, await signed({ secret: 'wrong', region: 'eu-west-2' }));
    assert.equal(mismatch.type, 'ForbiddenException');
    assert.match(mismatch.message, /signature we calculated does not match/);
    assert.ok(verifier.signerCount <= 2, `${verifier.signerCount} signers held`);
  });
});
