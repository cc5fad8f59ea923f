// The two measurements of the queue benchmark, the same for every system:
// - throughput: K jobs submitted by a fixed number of concurrent submitters, timed from the first submit
//   until a poll of the system's unfinished jobs finds none (the poll starts once every submit has been
//   accepted, every `pollMs`);
// - latency: jobs submitted one at a time on an otherwise idle system, each timed from submit until its
//   result is observed, with a random pause before each so that submits do not lock onto a poll timer.
import type pg from 'pg';
import { percentile, round } from '../lib/stats.ts';
import { cpuUseBetween, takeCpuSnapshot, type CpuUse } from './cpu.ts';
import type { Outcomes, RunningSystem, WorkloadId } from './system.ts';

export interface PhaseSettings {
  /** A connection of this run that reads pg_stat_activity; undefined without a Postgres server. */
  pgClient: pg.Client | undefined;
  /** Pause between two polls of the unfinished jobs (throughput). */
  pollMs: number;
  /** A phase that has not finished by then stops and reports what it has. */
  timeoutMs: number;
}

export interface ThroughputResult {
  jobs: number;
  submitters: number;
  /** From the first submit until no job was unfinished. */
  seconds: number;
  jobsPerSecond: number;
  /** From the first submit until the last was accepted. */
  submitSeconds: number;
  submitsPerSecond: number;
  submitErrors: number;
  firstSubmitError?: string;
  timedOut: boolean;
  outcomes: Outcomes;
  cpu: CpuUse;
  /** CPU of the system's processes and of their Postgres backends per job, in ms. */
  cpuMsPerJob: number;
  /**
   * All the CPU of the run per job, in ms: the above, Postgres's background processes and this process
   * (submitters and completion polling). The peers' client side (send/addJob) runs here, modelgate's is
   * its gateway, so this is the figure to compare across systems.
   */
  allCpuMsPerJob: number;
  /**
   * Transactions per job in the whole database (pg_stat_database, which backends update up to a second
   * late; other clients of the same database count too): how many round trips a job costs the server.
   */
  databaseTransactionsPerJob: number;
}

export interface LatencyResult {
  jobs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  meanMs: number;
  minMs: number;
  maxMs: number;
  failed: number;
  firstError?: string;
  /** Longest random pause before a submit. */
  pauseMaxMs: number;
  cpu: CpuUse;
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

export async function measureThroughput(
  system: RunningSystem,
  workload: WorkloadId,
  jobs: number,
  submitters: number,
  settings: PhaseSettings,
): Promise<ThroughputResult> {
  const before = await takeCpuSnapshot(system.processes(), settings.pgClient);
  const startedAt = performance.now();
  const deadline = startedAt + settings.timeoutMs;
  const ids: string[] = [];
  let next = 0;
  let submitErrors = 0;
  let firstSubmitError: string | undefined;
  await Promise.all(
    Array.from({ length: Math.min(submitters, jobs) }, async () => {
      while (next < jobs && performance.now() < deadline) {
        next++;
        try {
          ids.push(await system.submit(workload));
        } catch (error) {
          submitErrors++;
          firstSubmitError ??= messageOf(error);
        }
      }
    }),
  );
  const submittedAt = performance.now();
  let timedOut = false;
  for (;;) {
    if ((await system.countUnfinished()) === 0) break;
    if (performance.now() > deadline) {
      timedOut = true;
      break;
    }
    await delay(settings.pollMs);
  }
  const finishedAt = performance.now();
  const after = await takeCpuSnapshot(system.processes(), settings.pgClient);
  const outcomes = await system.outcomes(ids, workload);
  const seconds = (finishedAt - startedAt) / 1000;
  const submitSeconds = (submittedAt - startedAt) / 1000;
  const cpu = cpuUseBetween(before, after);
  const elapsedSeconds = (after.atMs - before.atMs) / 1000;
  const cpuSeconds = (cpu.systemCores + cpu.postgresCores) * elapsedSeconds;
  const allCpuSeconds = cpuSeconds + (cpu.postgresBackgroundCores + cpu.benchmarkCores) * elapsedSeconds;
  const perJobMs = (value: number) => round((value / Math.max(1, outcomes.succeeded)) * 1000, 3);
  return {
    jobs,
    submitters,
    seconds: round(seconds, 3),
    jobsPerSecond: round(outcomes.succeeded / seconds, 1),
    submitSeconds: round(submitSeconds, 3),
    submitsPerSecond: round(ids.length / submitSeconds, 1),
    submitErrors,
    ...(firstSubmitError ? { firstSubmitError } : {}),
    timedOut,
    outcomes,
    cpu,
    cpuMsPerJob: perJobMs(cpuSeconds),
    allCpuMsPerJob: perJobMs(allCpuSeconds),
    databaseTransactionsPerJob: round(
      (after.databaseTransactions - before.databaseTransactions) / Math.max(1, outcomes.succeeded),
      2,
    ),
  };
}

export async function measureLatency(
  system: RunningSystem,
  workload: WorkloadId,
  jobs: number,
  pauseMaxMs: number,
  settings: PhaseSettings,
): Promise<LatencyResult> {
  const before = await takeCpuSnapshot(system.processes(), settings.pgClient);
  const deadline = performance.now() + settings.timeoutMs;
  const latenciesMs: number[] = [];
  let failed = 0;
  let firstError: string | undefined;
  for (let i = 0; i < jobs && performance.now() < deadline; i++) {
    await delay(Math.random() * pauseMaxMs);
    const startedAt = performance.now();
    try {
      await system.runOne(workload);
      latenciesMs.push(performance.now() - startedAt);
    } catch (error) {
      failed++;
      firstError ??= messageOf(error);
    }
  }
  const after = await takeCpuSnapshot(system.processes(), settings.pgClient);
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  const mean = sorted.reduce((sum, value) => sum + value, 0) / sorted.length;
  return {
    jobs: latenciesMs.length + failed,
    p50Ms: round(percentile(sorted, 0.5), 3),
    p90Ms: round(percentile(sorted, 0.9), 3),
    p99Ms: round(percentile(sorted, 0.99), 3),
    meanMs: round(mean, 3),
    minMs: round(sorted[0] ?? Number.NaN, 3),
    maxMs: round(sorted.at(-1) ?? Number.NaN, 3),
    failed,
    ...(firstError ? { firstError } : {}),
    pauseMaxMs,
    cpu: cpuUseBetween(before, after),
  };
}
