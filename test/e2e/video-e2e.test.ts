import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, type Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import { openBrowserSession, waitFor, type BrowserSession } from './browser/harness.ts';
import { startTestAmphi, type TestAmphi } from '../support/helpers.ts';

/** Simulcast publishing, content share and the downlink estimate, in Chromium with the official SDK. */
let server: TestAmphi;
let browser: BrowserSession;
let meeting: Meeting;

const join = async (name: string, options: { camera?: boolean; simulcast?: boolean } = {}) => {
  const page = await browser.newAttendee(name);
  const attendee = (await server.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId, ExternalUserId: name }))).Attendee!;
  await page.join({ meeting: { Meeting: meeting }, attendee: { Attendee: attendee }, ...options });
  return { page, attendee };
};
const stats = () => server.amphi.signaling.conference(meeting.MeetingId!)!.stats();
type Stats = Awaited<ReturnType<typeof stats>>;

before(async () => {
  server = await startTestAmphi();
  browser = await openBrowserSession();
  meeting = (await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'video-e2e' }))).Meeting!;
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

describe('video in Chromium', () => {
  test('a simulcast camera is published as layers of one group and decoded by a viewer', () =>
    browser.withConsoleOnFailure(async () => {
      const { attendee: publisher } = await join('simulcaster', { camera: true, simulcast: true });
      const { page: viewer } = await join('viewer');
      const published = await waitFor(async () => (await stats()).find((s) => s.externalUserId === 'simulcaster' && s.published.length === 3)?.published, 15_000, {
        message: 'three layers allocated',
      });
      assert.equal(new Set(published.map((l) => l.groupId)).size, 1, 'one group for the three layers');
      const tile = await waitFor(async () => (await viewer.videoTiles()).find((t) => t.boundAttendeeId === publisher.AttendeeId && (t.framesDecoded ?? 0) > 10), 20_000, {
        message: 'viewer decodes the simulcast camera',
      });
      assert.ok(published.some((l) => l.streamId === tile.streamId), 'the tile shows one of the published layers');
      const layers = (await stats()).find((s: Stats[number]) => s.externalUserId === 'simulcaster')!.media!.layers;
      assert.ok(layers.filter((l) => l.packets > 0).length >= 1, 'at least one rid is flowing');
      assert.ok(layers.every((l) => l.packets === 0 || l.ssrc !== 0), 'layers learned their SSRC from the rid');
    }));

  test('receivers report a downlink estimate that BITRATES passes back, in the kbps the SDK reads', () =>
    browser.withConsoleOnFailure(async () => {
      const remb = await waitFor(async () => (await stats()).find((s) => s.externalUserId === 'viewer')?.downlinkBps || undefined, 15_000, { message: 'REMB from the viewer' });
      // The SDK logs what it takes from BITRATES.serverAvailableOutgoingBitrate, which it reads as kbps.
      const logged = await waitFor(
        async () => {
          const matches = [...browser.dumpConsole(5000).matchAll(/server side estimation of available incoming bitrate (\d+)kbps/g)];
          return matches.length > 0 ? Number(matches.at(-1)![1]) : undefined;
        },
        15_000,
        { message: 'the SDK takes the estimate from BITRATES' },
      );
      assert.ok(logged * 1000 > remb / 4 && logged * 1000 < remb * 4, `SDK sees ${logged} kbps for a REMB of ${remb} bps`);
    }));

  test('content share: the second connection as <attendeeId>#content is seen as its own tile', () =>
    browser.withConsoleOnFailure(async () => {
      const { page: presenter, attendee } = await join('presenter');
      const viewer = browser.attendees.find((a) => a.name === 'viewer')!;
      const cameraTrack = async () => (await viewer.videoTiles()).find((t) => t.boundExternalUserId === 'simulcaster' && t.active)?.trackId;
      const cameraBefore = await waitFor(cameraTrack, 10_000, { message: "the viewer shows the simulcaster's camera" });
      await presenter.startContentShare();
      const tile = await waitFor(async () => (await viewer.videoTiles()).find((t) => t.boundAttendeeId === `${attendee.AttendeeId}#content` && (t.framesDecoded ?? 0) > 5), 20_000, {
        message: 'viewer decodes the content share',
      });
      assert.equal(tile.boundExternalUserId, 'presenter');
      // Subscribing to the content share renegotiated the viewer's connection; the camera it already received kept
      // its transceiver (the SDK recognises it by its 'v_' + mid label), so its tile was not torn down.
      assert.equal(await cameraTrack(), cameraBefore, "the camera's track survives the viewer's resubscription");
      await waitFor(async () => (await viewer.roster()).some((e) => e.attendeeId === `${attendee.AttendeeId}#content` && e.present), 10_000, {
        message: 'the content share is present in the roster',
      });
      await presenter.stopContentShare();
      await waitFor(async () => !(await viewer.videoTiles()).some((t) => t.boundAttendeeId === `${attendee.AttendeeId}#content` && t.active), 15_000, {
        message: 'the content tile goes away',
      });
    }));
});
