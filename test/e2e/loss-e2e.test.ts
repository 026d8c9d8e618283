import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, DeleteMeetingCommand, type Attendee, type Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import type { Browser } from 'playwright-core';
import { buildPage, servePage, type PageServer } from './browser/bundle.ts';
import { CHROMIUM_PATH, ConsoleBuffer, launchBrowser, newAttendee, waitFor, type BrowserAttendee, type RtpStat } from './browser/harness.ts';
import { startTestAmphi, type TestAmphi } from '../support/helpers.ts';
import { NetnsLab, netnsUnavailable, type Impairment, type UdpGateway } from '../support/netns.ts';

/**
 * A lossy, jittery last mile: one Chromium (official SDK) runs in a network namespace whose link loses 5 % of
 * what it sends and 5 % of what it receives, each way delayed 60 ± 50 ms (uniform, so packets arrive reordered);
 * the other Chromium is in a namespace with a clean link. Both publish a camera and a tone and watch and hear
 * each other, so one meeting measures both directions: the impaired client as a viewer (Amphi → it) and as a
 * sender (it → Amphi → the clean client). Where the kernel has netem the namespace's veth carries the impairment
 * (all its traffic); where it has not, Amphi announces a user-space gateway in front of its media port as its
 * address, the gateway impairs the impaired namespace's flows, and nftables drops that namespace's UDP to the
 * media port itself. Signaling goes direct.
 *
 * The figures (printed as `#` lines) are recorded in docs/RELIABILITY.md; the assertions are what must hold
 * whatever the machine's load: video keeps decoding, lost packets are asked for and sent again, the tone is
 * heard through the loss, and the loss was real.
 */
function nftUnavailable(): string | undefined {
  try {
    execFileSync('nft', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'nftables (nft) is not installed';
  }
}

const skip = netnsUnavailable() ?? nftUnavailable();

/** Each way: 5 % lost, 60 ± 50 ms (a 20 ms audio frame spacing, so heavy reordering). */
const LINK: Impairment = { delayMs: 60, jitterMs: 50, lossPercent: 5 };
/** Measured in rounds of one tone measurement each (the page's FFT over this window). */
const ROUNDS = 12;
const ROUND_MS = 1_500;
const IMPAIRED_TONE = 440;
const CLEAR_TONE = 880;

let lab: NetnsLab;
let impairedNs: string;
let clearNs: string;
let host: string;
let amphi: TestAmphi;
let media: UdpGateway;
let pages: PageServer;
const browsers: Browser[] = [];
let dir: string;
const consoleLines = new ConsoleBuffer();

/** A Chromium whose every connection starts in `ns` (playwright's pipe on fds 3 and 4 survives `ip netns exec`). */
async function browserIn(ns: string): Promise<Browser> {
  const wrapper = path.join(dir, `chromium-in-${ns}`);
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${ns} ${CHROMIUM_PATH} "$@"\n`);
  chmodSync(wrapper, 0o755);
  // The page is not on loopback: the camera and microphone need a secure context.
  const browser = await launchBrowser({ executablePath: wrapper, args: [`--unsafely-treat-insecure-origin-as-secure=${new URL(pages.url).origin}`] });
  browsers.push(browser);
  return browser;
}

before(async () => {
  if (skip) return;
  dir = mkdtempSync(path.join(tmpdir(), 'amphi-loss-e2e-'));
  lab = await NetnsLab.create(2);
  [impairedNs, clearNs] = lab.namespaces as [string, string];
  host = lab.bridgeAddress;
  await lab.setLink(impairedNs, LINK);
  await lab.setDownlink(impairedNs, LINK);
  amphi = await startTestAmphi({ env: { AMPHI_HOST: host, AMPHI_RTC_ANNOUNCED_IP: lab.gatewayAddress, AMPHI_MEDIA_WORKERS: '1' } });
  media = await lab.udpGateway(amphi.amphi.media.workers[0]!.port);
  pages = await servePage(await buildPage(), host);
  if (media.gateway) {
    // The gateway is the impaired namespace's only way to the media port.
    const rules = `flush ruleset
table inet amphi_loss_e2e {
  chain out {
    type filter hook output priority 0; policy accept;
    ip daddr ${host} udp dport ${amphi.amphi.media.workers[0]!.port} drop
  }
}
`;
    writeFileSync(path.join(dir, 'rules.nft'), rules);
    await lab.exec(impairedNs, 'nft', ['-f', path.join(dir, 'rules.nft')]);
  }
  console.log(`# impairment mode: ${lab.impairment}; each way ${LINK.delayMs} ± ${LINK.jitterMs} ms, ${LINK.lossPercent} % lost`);
});

after(async () => {
  for (const browser of browsers) await browser.close().catch(() => {});
  await pages?.close();
  await amphi?.stop();
  await lab?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** What one page receives from the other and sends, at one moment. */
interface Snapshot {
  video: RtpStat | undefined;
  audio: RtpStat | undefined;
  sentVideo: RtpStat | undefined;
  framesDecoded: number;
}

async function snapshot(page: BrowserAttendee, from: Attendee): Promise<Snapshot> {
  const [tiles, stats] = await Promise.all([page.videoTiles(), page.rtpStats()]);
  const tile = tiles.find((t) => t.boundAttendeeId === from.AttendeeId);
  const video = stats.find((s) => s.type === 'inbound-rtp' && s.kind === 'video' && tile?.trackId && s.trackIdentifier === tile.trackId);
  return {
    video,
    audio: stats.find((s) => s.type === 'inbound-rtp' && s.kind === 'audio'),
    sentVideo: stats.find((s) => s.type === 'outbound-rtp' && s.kind === 'video'),
    framesDecoded: tile?.framesDecoded ?? 0,
  };
}

const delta = (after: number | null | undefined, before: number | null | undefined) => (after ?? 0) - (before ?? 0);
const percent = (part: number, whole: number) => (whole > 0 ? ((100 * part) / whole).toFixed(1) : '–');

/** What a receiving page went through over the watch: its video and audio from the other page. */
function received(name: string, first: Snapshot, last: Snapshot, seconds: number, heard: number) {
  const v = (key: keyof RtpStat['recovery']) => delta(last.video?.recovery[key], first.video?.recovery[key]);
  const a = (key: keyof RtpStat['recovery']) => delta(last.audio?.recovery[key], first.audio?.recovery[key]);
  const packets = delta(last.video?.packets, first.video?.packets);
  const figures = {
    framesPerSecond: delta(last.framesDecoded, first.framesDecoded) / seconds,
    // Cumulative loss goes down again when a late or repaired packet arrives: over a window it may net out below 0.
    videoPacketsLost: Math.max(0, v('packetsLost')),
    videoPackets: packets,
    nacksSent: v('nackCount'),
    keyFrameRequestsSent: v('pliCount') + v('firCount'),
    freezes: v('freezeCount'),
    frozenPercent: (100 * v('totalFreezesDurationS')) / seconds,
    concealedPercent: (100 * a('concealedSamples')) / Math.max(1, a('totalSamplesReceived')),
    concealmentEvents: a('concealmentEvents'),
    audioPacketsLost: a('packetsLost'),
    fecPackets: a('fecPacketsReceived'),
    toneHeardPercent: (100 * heard) / ROUNDS,
  };
  console.log(
    `# ${name}: video ${figures.framesPerSecond.toFixed(1)} frames/s decoded, ${figures.videoPacketsLost} of ${figures.videoPackets + figures.videoPacketsLost} packets net lost ` +
      `(${percent(figures.videoPacketsLost, figures.videoPackets + figures.videoPacketsLost)} % after repair), ${figures.nacksSent} NACKs and ${figures.keyFrameRequestsSent} PLI/FIR sent, ` +
      `${figures.freezes} freezes (${figures.frozenPercent.toFixed(1)} % of the time frozen); audio ${figures.concealedPercent.toFixed(1)} % of samples concealed ` +
      `in ${figures.concealmentEvents} events, ${figures.audioPacketsLost} packets lost, ${figures.fecPackets} FEC packets; tone heard in ${heard}/${ROUNDS} rounds`,
  );
  return figures;
}

describe('media across a last mile with 5 % loss and 50 ms jitter each way', { skip }, () => {
  test('the impaired client and a clean one keep decoding each other’s video (NACKs answered) and hearing each other’s tone', async () => {
    const meeting: Meeting = (await amphi.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'lossy-last-mile' }))).Meeting!;
    const attendee = async (externalUserId: string) =>
      (await amphi.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId!, ExternalUserId: externalUserId }))).Attendee!;
    const [impairedAttendee, clearAttendee] = [await attendee('impaired'), await attendee('clear')];
    const impaired = await newAttendee(await browserIn(impairedNs), pages.url, { name: 'impaired', console: consoleLines });
    const clear = await newAttendee(await browserIn(clearNs), pages.url, { name: 'clear', console: consoleLines });
    try {
      await impaired.join({ meeting: { Meeting: meeting }, attendee: { Attendee: impairedAttendee }, tone: { frequency: IMPAIRED_TONE }, camera: true, timeoutMs: 30_000 });
      await clear.join({ meeting: { Meeting: meeting }, attendee: { Attendee: clearAttendee }, tone: { frequency: CLEAR_TONE }, camera: true, timeoutMs: 30_000 });
      const pair = await waitFor(() => impaired.selectedCandidatePair(), 15_000, { message: 'the impaired page has a selected pair' });
      assert.deepEqual({ address: pair.remoteAddress, port: pair.remotePort }, media.clientsSendTo, 'the impaired page sends its media through the impaired path');
      for (const [viewer, from] of [[impaired, clearAttendee], [clear, impairedAttendee]] as const) {
        await waitFor(async () => (await snapshot(viewer, from)).framesDecoded > 10, 30_000, { message: `${viewer.name} decodes the other's camera` });
      }

      const server = () => amphi.amphi.signaling.conference(meeting.MeetingId!)!.stats();
      const worker = amphi.amphi.media.workers[0]!;
      const [serverBefore, clockBefore] = [await server(), (await worker.stats()).clock];
      const firsts = await Promise.all([snapshot(impaired, clearAttendee), snapshot(clear, impairedAttendee)]);
      const startedAt = Date.now();
      const heard = { impaired: 0, clear: 0 };
      const decodedEveryRound = { impaired: true, clear: true };
      let previous = firsts;
      for (let round = 0; round < ROUNDS; round++) {
        const [atImpaired, atClear] = await Promise.all([impaired.measureTones([CLEAR_TONE], ROUND_MS), clear.measureTones([IMPAIRED_TONE], ROUND_MS)]);
        if (atImpaired.tones[0]!.present) heard.impaired++;
        if (atClear.tones[0]!.present) heard.clear++;
        const now = await Promise.all([snapshot(impaired, clearAttendee), snapshot(clear, impairedAttendee)]);
        if (now[0].framesDecoded <= previous[0].framesDecoded) decodedEveryRound.impaired = false;
        if (now[1].framesDecoded <= previous[1].framesDecoded) decodedEveryRound.clear = false;
        previous = now;
      }
      const seconds = (Date.now() - startedAt) / 1000;
      const lasts = previous;
      const [serverAfter, clockAfter] = [await server(), (await worker.stats()).clock];

      const down = received('downlink (Amphi → impaired client)', firsts[0], lasts[0], seconds, heard.impaired);
      const up = received('uplink (impaired client → Amphi → clear client)', firsts[1], lasts[1], seconds, heard.clear);
      const onServer = (stats: typeof serverBefore, externalUserId: string) => stats.find((s) => s.externalUserId === externalUserId)!.media!;
      const sum = <T>(items: T[], value: (item: T) => number) => items.reduce((total, item) => total + value(item), 0);
      const served = (stats: typeof serverBefore) => {
        const toImpaired = onServer(stats, 'impaired').subscriptions;
        const fromImpaired = onServer(stats, 'impaired').layers;
        return {
          nacked: sum(toImpaired, (s) => s.nacked),
          retransmitted: sum(toImpaired, (s) => s.retransmitted),
          missed: sum(toImpaired, (s) => s.missed),
          keyFrameRequests: sum(fromImpaired, (l) => l.keyFrameRequests),
          keyFrames: sum(fromImpaired, (l) => l.keyFrames),
          resendRequests: sum(fromImpaired, (l) => l.resendRequests),
          recovered: sum(fromImpaired, (l) => l.recovered),
        };
      };
      const [s0, s1] = [served(serverBefore), served(serverAfter)];
      const serverFigures = Object.fromEntries(Object.entries(s1).map(([key, value]) => [key, value - s0[key as keyof typeof s0]])) as typeof s0;
      const sender = (key: keyof RtpStat['recovery']) => delta(lasts[0].sentVideo?.recovery[key], firsts[0].sentVideo?.recovery[key]);
      console.log(
        `# Amphi: to the impaired client ${serverFigures.nacked} packets NACKed, ${serverFigures.retransmitted} sent again, ${serverFigures.missed} no longer held; ` +
          `from it ${serverFigures.resendRequests} packets NACKed, ${serverFigures.recovered} recovered, ${serverFigures.keyFrameRequests} key-frame requests, ${serverFigures.keyFrames} key frames; ` +
          `the impaired sender got ${sender('nackCount')} NACKs and ${sender('pliCount')} PLIs, sent ${sender('retransmittedPackets')} packets again; ` +
          `mix frames: ${clockAfter.frames - clockBefore.frames} produced, ${clockAfter.late - clockBefore.late} late (not sent), ${clockAfter.skipped - clockBefore.skipped} skipped; ` +
          `load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores`,
      );
      for (const flow of media.gateway?.flowStats() ?? []) {
        if (flow.client.address === lab.addressOf(impairedNs)) console.log(`# gateway flow ${flow.client.address}:${flow.client.port}: ${JSON.stringify(flow)}`);
      }

      if (media.gateway) {
        const flows = media.gateway.flowStats().filter((flow) => flow.client.address === lab.addressOf(impairedNs));
        assert.ok(sum(flows, (f) => f.toServer.dropped) > 0 && sum(flows, (f) => f.toClient.dropped) > 0, 'the gateway dropped datagrams both ways');
        assert.ok(sum(flows, (f) => f.toClient.reordered) > 0, 'the jitter reordered what reached the impaired client');
      }
      assert.ok(decodedEveryRound.impaired, 'the impaired client decoded new frames in every round');
      assert.ok(decodedEveryRound.clear, "the clear client decoded new frames of the impaired client's camera in every round");
      assert.ok(down.nacksSent > 0 && serverFigures.retransmitted > 0, 'the impaired client asked for lost packets and Amphi sent them again');
      assert.ok(
        serverFigures.resendRequests > 0 && serverFigures.recovered > 0 && sender('retransmittedPackets') > 0,
        'Amphi asked the impaired sender for what it lost on the way, and got it',
      );
      assert.ok(down.concealedPercent > 0, 'the impaired client concealed lost audio');
      assert.ok(down.toneHeardPercent >= 75, `the impaired client heard the tone in ${heard.impaired}/${ROUNDS} rounds`);
      assert.ok(up.toneHeardPercent >= 75, `the clear client heard the impaired client's tone in ${heard.clear}/${ROUNDS} rounds`);
    } catch (error) {
      process.stderr.write(`\n----- browser console -----\n${consoleLines.dump(300)}\n-----\n`);
      throw error;
    } finally {
      await impaired.leave().catch(() => null);
      await clear.leave().catch(() => null);
      await impaired.close();
      await clear.close();
      await amphi.client.send(new DeleteMeetingCommand({ MeetingId: meeting.MeetingId! })).catch(() => {});
    }
  });
});
