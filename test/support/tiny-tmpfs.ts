import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** Why a test that needs a tmpfs of its own can't run here, or false when it can (mounting needs root). */
export const tmpfsUnavailable: string | false =
  process.platform !== 'linux' ? 'mounting a tmpfs needs Linux' : process.getuid?.() !== 0 ? 'mounting a tmpfs needs root' : false;

/** A small real filesystem that can be filled to the last byte, so writes meet ENOSPC (and short writes) for real. */
export interface TinyTmpfs {
  /** The mount point. */
  dir: string;
  /** Takes every free byte with a filler file: the only room left is the slack in the last page of other files. */
  fill(): void;
  /** Deletes the filler: space returns. */
  release(): void;
  unmount(): void;
}

export function mountTinyTmpfs(sizeBytes = 1024 * 1024): TinyTmpfs {
  const dir = mkdtempSync(path.join(tmpdir(), 'amphi-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes},mode=0755`, 'tmpfs', dir]);
  const filler = path.join(dir, 'filler');
  return {
    dir,
    fill() {
      const fd = openSync(filler, 'a');
      try {
        // Smaller and smaller chunks, down to single bytes, so no byte of the filler's own last page is left.
        for (const size of [65536, 4096, 256, 16, 1]) {
          const chunk = Buffer.alloc(size, 0x2e);
          try {
            for (;;) writeSync(fd, chunk);
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
          }
        }
      } finally {
        closeSync(fd);
      }
    },
    release() {
      rmSync(filler, { force: true });
    },
    unmount() {
      execFileSync('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
