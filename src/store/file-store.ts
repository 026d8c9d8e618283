import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, truncateSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { AttendeeRecord, MeetingRecord } from '../meetings/model.ts';
import { KeyedLock } from '../util/keyed-lock.ts';
import { ensurePrivateDirectory, ensurePrivateFile, PRIVATE_FILE_MODE, type ModeChange } from '../util/private-files.ts';
import { MemoryIndex, type JournalEntry } from './memory-index.ts';
import { parseJournalEntry } from './journal-entry.ts';
import { JOURNAL_FSYNC_INTERVAL_MS, type JournalFsyncPolicy } from './journal-fsync.ts';
import { StoreUnavailableError, type AttendeePage, type MeetingStore } from '../meetings/meeting-store.ts';

const JOURNAL_FILE = 'meetings.journal';

export interface FileStoreOptions {
  /** When the journal is flushed to disk (see journal-fsync.ts); `always` unless told. */
  fsync?: JournalFsyncPolicy;
  /** Told about torn lines cut at start, modes tightened, compactions and background flushes that failed. */
  logger?: Pick<Logger, 'warn' | 'error'>;
}

/** The entries of the changes waiting for the writer, and the callers waiting on them. */
interface PendingBatch {
  entries: JournalEntry[];
  written: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

const silentLogger: Pick<Logger, 'warn' | 'error'> = { warn: () => undefined, error: () => undefined };

/**
 * The embedded store: state in memory, every change appended to a journal file (one JSON object a line) under the
 * data directory, like Redis' append-only file. A change is applied to memory only once its line is whole in the
 * file (and fsynced, under the `always` policy): a change that could not be written (a full disk) fails with
 * StoreUnavailableError, leaves no partial line behind and was never visible. Changes made while a write is in
 * progress go out together in the next one. The journal is rewritten from memory at start and whenever it grows
 * well past the live state.
 */
export class FileStore implements MeetingStore {
  private readonly state = new MemoryIndex();
  /** Only this process uses the journal, so a process-local lock serialises every writer. */
  private readonly locks = new KeyedLock();
  private readonly journalPath: string;
  private readonly fsync: JournalFsyncPolicy;
  private readonly logger: Pick<Logger, 'warn' | 'error'>;
  private handle: FileHandle | undefined;
  /** Length of the journal's whole lines: a failed write is cut back to it. */
  private journalSize = 0;
  /** A failed write left a partial line that could not be cut at once: it is cut before the next write. */
  private tornTail = false;
  /** Written since the last fsync (policies other than `always`). */
  private unsynced = false;
  private pending: PendingBatch | undefined;
  /** The journal's single writer: appends, flushes and rewrites run one after another on this chain. */
  private writer: Promise<void> = Promise.resolve();
  private syncTimer: NodeJS.Timeout | undefined;
  private entriesSinceRewrite = 0;
  private closed = false;

  private constructor(dataDir: string, options: FileStoreOptions) {
    this.journalPath = path.join(dataDir, JOURNAL_FILE);
    this.fsync = options.fsync ?? 'always';
    this.logger = options.logger ?? silentLogger;
  }

  static async open(dataDir: string, options: FileStoreOptions = {}): Promise<FileStore> {
    const store = new FileStore(dataDir, options);
    // The journal holds every JoinToken: only this user may read it.
    store.logModeChange(ensurePrivateDirectory(dataDir));
    store.logModeChange(ensurePrivateFile(store.journalPath));
    store.replay();
    try {
      store.rewriteJournal();
    } catch (error) {
      // A full disk has no room for a second copy; the journal as it is (whole lines only) still serves.
      store.logger.warn({ err: error, journal: store.journalPath }, 'could not compact the journal at start; appending to it as it is');
    }
    await store.openForAppend();
    if (store.fsync === 'interval') {
      store.syncTimer = setInterval(() => store.syncInBackground(), JOURNAL_FSYNC_INTERVAL_MS);
      store.syncTimer.unref();
    }
    return store;
  }

  /**
   * Loads every whole line. Bytes after the last newline are a write cut short (a crash, a full disk): never
   * acknowledged, so they are cut off. A line that is not a valid entry anywhere else is damage: the start stops,
   * naming the line, and the file is left as it was.
   */
  private replay(): void {
    if (!existsSync(this.journalPath)) return;
    const content = readFileSync(this.journalPath);
    const wholeLength = content.lastIndexOf(0x0a) + 1;
    const lines = content.subarray(0, wholeLength).toString('utf8').split('\n');
    lines.pop();
    const entries = lines.map((line, index) => {
      if (line.trim() === '') return undefined;
      try {
        return parseJournalEntry(line);
      } catch (error) {
        throw new Error(`${this.journalPath}:${index + 1} is not a valid journal entry: ${(error as Error).message}`);
      }
    });
    for (const entry of entries) if (entry) this.state.apply(entry);
    if (wholeLength < content.length) {
      truncateSync(this.journalPath, wholeLength);
      this.logger.warn(
        { journal: this.journalPath, line: lines.length + 1, bytes: content.length - wholeLength },
        'cut a torn last line off the journal: a write cut short by a crash or a full disk, never acknowledged',
      );
    }
  }

  /** Writes the live state as a fresh journal, atomically (temporary file, fsync, rename, fsync of the directory). */
  private rewriteJournal(): void {
    const temporary = `${this.journalPath}.tmp`;
    // A leftover from an interrupted rewrite may have another mode; the file is created afresh with ours.
    rmSync(temporary, { force: true });
    const lines: string[] = [];
    for (const entry of this.state.records()) lines.push(JSON.stringify(entry) + '\n');
    const data = Buffer.from(lines.join(''));
    const fd = openSync(temporary, 'wx', PRIVATE_FILE_MODE);
    try {
      for (let offset = 0; offset < data.length; ) offset += writeSync(fd, data, offset, data.length - offset);
      fsyncSync(fd);
    } catch (error) {
      closeSync(fd);
      rmSync(temporary, { force: true });
      throw error;
    }
    closeSync(fd);
    renameSync(temporary, this.journalPath);
    syncDirectory(path.dirname(this.journalPath));
    this.entriesSinceRewrite = 0;
  }

  private async openForAppend(): Promise<FileHandle> {
    const handle = await open(this.journalPath, 'a', PRIVATE_FILE_MODE);
    this.handle = handle;
    this.journalSize = (await handle.stat()).size;
    this.tornTail = false;
    this.unsynced = false;
    return handle;
  }

  private journal(entry: JournalEntry): Promise<void> {
    if (this.closed) return Promise.reject(new Error('store is closed'));
    if (!this.pending) {
      const batch = newBatch();
      this.pending = batch;
      // The batch stays open until the writer takes it: this tick's changes, and those made while earlier writes
      // were in progress, share one write (and one fsync).
      setImmediate(() => {
        void this.exclusive(async () => {
          this.pending = undefined;
          try {
            await this.commit(batch.entries);
          } catch (error) {
            batch.reject(error);
            return;
          }
          batch.resolve();
          await this.compactIfOutgrown();
        });
      });
    }
    this.pending.entries.push(entry);
    return this.pending.written;
  }

  /** Runs `section` on the writer chain, after everything queued before it. */
  private exclusive(section: () => Promise<void>): Promise<void> {
    const run = this.writer.then(section);
    this.writer = run.catch(() => undefined);
    return run;
  }

  /** Appends the entries' lines whole, then applies them to memory; on failure nothing is applied and nothing stays written. */
  private async commit(entries: JournalEntry[]): Promise<void> {
    const data = Buffer.from(entries.map((entry) => JSON.stringify(entry) + '\n').join(''));
    try {
      await this.append(data);
    } catch (error) {
      throw new StoreUnavailableError(`the journal could not be written, so nothing was changed: ${(error as Error).message}`, { cause: error });
    }
    for (const entry of entries) this.state.apply(entry);
    this.entriesSinceRewrite += entries.length;
  }

  private async append(data: Buffer): Promise<void> {
    const handle = this.handle ?? (await this.openForAppend());
    // A partial line left by an earlier failure would glue itself to this one.
    if (this.tornTail) {
      await handle.truncate(this.journalSize);
      this.tornTail = false;
    }
    let written = 0;
    try {
      // write() may write less than asked (the disk filled up meanwhile): go on until all is written or it fails.
      while (written < data.length) {
        const { bytesWritten } = await handle.write(data, written, data.length - written);
        if (bytesWritten <= 0) throw new Error('the journal write made no progress');
        written += bytesWritten;
      }
      if (this.fsync === 'always') await handle.datasync();
    } catch (error) {
      if (written > 0) await this.cutBack(handle);
      throw error;
    }
    if (this.fsync !== 'always') this.unsynced = true;
    this.journalSize += data.length;
  }

  /** Removes what a failed write left after the last whole line. */
  private async cutBack(handle: FileHandle): Promise<void> {
    try {
      await handle.truncate(this.journalSize);
    } catch (error) {
      this.tornTail = true;
      this.logger.error({ err: error, journal: this.journalPath }, 'could not cut a failed write off the journal; it will be cut before the next write');
    }
  }

  /** Under `interval`: flushes what was written since the last flush, in turn with writes. */
  private syncInBackground(): void {
    if (!this.unsynced || this.closed) return;
    void this.exclusive(async () => {
      if (!this.unsynced || !this.handle) return;
      this.unsynced = false;
      try {
        await this.handle.datasync();
      } catch (error) {
        this.unsynced = true;
        this.logger.error({ err: error, journal: this.journalPath }, 'could not fsync the journal');
      }
    });
  }

  /** Rewrites the journal when it has grown well past the live state; a failure only postpones it. */
  private async compactIfOutgrown(): Promise<void> {
    if (this.entriesSinceRewrite <= Math.max(10_000, 4 * this.state.liveRecordCount)) return;
    try {
      this.rewriteJournal();
    } catch (error) {
      this.entriesSinceRewrite = 0;
      this.logger.warn({ err: error, journal: this.journalPath }, 'could not compact the journal; will try again later');
      return;
    }
    // The old handle is on the replaced file; the next append reopens if this fails.
    const previous = this.handle;
    this.handle = undefined;
    try {
      await previous?.close();
      await this.openForAppend();
    } catch (error) {
      this.logger.error({ err: error, journal: this.journalPath }, 'could not reopen the journal after compacting it');
    }
  }

  private logModeChange(change: ModeChange | undefined): void {
    if (change) this.logger.warn(change, 'made a data file private: other users could read it (mode tightened)');
  }

  withLock<T>(key: string, section: () => Promise<T>): Promise<T> {
    return this.locks.run(key, section);
  }

  async getMeeting(meetingId: string) {
    return this.state.getMeeting(meetingId);
  }
  putMeeting(meeting: MeetingRecord) {
    return this.journal({ op: 'putMeeting', meeting });
  }
  async deleteMeeting(meetingId: string) {
    const attendees = this.state.allAttendees(meetingId);
    await this.journal({ op: 'deleteMeeting', meetingId });
    return attendees;
  }
  async listMeetings() {
    return [...this.state.meetings.values()];
  }
  async countMeetings() {
    return this.state.meetings.size;
  }
  async findMeetingByRequestToken(token: string) {
    return this.state.findMeetingByRequestToken(token);
  }
  async listReplicaIds(primaryMeetingId: string) {
    return this.state.listReplicaIds(primaryMeetingId);
  }
  async getAttendee(meetingId: string, attendeeId: string) {
    return this.state.getAttendee(meetingId, attendeeId);
  }
  putAttendee(attendee: AttendeeRecord) {
    return this.journal({ op: 'putAttendee', attendee });
  }
  async putAttendees(attendees: AttendeeRecord[]) {
    // Entries journaled in one tick go out in one write, and succeed or fail together.
    await Promise.all(attendees.map((attendee) => this.journal({ op: 'putAttendee', attendee })));
  }
  async deleteAttendee(meetingId: string, attendeeId: string) {
    const attendee = this.state.getAttendee(meetingId, attendeeId);
    if (attendee) await this.journal({ op: 'deleteAttendee', meetingId, attendeeId });
    return attendee;
  }
  async countAttendees(meetingId: string) {
    return this.state.countAttendees(meetingId);
  }
  async listAttendees(meetingId: string, limit: number, afterAttendeeId?: string): Promise<AttendeePage> {
    return this.state.listAttendees(meetingId, limit, afterAttendeeId);
  }
  async listAllAttendees(meetingId: string) {
    return this.state.allAttendees(meetingId);
  }
  async findAttendeeByExternalUserId(meetingId: string, externalUserId: string) {
    return this.state.findAttendeeByExternalUserId(meetingId, externalUserId);
  }
  async findAttendeeByJoinToken(joinToken: string) {
    return this.state.findAttendeeByJoinToken(joinToken);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.syncTimer);
    await this.pending?.written.catch(() => undefined);
    await this.writer;
    const handle = this.handle;
    this.handle = undefined;
    if (!handle) return;
    try {
      // Left for the next start to cut if it still fails.
      if (this.tornTail) await handle.truncate(this.journalSize).catch(() => undefined);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}

function newBatch(): PendingBatch {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const written = new Promise<void>((onResolve, onReject) => {
    resolve = onResolve;
    reject = onReject;
  });
  return { entries: [], written, resolve, reject };
}

function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
