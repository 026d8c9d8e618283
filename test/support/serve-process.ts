import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const START_TIMEOUT_MS = 30_000;

/** An `amphi serve` process (or `npm start`), as an operator runs it. */
export interface ServeProcess {
  child: ChildProcess;
  /** Where its API listens, from its 'Amphi is listening' log line. */
  url: string;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves once it wrote `text`; rejects if it exits first or takes longer than `timeoutMs`. */
  waitForOutput(text: string, timeoutMs?: number): Promise<void>;
  /** Its exit code (128 + signal number if a signal ended it); rejects after `timeoutMs`, killing it. */
  exitCode(timeoutMs?: number): Promise<number>;
}

/**
 * Starts `node bin/amphi.js serve <args>` (or, with `npm: true`, `npm start -- <args>`) in the repository and waits
 * until it listens.
 */
export async function startServe(args: string[], env: Record<string, string>, options: { npm?: boolean } = {}): Promise<ServeProcess> {
  const command = options.npm ? ['npm', ['start', '--silent', '--', ...args]] as const : [process.execPath, [path.join(ROOT, 'bin/amphi.js'), 'serve', ...args]] as const;
  const child = spawn(command[0], [...command[1]], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const waiters = new Set<() => void>();
  const append = (chunk: Buffer) => {
    output += chunk.toString();
    for (const check of waiters) check();
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  const exited = new Promise<number>((resolve) =>
    child.once('exit', (code, signal) => {
      resolve(code ?? 128 + constants.signals[signal!]);
      for (const check of waiters) check();
    }),
  );
  const waitForOutput = (text: string, timeoutMs = START_TIMEOUT_MS) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`no '${text}' within ${timeoutMs} ms:\n${output}`)), timeoutMs);
      const finish = (error?: Error) => {
        clearTimeout(timer);
        waiters.delete(check);
        if (error) reject(error);
        else resolve();
      };
      const check = () => {
        if (output.includes(text)) finish();
        else if (child.exitCode !== null || child.signalCode !== null) finish(new Error(`exited before writing '${text}':\n${output}`));
      };
      waiters.add(check);
      check();
    });
  try {
    await waitForOutput('"msg":"Amphi is listening"');
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  const url = /"url":"(http:\/\/[^"]+)","publicUrl"/.exec(output)?.[1];
  if (!url) throw new Error(`no URL in the start log:\n${output}`);
  return {
    child,
    url,
    output: () => output,
    waitForOutput,
    async exitCode(timeoutMs = START_TIMEOUT_MS) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`still running after ${timeoutMs} ms:\n${output}`));
        }, timeoutMs);
      });
      try {
        return await Promise.race([exited, late]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
