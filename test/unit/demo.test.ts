import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DeleteMeetingCommand, GetMeetingCommand, ListAttendeesCommand } from '@aws-sdk/client-chime-sdk-meetings';
import { loadConfig } from '../../src/config.ts';
import type { DemoEvent, PresenterSeat, ViewerSeat } from '../../src/demo/protocol.ts';
import { Webinar } from '../../src/demo/webinar.ts';
import { errorOf, startTestAmphi, type TestAmphi } from '../support/helpers.ts';

/** The demo's server side without a browser: input checks, replica assignment, keys, the event streams. */
let server: TestAmphi;
let api: string;

before(async () => {
  server = await startTestAmphi({
    env: { AMPHI_DEMO: 'on', AMPHI_DEMO_SEATS_PER_REPLICA: '1', AMPHI_MAX_REPLICAS_PER_PRIMARY: '2', AMPHI_MEDIA_WORKERS: '1' },
  });
  api = `${server.amphi.url}/demo/api`;
});
after(() => server?.stop());

async function post(path: string, body?: unknown, raw?: string): Promise<{ status: number; body: any }> {
  const response = await fetch(`${api}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

/** A participant's event stream, read as the page's EventSource would. */
async function openEvents(webinarId: string, key: string) {
  const abort = new AbortController();
  const response = await fetch(`${api}/webinars/${webinarId}/events?key=${encodeURIComponent(key)}`, { signal: abort.signal });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  const events: DemoEvent[] = [];
  let buffer = '';
  let ended = false;
  const pump = (async () => {
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return void (ended = true);
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        for (const line of frame.split('\n')) if (line.startsWith('data: ')) events.push(JSON.parse(line.slice(6)) as DemoEvent);
      }
    }
  })();
  return {
    events,
    get ended() {
      return ended;
    },
    /** The first event of `type` not yet taken. */
    async next<T extends DemoEvent['type']>(type: T): Promise<Extract<DemoEvent, { type: T }>> {
      for (let waited = 0; waited < 10_000; waited += 20) {
        const index = events.findIndex((event) => event.type === type);
        if (index >= 0) return events.splice(index, 1)[0] as Extract<DemoEvent, { type: T }>;
        if (ended) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      throw new Error(`no ${type} event (got ${JSON.stringify(events)})`);
    },
    async close() {
      abort.abort();
      await pump;
    },
  };
}

describe('replica assignment (the Webinar bookkeeping)', () => {
  const meeting = (id: string) => ({ MeetingId: id, ExternalMeetingId: 'w' });
  test('replicas fill one after the other, a freed seat is given again, the quota is kept', () => {
    const webinar = new Webinar(meeting('p'), 'T', 'presenter-key', { seatsPerReplica: 2, replicaQuota: 2 });
    assert.equal(webinar.replicaWithFreeSeat(), undefined);
    const r1 = webinar.addReplica(meeting('r1'));
    webinar.seat({ id: 'a', name: 'A', key: 'ka', replica: r1, attendeeId: 'x' });
    assert.equal(webinar.replicaWithFreeSeat(), r1);
    webinar.seat({ id: 'b', name: 'B', key: 'kb', replica: r1, attendeeId: 'x' });
    assert.equal(webinar.replicaWithFreeSeat(), undefined, 'r1 is full');
    assert.throws(() => webinar.seat({ id: 'c', name: 'C', key: 'kc', replica: r1, attendeeId: 'x' }), /replica 1 is full/);
    const r2 = webinar.addReplica(meeting('r2'));
    assert.equal(r2.number, 2);
    assert.equal(webinar.mayAddReplica, false, 'two replicas is the quota');
    webinar.viewers.delete('a');
    assert.equal(webinar.replicaWithFreeSeat(), r1, 'the oldest replica with a seat comes first');
    assert.deepEqual(webinar.audienceEvent(false), { type: 'audience', watching: 1, replicas: [1, 0] });
    webinar.removeReplica(r1);
    assert.equal(webinar.viewers.size, 0, "a deleted replica's viewers go with it");
    webinar.removeReplica(r1); // its end reported twice
    assert.equal(webinar.replicaWithFreeSeat(), r2, 'forgetting a replica twice leaves the others');
    assert.equal(webinar.addReplica(meeting('r3')).number, 3, 'numbers are not reused');
    assert.deepEqual(webinar.participant('presenter-key'), { role: 'presenter' });
    assert.equal(webinar.participant('kb'), undefined);
  });
});

describe('the demo endpoints', () => {
  test('the demo is on with development keys and off with configured ones, unless told', () => {
    assert.equal(loadConfig([], {}).demo, undefined, 'undecided: the node decides by its keys');
    assert.equal(loadConfig(['--demo', 'off'], {}).demo, false);
    assert.equal(loadConfig([], { AMPHI_DEMO: 'on' }).demo, true);
    assert.equal(loadConfig([], {}).demoSeatsPerReplica, 250);
    assert.throws(() => loadConfig([], { AMPHI_DEMO: 'yes' }), /--demo \/ AMPHI_DEMO/);
    assert.throws(() => loadConfig([], { AMPHI_DEMO_SEATS_PER_REPLICA: '0' }), /--demo-seats-per-replica/);
  });

  test('/ serves the page, and its script bundles the browser SDK', async () => {
    const page = await fetch(`${server.amphi.url}/?webinar=x`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type')!, /^text\/html/);
    assert.match(await page.text(), /<script src="\/demo\/app.js">/);
    const script = await fetch(`${server.amphi.url}/demo/app.js`);
    assert.equal(script.status, 200);
    assert.match(await script.text(), /promoteToPrimaryMeeting/);
    assert.equal((await fetch(`${server.amphi.url}/demo/app.css`)).status, 200);
  });

  test('bad input is a 400 with a sentence, never a crash', async () => {
    const { body: seat } = (await post('/webinars', { title: 'Checks', name: 'Ada' })) as { body: PresenterSeat };
    const w = `/webinars/${seat.webinarId}`;
    const cases: Array<[string, unknown, string?]> = [
      ['/webinars', undefined],
      ['/webinars', undefined, '{"title":'],
      ['/webinars', [1, 2]],
      ['/webinars', { title: 'T' }],
      ['/webinars', { title: 'T', name: 'x'.repeat(41) }],
      ['/webinars', { title: 'T', name: '<script>' }],
      ['/webinars', { title: 'a\u0000b', name: 'Ada' }],
      ['/webinars', { title: 'T', name: 'Ada', admin: true }],
      ['/webinars/not-an-id/viewers', { name: 'Bea' }],
      [`${w}/viewers`, { name: '' }],
      [`${w}/viewers/XYZ/hand`, { key: 'k', raised: true }],
      [`${w}/viewers/0123456789ab/hand`, { key: 'k', raised: 'yes' }],
      [`${w}/viewers/0123456789ab/chat`, { key: 'k', text: '   ' }],
      [`${w}/viewers/0123456789ab/chat`, { key: 'k', text: 'x'.repeat(501) }],
      [`${w}/viewers/0123456789ab/stage`, { key: '' }],
      [`${w}/end`, { key: 'k'.repeat(101) }],
    ];
    for (const [path, body, raw] of cases) {
      const answer = await post(path, body, raw);
      assert.equal(answer.status, 400, `${path} ${raw ?? JSON.stringify(body)}: ${JSON.stringify(answer.body)}`);
      assert.equal(typeof answer.body.error, 'string');
    }
    const noKey = await fetch(`${api}${w}/events`);
    assert.equal(noKey.status, 400);
    assert.equal((await fetch(`${api}/webinars/0b7e3c5e-0000-4000-8000-000000000000`)).status, 404);
    assert.equal((await post(`${w}/end`, { key: 'not-the-presenter' })).status, 403);
    assert.equal((await fetch(`${api}${w}/events?key=wrong`)).status, 403);
    assert.equal((await post(`${w}/viewers/0123456789ab/hand`, { key: 'k', raised: true })).status, 404, 'no such viewer');
    assert.equal((await fetch(`${server.amphi.url}/healthz`)).status, 200, 'the node is fine');
    assert.equal((await post(`${w}/end`, { key: seat.presenterKey })).status, 204);
  });

  test('viewers fill replicas one seat at a time up to the quota; a seat given back is given again', async () => {
    const { body: seat } = (await post('/webinars', { title: 'Seats', name: 'Ada' })) as { body: PresenterSeat };
    const w = `/webinars/${seat.webinarId}`;
    const join = async (name: string) => (await post(`${w}/viewers`, { name })) as { status: number; body: ViewerSeat };
    const bea = await join('Bea');
    const cal = await join('Cal');
    assert.deepEqual([bea.status, bea.body.replica, cal.status, cal.body.replica], [201, 1, 201, 2]);
    assert.notEqual(bea.body.meeting.MeetingId, cal.body.meeting.MeetingId);
    for (const viewer of [bea.body, cal.body]) {
      const { Meeting } = await server.client.send(new GetMeetingCommand({ MeetingId: viewer.meeting.MeetingId }));
      assert.equal(Meeting!.PrimaryMeetingId, seat.webinarId, 'a replica of the webinar');
      assert.equal(viewer.attendee.ExternalUserId, `${viewer.viewerId === bea.body.viewerId ? 'Bea' : 'Cal'}|v-${viewer.viewerId}`);
    }
    const full = await join('Dee');
    assert.equal(full.status, 409);
    assert.match((full.body as unknown as { error: string }).error, /full/);
    assert.equal((await post(`${w}/viewers/${bea.body.viewerId}/leave`, { key: cal.body.viewerKey })).status, 403, "another viewer's key");
    assert.equal((await post(`${w}/viewers/${bea.body.viewerId}/leave`, { key: bea.body.viewerKey })).status, 204);
    const { Attendees } = await server.client.send(new ListAttendeesCommand({ MeetingId: bea.body.meeting.MeetingId }));
    assert.equal(Attendees!.length, 0, "the leaver's attendee is deleted");
    const dee = await join('Dee');
    assert.deepEqual([dee.status, dee.body.replica, dee.body.meeting.MeetingId], [201, 1, bea.body.meeting.MeetingId]);
    assert.equal((await (await fetch(`${api}${w}`)).json()).watching, 2);
    await post(`${w}/end`, { key: seat.presenterKey });
  });

  test('hands, chat, the stage and the end, as the pages see them through their event streams', async () => {
    const { body: seat } = (await post('/webinars', { title: 'Stage', name: 'Ada' })) as { body: PresenterSeat };
    const w = `/webinars/${seat.webinarId}`;
    const { body: bea } = (await post(`${w}/viewers`, { name: 'Bea' })) as { body: ViewerSeat };
    const beaPath = `${w}/viewers/${bea.viewerId}`;
    assert.equal((await post(`${beaPath}/chat`, { key: bea.viewerKey, text: 'hi' })).status, 409, 'no presenter page to relay it');

    const presenter = await openEvents(seat.webinarId, seat.presenterKey);
    const first = await presenter.next('audience');
    assert.deepEqual(first.members, [{ viewerId: bea.viewerId, name: 'Bea', replica: 1, handRaised: false, onStage: false }]);
    const viewer = await openEvents(seat.webinarId, bea.viewerKey);
    assert.equal((await viewer.next('audience')).members, undefined, 'viewers are not told who the others are');

    assert.equal((await post(`${beaPath}/hand`, { key: bea.viewerKey, raised: true })).status, 204);
    assert.equal((await presenter.next('audience')).members![0]!.handRaised, true);
    assert.equal((await post(`${beaPath}/hand`, { key: seat.presenterKey, raised: false })).status, 403, "the presenter can't lower a viewer's hand");
    assert.equal((await post(`${beaPath}/chat`, { key: bea.viewerKey, text: ' Hello! ' })).status, 204);
    assert.deepEqual(await presenter.next('chat'), { type: 'chat', name: 'Bea', text: 'Hello!' });

    assert.equal((await post(`${beaPath}/stage`, { key: bea.viewerKey })).status, 403, 'only the presenter invites');
    assert.equal((await post(`${beaPath}/stage`, { key: seat.presenterKey })).status, 204);
    const { attendee } = await viewer.next('stage');
    assert.equal(attendee.ExternalUserId, `Bea|s-${bea.viewerId}`);
    const primary = await server.client.send(new ListAttendeesCommand({ MeetingId: seat.webinarId }));
    assert.ok(primary.Attendees!.some((a) => a.AttendeeId === attendee.AttendeeId), 'a primary attendee');
    assert.ok(!presenter.events.some((event) => event.type === 'stage'), "the credentials go to the viewer's page only");
    const onStage = await waitForAudience(presenter, (members) => members[0]!.onStage);
    assert.equal(onStage[0]!.handRaised, false, 'the hand is lowered on stage');

    assert.equal((await post(`${beaPath}/audience`, { key: seat.presenterKey })).status, 204);
    await viewer.next('offStage');
    assert.equal((await post(`${beaPath}/audience`, { key: bea.viewerKey })).status, 204, 'the page says it demoted');
    const after = await server.client.send(new ListAttendeesCommand({ MeetingId: seat.webinarId }));
    assert.deepEqual(after.Attendees!.map((a) => a.ExternalUserId), ['Ada|presenter'], 'the primary attendee is deleted');
    await waitForAudience(presenter, (members) => !members[0]!.onStage);

    assert.equal((await post(`${w}/end`, { key: seat.presenterKey })).status, 204);
    await viewer.next('ended');
    await presenter.next('ended');
    const ended = await errorOf(server.client.send(new GetMeetingCommand({ MeetingId: seat.webinarId })));
    assert.equal(ended.name, 'NotFoundException');
    assert.equal((await fetch(`${api}${w}`)).status, 404);
    await viewer.close();
    await presenter.close();
  });

  test('meetings ended outside the demo (another caller, the idle deletion) end its webinar or forget its replica', async () => {
    const { body: seat } = (await post('/webinars', { title: 'Outside', name: 'Ada' })) as { body: PresenterSeat };
    const w = `/webinars/${seat.webinarId}`;
    const { body: bea } = (await post(`${w}/viewers`, { name: 'Bea' })) as { body: ViewerSeat };
    const presenter = await openEvents(seat.webinarId, seat.presenterKey);
    const viewer = await openEvents(seat.webinarId, bea.viewerKey);
    await presenter.next('audience');
    await server.client.send(new DeleteMeetingCommand({ MeetingId: bea.meeting.MeetingId }));
    assert.deepEqual(await waitForAudience(presenter, (members) => members.length === 0), []);
    await viewer.next('ended');
    await waitFor(() => viewer.ended, 'the viewer of the deleted replica is let go');
    const { body: cal } = (await post(`${w}/viewers`, { name: 'Cal' })) as { body: ViewerSeat };
    assert.notEqual(cal.meeting.MeetingId, bea.meeting.MeetingId, 'seated in a new replica');
    await server.client.send(new DeleteMeetingCommand({ MeetingId: seat.webinarId }));
    await presenter.next('ended');
    assert.equal((await fetch(`${api}${w}`)).status, 404);
    await presenter.close();
    await viewer.close();
  });
});

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !condition(); waited += 20) {
    if (waited > 10_000) throw new Error(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function waitForAudience(stream: Awaited<ReturnType<typeof openEvents>>, until: (members: NonNullable<Extract<DemoEvent, { type: 'audience' }>['members']>) => boolean) {
  for (;;) {
    const { members } = await stream.next('audience');
    if (members && until(members)) return members;
  }
}
