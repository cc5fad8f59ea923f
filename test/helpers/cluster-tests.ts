// Tests on a cluster of real modelgate processes (test/helpers/processes.ts) on the Postgres server at
// TEST_DATABASE_URL, and what they ask of it: a job's row, a job waited for over HTTP, a job's worker.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { ModelgateClient } from '../../src/client/client.ts';
import { testDatabaseUrl } from './databases.ts';
import { Cluster, waitUntil, type ClusterOptions } from './processes.ts';

const SKIP_MESSAGE =
  'TEST_DATABASE_URL is unset; run with TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test';

/** Each test starts several processes; every wait inside is bounded well below this. */
const TEST_TIMEOUT_MS = 120_000;

/**
 * A test on its own cluster, or skipped with a message when there is no Postgres server (never in CI:
 * testDatabaseUrl throws there). `options` may be made once the server is known (a proxy in front of it).
 */
export function clusterTest(
  name: string,
  options: ClusterOptions | ((databaseUrl: string, t: TestContext) => Promise<ClusterOptions>),
  body: (cluster: Cluster, t: TestContext) => Promise<void>,
): void {
  const databaseUrl = testDatabaseUrl();
  test(name, { timeout: TEST_TIMEOUT_MS }, async (t) => {
    if (databaseUrl === undefined) {
      t.skip(SKIP_MESSAGE);
      return;
    }
    const resolved = typeof options === 'function' ? await options(databaseUrl, t) : options;
    await body(await Cluster.start(t, databaseUrl, resolved), t);
  });
}

/** Starts a gateway and `workerCount` workers at once; returns them and an admin client of the gateway. */
export async function startProcesses(
  cluster: Cluster,
  workerCount: number,
  workerEnv: Record<string, string> = {},
) {
  const [gateway, workers] = await Promise.all([
    cluster.startGateway(),
    Promise.all(Array.from({ length: workerCount }, () => cluster.startWorker(workerEnv))),
  ]);
  return { gateway, workers, client: cluster.client(gateway) };
}

export interface JobRow {
  id: string;
  status: string;
  attempts: number;
  lease_owner: string | null;
  result: unknown;
  result_sha256: string | null;
  finished_at: Date | null;
  error: { code: string; message: string } | null;
}

export async function selectJobRow(cluster: Cluster, id: string): Promise<JobRow> {
  const [row] = await cluster.query<JobRow>(
    `SELECT id, status, attempts, lease_owner, result, result_sha256, finished_at, error FROM jobs WHERE id = $1`,
    [id],
  );
  assert.ok(row, `job ${id} is in the table`);
  return row;
}

export type JobAnswer = Awaited<ReturnType<ModelgateClient['getJob']>>;

/** GET /v1/jobs/{id}?wait=…, again until it has finished or `timeoutMs` passed. */
export async function waitForJob(
  client: ModelgateClient,
  id: string,
  timeoutMs = 45_000,
): Promise<JobAnswer> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const remainingSeconds = Math.max(0, Math.min(60, Math.ceil((deadline - Date.now()) / 1000)));
    const job = await client.getJob(id, remainingSeconds);
    if (['succeeded', 'failed', 'canceled'].includes(job.status)) return job;
    if (Date.now() >= deadline)
      assert.fail(`job ${id} did not finish in ${timeoutMs} ms: ${JSON.stringify(job)}`);
  }
}

/** Waits until `id` is running on some worker; returns that worker's id. */
export async function waitUntilRunning(cluster: Cluster, id: string): Promise<string> {
  const row = await waitUntil(
    `job ${id} to be running`,
    () => selectJobRow(cluster, id),
    (job) => job.status === 'running' && job.lease_owner !== null,
  );
  return row.lease_owner!;
}
