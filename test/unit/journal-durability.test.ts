import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { CreateMeetingCommand, GetMeetingCommand } from '@aws-sdk/client-chime-sdk-meetings';
import pino from 'pino';
import { loadConfig } from '../../src/config.ts';
import { resolveAccessKeys } from '../../src/credentials.ts';
import { StoreUnavailableError } from '../../src/meetings/meeting-store.ts';
import type { MeetingRecord } from '../../src/meetings/model.ts';
import { FileStore } from '../../src/store/file-store.ts';
import { errorOf, startTestAmphi, tempDataDir } from '../support/helpers.ts';
import { mountTinyTmpfs, tmpfsUnavailable } from '../support/tiny-tmpfs.ts';

const JOURNAL = 'meetings.journal';
const quiet = { logger: pino({ level: 'silent' }) };

let meetings = 0;
function meeting(overrides: Partial<MeetingRecord> = {}): MeetingRecord {
  const MeetingId = `0a0a0a0a-0000-4000-8000-${String(++meetings).padStart(12, '0')}`;
  return {
    MeetingId,
    MediaRegion: 'us-east-1',
    ExternalMeetingId: `durability-${meetings}`,
    TenantIds: [],
    ClientRequestToken: `token-${MeetingId}`,
    RequestFingerprint: 'fp',
    MediaNodeId: 'local',
    Tags: [],
    CreatedAt: 1_700_000_000_000,
    ...overrides,
  };
}

/** A meeting whose journal line is longer than a page, so it can't fit in the slack a full tmpfs leaves. */
function bigMeeting(): MeetingRecord {
  return meeting({ Tags: Array.from({ length: 50 }, (_, i) => ({ Key: `key-${i}`, Value: 'v'.repeat(200) })) });
}

/** A logger whose warnings the test can read. */
function capturingLogger() {
  const entries: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      entries.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'warn' }, stream), entries };
}

function journalLines(dataDir: string): string[] {
  const text = readFileSync(path.join(dataDir, JOURNAL), 'utf8');
  assert.ok(text === '' || text.endsWith('\n'), 'the journal ends with a whole line');
  return text.split('\n').filter((line) => line !== '');
}

const mode = (file: string) => statSync(file).mode & 0o777;

describe('the journal on a full disk', { skip: tmpfsUnavailable }, () => {
  test('a change that does not fit is refused whole and is not visible; once space returns, writes go on and are readable', async () => {
    const disk = mountTinyTmpfs();
    const dataDir = path.join(disk.dir, 'data');
    let store: FileStore | undefined;
    try {
      store = await FileStore.open(dataDir, quiet);
      const before = meeting();
      await store.putMeeting(before);
      const journalSize = statSync(path.join(dataDir, JOURNAL)).size;
      assert.notEqual(journalSize % 4096, 0, 'the journal leaves slack in its last page, so the next write is short');

      disk.fill();
      const refused = bigMeeting();
      const error = await errorOf(store.putMeeting(refused));
      assert.ok(error instanceof StoreUnavailableError, `refused as unavailable, not acknowledged: ${String(error)}`);
      assert.match(error.message, /ENOSPC|no space/i);
      assert.equal(await store.getMeeting(refused.MeetingId), undefined, 'a refused change is not visible');
      assert.equal(await store.findMeetingByRequestToken(refused.ClientRequestToken), undefined);
      assert.equal(statSync(path.join(dataDir, JOURNAL)).size, journalSize, 'the partial line was cut');
      journalLines(dataDir);

      disk.release();
      const after = meeting();
      await store.putMeeting(after);
      await store.close();
      assert.equal(journalLines(dataDir).length, 2);

      store = await FileStore.open(dataDir, quiet);
      assert.equal((await store.getMeeting(before.MeetingId))?.ExternalMeetingId, before.ExternalMeetingId);
      assert.equal((await store.getMeeting(after.MeetingId))?.ExternalMeetingId, after.ExternalMeetingId);
      assert.equal(await store.getMeeting(refused.MeetingId), undefined);
    } finally {
      await store?.close();
      disk.unmount();
    }
  });

  test('after a failed write it restarts on the still-full disk (cutting a torn last line), and takes writes once space returns', async () => {
    const disk = mountTinyTmpfs();
    const dataDir = path.join(disk.dir, 'data');
    let store: FileStore | undefined;
    try {
      store = await FileStore.open(dataDir, quiet);
      const kept = meeting();
      await store.putMeeting(kept);
      const journalSize = statSync(path.join(dataDir, JOURNAL)).size;
      disk.fill();
      const refused = bigMeeting();
      await assert.rejects(store.putMeeting(refused), StoreUnavailableError);
      await store.close();
      store = undefined;
      // What a crash in the middle of a write leaves (it fits in the page's slack).
      appendFileSync(path.join(dataDir, JOURNAL), '{"op":"putMeeting","meeting":{"Meeti');

      const { logger, entries } = capturingLogger();
      store = await FileStore.open(dataDir, { logger });
      assert.equal((await store.getMeeting(kept.MeetingId))?.ExternalMeetingId, kept.ExternalMeetingId);
      assert.equal(await store.getMeeting(refused.MeetingId), undefined);
      assert.equal(statSync(path.join(dataDir, JOURNAL)).size, journalSize, 'the torn line was cut');
      assert.ok(entries.some((entry) => /torn|cut/i.test(String(entry.msg))), 'the cut is logged');

      disk.release();
      const later = meeting();
      await store.putMeeting(later);
      await store.close();
      store = await FileStore.open(dataDir, quiet);
      assert.equal((await store.getMeeting(later.MeetingId))?.ExternalMeetingId, later.ExternalMeetingId);
      assert.equal((await store.getMeeting(kept.MeetingId))?.ExternalMeetingId, kept.ExternalMeetingId);
      assert.equal(journalLines(dataDir).length, 2);
    } finally {
      await store?.close();
      disk.unmount();
    }
  });

  test('through the API: a CreateMeeting that can not be journaled answers 503, and a retry after space returns survives a restart', async () => {
    const disk = mountTinyTmpfs();
    const dataDir = path.join(disk.dir, 'data');
    mkdirSync(dataDir);
    let server = await startTestAmphi({ dataDir });
    try {
      await server.client.send(new CreateMeetingCommand({ MediaRegion: 'us-east-1', ExternalMeetingId: 'first' }));
      disk.fill();
      const request = {
        MediaRegion: 'us-east-1',
        ExternalMeetingId: 'tagged',
        ClientRequestToken: 'full-disk-token',
        Tags: Array.from({ length: 50 }, (_, i) => ({ Key: `key${i}`, Value: 'v'.repeat(200) })),
      };
      const error = await errorOf(server.client.send(new CreateMeetingCommand(request)));
      assert.equal(error.$metadata?.httpStatusCode, 503, `answered ${error.name}: ${error.message}`);

      disk.release();
      const { Meeting } = await server.client.send(new CreateMeetingCommand(request));
      await server.stop(false);
      server = await startTestAmphi({ dataDir });
      const fetched = await server.client.send(new GetMeetingCommand({ MeetingId: Meeting!.MeetingId }));
      assert.equal(fetched.Meeting!.ExternalMeetingId, 'tagged');
    } finally {
      await server.stop(false);
      disk.unmount();
    }
  });
});

describe('replaying the journal', () => {
  async function journalWith(...lines: string[]): Promise<string> {
    const dataDir = tempDataDir();
    const store = await FileStore.open(dataDir, quiet);
    await store.putMeeting(meeting());
    await store.close();
    appendFileSync(path.join(dataDir, JOURNAL), lines.join(''));
    return dataDir;
  }

  test('an entry that is JSON but not a record stops the start, naming its line, wherever it is', async () => {
    const cases: Array<[string, RegExp]> = [
      ['{"op":"putMeeting","meeting":{"MeetingId":5}}\n', /meetings\.journal:2 is not a valid journal entry: .*MeetingId/],
      ['{"op":"putAttendee","attendee":{"MeetingId":"m","AttendeeId":"a"}}\n', /meetings\.journal:2 is not a valid journal entry: .*JoinToken/],
      ['{"op":"renameMeeting","meetingId":"m"}\n', /meetings\.journal:2 is not a valid journal entry: .*op/],
      ['null\n', /meetings\.journal:2 is not a valid journal entry/],
      ['[1,2]\n', /meetings\.journal:2 is not a valid journal entry/],
    ];
    for (const [line, expected] of cases) {
      // As the last whole line, then followed by a good one: neither is a crash's torn tail.
      for (const rest of ['', JSON.stringify({ op: 'deleteMeeting', meetingId: 'x' }) + '\n']) {
        const dataDir = await journalWith(line, rest);
        const before = readFileSync(path.join(dataDir, JOURNAL));
        await assert.rejects(FileStore.open(dataDir, quiet), expected, `${line.trim()} then ${rest.trim() || 'nothing'}`);
        assert.deepEqual(readFileSync(path.join(dataDir, JOURNAL)), before, 'a refused start leaves the journal as it was');
      }
    }
  });

  test('a torn last line is cut and logged; a torn line followed by others is damage', async () => {
    const dataDir = await journalWith('{"op":"putMeeting","meeting":{"Meeti');
    const { logger, entries } = capturingLogger();
    const store = await FileStore.open(dataDir, { logger });
    assert.equal(journalLines(dataDir).length, 1);
    const warning = entries.find((entry) => /torn|cut/i.test(String(entry.msg)));
    assert.ok(warning, 'the cut is logged');
    assert.equal(warning.bytes, '{"op":"putMeeting","meeting":{"Meeti'.length);
    await store.close();

    // A line glued to a torn one: what appending after a short write used to leave.
    const glued = await journalWith('{"op":"putMeeting","meeting":{"Meeti', JSON.stringify({ op: 'deleteMeeting', meetingId: 'x' }) + '\n');
    await assert.rejects(FileStore.open(glued, quiet), /meetings\.journal:2 is not a valid journal entry/);
  });
});

describe('file modes', () => {
  test('the data directory is created 0700 and the journal 0600', async () => {
    const dataDir = path.join(tempDataDir(), 'nested', 'data');
    const store = await FileStore.open(dataDir, quiet);
    await store.putMeeting(meeting());
    await store.close();
    assert.equal(mode(dataDir), 0o700);
    assert.equal(mode(path.join(dataDir, JOURNAL)), 0o600);
  });

  test('an existing world-readable data directory, journal and development keys are made private at start', async () => {
    const dataDir = tempDataDir();
    const config = loadConfig([], { AMPHI_DATA_DIR: dataDir });
    resolveAccessKeys(config);
    const store = await FileStore.open(dataDir, quiet);
    await store.putMeeting(meeting());
    await store.close();
    chmodSync(dataDir, 0o755);
    chmodSync(path.join(dataDir, JOURNAL), 0o644);
    chmodSync(path.join(dataDir, 'dev-credentials.json'), 0o644);

    const { logger, entries } = capturingLogger();
    resolveAccessKeys(config);
    const reopened = await FileStore.open(dataDir, { logger });
    await reopened.close();
    assert.equal(mode(dataDir), 0o700);
    assert.equal(mode(path.join(dataDir, JOURNAL)), 0o600);
    assert.equal(mode(path.join(dataDir, 'dev-credentials.json')), 0o600);
    assert.ok(entries.some((entry) => /mode/i.test(String(entry.msg))), 'tightening a mode is logged');
  });

  test('development keys are written 0600 into a data directory created 0700', () => {
    const dataDir = path.join(tempDataDir(), 'fresh');
    resolveAccessKeys(loadConfig([], { AMPHI_DATA_DIR: dataDir }));
    assert.equal(mode(dataDir), 0o700);
    assert.equal(mode(path.join(dataDir, 'dev-credentials.json')), 0o600);
  });
});

describe('the fsync policy', () => {
  test('is a setting: always by default, interval or never by flag or variable; anything else is refused', () => {
    assert.equal(loadConfig([], {}).journalFsync, 'always');
    assert.equal(loadConfig([], { AMPHI_JOURNAL_FSYNC: 'interval' }).journalFsync, 'interval');
    assert.equal(loadConfig(['--journal-fsync', 'never'], { AMPHI_JOURNAL_FSYNC: 'interval' }).journalFsync, 'never');
    assert.throws(() => loadConfig([], { AMPHI_JOURNAL_FSYNC: 'sometimes' }), /--journal-fsync \/ AMPHI_JOURNAL_FSYNC/);
  });

  test('every policy keeps acknowledged changes across a restart', async () => {
    for (const fsync of ['always', 'interval', 'never'] as const) {
      const dataDir = tempDataDir();
      const store = await FileStore.open(dataDir, { ...quiet, fsync });
      const written = meeting();
      await store.putMeeting(written);
      await store.close();
      const reopened = await FileStore.open(dataDir, quiet);
      assert.equal((await reopened.getMeeting(written.MeetingId))?.ExternalMeetingId, written.ExternalMeetingId, fsync);
      await reopened.close();
      assert.ok(existsSync(path.join(dataDir, JOURNAL)));
    }
  });
});
