// Leases that run out by themselves, across real processes on a real Postgres: nothing here moves a lease
// in SQL. A worker paused with SIGSTOP mid-job loses its lease to the clock, another worker runs the job,
// and the paused one's late result is refused; heartbeats keep a job that outlives its lease; a draining
// worker finishes what it can within its grace; a webhook delivery whose worker is killed is made by
// another. Needs TEST_DATABASE_URL; skipped, saying so, without it.
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, type TestContext } from 'node:test';
import type { ModelgateClient } from '../src/client/client.ts';
import { verifyWebhook } from '../src/webhooks/signature.ts';
import { clusterTest, selectJobRow, startProcesses, waitUntilRunning } from './helpers/cluster-tests.ts';
import { buildSlowModel, slowInput, slowResult } from './helpers/platform.ts';
import { waitUntil } from './helpers/processes.ts';

/** The worker's status as GET /v1/workers shows it (`gone` once its heartbeat is a lease old). */
async function workerStatus(client: ModelgateClient, id: string): Promise<string | undefined> {
  const listed = await client.request<{ workers: { id: string; status: string }[] }>('GET', '/v1/workers');
  return listed.workers.find((worker) => worker.id === id)?.status;
}

/** Rows of the job paused mid-run. */
const PAUSED_ROWS = 400;

describe('leases across processes', { concurrency: 1 }, () => {
  clusterTest(
    'a worker paused mid-job loses its lease by itself: another runs the job, the paused one shows gone, its late result is refused',
    // Heartbeats and the search for expired leases every second.
    { env: { MODELGATE_JOB_LEASE_MS: '3000' } },
    async (cluster) => {
      const { client, workers } = await startProcesses(cluster, 2);
      await client.deploy('slow', buildSlowModel());
      // ~1.7 s of inference on a fast machine, ~4x that on a slow one: the pause lands while it runs.
      const { id } = await client.submitJob('slow', { instances: slowInput(1, PAUSED_ROWS) });
      const holderId = await waitUntilRunning(cluster, id);
      const holder = workers.find((worker) => worker.id === holderId)!;
      const survivor = workers.find((worker) => worker.id !== holderId)!;
      holder.signal('SIGSTOP');

      // The lease runs out on the clock alone; the survivor takes the job back and runs it.
      const finished = await waitUntil(
        `job ${id} to succeed on ${survivor.id}`,
        () => selectJobRow(cluster, id),
        (row) => row.status !== 'queued' && row.status !== 'running',
        { timeoutMs: 60_000, intervalMs: 100 },
      );
      assert.equal(finished.status, 'succeeded', JSON.stringify(finished.error));
      assert.equal(finished.attempts, 2);
      assert.deepEqual(await survivor.jobAttempts(), { 'slow/succeeded': 1 });
      assert.equal(await workerStatus(client, holder.id), 'gone');
      assert.equal(await workerStatus(client, survivor.id), 'active');

      // Woken, the paused worker finishes its attempt and is refused by the fence: the job stays as the
      // survivor recorded it.
      holder.signal('SIGCONT');
      // It has the rest of its inference to run first (on a slow machine, most of it).
      await waitUntil(
        'the woken worker to count its attempt as lost',
        () => holder.jobAttempts(),
        (counts) => counts['slow/lost'] === 1,
        { timeoutMs: 45_000 },
      );
      assert.deepEqual(await holder.jobAttempts(), { 'slow/lost': 1 });
      const after = await selectJobRow(cluster, id);
      assert.deepEqual(
        [after.status, after.attempts, after.finished_at?.getTime()],
        ['succeeded', 2, finished.finished_at?.getTime()],
      );
      const job = await client.getJob(id);
      assert.deepEqual(job.result, slowResult(1, PAUSED_ROWS));
      // It heartbeats again, and is active again.
      await waitUntil(
        'the woken worker to be active again',
        () => workerStatus(client, holder.id),
        (status) => status === 'active',
      );
    },
  );

  clusterTest(
    'heartbeats keep a job that runs longer than its lease: it finishes at attempt 1 on its worker, renewed all along',
    { env: { MODELGATE_JOB_LEASE_MS: '1500' } },
    async (cluster) => {
      const { client, workers } = await startProcesses(cluster, 2);
      await client.deploy('slow', buildSlowModel());
      // ~7 s of inference: more than four leases.
      const { id } = await client.submitJob('slow', { instances: slowInput(3, 1600) });
      const holderId = await waitUntilRunning(cluster, id);
      const holdings = new Set<string>();
      const expiries = new Set<number>();
      const finished = await waitUntil(
        `job ${id} to finish`,
        async () => {
          const [row] = await cluster.query<{
            status: string;
            attempts: number;
            lease_owner: string | null;
            lease_expires_at: Date | null;
          }>(`SELECT status, attempts, lease_owner, lease_expires_at FROM jobs WHERE id = $1`, [id]);
          if (row!.status === 'running') {
            holdings.add(`${row!.lease_owner} attempt ${row!.attempts}`);
            expiries.add(row!.lease_expires_at!.getTime());
          }
          return row!;
        },
        (row) => row.status !== 'queued' && row.status !== 'running',
        { timeoutMs: 60_000, intervalMs: 100 },
      );
      assert.equal(finished.status, 'succeeded');
      assert.equal(finished.attempts, 1);
      assert.deepEqual([...holdings], [`${holderId} attempt 1`]);
      assert.ok(
        expiries.size >= 3,
        `the lease was renewed while the job ran: ${expiries.size} expiries seen`,
      );
      const counts = await Promise.all(workers.map((worker) => worker.jobAttempts()));
      assert.deepEqual(
        counts,
        workers.map((worker) => (worker.id === holderId ? { 'slow/succeeded': 1 } : {})),
      );
      assert.deepEqual((await client.getJob(id)).result, slowResult(3, 1600));
    },
  );

  clusterTest(
    'SIGTERM while a job runs that finishes within drainGraceMs: the worker records it, then exits 0',
    {},
    async (cluster) => {
      const {
        client,
        workers: [draining],
      } = await startProcesses(cluster, 1, { MODELGATE_DRAIN_GRACE_MS: '60000' });
      assert.ok(draining);
      await client.deploy('slow', buildSlowModel());
      const { id } = await client.submitJob('slow', { instances: slowInput(4) });
      assert.equal(await waitUntilRunning(cluster, id), draining.id);
      draining.signal('SIGTERM');
      await waitUntil(
        'the worker to be draining',
        () => cluster.query<{ status: string }>(`SELECT status FROM workers WHERE id = $1`, [draining.id]),
        (rows) => rows[0]?.status === 'draining' || !draining.running,
      );
      assert.deepEqual(await draining.waitForExit(60_000), { code: 0, signal: null }, draining.describe());
      const row = await selectJobRow(cluster, id);
      assert.deepEqual([row.status, row.attempts, row.lease_owner], ['succeeded', 1, null]);
      assert.deepEqual((await client.getJob(id)).result, slowResult(4));
      assert.deepEqual(draining.logRecords('handed unfinished jobs back to the queue'), []);
      const [registration] = await cluster.query<{ status: string }>(
        `SELECT status FROM workers WHERE id = $1`,
        [draining.id],
      );
      assert.equal(registration?.status, 'stopped');
    },
  );

  clusterTest(
    'a webhook delivery in progress when its worker is killed is made by another worker',
    // A delivery is held for its timeout plus 5 s before another worker may try it.
    { env: { MODELGATE_WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true', MODELGATE_WEBHOOK_TIMEOUT_MS: '2000' } },
    async (cluster, t) => {
      const gateway = await cluster.startGateway();
      const client = cluster.client(gateway);
      const first = await cluster.startWorker();
      await client.deploy('slow', buildSlowModel());
      const receiver = await startStallingReceiver(t);

      const { id } = await client.submitJob('slow', {
        instances: slowInput(5, 1),
        webhook_url: receiver.url,
      });
      await waitUntil(
        'the first delivery to arrive',
        async () => receiver.deliveries.length,
        (n) => n === 1,
      );
      first.signal('SIGKILL');
      assert.deepEqual(await first.waitForExit(), { code: null, signal: 'SIGKILL' });
      await cluster.startWorker();

      const job = await waitUntil(
        'the webhook to be delivered',
        () => client.getJob(id),
        (answer) => answer.webhook?.status === 'delivered',
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      // The killed attempt left no record; the other worker's is the one recorded.
      assert.equal(job.webhook?.attempts.length, 1, JSON.stringify(job.webhook));
      assert.deepEqual(
        receiver.deliveries.map((delivery) => delivery.headers['webhook-id']),
        [`msg_${id}`, `msg_${id}`],
        'the same message twice: a receiver deduplicates by its id',
      );
      const { secret } = await client.request<{ secret: string }>('GET', '/v1/webhook-secret');
      const second = receiver.deliveries[1]!;
      assert.ok(verifyWebhook(secret, second.headers, second.body));
      assert.equal(JSON.parse(second.body).data.status, 'succeeded');
    },
  );
});

/** A webhook receiver on 127.0.0.1 that never answers its first request and answers 200 to the others. */
async function startStallingReceiver(t: TestContext) {
  const deliveries: { headers: IncomingHttpHeaders; body: string }[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      deliveries.push({ headers: request.headers, body: Buffer.concat(chunks).toString() });
      if (deliveries.length > 1) response.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, deliveries };
}
