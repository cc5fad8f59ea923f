// Queries on worker registrations: each worker process registers, heartbeats with what it is doing, and
// is marked gone by its peers once silent for longer than a job lease.
import type { Queryable } from './db.ts';

/** Notified when a worker registers or its status changes (0004_jobs_notify_transaction.sql). */
export const WORKERS_CHANNEL = 'modelgate_workers';

export type WorkerStatus = 'active' | 'draining' | 'stopped' | 'gone';

export interface WorkerRecord {
  id: string;
  host: string;
  pid: number;
  status: WorkerStatus;
  startedAt: Date;
  heartbeatAt: Date;
  stats: Record<string, unknown>;
}

const WORKER_COLUMNS = `id, host, pid, status, started_at AS "startedAt", heartbeat_at AS "heartbeatAt", stats`;

export async function registerWorker(db: Queryable, worker: { id: string; host: string; pid: number }) {
  await db.query('INSERT INTO workers (id, host, pid) VALUES ($1, $2, $3)', [
    worker.id,
    worker.host,
    worker.pid,
  ]);
}

export async function heartbeatWorker(db: Queryable, id: string, stats: Record<string, unknown>) {
  await db.query(
    `UPDATE workers SET heartbeat_at = now(), stats = $2,
       status = CASE WHEN status = 'gone' THEN 'active' ELSE status END
     WHERE id = $1`,
    [id, JSON.stringify(stats)],
  );
}

export async function setWorkerStatus(db: Queryable, id: string, status: WorkerStatus) {
  await db.query('UPDATE workers SET status = $2, heartbeat_at = now() WHERE id = $1', [id, status]);
}

/** Marks workers silent for longer than `leaseMs` as gone; forgets stopped or gone ones after a day. */
export async function markGoneWorkers(db: Queryable, leaseMs: number) {
  await db.query(
    `UPDATE workers SET status = 'gone'
     WHERE status IN ('active', 'draining') AND heartbeat_at < now() - make_interval(secs => $1::float8 / 1000)`,
    [leaseMs],
  );
  await db.query(
    `DELETE FROM workers WHERE status IN ('stopped', 'gone') AND heartbeat_at < now() - interval '1 day'`,
  );
}

/** Every registered worker, newest first, with its status as of now (silent ones show as gone). */
export async function listWorkers(db: Queryable, leaseMs: number): Promise<WorkerRecord[]> {
  return db.query<WorkerRecord>(
    `SELECT ${WORKER_COLUMNS.replace(
      'status,',
      `CASE WHEN status IN ('active', 'draining')
         AND heartbeat_at < now() - make_interval(secs => $1::float8 / 1000) THEN 'gone' ELSE status END AS status,`,
    )} FROM workers ORDER BY started_at DESC`,
    [leaseMs],
  );
}

/** Ids of the workers that heartbeated within `leaseMs` and are taking work, in a stable order. */
export async function listActiveWorkerIds(db: Queryable, leaseMs: number): Promise<string[]> {
  const rows = await db.query<{ id: string }>(
    `SELECT id FROM workers
     WHERE status = 'active' AND heartbeat_at > now() - make_interval(secs => $1::float8 / 1000) ORDER BY id`,
    [leaseMs],
  );
  return rows.map((row) => row.id);
}
