// What the queue benchmark needs of a running system under test (modelgate on Postgres or PGlite, pg-boss,
// graphile-worker), so that the measuring code is the same for all of them.

export const SYSTEM_IDS = ['modelgate', 'pg-boss', 'graphile-worker', 'modelgate-pglite'] as const;
export type SystemId = (typeof SYSTEM_IDS)[number];

export const SYSTEM_LABELS: Record<SystemId, string> = {
  modelgate: 'modelgate (Postgres)',
  'pg-boss': 'pg-boss',
  'graphile-worker': 'graphile-worker',
  'modelgate-pglite': 'modelgate (PGlite)',
};

/** "1 worker process", "4 worker processes"; PGlite: its one `serve` process works its own jobs. */
export function describeWorkers(system: SystemId, workers: number): string {
  if (system === 'modelgate-pglite') return 'one serve process with its in-process worker';
  return `${workers} worker process${workers === 1 ? '' : 'es'}`;
}

/** trivial: an Identity model (modelgate) or a handler returning its input (peers); wide-mlp: modelgate only. */
export const WORKLOAD_IDS = ['trivial', 'wide-mlp'] as const;
export type WorkloadId = (typeof WORKLOAD_IDS)[number];

export interface Outcomes {
  succeeded: number;
  failed: number;
  /** Neither succeeded nor failed when the phase ended (it timed out), or not found at all. */
  unfinished: number;
}

export interface SystemProcess {
  /** e.g. "gateway", "worker-2" */
  label: string;
  pid: number;
}

export interface RunningSystem {
  system: SystemId;
  /** Worker processes (PGlite: the one `serve` process, which works its own jobs). */
  workers: number;
  workloads: readonly WorkloadId[];
  /** Submits one job the system's own way; resolves with its id once the system has accepted it. */
  submit(workload: WorkloadId): Promise<string>;
  /**
   * Submits one job and resolves once it has succeeded (throws if it did not), the quickest way the
   * system offers: modelgate in one request (Prefer: wait), the peers by submitting and reading its row.
   */
  runOne(workload: WorkloadId): Promise<void>;
  /**
   * Jobs not finished yet, all workloads together. Cheap enough to ask every few milliseconds; 0 means every
   * job submitted so far has finished. (PGlite: 0 or 1, whether any job is still queued or running.)
   */
  countUnfinished(): Promise<number>;
  /** How the given jobs ended. */
  outcomes(ids: readonly string[], workload: WorkloadId): Promise<Outcomes>;
  /** The processes whose CPU is the system's (gateway, workers). */
  processes(): SystemProcess[];
  /** What was started, and with which settings, for the results file. */
  describe(): Record<string, unknown>;
  stop(): Promise<void>;
}
