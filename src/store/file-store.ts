import { mkdirSync, readFileSync, existsSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { AttendeeRecord, MeetingRecord } from '../meetings/model.ts';
import { KeyedLock } from '../util/keyed-lock.ts';
import { MemoryIndex, type JournalEntry } from './memory-index.ts';
import type { AttendeePage, MeetingStore } from '../meetings/meeting-store.ts';

const JOURNAL_FILE = 'meetings.journal';

/**
 * The embedded store: state in memory, every change appended to a journal file (one JSON
 * object a line) under the data directory, like Redis' append-only file. Changes made in
 * the same tick are written together, and a change's promise settles once its line is in
 * the file (handed to the OS), so an acknowledged API call survives a crash of the process.
 * The journal is rewritten from memory at start and whenever it grows well past the live
 * state.
 */
export class FileStore implements MeetingStore {
  private readonly state = new MemoryIndex();
  /** Only this process uses the journal, so a process-local lock serialises every writer. */
  private readonly locks = new KeyedLock();
  private readonly journalPath: string;
  private handle: FileHandle | undefined;
  private batch: string[] = [];
  private batchWritten: Promise<void> | undefined;
  private writes: Promise<void> = Promise.resolve();
  private entriesSinceRewrite = 0;
  private closed = false;

  private constructor(dataDir: string) {
    this.journalPath = path.join(dataDir, JOURNAL_FILE);
  }

  static async open(dataDir: string): Promise<FileStore> {
    mkdirSync(dataDir, { recursive: true });
    const store = new FileStore(dataDir);
    store.replay();
    store.rewriteJournal();
    store.handle = await open(store.journalPath, 'a');
    return store;
  }

  private replay(): void {
    if (!existsSync(this.journalPath)) return;
    const lines = readFileSync(this.journalPath, 'utf8').split('\n');
    lines.forEach((line, index) => {
      if (line.trim() === '') return;
      try {
        this.state.apply(JSON.parse(line) as JournalEntry);
      } catch (error) {
        // Only the last line can be cut short by a crash; anything else is damage to report.
        const isLast = lines.slice(index + 1).every((rest) => rest.trim() === '');
        if (!isLast) throw new Error(`${this.journalPath}:${index + 1} is not a valid journal entry: ${String(error)}`);
      }
    });
  }

  /** Writes the live state as a fresh journal, atomically (temporary file, fsync, rename). */
  private rewriteJournal(): void {
    const temporary = `${this.journalPath}.tmp`;
    const lines: string[] = [];
    for (const entry of this.state.records()) lines.push(JSON.stringify(entry));
    writeFileSync(temporary, lines.length ? lines.join('\n') + '\n' : '');
    const fd = openSync(temporary, 'r');
    fsyncSync(fd);
    closeSync(fd);
    renameSync(temporary, this.journalPath);
    this.entriesSinceRewrite = 0;
  }

  private journal(entry: JournalEntry): Promise<void> {
    if (this.closed) return Promise.reject(new Error('store is closed'));
    this.state.apply(entry);
    this.batch.push(JSON.stringify(entry) + '\n');
    this.entriesSinceRewrite++;
    this.batchWritten ??= new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        const data = this.batch.join('');
        this.batch = [];
        this.batchWritten = undefined;
        const written = this.writes.then(() => this.writeBatch(data));
        this.writes = written.catch(() => undefined);
        written.then(resolve, reject);
      });
    });
    return this.batchWritten;
  }

  private async writeBatch(data: string): Promise<void> {
    if (this.entriesSinceRewrite > Math.max(10_000, 4 * this.state.liveRecordCount)) {
      // The memory state already includes this batch, so the rewrite replaces appending it.
      await this.handle!.close();
      this.rewriteJournal();
      this.handle = await open(this.journalPath, 'a');
      return;
    }
    await this.handle!.write(data);
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
    // Entries journaled in one tick go out in one write.
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
    await this.batchWritten;
    this.closed = true;
    await this.writes;
    await this.handle?.sync();
    await this.handle?.close();
    this.handle = undefined;
  }
}
