import { chmodSync, mkdirSync, statSync } from 'node:fs';

/**
 * The data directory holds every JoinToken and the development keys: only Amphi's own user may read it. These make
 * new paths private and tighten existing ones, saying what they changed so the caller can log it.
 */

export const PRIVATE_DIRECTORY_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** What was done to a path: its mode before, when it had to be tightened. */
export interface ModeChange {
  path: string;
  from: string;
  to: string;
}

/** Creates `dir` (and missing parents) 0700, or takes group and other permissions off an existing one. */
export function ensurePrivateDirectory(dir: string): ModeChange | undefined {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIRECTORY_MODE });
  return restrict(dir, PRIVATE_DIRECTORY_MODE);
}

/** Takes group and other permissions off an existing file; a missing file is left to be created with the mode. */
export function ensurePrivateFile(file: string): ModeChange | undefined {
  return restrict(file, PRIVATE_FILE_MODE);
}

function restrict(target: string, mode: number): ModeChange | undefined {
  let current: number;
  try {
    current = statSync(target).mode & 0o777;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  if ((current & 0o077) === 0) return undefined;
  try {
    chmodSync(target, mode);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EPERM') throw error;
    throw new Error(
      `${target} can be read by other users (mode ${octal(current)}) and this user may not change that: ` +
        `chmod it to ${octal(mode)} or choose another --data-dir`,
      { cause: error },
    );
  }
  return { path: target, from: octal(current), to: octal(mode) };
}

const octal = (mode: number) => `0${mode.toString(8).padStart(3, '0')}`;
