import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateAttendeeCommand, CreateMeetingCommand, DeleteMeetingCommand, type Meeting } from '@aws-sdk/client-chime-sdk-meetings';
import type { Browser } from 'playwright-core';
import { buildPage, servePage, type PageServer } from './browser/bundle.ts';
import { CHROMIUM_PATH, ConsoleBuffer, launchBrowser, newAttendee, waitFor, type BrowserAttendee } from './browser/harness.ts';
import { coturnUnavailable, startCoturn, type TestCoturn } from '../support/coturn.ts';
import { startTestAmphi, type TestAmphi } from '../support/helpers.ts';
import { NetnsLab, netnsUnavailable } from '../support/netns.ts';

/**
 * Viewers behind firewalls: Chromium runs in a network namespace of its own whose nftables output chain drops
 * everything but the signaling and page connections and one way to coturn (TURN over UDP, then TCP, then TLS):
 * the media port of Amphi is unreachable from it. coturn and Amphi run on the host side of the lab's bridge.
 * The official SDK joins with the TURN credentials JOIN_ACK carries; media must flow through coturn both ways.
 */
function nftUnavailable(): string | undefined {
  try {
    execFileSync('nft', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'nftables (nft) is not installed';
  }
}

const skip = netnsUnavailable() ?? coturnUnavailable() ?? nftUnavailable();

type TurnTransport = 'udp' | 'tcp' | 'tls';

let lab: NetnsLab;
let ns: string;
let host: string;
let coturn: TestCoturn;
let amphi: TestAmphi;
let pages: PageServer;
let browser: Browser;
let dir: string;
const consoleLines = new ConsoleBuffer();

before(async () => {
  if (skip) return;
  dir = mkdtempSync(path.join(tmpdir(), 'amphi-turn-e2e-'));
  lab = await NetnsLab.create(1);
  ns = lab.namespaces[0]!;
  host = lab.bridgeAddress;
  // Configured as docs/DEPLOY.md says: coturn relays to Amphi's media address and nowhere else.
  coturn = await startCoturn({ host, tls: true, onlyPeers: [host] });
  const uris = [
    `turn:${host}:${coturn.port}?transport=udp`,
    `turn:${host}:${coturn.port}?transport=tcp`,
    `turns:${host}:${coturn.tlsPort}?transport=tcp`,
  ];
  amphi = await startTestAmphi({
    env: { AMPHI_HOST: host, AMPHI_RTC_ANNOUNCED_IP: host, AMPHI_TURN_URIS: uris.join(','), AMPHI_TURN_SECRET: coturn.secret },
  });
  pages = await servePage(await buildPage(), host);
  // playwright-core starts "Chromium" with its pipe on fds 3 and 4; `ip netns exec` keeps them open across the switch.
  const wrapper = path.join(dir, 'chromium-in-netns');
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${ns} ${CHROMIUM_PATH} "$@"\n`);
  chmodSync(wrapper, 0o755);
  browser = await launchBrowser({
    executablePath: wrapper,
    // The page is not on loopback any more; the camera and microphone need a secure context. The TURN server's
    // certificate is self-signed for this run.
    args: [`--unsafely-treat-insecure-origin-as-secure=${new URL(pages.url).origin}`, '--ignore-certificate-errors'],
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  await pages?.close();
  await amphi?.stop();
  await coturn?.stop();
  await lab?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The client namespace may reach Amphi's HTTP/WebSocket port, the page, and coturn only over `transport`; all else is dropped. */
async function firewall(transport: TurnTransport | 'open'): Promise<void> {
  const amphiPort = new URL(amphi.amphi.url).port;
  const pagePort = new URL(pages.url).port;
  const turnRule = {
    udp: `ip daddr ${host} udp dport ${coturn.port} accept`,
    tcp: `ip daddr ${host} tcp dport ${coturn.port} accept`,
    tls: `ip daddr ${host} tcp dport ${coturn.tlsPort} accept`,
  };
  const rules =
    transport === 'open'
      ? ''
      : `table inet amphi_turn_e2e {
  chain out {
    type filter hook output priority 0; policy drop;
    oif lo accept
    ip daddr ${host} tcp dport { ${amphiPort}, ${pagePort} } accept
    ${turnRule[transport]}
  }
}
`;
  const file = path.join(dir, 'rules.nft');
  writeFileSync(file, `flush ruleset\n${rules}`);
  await lab.exec(ns, 'nft', ['-f', file]);
}

/** Sends one UDP datagram from the client namespace to Amphi's media port; true if the firewall let it out. */
async function mediaPortReachable(): Promise<boolean> {
  const port = amphi.amphi.media.workers[0]!.port;
  const probe = `require('dgram').createSocket('udp4').send('x', ${port}, '${host}', (e) => process.exit(e ? 1 : 0))`;
  return lab.exec(ns, process.execPath, ['-e', probe]).then(
    () => true,
    () => false,
  );
}

const tones = async (page: BrowserAttendee) => {
  const measurement = await page.measureTones([440, 880], 1500);
  return Object.fromEntries(measurement.tones.map((t) => [t.frequency, t.present])) as Record<number, boolean>;
};

async function meetingOfTwo(name: string) {
  const meeting: Meeting = (await amphi.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: name }))).Meeting!;
  const attendee = async (externalUserId: string) =>
    (await amphi.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId!, ExternalUserId: externalUserId }))).Attendee!;
  return { meeting, talker: await attendee('talker'), listener: await attendee('listener') };
}

async function withConsoleOnFailure<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    process.stderr.write(`\n----- browser console -----\n${consoleLines.dump(300)}\n----- coturn -----\n${coturn.log().slice(-4000)}\n-----\n`);
    throw error;
  }
}

describe('a viewer whose UDP to the media port is blocked joins through coturn', { skip }, () => {
  for (const transport of ['udp', 'tcp', 'tls'] as const) {
    test(`over TURN/${transport.toUpperCase()}: both hear each other, the listener sees video, every pair is a relay`, () =>
      withConsoleOnFailure(async () => {
        await firewall(transport);
        assert.equal(await mediaPortReachable(), false, 'the direct path to the media port is blocked');
        const { meeting, talker, listener } = await meetingOfTwo(`turn-${transport}`);
        const a = await newAttendee(browser, pages.url, { name: `${transport}-talker`, console: consoleLines });
        const b = await newAttendee(browser, pages.url, { name: `${transport}-listener`, console: consoleLines });
        const linesBefore = consoleLines.lines.length;
        try {
          await a.join({ meeting: { Meeting: meeting }, attendee: { Attendee: talker }, tone: { frequency: 440 }, camera: true, timeoutMs: 30_000 });
          await b.join({ meeting: { Meeting: meeting }, attendee: { Attendee: listener }, tone: { frequency: 880 }, timeoutMs: 30_000 });
          for (const page of [a, b]) {
            const pair = await waitFor(() => page.selectedCandidatePair(), 15_000, { message: `${page.name}: a selected candidate pair` });
            assert.equal(pair.localCandidateType, 'relay', `${page.name} sends through TURN`);
            assert.equal(pair.localRelayProtocol, transport, `${page.name} reaches coturn over ${transport}`);
            assert.equal(pair.remoteAddress, host, `${page.name}'s peer is Amphi's media port`);
          }
          await waitFor(async () => (await tones(b))[440], 20_000, { message: 'the listener hears the talker' });
          await waitFor(async () => (await tones(a))[880], 20_000, { message: 'the talker hears the listener' });
          await waitFor(
            async () => (await b.videoTiles()).find((t) => t.boundAttendeeId === talker.AttendeeId && (t.framesDecoded ?? 0) > 10),
            20_000,
            { message: "the listener decodes the talker's camera" },
          );
          const sdkErrors = consoleLines.lines.slice(linesBefore).filter((line) => /missing TURN credentials/.test(line));
          assert.deepEqual(sdkErrors, [], 'JOIN_ACK carried the TURN credentials');
        } finally {
          await a.leave().catch(() => null);
          await b.leave().catch(() => null);
          await a.close();
          await b.close();
          await amphi.client.send(new DeleteMeetingCommand({ MeetingId: meeting.MeetingId! })).catch(() => {});
        }
      }));
  }
});

describe('a replica viewer behind the firewall', { skip }, () => {
  test('joins the replica over TURN/TCP, hears the presenter, and is heard in the primary once promoted', () =>
    withConsoleOnFailure(async () => {
      await firewall('tcp');
      const create = async (input: { ExternalMeetingId: string; PrimaryMeetingId?: string }) =>
        (await amphi.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ...input }))).Meeting!;
      const attendee = async (meetingId: string, externalUserId: string) =>
        (await amphi.client.send(new CreateAttendeeCommand({ MeetingId: meetingId, ExternalUserId: externalUserId }))).Attendee!;
      const primary = await create({ ExternalMeetingId: 'turn-town-hall' });
      const replica = await create({ ExternalMeetingId: 'turn-town-hall-r1', PrimaryMeetingId: primary.MeetingId! });
      const presenter = await attendee(primary.MeetingId!, 'presenter');
      const viewer = await attendee(replica.MeetingId!, 'viewer');
      const stage = await attendee(primary.MeetingId!, 'stage-guest');
      const p = await newAttendee(browser, pages.url, { name: 'presenter', console: consoleLines });
      const v = await newAttendee(browser, pages.url, { name: 'viewer', console: consoleLines });
      try {
        await p.join({ meeting: { Meeting: primary }, attendee: { Attendee: presenter }, tone: { frequency: 440 }, camera: true, timeoutMs: 30_000 });
        await v.join({ meeting: { Meeting: replica }, attendee: { Attendee: viewer }, tone: { frequency: 880 }, timeoutMs: 30_000 });
        const pair = await waitFor(() => v.selectedCandidatePair(), 15_000, { message: 'the viewer has a selected pair' });
        assert.equal(pair.localCandidateType, 'relay');
        assert.equal(pair.localRelayProtocol, 'tcp');
        await waitFor(async () => (await tones(v))[440], 20_000, { message: 'the viewer hears the presenter' });
        await waitFor(
          async () => (await v.videoTiles()).find((t) => t.boundAttendeeId === presenter.AttendeeId && (t.framesDecoded ?? 0) > 10),
          20_000,
          { message: "the viewer decodes the presenter's camera" },
        );
        assert.equal((await tones(p))[880], false, "a replica viewer's microphone goes nowhere");
        assert.equal(await v.promote({ Attendee: stage }), 'OK');
        await waitFor(async () => (await tones(p))[880], 20_000, { message: 'the presenter hears the promoted viewer' });
      } finally {
        await v.leave().catch(() => null);
        await p.leave().catch(() => null);
        await v.close();
        await p.close();
        await amphi.client.send(new DeleteMeetingCommand({ MeetingId: primary.MeetingId! })).catch(() => {});
      }
    }));
});

describe('a node without TURN', { skip }, () => {
  test('the SDK joins directly and logs no error', () =>
    withConsoleOnFailure(async () => {
      await firewall('open');
      const plain = await startTestAmphi({ env: { AMPHI_HOST: host, AMPHI_RTC_ANNOUNCED_IP: host } });
      try {
        const meeting = (await plain.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'no-turn' }))).Meeting!;
        const attendee = (await plain.client.send(new CreateAttendeeCommand({ MeetingId: meeting.MeetingId!, ExternalUserId: 'direct' }))).Attendee!;
        const page = await newAttendee(browser, pages.url, { name: 'direct', console: consoleLines });
        const linesBefore = consoleLines.lines.length;
        try {
          await page.join({ meeting: { Meeting: meeting }, attendee: { Attendee: attendee }, tone: { frequency: 440 } });
          const pair = await waitFor(() => page.selectedCandidatePair(), 15_000, { message: 'a selected candidate pair' });
          assert.equal(pair.localCandidateType, 'host', 'no relay without TURN URIs');
          assert.equal(pair.remoteAddress, host);
          assert.ok(plain.amphi.media.workers.some((w) => w.port === pair.remotePort), "the peer is Amphi's media port");
          const errors = consoleLines.lines.slice(linesBefore).filter((line) => line.includes(' direct ') && /\[ERROR\]/.test(line));
          assert.deepEqual(errors, [], 'the SDK logged no ERROR on join');
        } finally {
          await page.leave().catch(() => null);
          await page.close();
        }
      } finally {
        await plain.stop();
      }
    }));
});

