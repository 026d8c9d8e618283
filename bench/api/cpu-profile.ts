import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** The parts of a V8 .cpuprofile (node --cpu-prof) this summary reads. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

interface Share {
  name: string;
  ms: number;
}

/**
 * Self time of the server's main thread grouped two ways: by where the code lives (a package,
 * a source file of Amphi, Node's internals, the garbage collector) and by function. Idle time
 * is left out, so the shares are of the time the thread was busy, startup included. Samples
 * measure time, not CPU: on a loaded machine, time spent waiting for a core after waking
 * another thread (a journal write handed to libuv's threadpool, say) counts against the caller.
 */
export function summarizeCpuProfile(profileDir: string, pid: number, top = 15): string {
  // node --cpu-prof names files CPU.<date>.<time>.<pid>.<thread>.<sequence>; thread 0 is the
  // main one (thread 1 runs tsx's module hooks, busy only at startup).
  const file = readdirSync(profileDir)
    .filter((name) => name.endsWith('.cpuprofile') && name.includes(`.${pid}.0.`))
    .map((name) => path.join(profileDir, name))
    .at(0);
  if (!file) return `no main-thread .cpuprofile of process ${pid} in ${profileDir} (the server must exit cleanly to write one)`;
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;

  const selfMicros = new Map<number, number>();
  profile.samples.forEach((nodeId, index) => {
    selfMicros.set(nodeId, (selfMicros.get(nodeId) ?? 0) + (profile.timeDeltas[index] ?? 0));
  });
  const byPlace = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let busyMicros = 0;
  for (const node of profile.nodes) {
    const micros = selfMicros.get(node.id) ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    if (micros === 0 || functionName === '(idle)') continue;
    busyMicros += micros;
    const place = placeOf(functionName, url);
    byPlace.set(place, (byPlace.get(place) ?? 0) + micros);
    const name = `${functionName || '(anonymous)'} ${url ? `${shortUrl(url)}:${lineNumber + 1}` : ''}`.trim();
    byFunction.set(name, (byFunction.get(name) ?? 0) + micros);
  }

  const table = (title: string, shares: Share[]) =>
    [
      `| ${title} | self ms | share |`,
      '|---|---:|---:|',
      ...shares.map(({ name, ms }) => `| ${name.replace(/\|/g, '\\|')} | ${ms.toFixed(0)} | ${((ms * 1000 * 100) / busyMicros).toFixed(1)}% |`),
    ].join('\n');
  const topOf = (map: Map<string, number>) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, micros]) => ({ name, ms: micros / 1000 }));
  return [
    `Server CPU profile: ${file}`,
    `busy ${(busyMicros / 1000).toFixed(0)} ms (idle excluded, startup included)`,
    '',
    table('where', topOf(byPlace)),
    '',
    table('function (self time)', topOf(byFunction)),
  ].join('\n');
}

/** A package name, an Amphi source file, or a V8 pseudo-frame such as (garbage collector). */
function placeOf(functionName: string, url: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const inPackage = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (inPackage) return inPackage[1]!;
  if (url.startsWith('node:')) return 'node internals';
  const inSource = /\/(src\/.+?)(?:\?.*)?$/.exec(url);
  return inSource ? inSource[1]! : shortUrl(url);
}

function shortUrl(url: string): string {
  return url.replace(/^file:\/\/.*?\/(node_modules|src|bin)\//, '$1/').replace(/\?.*$/, '');
}
