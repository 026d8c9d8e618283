/**
 * Promotion latency against a fresh join, side by side in one run, with the official SDK in
 * Chromium: from the promoteToPrimaryMeeting call (or the join call) to the first moment a
 * primary attendee's page hears the promoted attendee's tone. Both include the same client-side
 * detection delay (jitter buffer, 21 ms FFT), so their ratio is what matters. See BENCHMARKS.md.
 */
import { CreateAttendeeCommand, CreateMeetingCommand } from '@aws-sdk/client-chime-sdk-meetings';
import { openBrowserSession, waitFor } from '../../test/e2e/browser/harness.ts';
import { startTestAmphi } from '../../test/support/helpers.ts';

const rounds = process.argv.includes('--quick') ? 3 : 7;
const server = await startTestAmphi();
const browser = await openBrowserSession();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
try {
  const send = server.client.send.bind(server.client);
  const primary = (await send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'bench' }))).Meeting!;
  const replica = (await send(new CreateMeetingCommand({ MediaRegion: 'eu-west-1', ExternalMeetingId: 'bench-r', PrimaryMeetingId: primary.MeetingId }))).Meeting!;
  const attendee = async (meetingId: string, externalUserId: string) => (await send(new CreateAttendeeCommand({ MeetingId: meetingId, ExternalUserId: externalUserId }))).Attendee!;
  const listener = await browser.newAttendee('listener');
  await listener.join({ meeting: { Meeting: primary }, attendee: { Attendee: await attendee(primary.MeetingId!, 'listener') } });
  const stage = await attendee(primary.MeetingId!, 'stage');
  const viewer = await browser.newAttendee('viewer');
  await viewer.join({ meeting: { Meeting: replica }, attendee: { Attendee: await attendee(replica.MeetingId!, 'viewer') }, tone: { frequency: 880 } });
  const fresh = await browser.newAttendee('fresh');
  const silence = () => waitFor(async () => !(await listener.measureTones([880], 400)).tones[0]!.present, 15_000, { message: 'silence again' });

  const listenerStats = async () => {
    const stats = await server.amphi.signaling.conference(primary.MeetingId!)!.stats();
    return stats.find((s) => s.externalUserId === 'listener')!.media!;
  };
  /**
   * Milliseconds from the action to the first packet with the new voice sent to the listener
   * (server side, the moment it goes on the wire), and to the listener hearing it (its page).
   */
  const measure = async (action: () => Promise<unknown>) => {
    const onset = listener.toneOnset(880, 15_000);
    await sleep(150); // the watcher is running
    const start = Date.now();
    await action();
    const heard = (await onset) - start;
    const packet = (await listenerStats()).voiceStartedAt - start;
    return { packet, heard };
  };
  const promotions: { packet: number; heard: number }[] = [];
  const joins: { packet: number; heard: number }[] = [];
  for (let round = 0; round < rounds; round++) {
    promotions.push(await measure(() => viewer.promote({ Attendee: stage })));
    await viewer.demote();
    await silence();
    joins.push(await measure(() => fresh.join({ meeting: { Meeting: primary }, attendee: { Attendee: stage }, tone: { frequency: 880 } })));
    await fresh.leave();
    await silence();
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const row = (name: string, values: number[]) => `| ${name} | ${median(values)} | ${values.join(', ')} |`;
  console.log(`# Promotion against a fresh join, ${rounds} rounds each, alternating\n`);
  console.log('| from the call to … at a primary attendee | median ms | all rounds (ms) |');
  console.log('|---|---|---|');
  console.log(row('promotion: first packet with the voice', promotions.map((r) => r.packet)));
  console.log(row('fresh join: first packet with the voice', joins.map((r) => r.packet)));
  console.log(row('promotion: voice heard (FFT after the jitter buffer)', promotions.map((r) => r.heard)));
  console.log(row('fresh join: voice heard', joins.map((r) => r.heard)));
  const ratio = (pick: (r: { packet: number; heard: number }) => number) => (median(promotions.map(pick)) / median(joins.map(pick))).toFixed(2);
  console.log(`\nratio promotion / fresh join (medians): first packet ${ratio((r) => r.packet)}, heard ${ratio((r) => r.heard)}`);
} finally {
  await browser.close();
  await server.stop();
}
