import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

/** Readings from Linux's /proc: CPU time of a process and of the whole machine, memory, mounts. */

const ticksPerSecond = clockTicksPerSecond();
const TICKS_TO_MS = 1000 / ticksPerSecond;

/** CPU a process has used so far, in milliseconds, all of its threads included. */
export interface CpuTime {
  userMs: number;
  systemMs: number;
}

/** utime and stime of /proc/<pid>/stat, which cover every thread of the process. */
export function processCpuTime(pid: number): CpuTime {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces and parentheses, so fields are counted after its ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { userMs: Number(fields[11]) * TICKS_TO_MS, systemMs: Number(fields[12]) * TICKS_TO_MS };
}

/**
 * CPU time the whole machine has spent busy, in milliseconds summed over its cores: every
 * process plus interrupt handling (on loopback, much of TCP runs as softirq) and steal.
 */
export function machineBusyMs(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  // cpu user nice system idle iowait irq softirq steal guest guest_nice; guest time is inside user.
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) * TICKS_TO_MS;
}

/** Peak resident memory of a process so far, in MiB (VmHWM). */
export function peakMemoryMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? NaN) / 1024;
}

/** The file system type a directory lives on (ext4, tmpfs, ...), from the longest matching mount point. */
export function fileSystemOf(directory: string): string {
  const target = path.resolve(directory);
  let best = { mountPoint: '', type: 'unknown' };
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, mountPoint, type] = line.split(' ');
    if (!mountPoint || !type) continue;
    const covers = target === mountPoint || target.startsWith(mountPoint.endsWith('/') ? mountPoint : `${mountPoint}/`);
    if (covers && mountPoint.length >= best.mountPoint.length) best = { mountPoint, type };
  }
  return best.type;
}

function clockTicksPerSecond(): number {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return ticks > 0 ? ticks : 100;
  } catch {
    return 100; // USER_HZ on every mainstream Linux build
  }
}
