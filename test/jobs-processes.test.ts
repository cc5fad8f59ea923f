// Async jobs across real OS processes on a real Postgres: a gateway (`serve --no-workers`) and `worker`
// processes spawned from bin/modelgate.js, killed with SIGKILL mid-job, drained with SIGTERM, cut off
// from the database with pg_terminate_backend, and a gateway restarted between submit and fetch. No job
// may be lost, none may be recorded twice. Needs TEST_DATABASE_URL; skipped, saying so, without it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe } from 'node:test';
import {
  clusterTest,
  selectJobRow,
  startProcesses,
  waitForJob,
  waitUntilRunning,
  type JobAnswer,
} from './helpers/cluster-tests.ts';
import { LISTENER_CHECK_SQL } from '../src/store/postgres.ts';
import { buildIdentityModel, buildSlowModel, slowInput, slowResult } from './helpers/platform.ts';
import { BIN, waitUntil } from './helpers/processes.ts';

describe('jobs across processes', { concurrency: 1 }, () => {
  clusterTest(
    'a worker killed with SIGKILL mid-job: the job completes once, on the other worker, at attempt 2',
    // Workers heartbeat and look for expired leases every third of the lease (here 1 s): the dead
    // worker's lease runs out on the clock.
    { env: { MODELGATE_JOB_LEASE_MS: '3000' } },
    async (cluster) => {
      const { client, workers } = await startProcesses(cluster, 2);
      await client.deploy('slow', buildSlowModel());
      const { id } = await client.submitJob('slow', { instances: slowInput(1) });

      await waitUntil(
        `job ${id} to show running`,
        () => client.getJob(id),
        (job) => job.status === 'running',
      );
      const holderId = await waitUntilRunning(cluster, id);
      const holder = workers.find((worker) => worker.id === holderId);
      const survivor = workers.find((worker) => worker.id !== holderId)!;
      assert.ok(holder, `the lease owner ${holderId} is one of our workers`);
      const listed = await client.request<{ workers: { id: string; pid: number; status: string }[] }>(
        'GET',
        '/v1/workers',
      );
      assert.equal(listed.workers.find((worker) => worker.id === holderId)?.pid, holder.pid);

      holder.signal('SIGKILL');
      assert.deepEqual(await holder.waitForExit(), { code: null, signal: 'SIGKILL' });

      // Watch the job until it finishes: which worker holds it on which attempt.
      const seen = new Set<string>();
      const finished = await waitUntil(
        `job ${id} to finish on ${survivor.id}`,
        async () => {
          const row = await selectJobRow(cluster, id);
          if (row.status === 'running') seen.add(`${row.lease_owner} attempt ${row.attempts}`);
          return row;
        },
        (row) => row.status !== 'queued' && row.status !== 'running',
        { timeoutMs: 60_000, intervalMs: 25 },
      );
      assert.deepEqual(
        [...seen].filter((holding) => holding !== `${holderId} attempt 1`),
        [`${survivor.id} attempt 2`],
        'after the kill, only the survivor held it',
      );
      assert.equal(finished.status, 'succeeded', JSON.stringify(finished.error));
      assert.equal(finished.attempts, 2);
      assert.ok(finished.finished_at);
      assert.ok(finished.result !== null || finished.result_sha256 !== null, 'a result is recorded');

      const job = await client.getJob(id);
      assert.equal(job.status, 'succeeded');
      assert.equal(job.attempts, 2);
      assert.equal(job.error, null);
      assert.deepEqual(job.result, slowResult(1));
      // Recorded once: the survivor recorded one success and nothing else; the killed worker nothing.
      assert.deepEqual(await survivor.jobAttempts(), { 'slow/succeeded': 1 });
      assert.ok(survivor.running, survivor.describe());
    },
  );

  clusterTest(
    '500 jobs across 3 workers: each succeeds once with its own result, and more than one worker ran them',
    // A worker claims at most 16 jobs at a time, so no single worker can swallow the whole burst.
    { env: { MODELGATE_WORKER_CONCURRENCY: '16' } },
    async (cluster) => {
      const { client, workers } = await startProcesses(cluster, 3);
      await client.deploy('identity', buildIdentityModel(3));
      const rowOf = (i: number) => [i, i + 0.5, 1000 - i];

      const ids: string[] = [];
      for (let chunk = 0; chunk < 500; chunk += 50) {
        const submitted = await Promise.all(
          Array.from({ length: 50 }, (_, j) =>
            client.submitJob('identity', { instances: [rowOf(chunk + j)] }),
          ),
        );
        ids.push(...submitted.map((job) => job.id));
      }
      assert.equal(new Set(ids).size, 500);

      await waitUntil(
        'all 500 jobs to finish',
        async () =>
          (
            await cluster.query<{ count: number }>(
              `SELECT count(*)::int AS count FROM jobs WHERE status IN ('succeeded', 'failed', 'canceled')`,
            )
          )[0]!.count,
        (count) => count === 500,
        { timeoutMs: 60_000, intervalMs: 100 },
      );
      for (let chunk = 0; chunk < 500; chunk += 50) {
        const jobs = await Promise.all(ids.slice(chunk, chunk + 50).map((id) => client.getJob(id)));
        jobs.forEach((job, j) => {
          const context = JSON.stringify(job);
          assert.equal(job.status, 'succeeded', context);
          assert.equal(job.attempts, 1, context);
          assert.deepEqual(job.result, { model: 'identity', version: 1, outputs: { y: [rowOf(chunk + j)] } });
        });
      }

      // Which worker ran a job is not kept on the job (its lease owner is cleared when it finishes); each
      // worker's own counter of attempts is what tells.
      const counts = await Promise.all(workers.map((worker) => worker.jobAttempts()));
      const succeeded = counts.map((count) => count['identity/succeeded'] ?? 0);
      assert.equal(
        succeeded.reduce((sum, n) => sum + n, 0),
        500,
        `successes per worker: ${JSON.stringify(counts)}`,
      );
      for (const count of counts) {
        const others = Object.keys(count).filter((outcome) => outcome !== 'identity/succeeded');
        assert.deepEqual(others, [], 'no attempt failed, was retried or lost its lease');
      }
      assert.ok(
        succeeded.filter((n) => n > 0).length > 1,
        `more than one worker ran jobs: ${succeeded.join(', ')}`,
      );
      process.stderr.write(`jobs-processes: 500 jobs split across 3 workers as ${succeeded.join(' / ')}\n`);
    },
  );

  clusterTest(
    'a gateway restarted between submit and fetch: the new one serves the result a worker recorded',
    {},
    async (cluster) => {
      const first = await cluster.startGateway();
      const firstClient = cluster.client(first);
      await firstClient.deploy('identity', buildIdentityModel(3));
      const submitted = await firstClient.submitJob('identity', { instances: [[7, 8, 9]] });
      assert.equal((await firstClient.getJob(submitted.id)).status, 'queued', 'no worker runs yet');

      first.signal('SIGTERM');
      assert.deepEqual(await first.waitForExit(), { code: 0, signal: null }, first.describe());

      const second = await cluster.startGateway();
      const client = cluster.client(second);
      assert.equal((await client.getJob(submitted.id)).status, 'queued');
      await cluster.startWorker();
      const job = await waitForJob(client, submitted.id);
      assert.equal(job.status, 'succeeded', JSON.stringify(job));
      assert.equal(job.attempts, 1);
      assert.deepEqual(job.result, { model: 'identity', version: 1, outputs: { y: [[7, 8, 9]] } });
    },
  );

  clusterTest(
    'a full worker hands the notices meant for it on: an idle one runs those jobs at once',
    // Polling far apart: jobs found in time were found through notices.
    { env: { MODELGATE_JOB_POLL_MS: '60000' } },
    async (cluster) => {
      const gateway = await cluster.startGateway();
      const client = cluster.client(gateway);
      // One slot, taken by a slow job (~10 s here, ~5 MB of input) while it is the only worker.
      const full = await cluster.startWorker({ MODELGATE_WORKER_CONCURRENCY: '1' });
      await client.deploy('slow', buildSlowModel());
      await client.deploy('identity', buildIdentityModel(3));
      const slow = await client.submitJob('slow', { instances: slowInput(1, 2400) });
      assert.equal(await waitUntilRunning(cluster, slow.id), full.id);
      const idle = await cluster.startWorker();
      await waitUntil(
        'both workers active',
        () => cluster.query(`SELECT id FROM workers WHERE status = 'active'`),
        (rows) => rows.length === 2,
      );

      // One at a time: each notice names one worker, about half of them the full one.
      for (let i = 0; i < 10; i++) {
        const job = await client.submitJob('identity', { instances: [[i, 0, 1]] }, { waitSeconds: 10 });
        assert.equal(job.status, 'succeeded', JSON.stringify(job));
      }
      const counts = await idle.jobAttempts();
      assert.equal(counts['identity/succeeded'], 10, 'the idle worker ran every one');
      assert.equal((await client.getJob(slow.id)).status, 'running', 'the full worker was full all along');
    },
  );

  clusterTest(
    "a worker's database connections dropped mid-work: no job is lost, the worker lives and listens again",
    // Polling rarely: new work after the drop is found through the re-established LISTEN.
    { env: { MODELGATE_JOB_POLL_MS: '5000' } },
    async (cluster) => {
      const {
        client,
        workers: [worker],
      } = await startProcesses(cluster, 1);
      assert.ok(worker);
      await client.deploy('identity', buildIdentityModel(3));
      await client.deploy('slow', buildSlowModel());
      // One connection listens to every channel of the process; the workers channel is LISTENed last, so
      // once that is the connection's last statement, it listens for queued jobs too.
      // (Or, once the connection has been listening for a while, the check that it is alive.)
      const listening = () =>
        cluster.query(
          `SELECT pid FROM pg_stat_activity WHERE application_name = $1
             AND (query LIKE 'LISTEN "modelgate_workers_%' OR query = $2)`,
          [worker.applicationName, LISTENER_CHECK_SQL],
        );
      assert.equal((await listening()).length, 1, 'the worker listens');

      // ~0.5 s of inference each, run one after another: work in flight through both drops.
      const slow = await Promise.all(
        [1, 2, 3].map((seed) => client.submitJob('slow', { instances: slowInput(seed, 120) })),
      );
      const submitIdentityJobs = async (from: number, count: number) =>
        (
          await Promise.all(
            Array.from({ length: count }, (_, i) =>
              client.submitJob('identity', { instances: [[from + i, 0, 1]] }),
            ),
          )
        ).map((job) => job.id);
      const early = await submitIdentityJobs(0, 30);
      await waitUntilRunning(cluster, slow[0]!.id);

      for (let drop = 0; drop < 2; drop++) {
        const [unfinished] = await cluster.query<{ count: number }>(
          `SELECT count(*)::int AS count FROM jobs WHERE status IN ('queued', 'running')`,
        );
        assert.ok(unfinished!.count > 0, 'the connections drop while there is work');
        assert.ok((await cluster.terminateBackends(worker)) > 0, 'the worker had connections to drop');
        await new Promise((resolve) => setTimeout(resolve, 400));
      }

      const expectSucceeded = (job: JobAnswer, result: unknown) => {
        assert.equal(job.status, 'succeeded', JSON.stringify(job));
        assert.deepEqual(job.result, result);
      };
      for (const [i, { id }] of slow.entries()) {
        expectSucceeded(await waitForJob(client, id), slowResult(i + 1, 120));
      }
      for (const [i, id] of early.entries()) {
        expectSucceeded(await waitForJob(client, id), {
          model: 'identity',
          version: 1,
          outputs: { y: [[i, 0, 1]] },
        });
      }

      // The worker is idle now, waiting for a notice or its next poll in up to 5 s. Its LISTEN
      // connection is back (reconnected after 100 ms, then 200, 400, … while that fails): new jobs wake it.
      await waitUntil('the worker to listen again', listening, (rows) => rows.length === 1, {
        timeoutMs: 15_000,
      });
      let submittedAtMs = Date.now();
      const [single] = await submitIdentityJobs(1000, 1);
      expectSucceeded(await waitForJob(client, single!), {
        model: 'identity',
        version: 1,
        outputs: { y: [[1000, 0, 1]] },
      });
      const singleLatencyMs = Date.now() - submittedAtMs;
      submittedAtMs = Date.now();
      const late = await submitIdentityJobs(2000, 30);
      for (const [i, id] of late.entries()) {
        expectSucceeded(await waitForJob(client, id), {
          model: 'identity',
          version: 1,
          outputs: { y: [[2000 + i, 0, 1]] },
        });
      }
      const attempts = await cluster.query<{ attempts: number; jobs: number }>(
        `SELECT attempts, count(*)::int AS jobs FROM jobs GROUP BY attempts ORDER BY attempts`,
      );
      // Not asserted (timing): reported, to show new work was found without waiting for a poll.
      process.stderr.write(
        `jobs-processes: after the drops, 1 job finished ${singleLatencyMs} ms after its submit, 30 more in ` +
          `${Date.now() - submittedAtMs} ms (poll interval 5000 ms); jobs by attempts: ${JSON.stringify(attempts)}\n`,
      );
      const [stored] = await cluster.query<{ count: number }>(`SELECT count(*)::int AS count FROM jobs`);
      assert.equal(stored?.count, 64, 'every job submitted is there, and no other');
      assert.ok(worker.running, worker.describe());
      assert.equal((await fetch(`${worker.metricsUrl}/healthz`)).status, 200);
    },
  );

  clusterTest(
    "a worker's connection dropped inside a transaction (taking back expired leases): the worker lives",
    // Workers take back expired leases every third of the lease, in one transaction.
    { env: { MODELGATE_JOB_LEASE_MS: '1500' } },
    async (cluster) => {
      const {
        client,
        workers: [worker],
      } = await startProcesses(cluster, 1);
      assert.ok(worker);
      await client.deploy('identity', buildIdentityModel(3));
      const first = await client.submitJob('identity', { instances: [[1, 2, 3]] });
      assert.equal((await waitForJob(client, first.id)).status, 'succeeded');

      // A job whose worker died on its last attempt, its row held locked by us: the worker's recovery
      // transaction waits on it, so its connection is certainly inside a transaction when it drops.
      await cluster.query(
        `INSERT INTO jobs (id, tenant_id, model_name, model_version, input, max_attempts, timeout_ms, status,
           attempts, lease_owner, lease_expires_at, started_at)
         SELECT 'job_orphan', id, 'identity', 1, '{"instances": [[0, 0, 0]]}', 1, 60000, 'running', 1,
           'wrk_dead', now() - interval '1 minute', now() - interval '2 minutes'
         FROM tenants WHERE name = 'default'`,
      );
      const locker = await cluster.connect();
      try {
        await locker.query('BEGIN');
        await locker.query(`SELECT id FROM jobs WHERE id = 'job_orphan' FOR UPDATE`);
        await waitUntil(
          "the worker's recovery transaction to wait on the locked row",
          () =>
            cluster.query(
              `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND xact_start IS NOT NULL
                 AND wait_event_type = 'Lock' AND query LIKE '%lease_expires_at < now() AND attempts >= max_attempts%'`,
              [worker.applicationName],
            ),
          (rows) => rows.length === 1,
          { timeoutMs: 15_000 },
        );
        assert.ok((await cluster.terminateBackends(worker)) > 0);
      } finally {
        await locker.query('COMMIT').catch(() => undefined);
        locker.release();
      }

      // Taken back once the connection is replaced: failed, as its last attempt ran out.
      const orphan = await waitUntil(
        'the orphaned job to be taken back',
        () => selectJobRow(cluster, 'job_orphan'),
        (row) => row.status !== 'running' || !worker.running,
        { timeoutMs: 20_000 },
      );
      assert.ok(worker.running, `the worker died with its connection:\n${worker.describe()}`);
      assert.equal(orphan.status, 'failed');
      assert.equal(orphan.error?.code, 'lease_expired');
      const next = await client.submitJob('identity', { instances: [[4, 5, 6]] });
      assert.equal((await waitForJob(client, next.id)).status, 'succeeded');
      assert.ok(worker.running, worker.describe());
    },
  );

  clusterTest(
    'SIGTERM drains: the running job is handed back (attempts 0) and runs elsewhere; a second signal exits at once',
    {},
    async (cluster) => {
      const {
        client,
        workers: [draining],
      } = await startProcesses(cluster, 1, { MODELGATE_DRAIN_GRACE_MS: '200' });
      assert.ok(draining);
      await client.deploy('slow', buildSlowModel());
      const { id } = await client.submitJob('slow', { instances: slowInput(2) });
      assert.equal(await waitUntilRunning(cluster, id), draining.id);

      const signaledAtMs = Date.now();
      draining.signal('SIGTERM');
      assert.deepEqual(await draining.waitForExit(30_000), { code: 0, signal: null }, draining.describe());
      process.stderr.write(
        `jobs-processes: a draining worker exited ${Date.now() - signaledAtMs} ms after SIGTERM\n`,
      );
      const released = await selectJobRow(cluster, id);
      assert.equal(released.status, 'queued');
      assert.equal(released.attempts, 0, 'a handed-back attempt does not count');
      assert.equal(released.lease_owner, null);
      assert.deepEqual(
        draining.logRecords('handed unfinished jobs back to the queue').map((record) => record.jobs),
        [1],
      );
      const [registration] = await cluster.query<{ status: string }>(
        `SELECT status FROM workers WHERE id = $1`,
        [draining.id],
      );
      assert.equal(registration?.status, 'stopped');

      const second = await cluster.startWorker();
      const job = await waitForJob(client, id);
      assert.equal(job.status, 'succeeded', JSON.stringify(job));
      assert.equal(job.attempts, 1);
      assert.deepEqual(job.result, slowResult(2));
      assert.deepEqual(await second.jobAttempts(), { 'slow/succeeded': 1 });

      // An idle worker stops at once on SIGTERM; then one with a long grace gets a job, SIGTERM, SIGINT.
      second.signal('SIGTERM');
      assert.deepEqual(await second.waitForExit(), { code: 0, signal: null }, second.describe());
      const impatient = await cluster.startWorker({ MODELGATE_DRAIN_GRACE_MS: '60000' });
      // A one-row job first loads the model, so that the next job's inference starts as soon as it is claimed.
      const warmUp = await client.submitJob('slow', { instances: slowInput(0, 1) });
      assert.equal((await waitForJob(client, warmUp.id)).status, 'succeeded');
      const other = await client.submitJob('slow', { instances: slowInput(3) });
      assert.equal(await waitUntilRunning(cluster, other.id), impatient.id);
      // Inside its ~1.7 s of inference: the case where exiting at once is hard (ONNX Runtime is mid-run).
      await new Promise((resolve) => setTimeout(resolve, 300));
      impatient.signal('SIGTERM');
      await waitUntil(
        'the worker to be draining',
        () => cluster.query<{ status: string }>(`SELECT status FROM workers WHERE id = $1`, [impatient.id]),
        (rows) => rows[0]?.status === 'draining',
      );
      impatient.signal('SIGINT');
      // Well before the 60 s grace would have ended (and before the running job would have): exit code
      // 130, or killed by the SIGINT itself (which a shell also reports as 130); not aborted.
      const exit = await impatient.waitForExit(10_000);
      assert.ok(
        exit.code === 130 || (exit.code === null && exit.signal === 'SIGINT'),
        `exit ${JSON.stringify(exit)}: ${impatient.describe()}`,
      );

      // Not handed back: its lease runs out (within 10 s) and the next worker takes it at attempt 2.
      const abandoned = await selectJobRow(cluster, other.id);
      assert.equal(abandoned.status, 'running');
      assert.equal(abandoned.lease_owner, impatient.id);
      await cluster.startWorker();
      const rerun = await waitForJob(client, other.id);
      assert.equal(rerun.status, 'succeeded', JSON.stringify(rerun));
      assert.equal(rerun.attempts, 2);
      assert.deepEqual(rerun.result, slowResult(3));
    },
  );

  clusterTest(
    'the jobs CLI: submit --wait, get, list, and cancel of a finished job (exit 1)',
    {},
    async (cluster) => {
      const { gateway, client } = await startProcesses(cluster, 1);
      await client.deploy('identity', buildIdentityModel(3));
      const api = ['--url', gateway.url, '--key', cluster.adminKey];

      const submitted = await runCli([
        'jobs',
        'submit',
        'identity',
        '--data',
        '{"instances": [[1,2,3]]}',
        '--wait',
        '30',
        '--json',
        ...api,
      ]);
      assert.equal(submitted.code, 0, submitted.stderr);
      const job = JSON.parse(submitted.stdout) as JobAnswer;
      assert.equal(job.status, 'succeeded');
      assert.equal(job.attempts, 1);
      assert.deepEqual(job.result, { model: 'identity', version: 1, outputs: { y: [[1, 2, 3]] } });

      const [got, listed, canceled] = await Promise.all([
        runCli(['jobs', 'get', job.id, '--json', ...api]),
        runCli(['jobs', 'list', '--json', ...api]),
        runCli(['jobs', 'cancel', job.id, ...api]),
      ]);
      assert.equal(got.code, 0, got.stderr);
      assert.deepEqual(JSON.parse(got.stdout), job);
      assert.equal(listed.code, 0, listed.stderr);
      const page = JSON.parse(listed.stdout) as { jobs: { id: string; status: string }[]; next_cursor: null };
      assert.deepEqual(
        page.jobs.map(({ id, status }) => ({ id, status })),
        [{ id: job.id, status: 'succeeded' }],
      );
      assert.equal(page.next_cursor, null);
      assert.equal(canceled.code, 1, canceled.stdout);
      assert.match(canceled.stderr, /already succeeded.*\(conflict, HTTP 409\)/);
      assert.equal(canceled.stdout, '');
    },
  );
});

/** Runs the modelgate command; nothing from this process's MODELGATE_URL or MODELGATE_KEY. */
function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, MODELGATE_URL: '', MODELGATE_KEY: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    child.on('error', reject);
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
