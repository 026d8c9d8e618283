// Smoke test of the browser harness (test/e2e/browser/): the page bundles the official SDK, builds its configuration
// from the AWS SDK's responses, tries the SignalingUrl on join, and its tone generator + FFT detection work.
// It asserts nothing about the signaling server itself.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand } from '@aws-sdk/client-chime-sdk-meetings';
import { openBrowserSession, waitFor, type BrowserSession } from './browser/harness.ts';
import { startTestAmphi, type TestAmphi } from '../support/helpers.ts';

describe('browser harness', { timeout: 60_000 }, () => {
  let server: TestAmphi | undefined;
  let browser: BrowserSession | undefined;

  before(async () => {
    // Started side by side; whichever succeeds is kept so that after() can close it even if the other failed.
    const [amphi, session] = await Promise.allSettled([startTestAmphi(), openBrowserSession()]);
    if (amphi.status === 'fulfilled') server = amphi.value;
    if (session.status === 'fulfilled') browser = session.value;
    if (amphi.status === 'rejected') throw amphi.reason;
    if (session.status === 'rejected') throw session.reason;
  });
  after(async () => {
    await Promise.allSettled([browser?.close(), server?.stop()]);
  });

  test('the page runs the SDK, is configured from the responses, dials the SignalingUrl, and detects its tone', { timeout: 30_000 }, () =>
    browser!.withConsoleOnFailure(async () => {
      const client = server!.client;
      const [{ Meeting, Attendee }, page] = await Promise.all([
        (async () => {
          const { Meeting } = await client.send(
            new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'browser-harness', ClientRequestToken: `harness-${Date.now()}` }),
          );
          const { Attendee } = await client.send(new CreateAttendeeCommand({ MeetingId: Meeting!.MeetingId!, ExternalUserId: 'alice' }));
          return { Meeting, Attendee };
        })(),
        browser!.newAttendee('alice'),
      ]);

      const info = await page.info();
      assert.equal(info.sdkVersion, '3.32.0');
      assert.ok(info.origin.startsWith('http://127.0.0.1:'), info.origin);

      const config = await page.buildConfiguration({ Meeting }, { Attendee });
      assert.equal(config.meetingId, Meeting!.MeetingId);
      assert.equal(config.attendeeId, Attendee!.AttendeeId);
      assert.equal(config.externalUserId, 'alice');
      assert.equal(config.urls.signalingURL, Meeting!.MediaPlacement!.SignalingUrl);
      assert.equal(config.urls.audioHostURL, Meeting!.MediaPlacement!.AudioHostUrl);
      assert.ok(config.joinTokenPresent);

      const joined = await page.startJoin({ meeting: { Meeting }, attendee: { Attendee }, tone: { frequency: 440 } });
      assert.equal(joined.urls.signalingURL, Meeting!.MediaPlacement!.SignalingUrl);
      await page.waitForEvent('audioVideoDidStartConnecting', { timeoutMs: 5_000 });
      const socket = await waitFor(async () => (await page.webSockets())[0], 5_000, { message: 'the SDK opens a WebSocket' });
      assert.ok(socket.url.startsWith(`${Meeting!.MediaPlacement!.SignalingUrl}?X-Chime-Control-Protocol-Version=3`), socket.url);
      assert.deepEqual(socket.protocols, ['_aws_wt_session', Attendee!.JoinToken]);

      const local = await page.measureLocalTones([440, 880], 500);
      const [tone440, tone880] = local.tones;
      assert.ok(tone440?.present, `440 Hz detected: ${JSON.stringify(local)}`);
      assert.ok(tone880 && !tone880.present, `880 Hz not detected: ${JSON.stringify(local)}`);
      assert.ok(Math.abs(local.peakFrequency - 440) <= local.binHz, `peak at ${local.peakFrequency} Hz`);

      await page.setTone(880);
      const switched = await page.measureLocalTones([440, 880], 500);
      assert.ok(switched.tones[1]?.present && !switched.tones[0]?.present, `after setTone(880): ${JSON.stringify(switched.tones)}`);

      // Whatever the signaling server does today, leaving ends in audioVideoDidStop within bounds.
      const stopStatus = await page.leave(10_000);
      assert.equal(typeof stopStatus, 'string');
      assert.equal((await page.status()).state, 'stopped');
    }),
  );
});
