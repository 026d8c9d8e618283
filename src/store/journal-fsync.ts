/**
 * When the embedded store's journal is flushed from the OS's cache to the disk. Every policy survives a crash of
 * the process (a write is in the OS once acknowledged); they differ on a crash of the machine or a power cut:
 * - `always`: each write is fsynced before its changes are acknowledged; nothing acknowledged is lost. Costs the
 *   disk's flush latency on every write (writes queued meanwhile share the next flush).
 * - `interval`: flushed every second; up to a second of acknowledged changes can be lost.
 * - `never`: the OS flushes when it chooses (on Linux, typically within 30 s).
 */
export const JOURNAL_FSYNC_POLICIES = ['always', 'interval', 'never'] as const;
export type JournalFsyncPolicy = (typeof JOURNAL_FSYNC_POLICIES)[number];

/** How often `interval` flushes. */
export const JOURNAL_FSYNC_INTERVAL_MS = 1000;
