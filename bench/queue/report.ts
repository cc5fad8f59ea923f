// The queue benchmark's verdict: the measured cells as two text tables (throughput, latency) and the
// issue's targets checked against them. A cell whose jobs did not all succeed is flagged, and a target that
// depends on one fails rather than trusting its numbers.
import { checkPair, fmt, formatNotes, formatRows, isNoisyLoad, type TargetCheck } from '../lib/verdict.ts';
import type { LatencyResult, ThroughputResult } from './measure.ts';
import {
  describeWorkers,
  SYSTEM_IDS,
  SYSTEM_LABELS,
  WORKLOAD_IDS,
  type SystemId,
  type WorkloadId,
} from './system.ts';

interface CellKey {
  system: SystemId;
  workers: number;
  workload: WorkloadId;
  /** Measurements taken (more than 1 when other work made the first ones noisy); the quietest is kept. */
  attempts: number;
  /** False when not every job succeeded (or the phase timed out): the numbers are not comparable. */
  ok: boolean;
}

export type ThroughputCell = CellKey & ThroughputResult;
export type LatencyCell = CellKey & LatencyResult;

/** Targets of the issue. */
export const TARGET_THROUGHPUT_VS_PG_BOSS = 2;
export const TARGET_THROUGHPUT_VS_GRAPHILE_WORKER = 1;
export const TARGET_P50_MS = 10;

export const isNoisy = (cell: { cpu: { otherCores: number } }) => isNoisyLoad(cell.cpu.otherCores);

export function throughputOk(result: ThroughputResult): boolean {
  return !result.timedOut && result.submitErrors === 0 && result.outcomes.succeeded === result.jobs;
}

export function latencyOk(result: LatencyResult, requested: number): boolean {
  return result.failed === 0 && result.jobs === requested;
}

function sortCells<T extends CellKey>(cells: readonly T[]): T[] {
  return [...cells].sort(
    (a, b) =>
      WORKLOAD_IDS.indexOf(a.workload) - WORKLOAD_IDS.indexOf(b.workload) ||
      a.workers - b.workers ||
      SYSTEM_IDS.indexOf(a.system) - SYSTEM_IDS.indexOf(b.system),
  );
}

const findCell = <T extends CellKey>(
  cells: readonly T[],
  system: SystemId,
  workers: number,
  workload: WorkloadId,
) => cells.find((cell) => cell.system === system && cell.workers === workers && cell.workload === workload);

/** The columns every table starts with. */
const keyColumns = (cell: CellKey & { jobs: number }) => [
  cell.workload,
  String(cell.workers),
  SYSTEM_LABELS[cell.system],
  String(cell.jobs),
];

const notes = (cell: CellKey & { cpu: { otherCores: number } }, failure: string) =>
  formatNotes(cell.ok ? undefined : failure, cell.cpu.otherCores);

export function formatThroughputTable(cells: readonly ThroughputCell[]): string {
  const header = [
    'workload',
    'workers',
    'system',
    'jobs',
    'jobs/s',
    'vs pg-boss',
    'vs graphile',
    'submits/s',
    'CPU ms/job',
    'all CPU ms/job',
    'db xacts/job',
    'system cores',
    'pg cores',
    'other cores',
    '',
  ];
  const ratio = (cell: ThroughputCell, peer: SystemId) => {
    const other = findCell(cells, peer, cell.workers, cell.workload);
    return other ? `${fmt(cell.jobsPerSecond / other.jobsPerSecond, 2)}x` : '';
  };
  const rows = sortCells(cells).map((cell) => [
    ...keyColumns(cell),
    fmt(cell.jobsPerSecond, 0),
    ratio(cell, 'pg-boss'),
    ratio(cell, 'graphile-worker'),
    fmt(cell.submitsPerSecond, 0),
    fmt(cell.cpuMsPerJob, 2),
    fmt(cell.allCpuMsPerJob, 2),
    fmt(cell.databaseTransactionsPerJob, 1),
    fmt(cell.cpu.systemCores, 2),
    fmt(cell.cpu.postgresCores, 2),
    fmt(cell.cpu.otherCores, 2),
    notes(
      cell,
      `${cell.outcomes.succeeded}/${cell.jobs} succeeded${cell.timedOut ? ', timed out' : ''}${cell.submitErrors ? `, ${cell.submitErrors} submit errors` : ''}`,
    ),
  ]);
  return formatRows(header, rows, new Set([0, 2, 14]));
}

export function formatLatencyTable(cells: readonly LatencyCell[]): string {
  const header = ['workload', 'workers', 'system', 'jobs', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', ''];
  const rows = sortCells(cells).map((cell) => [
    ...keyColumns(cell),
    fmt(cell.p50Ms, 2),
    fmt(cell.p90Ms, 2),
    fmt(cell.p99Ms, 2),
    fmt(cell.maxMs, 2),
    notes(cell, `${cell.failed} failed`),
  ]);
  return formatRows(header, rows, new Set([0, 2, 8]));
}

/** The issue's targets, for every worker count measured. */
export function checkTargets(
  throughput: readonly ThroughputCell[],
  latency: readonly LatencyCell[],
  workerCounts: readonly number[],
): TargetCheck[] {
  const checks: TargetCheck[] = [];
  for (const workers of workerCounts) {
    for (const [peer, factor] of [
      ['pg-boss', TARGET_THROUGHPUT_VS_PG_BOSS],
      ['graphile-worker', TARGET_THROUGHPUT_VS_GRAPHILE_WORKER],
    ] as const) {
      const target = `modelgate trivial jobs/s >= ${factor === 1 ? '' : `${factor}x `}${peer}, ${describeWorkers('modelgate', workers)}`;
      checks.push(
        checkPair(
          target,
          findCell(throughput, 'modelgate', workers, 'trivial'),
          findCell(throughput, peer, workers, 'trivial'),
          (ours, theirs) => {
            const ratio = ours.jobsPerSecond / theirs.jobsPerSecond;
            return {
              pass: ratio >= factor,
              detail: `${fmt(ours.jobsPerSecond, 0)} vs ${fmt(theirs.jobsPerSecond, 0)} jobs/s = ${fmt(ratio, 2)}x`,
            };
          },
          'a cell had failed or unfinished jobs',
        ),
      );
    }
  }
  const latencyCells = sortCells(latency).filter(
    (cell) => cell.workload === 'trivial' && cell.system.startsWith('modelgate'),
  );
  for (const cell of latencyCells) {
    const target = `${SYSTEM_LABELS[cell.system]} trivial p50 submit-to-result < ${TARGET_P50_MS} ms, ${describeWorkers(cell.system, cell.workers)}`;
    const detail = `p50 ${fmt(cell.p50Ms, 2)} ms (p99 ${fmt(cell.p99Ms, 2)} ms)`;
    checks.push(
      cell.ok
        ? { target, pass: cell.p50Ms < TARGET_P50_MS, detail }
        : { target, pass: false, detail: `${detail}; ${cell.failed} jobs failed` },
    );
  }
  if (latencyCells.length === 0) {
    checks.push({
      target: `modelgate trivial p50 submit-to-result < ${TARGET_P50_MS} ms`,
      pass: null,
      detail: 'not measured in this run',
    });
  }
  return checks;
}
