// What the benchmarks' verdicts share (bench/lib/report.ts, bench/lib/runtimes-report.ts,
// bench/queue/report.ts): when outside work makes a measurement noisy, the median of rounds, text tables,
// and targets checked against two measured cells and printed.

/** Above this many cores of outside work during a measurement (the machine is shared), it is noisy. */
export const NOISY_OTHER_CPU_CORES = 0.25;

export const isNoisyLoad = (otherCpuCores: number) => otherCpuCores > NOISY_OTHER_CPU_CORES;

export interface TargetCheck {
  target: string;
  /** null when a cell it needs was not measured in this run. */
  pass: boolean | null;
  detail: string;
}

export const fmt = (value: number, digits: number) =>
  Number.isFinite(value) ? value.toFixed(digits) : 'n/a';

/**
 * One cell per key: the round with the median req/s (the lower middle of an even count), carrying every
 * round's req/s, in order.
 */
export function medianRounds<T extends { requestsPerSecond: number }>(
  rounds: readonly T[],
  keyOf: (cell: T) => string,
): (T & { roundsRequestsPerSecond: number[] })[] {
  const groups = new Map<string, T[]>();
  for (const cell of rounds) {
    const key = keyOf(cell);
    groups.set(key, [...(groups.get(key) ?? []), cell]);
  }
  return [...groups.values()].map((group) => {
    const sorted = [...group].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond);
    const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
    return { ...median, roundsRequestsPerSecond: group.map((cell) => cell.requestsPerSecond) };
  });
}

/** The "rounds min-max" column: the lowest and highest req/s of a cell's rounds. */
export const formatRoundsRange = (roundsRequestsPerSecond: readonly number[] | undefined) =>
  roundsRequestsPerSecond
    ? `${fmt(Math.min(...roundsRequestsPerSecond), 0)}-${fmt(Math.max(...roundsRequestsPerSecond), 0)}`
    : '';

/** A table's last column: what failed (undefined if nothing did), and outside work that made it noisy. */
export function formatNotes(failure: string | undefined, otherCpuCores: number): string {
  return [
    failure === undefined ? '' : `<< ${failure}`,
    isNoisyLoad(otherCpuCores) ? `~ noisy: other work used ${fmt(otherCpuCores, 2)} cores` : '',
  ]
    .filter(Boolean)
    .join(' ');
}

/** A text table: the header, a rule, a line per row; columns right-aligned but for `leftAligned` ones. */
export function formatRows(header: string[], rows: string[][], leftAligned: Set<number>): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  const line = (row: string[]) =>
    row
      .map((text, i) => (leftAligned.has(i) ? text.padEnd(widths[i]!) : text.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

/**
 * A target that compares a measured cell with a reference cell: N/A when either was not measured, and a
 * failure, whatever the numbers say, when either had failures (`failedDetail` says which).
 */
export function checkPair<T extends { ok: boolean }>(
  target: string,
  subject: T | undefined,
  reference: T | undefined,
  check: (subject: T, reference: T) => { pass: boolean; detail: string },
  failedDetail = 'a cell had failed requests',
): TargetCheck {
  if (!subject || !reference) return { target, pass: null, detail: 'not measured in this run' };
  const { pass, detail } = check(subject, reference);
  if (!subject.ok || !reference.ok) return { target, pass: false, detail: `${detail}; ${failedDetail}` };
  return { target, pass, detail };
}

export function formatTargets(checks: readonly TargetCheck[]): string {
  return checks
    .map((check) => {
      const verdict = check.pass === null ? 'N/A ' : check.pass ? 'PASS' : 'FAIL';
      return `${verdict}  ${check.target}: ${check.detail}`;
    })
    .join('\n');
}
