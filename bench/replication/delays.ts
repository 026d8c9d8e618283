/** Median, p99 and max of a hop's delays, as hop.ts has always reported them (p at floor(q × n) of the sorted delays). */
export interface DelaySummary {
  packets: number;
  median: number;
  p99: number;
  max: number;
}

export function summarizeDelays(values: readonly number[]): DelaySummary {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { packets: sorted.length, median: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? NaN };
}
