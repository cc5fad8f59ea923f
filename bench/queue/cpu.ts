// Where the CPU went during one measured phase: the system's own processes, the Postgres backends serving
// it (their connections carry this run's application_name), Postgres's background processes, this
// benchmark process, and everything else on the machine (other people's work: a phase where that exceeds
// NOISY_OTHER_CPU_CORES is measured again). Linux /proc only; elsewhere the numbers are NaN.
import type pg from 'pg';
import { ownCpuSeconds, readMachineBusySeconds, readProcessCpuSeconds } from '../lib/cpu.ts';
import { APPLICATION_NAME_PREFIX } from './database.ts';
import type { SystemProcess } from './system.ts';

type BackendClass = 'ours' | 'background' | 'others';

export interface CpuSnapshot {
  atMs: number;
  machineBusySeconds: number;
  ownSeconds: number;
  /** CPU seconds of the system's processes (gateway, workers), by pid. */
  processes: Map<number, { label: string; seconds: number }>;
  /** Transactions committed or rolled back in the database so far (all its clients; NaN without Postgres). */
  databaseTransactions: number;
  /** CPU seconds of the Postgres server's processes, by pid, with whose work they do. */
  postgres: Map<number, { kind: BackendClass; seconds: number }>;
}

export interface CpuUse {
  /** Cores used by the system's processes (all threads, user + system). */
  systemCores: number;
  /** The same, per process (gateway, worker-1, …). */
  systemCoresByProcess: Record<string, number>;
  /** Cores used by the Postgres backends of this run's connections (the system's and the benchmark's). */
  postgresCores: number;
  /** Postgres background processes (WAL writer, checkpointer, …): shared, but mostly our doing here. */
  postgresBackgroundCores: number;
  /** This process: submitters, HTTP client, completion polling. */
  benchmarkCores: number;
  /** The rest of the machine: other work sharing it (and Postgres backends of other clients). */
  otherCores: number;
}

const NaNIfUndefined = (value: number | undefined) => value ?? Number.NaN;

async function readPostgresProcesses(
  client: pg.Client | undefined,
): Promise<Map<number, { kind: BackendClass; seconds: number }>> {
  const result = new Map<number, { kind: BackendClass; seconds: number }>();
  if (!client) return result;
  const { rows } = await client.query<{ pid: number; backend_type: string; application_name: string }>(
    `SELECT pid, backend_type, coalesce(application_name, '') AS application_name FROM pg_stat_activity`,
  );
  for (const row of rows) {
    const seconds = readProcessCpuSeconds(row.pid);
    if (seconds === undefined) continue;
    const kind: BackendClass =
      row.backend_type !== 'client backend'
        ? 'background'
        : row.application_name.startsWith(APPLICATION_NAME_PREFIX)
          ? 'ours'
          : 'others';
    result.set(row.pid, { kind, seconds });
  }
  return result;
}

/** `pgClient` reads pg_stat_activity (a connection of this run); undefined when no Postgres server is used. */
export async function takeCpuSnapshot(
  processes: readonly SystemProcess[],
  pgClient?: pg.Client,
): Promise<CpuSnapshot> {
  const postgres = await readPostgresProcesses(pgClient);
  const transactions = pgClient
    ? await pgClient.query<{ n: string }>(
        `SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()`,
      )
    : undefined;
  return {
    databaseTransactions: Number(transactions?.rows[0]?.n ?? Number.NaN),
    atMs: performance.now(),
    machineBusySeconds: NaNIfUndefined(readMachineBusySeconds()),
    ownSeconds: ownCpuSeconds(),
    processes: new Map(
      processes.map(({ label, pid }) => [
        pid,
        { label, seconds: NaNIfUndefined(readProcessCpuSeconds(pid)) },
      ]),
    ),
    postgres,
  };
}

const round2 = (value: number) => Math.round(value * 100) / 100;

/**
 * CPU between two snapshots, in cores. A backend that started during the phase counts from zero; one that
 * ended during it is missed (pools keep their connections while busy, so this is rare and small).
 */
export function cpuUseBetween(before: CpuSnapshot, after: CpuSnapshot): CpuUse {
  const seconds = (after.atMs - before.atMs) / 1000;
  let system = 0;
  const systemCoresByProcess: Record<string, number> = {};
  for (const [pid, { label, seconds: value }] of after.processes) {
    const used = value - (before.processes.get(pid)?.seconds ?? Number.NaN);
    system += used;
    systemCoresByProcess[label] = round2(used / seconds);
  }
  const postgres = { ours: 0, background: 0, others: 0 };
  for (const [pid, { kind, seconds: value }] of after.postgres) {
    const earlier = before.postgres.get(pid);
    postgres[kind] += value - (earlier && earlier.kind === kind ? earlier.seconds : 0);
  }
  const own = after.ownSeconds - before.ownSeconds;
  const machine = after.machineBusySeconds - before.machineBusySeconds;
  return {
    systemCores: round2(system / seconds),
    systemCoresByProcess,
    postgresCores: round2(postgres.ours / seconds),
    postgresBackgroundCores: round2(postgres.background / seconds),
    benchmarkCores: round2(own / seconds),
    otherCores: round2((machine - system - own - postgres.ours - postgres.background) / seconds),
  };
}
