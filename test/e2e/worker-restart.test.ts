import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, type Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import { openBrowserSession, waitFor, type BrowserAttendee, type BrowserSession } from './browser/harness.ts';
import { startTestAmphi, type TestAmphi } from '../support/helpers.ts';

/**
 * A media worker thread that dies is started again; the clients whose meetings were on it are
 * put back by the SDK's own reconnect, and meetings on other workers never notice.
 */
let server: TestAmphi;
let browser: BrowserSession;

const meeting = async (region: string) => (await server.client.send(new CreateMeetingCommand({ MediaRegion: region, ExternalMeetingId: `restart-${region}` }))).Meeting!;
const join = async (m: Meeting, name: string, frequency?: number) => {
  const page = await browser.newAttendee(name);
  const attendee = (await server.client.send(new CreateAttendeeCommand({ MeetingId: m.MeetingId, ExternalUserId: name }))).Attendee!;
  await page.join({ meeting: { Meeting: m }, attendee: { Attendee: attendee }, ...(frequency ? { tone: { frequency } } : {}) });
  return page;
};
const hears = (page: BrowserAttendee, frequency: number, message: string) =>
  waitFor(async () => (await page.measureTones([frequency], 800)).tones[0]!.present, 20_000, { message });

before(async () => {
  server = await startTestAmphi();
  browser = await openBrowserSession();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

describe('a media worker that dies', () => {
  test('is started again; its clients reconnect and hear each other; other workers are untouched', () =>
    browser.withConsoleOnFailure(async () => {
      const [first, second] = [await meeting('us-east-1'), await meeting('eu-west-1')];
      const [talker, listener] = [await join(first, 'talker', 440), await join(first, 'listener')];
      const [otherTalker, otherListener] = [await join(second, 'other-talker', 880), await join(second, 'other-listener')];
      await hears(listener, 440, 'the first meeting has audio');
      await hears(otherListener, 880, 'the second meeting has audio');
      const workerOf = (meetingId: string) => server.amphi.media.workers.find((w) => w === server.amphi.signaling.conference(meetingId)!.room.worker)!;
      const crashed = workerOf(first.MeetingId!);
      assert.notEqual(crashed, workerOf(second.MeetingId!), 'the two meetings are on different workers');
      const marks = await Promise.all([talker, listener, otherTalker, otherListener].map((page) => page.mark()));

      await crashed.crashThread();

      for (const [i, page] of [talker, listener].entries()) {
        await page.waitForEvent('audioVideoDidStartConnecting', { since: marks[i], timeoutMs: 15_000, where: (e) => (e.detail as { reconnecting: boolean }).reconnecting });
        await page.waitForEvent('audioVideoDidStart', { since: marks[i], timeoutMs: 30_000 });
      }
      await hears(listener, 440, 'the first meeting has audio again');
      assert.equal(crashed.restartCount, 1);
      for (const [i, page] of [otherTalker, otherListener].entries()) {
        const events = await page.events(marks[i + 2]);
        assert.ok(!events.some((e) => e.name === 'audioVideoDidStartConnecting' || e.name === 'audioVideoDidStop'), `${page.name} never reconnected`);
      }
      await hears(otherListener, 880, 'the second meeting still has audio');
    }));
});
