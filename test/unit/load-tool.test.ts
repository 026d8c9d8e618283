import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CreateMeetingCommand, type Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import { DelayHistogram } from '../../bench/load/delay-histogram.ts';
import { Viewer } from '../../bench/load/viewer.ts';
import { startTestAmphi, type TestAmphi } from '../support/helpers.ts';
import { Publisher } from '../support/replayed-presenter.ts';

/** The load tool's parts against a real Amphi: its replayed presenter (with and without simulcast) and its viewers. */
let node: TestAmphi;
before(async () => {
  node = await startTestAmphi();
});
after(() => node.stop());

const create = async (name: string, primary?: Meeting) =>
  (await node.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: name, ...(primary ? { PrimaryMeetingId: primary.MeetingId } : {}) }))).Meeting!;

async function until(condition: () => boolean, message: string, timeoutMs = 10_000): Promise<void> {
  for (let waited = 0; !condition(); waited += 50) {
    assert.ok(waited < timeoutMs, message);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

for (const simulcast of [false, true]) {
  test(`a viewer in a replica receives the ${simulcast ? 'simulcast presenter’s hi layer' : 'presenter’s camera'} whole, with its delay measured`, async () => {
    const primary = await create(`load-${simulcast}`);
    const replica = await create(`load-${simulcast}-replica`, primary);
    const presenter = await Publisher.join(node.client, primary, { simulcast });
    const delays = { current: new DelayHistogram() };
    let viewer: Viewer | undefined;
    try {
      presenter.start();
      viewer = await Viewer.join(node.client, replica, 'viewer', presenter.videoStreamId, delays);
      await until(() => viewer!.video.received >= 100 && viewer!.audio.received >= 30, 'the viewer received video and audio');
      const sentBefore = presenter.sent.video;
      const receivedBefore = viewer.video.received;
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const sent = presenter.sent.video - sentBefore;
      const received = viewer.video.received - receivedBefore;
      // Without simulcast the viewer gets every video packet; with it, only hi's (5 of every 6 delta packets).
      const share = received / sent;
      if (simulcast) assert.ok(share > 0.7 && share < 0.93, `the viewer received hi's share of the video packets (${received} of ${sent})`);
      else assert.ok(share > 0.9 && share < 1.1, `the viewer received every video packet (${received} of ${sent})`);
      viewer.video.settle(performance.now());
      assert.equal(viewer.video.lost, 0, 'nothing lost');
      assert.ok(delays.current.count >= received, 'every video packet had its delay measured');
      assert.ok(delays.current.percentile(50) < 1000, 'delays are plausible');
    } finally {
      viewer?.close();
      presenter.close();
    }
  });
}
