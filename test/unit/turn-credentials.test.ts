import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, DeleteMeetingCommand } from '@aws-sdk/client-chime-sdk-meetings';
import { loadConfig } from '../../src/config.ts';
import { FrameType } from '../../src/signaling/frames.ts';
import { NO_TURN, parseTurnUris, TurnCredentialIssuer, turnRestCredential } from '../../src/signaling/turn-credentials.ts';
import { ManualClock } from '../../src/util/clock.ts';
import { coturnUnavailable, startCoturn, type TestCoturn } from '../support/coturn.ts';
import { startTestAmphi, type TestAmphi } from '../support/helpers.ts';
import { RawClient } from '../support/raw-signaling.ts';
import { openAllocation, turnAllocate, type TurnServerAddress } from '../support/turn-client.ts';

const ATTENDEE = '3a1f6f0e-5b8c-4a55-9d0e-7c2a9b1e4f10';
const HOUR_MS = 3_600_000;

describe('TURN settings', () => {
  test('--turn-uris takes turn: and turns: URIs and names any other entry', () => {
    assert.deepEqual(parseTurnUris('turn:a.example:3478?transport=udp, turns:a.example:443?transport=tcp'), [
      'turn:a.example:3478?transport=udp',
      'turns:a.example:443?transport=tcp',
    ]);
    assert.throws(() => parseTurnUris('turn:a.example:3478,stun:a.example:3478'), /stun:a\.example:3478/);
  });

  test('the flags load with their defaults, and URIs without the secret are refused', () => {
    const base = { AMPHI_DATA_DIR: '/tmp/x' };
    assert.equal(loadConfig([], base).turnTtl, 86_400);
    assert.equal(loadConfig([], base).turnUris, undefined);
    const config = loadConfig(['--turn-uris', 'turn:t.example:3478', '--turn-secret', 's', '--turn-ttl', '600'], base);
    assert.deepEqual(config.turnUris, ['turn:t.example:3478']);
    assert.equal(config.turnTtl, 600);
    assert.equal(loadConfig([], { ...base, AMPHI_TURN_URIS: 'turn:t.example:3478', AMPHI_TURN_SECRET: 's' }).turnSecret, 's');
    assert.throws(() => loadConfig(['--turn-uris', 'turn:t.example:3478'], base), /--turn-secret \/ AMPHI_TURN_SECRET/);
    assert.throws(() => loadConfig(['--turn-uris', 'http://t.example'], base), /--turn-uris \/ AMPHI_TURN_URIS: not a turn: or turns: URI/);
    assert.throws(() => loadConfig(['--turn-ttl', '0'], base), /--turn-ttl/);
  });

  test('credentials are the TURN REST scheme: <expiry>:<attendee>, base64 HMAC-SHA1 of it', () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const issued = new TurnCredentialIssuer({ uris: ['turn:t.example:3478'], secret: 'shh', ttlSeconds: 600 }, clock).issue(ATTENDEE);
    const expiry = Date.UTC(2026, 0, 1) / 1000 + 600;
    assert.equal(issued.username, `${expiry}:${ATTENDEE}`);
    // The same HMAC computed by openssl, independently of Node's crypto.
    const byOpenssl = execFileSync('openssl', ['dgst', '-sha1', '-hmac', 'shh', '-binary'], { input: issued.username }).toString('base64');
    assert.equal(issued.password, byOpenssl);
    assert.deepEqual(turnRestCredential('shh', ATTENDEE, expiry), { username: issued.username, password: issued.password });
    assert.equal(Buffer.from(issued.password, 'base64').length, 20);
    assert.equal(issued.ttl, 600);
    assert.deepEqual(issued.uris, ['turn:t.example:3478']);
  });

  test('without URIs the credentials are empty: the SDK reads them as "no TURN"', () => {
    assert.deepEqual(NO_TURN.issue(ATTENDEE), { username: '', password: '', ttl: 0, uris: [] });
  });
});

describe('credentials on a real coturn', { skip: coturnUnavailable() }, () => {
  let coturn: TestCoturn;
  before(async () => {
    coturn = await startCoturn({ tls: true });
  });
  after(() => coturn?.stop());

  const servers = (): TurnServerAddress[] => [
    { transport: 'udp', host: coturn.host, port: coturn.port },
    { transport: 'tcp', host: coturn.host, port: coturn.port },
    { transport: 'tls', host: coturn.host, port: coturn.tlsPort! },
  ];
  const issuer = (secret: string, clock = new ManualClock(Date.now()), ttlSeconds = 3600) =>
    new TurnCredentialIssuer({ uris: [`turn:${coturn.host}:${coturn.port}`], secret, ttlSeconds }, clock);

  test('what Amphi issues allocates a relay over UDP, TCP and TLS', async () => {
    const credentials = issuer(coturn.secret).issue(ATTENDEE);
    for (const server of servers()) {
      const result = await turnAllocate(server, credentials);
      assert.equal(result.status, 200, `${server.transport}: ${result.status} ${result.reason ?? ''}\n${coturn.log()}`);
      assert.equal(result.relayed?.address, coturn.host, server.transport);
      assert.ok(result.integrityVerified, `${server.transport}: coturn keyed its answer with the same password`);
    }
  });

  test('expired credentials are refused with 401', async () => {
    const issuedTwoHoursAgo = issuer(coturn.secret, new ManualClock(Date.now() - 2 * HOUR_MS), 3600).issue(ATTENDEE);
    for (const server of servers()) {
      assert.equal((await turnAllocate(server, issuedTwoHoursAgo)).status, 401, server.transport);
    }
  });

  test('at expiry coturn refuses new allocations but keeps refreshing one made before (the lifetime trade-off)', async () => {
    // Issued 58 s ago with a 60 s TTL: valid for about two more seconds.
    const credentials = issuer(coturn.secret, new ManualClock(Date.now() - 58_000), 60).issue(ATTENDEE);
    const expiry = Number(credentials.username.split(':')[0]);
    const server = { transport: 'udp' as const, host: coturn.host, port: coturn.port };
    const early = await openAllocation(server, credentials);
    try {
      assert.equal(early.result.status, 200, coturn.log());
      while (Math.floor(Date.now() / 1000) <= expiry) await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal((await turnAllocate(server, credentials)).status, 401, 'a new allocation after the expiry');
      assert.equal((await early.refresh()).status, 200, 'the allocation made before it is still refreshed');
    } finally {
      early.close();
    }
  });

  test('credentials signed with another secret, or another attendee put in the username, are refused with 401', async () => {
    const forged = issuer('not-the-secret').issue(ATTENDEE);
    const genuine = issuer(coturn.secret).issue(ATTENDEE);
    const borrowed = { username: genuine.username.replace(ATTENDEE, 'someone-else'), password: genuine.password };
    const extended = { username: genuine.username.replace(/^\d+/, (expiry) => String(Number(expiry) + 86_400)), password: genuine.password };
    for (const server of servers()) {
      assert.equal((await turnAllocate(server, forged)).status, 401, `${server.transport}: forged`);
      assert.equal((await turnAllocate(server, borrowed)).status, 401, `${server.transport}: borrowed`);
      assert.equal((await turnAllocate(server, extended)).status, 401, `${server.transport}: expiry moved`);
    }
  });
});

describe("coturn's own client", { skip: coturnUnavailable() }, () => {
  let coturn: TestCoturn;
  before(async () => {
    // turnutils_uclient -y relays between two allocations of its own, on loopback here.
    coturn = await startCoturn({ allowLoopbackPeers: true });
  });
  after(() => coturn?.stop());

  const uclient = (credentials: { username: string; password: string }, tcp: boolean) =>
    new Promise<number | null>((resolve) => {
      const args = ['-y', '-n', '1', ...(tcp ? ['-t'] : []), '-u', credentials.username, '-w', credentials.password, '-p', String(coturn.port), coturn.host];
      const child = spawn('turnutils_uclient', args, { stdio: 'ignore' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });

  test('turnutils_uclient allocates and relays with what Amphi issues, and fails with a forged password', async () => {
    const issuer = new TurnCredentialIssuer({ uris: [`turn:${coturn.host}:${coturn.port}`], secret: coturn.secret, ttlSeconds: 600 });
    const credentials = issuer.issue(ATTENDEE);
    assert.equal(await uclient(credentials, false), 0, `over UDP\n${coturn.log()}`);
    assert.equal(await uclient(credentials, true), 0, `over TCP\n${coturn.log()}`);
    assert.notEqual(await uclient({ ...credentials, password: turnRestCredential('forged', ATTENDEE, 0).password }, false), 0);
  });
});

describe('TURN credentials handed to clients', { skip: coturnUnavailable() }, () => {
  let coturn: TestCoturn;
  let amphi: TestAmphi;
  let plain: TestAmphi;
  before(async () => {
    coturn = await startCoturn();
    amphi = await startTestAmphi({
      env: { AMPHI_TURN_URIS: `turn:${coturn.host}:${coturn.port}?transport=udp,turn:${coturn.host}:${coturn.port}?transport=tcp`, AMPHI_TURN_SECRET: coturn.secret, AMPHI_TURN_TTL: '600' },
    });
    plain = await startTestAmphi();
  });
  after(async () => {
    await amphi?.stop();
    await plain?.stop();
    await coturn?.stop();
  });

  const meetingWithAttendee = async (on: TestAmphi) => {
    const { Meeting } = await on.client.send(new CreateMeetingCommand({ ClientRequestToken: crypto.randomUUID(), MediaRegion: 'us-east-1', ExternalMeetingId: 'turn' }));
    const { Attendee } = await on.client.send(new CreateAttendeeCommand({ MeetingId: Meeting!.MeetingId!, ExternalUserId: 'viewer' }));
    return { meeting: Meeting!, attendee: Attendee! };
  };
  const controlUrl = (on: TestAmphi) => `${on.amphi.url}/v2/turn_sessions`;
  const askTurnControl = (on: TestAmphi, token: string, meetingId: string) =>
    fetch(`${controlUrl(on)}?X-Amzn-Version=3.32.0&X-Amzn-User-Agent=test`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-chime-auth-token': `_aws_wt_session=${token}`, origin: 'http://page.test' },
      body: JSON.stringify({ meetingId }),
    });

  test("JOIN_ACK carries the attendee's credentials, and coturn accepts them", async () => {
    const { meeting, attendee } = await meetingWithAttendee(amphi);
    const client = await RawClient.connect(meeting.MediaPlacement!.SignalingUrl!, attendee.JoinToken!);
    client.send({ type: FrameType.JOIN, join: { protocolVersion: 2, flags: 2 } });
    const turn = (await client.next(FrameType.JOIN_ACK)).joinack!.turnCredentials!;
    client.ws.close();
    assert.match(turn.username!, new RegExp(`^\\d+:${attendee.AttendeeId}$`));
    assert.equal(turn.ttl, 600);
    assert.deepEqual(turn.uris, [`turn:${coturn.host}:${coturn.port}?transport=udp`, `turn:${coturn.host}:${coturn.port}?transport=tcp`]);
    const expiry = Number(turn.username!.split(':')[0]);
    assert.ok(Math.abs(expiry - (Date.now() / 1000 + 600)) < 60, 'expires a TTL from now, by the wall clock');
    const result = await turnAllocate({ transport: 'udp', host: coturn.host, port: coturn.port }, { username: turn.username!, password: turn.password! });
    assert.equal(result.status, 200, coturn.log());
  });

  test('without TURN, JOIN_ACK carries empty credentials (present, no URIs)', async () => {
    const { meeting, attendee } = await meetingWithAttendee(plain);
    const client = await RawClient.connect(meeting.MediaPlacement!.SignalingUrl!, attendee.JoinToken!);
    client.send({ type: FrameType.JOIN, join: { protocolVersion: 2, flags: 2 } });
    const joinack = (await client.next(FrameType.JOIN_ACK)).joinack!;
    client.ws.close();
    assert.ok(joinack.turnCredentials, 'present: the SDK logs an error when they are missing');
    assert.deepEqual(joinack.turnCredentials.uris, []);
  });

  test('TurnControlUrl answers the JoinToken with the same kind of credentials, cross-origin', async () => {
    const { meeting, attendee } = await meetingWithAttendee(amphi);
    assert.equal(meeting.MediaPlacement!.TurnControlUrl, controlUrl(amphi));
    const preflight = await fetch(controlUrl(amphi), {
      method: 'OPTIONS',
      headers: { origin: 'http://page.test', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-chime-auth-token' },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), '*');
    assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /x-chime-auth-token/);

    const answer = await askTurnControl(amphi, attendee.JoinToken!, meeting.MeetingId!);
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get('access-control-allow-origin'), '*');
    const body = (await answer.json()) as { username: string; password: string; ttl: number; uris: string[] };
    assert.match(body.username, new RegExp(`^\\d+:${attendee.AttendeeId}$`));
    assert.equal(body.ttl, 600);
    assert.equal(body.uris.length, 2);
    assert.equal((await turnAllocate({ transport: 'tcp', host: coturn.host, port: coturn.port }, body)).status, 200, coturn.log());

    // The content share's token (JoinToken#content) is the same attendee's.
    assert.equal((await askTurnControl(amphi, `${attendee.JoinToken!}#content`, meeting.MeetingId!)).status, 200);
  });

  test('TurnControlUrl refuses unknown tokens and other meetings with 403, and says 404 once the meeting ended', async () => {
    const { meeting, attendee } = await meetingWithAttendee(amphi);
    const other = await meetingWithAttendee(amphi);
    const forged = Buffer.from(`${attendee.AttendeeId}:${'0'.repeat(64)}`).toString('base64').replace(/=+$/, '');
    const refused = await askTurnControl(amphi, forged, meeting.MeetingId!);
    assert.equal(refused.status, 403);
    assert.equal(refused.headers.get('access-control-allow-origin'), '*', 'readable by the page');
    assert.equal((await askTurnControl(amphi, other.attendee.JoinToken!, meeting.MeetingId!)).status, 403);
    const noHeader = await fetch(controlUrl(amphi), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(noHeader.status, 403);

    await amphi.client.send(new DeleteMeetingCommand({ MeetingId: meeting.MeetingId! }));
    assert.equal((await askTurnControl(amphi, attendee.JoinToken!, meeting.MeetingId!)).status, 404);
  });

  test('TurnControlUrl of a node without TURN hands out empty credentials', async () => {
    const { meeting, attendee } = await meetingWithAttendee(plain);
    const answer = await askTurnControl(plain, attendee.JoinToken!, meeting.MeetingId!);
    assert.equal(answer.status, 200);
    assert.deepEqual(await answer.json(), { username: '', password: '', ttl: 0, uris: [] });
  });
});
