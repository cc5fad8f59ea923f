// The queue conformance suite: claims, priorities, fairness across tenants, leases (expired by moving them
// into the past in SQL, never by sleeping), fencing, retries, release, cancel, idempotency keys, wake-up
// notices, retention and the analyze that keeps the claim's cached plan fit for the table's size, run
// identically on each driver from testDatabases().
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Db } from '../src/store/db.ts';
import {
  analyzeJobsIfGrown,
  cancelJob,
  claimIdempotencyKey,
  claimJobs,
  finishJobs,
  insertJob,
  JOBS_DONE_CHANNEL,
  parseDoneNotice,
  JOBS_QUEUED_CHANNEL,
  listJobs,
  newJobId,
  purgeFinishedJobs,
  recoverExpiredLeases,
  releaseJobs,
  renewLeases,
  retryJob,
  selectJob,
  type JobLease,
  type JobOutcome,
  type JobRecord,
  type NewJob,
} from '../src/store/jobs.ts';
import {
  cancelStalledUploads,
  completeBatchUpload,
  insertBatch,
  newBatchId,
  queueBatchParts,
} from '../src/store/batches.ts';
import { listenChannel } from '../src/store/channels.ts';
import { migrate } from '../src/store/migrate.ts';
import { insertTenant } from '../src/store/tenants.ts';
import { scheduleArtifactRemovals, takeDueArtifactRemovals } from '../src/store/artifacts.ts';
import { testDatabaseUrl, testDatabases } from './helpers/databases.ts';

/** One attempt's outcome through finishJobs: whether it was recorded. */
async function finishJob(db: Db, lease: JobLease, outcome: JobOutcome): Promise<boolean> {
  const [recorded] = await finishJobs(db, [{ lease, outcome }]);
  return recorded!;
}

const LEASE_MS = 30_000;
const leaseOf = (job: JobRecord, workerId: string): JobLease => ({
  id: job.id,
  workerId,
  attempt: job.attempts,
});

/** Adds `rows` canceled jobs of `tenantId` in one statement: a quick way to a large jobs table. */
const growJobs = (db: Db, tenantId: string, rows: number) =>
  db.query(
    `INSERT INTO jobs (id, tenant_id, model_name, model_version, input, max_attempts, timeout_ms, status)
     SELECT 'job_grow_' || g || '_' || $2, $1, 'iris', 1, '{"instances": [[1, 2, 3, 4]]}', 3, 60000,
       'canceled'
     FROM generate_series(1, $3::int) g`,
    [tenantId, Math.random().toString(36).slice(2), rows],
  );

/** The jobs table's size in pages: when it was last analyzed, and now. */
const jobsTableSize = async (db: Db) =>
  (
    await db.query<{ analyzed: number; pages: number }>(
      `SELECT relpages AS analyzed,
         (pg_relation_size(oid) / current_setting('block_size')::int)::int AS pages
       FROM pg_class WHERE oid = 'jobs'::regclass`,
    )
  )[0]!;

for (const database of testDatabases()) {
  describe(`queue on ${database.name}`, () => {
    let db: Db;
    let tenantA: string;
    let tenantB: string;

    const newJob = (tenantId: string, overrides: Partial<NewJob> = {}): NewJob => ({
      id: newJobId(),
      tenantId,
      modelName: 'iris',
      modelVersion: 1,
      inputJson: JSON.stringify({ instances: [[1, 2, 3, 4]] }),
      priority: 0,
      maxAttempts: 3,
      timeoutMs: 60_000,
      webhookUrl: undefined,
      ...overrides,
    });
    /** Moves the leases of these jobs (or of every running job) into the past, as if the worker died. */
    const expireLeases = async (ids?: string[]) => {
      await db.query(
        `UPDATE jobs SET lease_expires_at = now() - interval '1 second'
         WHERE status = 'running' AND ($1::text[] IS NULL OR id = ANY($1))`,
        [ids ?? null],
      );
    };
    /** Nothing queued is left over from the previous test. */
    const clearJobs = () => db.query('DELETE FROM jobs');

    before(async () => {
      db = await database.open();
      await migrate(db);
      tenantA = (await insertTenant(db, 'tenant-a')).id;
      tenantB = (await insertTenant(db, 'tenant-b')).id;
    });
    after(() => db.close());

    it('a claim leases due jobs to one worker; a second claim does not get them', async () => {
      await clearJobs();
      const job = await insertJob(db, newJob(tenantA));
      assert.equal(job.status, 'queued');
      assert.equal(job.attempts, 0);
      const [claimed, ...rest] = await claimJobs(db, 'w1', 10, LEASE_MS);
      assert.equal(rest.length, 0);
      assert.equal(claimed!.id, job.id);
      assert.equal(claimed!.status, 'running');
      assert.equal(claimed!.attempts, 1);
      assert.equal(claimed!.leaseOwner, 'w1');
      assert.ok(claimed!.leaseExpiresAt! > new Date(Date.now() + LEASE_MS / 2));
      assert.ok(claimed!.startedAt);
      assert.deepEqual(await claimJobs(db, 'w2', 10, LEASE_MS), []);
    });

    it('claims take higher priority first, then the oldest', async () => {
      await clearJobs();
      const low = await insertJob(db, newJob(tenantA, { priority: 0 }));
      const high = await insertJob(db, newJob(tenantA, { priority: 5 }));
      const low2 = await insertJob(db, newJob(tenantA, { priority: 0 }));
      const order = [];
      for (let i = 0; i < 3; i++) order.push((await claimJobs(db, 'w1', 1, LEASE_MS))[0]!.id);
      assert.deepEqual(order, [high.id, low.id, low2.id]);
    });

    it("one tenant's backlog of 100,000 jobs does not hold back another tenant's job", async () => {
      await clearJobs();
      await db.query(
        `INSERT INTO jobs (id, tenant_id, model_name, model_version, input, max_attempts, timeout_ms, queued_at, run_after)
         SELECT 'job_backlog_' || n, $1, 'iris', 1, '{}', 3, 60000, now() - interval '1 hour', now() - interval '1 hour'
         FROM generate_series(1, 100000) AS n`,
        [tenantA],
      );
      const single = await insertJob(db, newJob(tenantB));
      // The backlog is older and as urgent, yet B's job comes within the first claim of two.
      const first = await claimJobs(db, 'w1', 2, LEASE_MS);
      assert.deepEqual(first.map((job) => job.tenantId).sort(), [tenantA, tenantB].sort());
      assert.ok(first.some((job) => job.id === single.id));
      // One at a time, B's next job waits at most as long as it takes A to have as many running as B.
      await insertJob(db, newJob(tenantB, { id: 'job_second_b' }));
      const next = [
        (await claimJobs(db, 'w1', 1, LEASE_MS))[0]!,
        (await claimJobs(db, 'w1', 1, LEASE_MS))[0]!,
      ];
      assert.ok(next.some((job) => job.id === 'job_second_b'));
      await clearJobs();
    });

    it('jobs not yet due (retry backoff) are not claimed until their time', async () => {
      await clearJobs();
      const job = await insertJob(db, newJob(tenantA));
      const [claimed] = await claimJobs(db, 'w1', 1, LEASE_MS);
      assert.equal(
        await retryJob(db, leaseOf(claimed!, 'w1'), { code: 'inference_failed', message: 'x' }, 60_000),
        true,
      );
      const waiting = await selectJob(db, tenantA, job.id);
      assert.equal(waiting!.status, 'queued');
      assert.deepEqual(waiting!.error, { code: 'inference_failed', message: 'x' });
      assert.deepEqual(await claimJobs(db, 'w1', 1, LEASE_MS), []);
      await db.query(`UPDATE jobs SET run_after = now() - interval '1 second' WHERE id = $1`, [job.id]);
      const [again] = await claimJobs(db, 'w2', 1, LEASE_MS);
      assert.equal(again!.id, job.id);
      assert.equal(again!.attempts, 2);
    });

    it('an expired lease is taken back; the old holder can no longer record a result', async () => {
      await clearJobs();
      const job = await insertJob(db, newJob(tenantA));
      const [first] = await claimJobs(db, 'w1', 1, LEASE_MS);
      assert.equal(await recoverExpiredLeases(db), 0, 'a live lease is left alone');
      await expireLeases([job.id]);
      assert.equal(await recoverExpiredLeases(db), 1);
      const requeued = await selectJob(db, tenantA, job.id);
      assert.equal(requeued!.status, 'queued');
      assert.equal(requeued!.error!.code, 'lease_expired');
      const [second] = await claimJobs(db, 'w2', 1, LEASE_MS);
      assert.equal(second!.attempts, 2);

      assert.equal(
        await finishJob(db, leaseOf(first!, 'w1'), { status: 'succeeded', result: 'late' }),
        false,
      );
      assert.equal(await finishJob(db, leaseOf(second!, 'w2'), { status: 'succeeded', result: 'ok' }), true);
      const done = await selectJob(db, tenantA, job.id);
      assert.equal(done!.status, 'succeeded');
      assert.equal(done!.result, 'ok');
      assert.equal(done!.error, null);
      assert.equal(done!.attempts, 2);
      assert.equal(done!.leaseOwner, null);
      assert.ok(done!.finishedAt);
      // Recorded once: a second write of the same attempt changes nothing.
      assert.equal(
        await finishJob(db, leaseOf(second!, 'w2'), { status: 'succeeded', result: 'again' }),
        false,
      );
    });

    it('an expired lease on the last attempt fails the job (dead letter) with the error kept', async () => {
      await clearJobs();
      const job = await insertJob(db, newJob(tenantA, { maxAttempts: 1 }));
      await claimJobs(db, 'w1', 1, LEASE_MS);
      await expireLeases([job.id]);
      assert.equal(await recoverExpiredLeases(db), 1);
      const failed = await selectJob(db, tenantA, job.id);
      assert.equal(failed!.status, 'failed');
      assert.equal(failed!.error!.code, 'lease_expired');
      assert.ok(failed!.finishedAt);
    });

    it('heartbeats renew only the leases a worker still holds', async () => {
      await clearJobs();
      const kept = await insertJob(db, newJob(tenantA));
      const canceled = await insertJob(db, newJob(tenantA));
      const claimed = await claimJobs(db, 'w1', 2, LEASE_MS);
      assert.equal(claimed.length, 2);
      await cancelJob(db, tenantA, canceled.id);
      await db.query(`UPDATE jobs SET lease_expires_at = now() + interval '1 second' WHERE id = $1`, [
        kept.id,
      ]);
      assert.deepEqual(await renewLeases(db, 'w1', [kept.id, canceled.id], LEASE_MS), [kept.id]);
      assert.deepEqual(await renewLeases(db, 'w2', [kept.id], LEASE_MS), [], 'not the holder');
      const renewed = await selectJob(db, tenantA, kept.id);
      assert.ok(renewed!.leaseExpiresAt! > new Date(Date.now() + LEASE_MS / 2));
    });

    it('a released job is queued again without the attempt counting', async () => {
      await clearJobs();
      const job = await insertJob(db, newJob(tenantA));
      await claimJobs(db, 'w1', 1, LEASE_MS);
      assert.equal(await releaseJobs(db, 'w2', [job.id]), 0, 'only the holder releases');
      assert.equal(await releaseJobs(db, 'w1', [job.id]), 1);
      const released = await selectJob(db, tenantA, job.id);
      assert.equal(released!.status, 'queued');
      assert.equal(released!.attempts, 0);
      assert.equal((await claimJobs(db, 'w2', 1, LEASE_MS))[0]!.attempts, 1);
    });

    it('a canceled queued job is never claimed; a canceled running job keeps no result', async () => {
      await clearJobs();
      const queued = await insertJob(db, newJob(tenantA));
      assert.equal((await cancelJob(db, tenantA, queued.id))!.status, 'canceled');
      assert.deepEqual(await claimJobs(db, 'w1', 1, LEASE_MS), []);

      await insertJob(db, newJob(tenantA));
      const [running] = await claimJobs(db, 'w1', 1, LEASE_MS);
      await cancelJob(db, tenantA, running!.id);
      assert.equal(await finishJob(db, leaseOf(running!, 'w1'), { status: 'succeeded', result: 1 }), false);
      const canceled = await selectJob(db, tenantA, running!.id);
      assert.equal(canceled!.status, 'canceled');
      assert.equal(canceled!.result, null);
      assert.equal(await cancelJob(db, tenantA, running!.id), undefined, 'finished jobs stay as they are');
      assert.equal(await cancelJob(db, tenantB, queued.id), undefined, "another tenant's job is not found");
    });

    it('an error message quoting text jsonb cannot hold (NUL, a lone surrogate) is recorded with U+FFFD', async () => {
      await clearJobs();
      const retried = await insertJob(db, newJob(tenantA));
      const failed = await insertJob(db, newJob(tenantA));
      const jobs = await claimJobs(db, 'w1', 2, LEASE_MS);
      const byId = new Map(jobs.map((job) => [job.id, job]));
      const message = 'the runtime said "a\u0000b\ud800c"';
      const error = { code: 'inference_failed', message } as const;
      assert.equal(await retryJob(db, leaseOf(byId.get(retried.id)!, 'w1'), error, 0), true);
      assert.equal(
        await finishJob(db, leaseOf(byId.get(failed.id)!, 'w1'), { status: 'failed', error }),
        true,
      );
      for (const id of [retried.id, failed.id]) {
        const stored = await selectJob(db, tenantA, id);
        assert.deepEqual(stored!.error, {
          code: 'inference_failed',
          message: 'the runtime said "a\ufffdb\ufffdc"',
        });
      }
    });

    it('a failed outcome keeps the error; a webhook becomes due on any terminal status', async () => {
      await clearJobs();
      const job = await insertJob(db, newJob(tenantA, { webhookUrl: 'http://example.test/hook' }));
      assert.equal(job.webhookStatus, null);
      const [claimed] = await claimJobs(db, 'w1', 1, LEASE_MS);
      const error = { code: 'invalid_input', message: 'input "x": expected shape [-1, 4]' } as const;
      assert.equal(await finishJob(db, leaseOf(claimed!, 'w1'), { status: 'failed', error }), true);
      const failed = await selectJob(db, tenantA, job.id);
      assert.equal(failed!.status, 'failed');
      assert.deepEqual(failed!.error, error);
      assert.equal(failed!.webhookStatus, 'pending');
    });

    it('lists a tenant’s jobs newest first with filters and keyset pages', async () => {
      await clearJobs();
      for (let i = 0; i < 5; i++) {
        await insertJob(db, newJob(tenantA, { modelName: i % 2 === 0 ? 'iris' : 'other' }));
      }
      await insertJob(db, newJob(tenantB));
      const all = await listJobs(db, tenantA, { limit: 10 });
      assert.equal(all.length, 5);
      const firstPage = await listJobs(db, tenantA, { limit: 2 });
      const last = firstPage.at(-1)!;
      const secondPage = await listJobs(db, tenantA, { limit: 2, after: last.id });
      const thirdPage = await listJobs(db, tenantA, { limit: 2, after: secondPage.at(-1)!.id });
      assert.deepEqual(
        [...firstPage, ...secondPage, ...thirdPage].map((job) => job.id),
        all.map((job) => job.id),
      );
      assert.equal((await listJobs(db, tenantA, { limit: 10, modelName: 'iris' })).length, 3);
      assert.equal((await listJobs(db, tenantA, { limit: 10, status: 'running' })).length, 0);
    });

    it('an idempotency key stands for one job; the same key with another request is reported', async () => {
      await clearJobs();
      const first = newJob(tenantA);
      const claimed = await db.transaction(async (tx) => {
        const existing = await claimIdempotencyKey(tx, tenantA, 'key-1', 'hash-1', first.id);
        if (!existing) await insertJob(tx, first);
        return existing;
      });
      assert.equal(claimed, undefined);
      const again = await db.transaction((tx) =>
        claimIdempotencyKey(tx, tenantA, 'key-1', 'hash-2', newJobId()),
      );
      assert.deepEqual(again, { requestHash: 'hash-1', jobId: first.id });
      // Keys are per tenant.
      const other = await db.transaction((tx) =>
        claimIdempotencyKey(tx, tenantB, 'key-1', 'hash-1', newJobId()),
      );
      assert.equal(other, undefined);
    });

    it('concurrent submits with one idempotency key make exactly one job', async () => {
      await clearJobs();
      const attempts = await Promise.all(
        Array.from({ length: 8 }, async () => {
          const job = newJob(tenantA);
          return db.transaction(async (tx) => {
            const existing = await claimIdempotencyKey(tx, tenantA, 'concurrent', 'same', job.id);
            if (existing) return existing.jobId;
            await insertJob(tx, job);
            return job.id;
          });
        }),
      );
      assert.equal(new Set(attempts).size, 1);
      assert.equal((await listJobs(db, tenantA, { limit: 100 })).length, 1);
    });

    it('wakes workers when jobs are queued and readers when a job finishes', async () => {
      await clearJobs();
      const queued: string[] = [];
      const done: string[] = [];
      const stopQueued = await listenChannel(db, JOBS_QUEUED_CHANNEL, (payload) => queued.push(payload));
      const stopDone = await listenChannel(db, JOBS_DONE_CHANNEL, (payload) => done.push(payload));
      try {
        const job = await insertJob(db, newJob(tenantA));
        const [claimed] = await claimJobs(db, 'w1', 1, LEASE_MS);
        await finishJob(db, leaseOf(claimed!, 'w1'), { status: 'succeeded', result: 1 });
        const deadline = Date.now() + 5000;
        while ((queued.length === 0 || done.length === 0) && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        assert.ok(queued.length >= 1);
        assert.equal(done.length, 1);
        // The notice brings the finished job, as a read of it gives it.
        const notice = parseDoneNotice(done[0]!);
        assert.equal(notice.id, job.id);
        assert.deepEqual(notice.job?.(), await selectJob(db, tenantA, job.id));
      } finally {
        await stopQueued();
        await stopDone();
      }
    });

    it('a finished job too large for a notice is announced by its id alone', async () => {
      await clearJobs();
      const done: string[] = [];
      const stopDone = await listenChannel(db, JOBS_DONE_CHANNEL, (payload) => done.push(payload));
      try {
        const job = await insertJob(db, newJob(tenantA));
        const [claimed] = await claimJobs(db, 'w1', 1, LEASE_MS);
        await finishJob(db, leaseOf(claimed!, 'w1'), { status: 'succeeded', result: 'x'.repeat(8000) });
        const deadline = Date.now() + 5000;
        while (done.length === 0 && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        assert.deepEqual(done, [job.id]);
        assert.equal(parseDoneNotice(done[0]!).job, undefined);
      } finally {
        await stopDone();
      }
    });

    it('retention removes finished jobs and, after a grace period, result artifacts nothing else uses', async () => {
      await clearJobs();
      const old = await insertJob(db, newJob(tenantA));
      const shared = await insertJob(db, newJob(tenantA));
      for (const claimed of await claimJobs(db, 'w1', 2, LEASE_MS)) {
        const sha = claimed.id === old.id ? 'a'.repeat(64) : 'b'.repeat(64);
        await finishJob(db, leaseOf(claimed, 'w1'), { status: 'succeeded', resultSha256: sha });
      }
      const running = await insertJob(db, newJob(tenantA));
      // `old` finished long ago: removed, and its result with it; `shared` finished recently: kept.
      await db.query(`UPDATE jobs SET finished_at = now() - interval '2 days' WHERE id = $1`, [old.id]);
      await purgeFinishedJobs(db, 24 * 3600, 24 * 3600);
      const scheduled = await db.query<{ sha256: string; grace: boolean }>(
        `SELECT sha256, due_at > now() + interval '50 minutes' AS grace FROM artifact_removals
         WHERE sha256 = ANY($1)`,
        [['a'.repeat(64), 'b'.repeat(64)]],
      );
      assert.deepEqual(scheduled, [{ sha256: 'a'.repeat(64), grace: true }]);
      // Due, it is taken once; a removal whose artifact is in use again by then is dropped instead.
      await db.query(`UPDATE artifact_removals SET due_at = now() - interval '1 second'`);
      assert.deepEqual(await takeDueArtifactRemovals(db), ['a'.repeat(64)]);
      assert.deepEqual(await takeDueArtifactRemovals(db), []);
      await scheduleArtifactRemovals(db, ['b'.repeat(64)], 0);
      assert.deepEqual(await takeDueArtifactRemovals(db), [], 'b is still the result of a job');
      assert.equal(await selectJob(db, tenantA, old.id), undefined);
      assert.ok(await selectJob(db, tenantA, shared.id));
      assert.ok(await selectJob(db, tenantA, running.id));
    });

    it('a claim takes at most partLimit batch parts, and every other job it has room for', async () => {
      await clearJobs();
      const batch = {
        id: newBatchId(),
        tenantId: tenantA,
        modelName: 'iris',
        modelVersion: 1,
        plan: {},
        maxAttempts: 3,
        timeoutMs: 60_000,
      };
      await insertBatch(db, batch);
      await queueBatchParts(db, batch, 0, ['{"part": 0}', '{"part": 1}']);
      await queueBatchParts(db, batch, 2, ['{"part": 2}']);
      const batchId = batch.id;
      const single = await insertJob(db, newJob(tenantA));
      const isPart = (job: JobRecord) => job.id.startsWith(`job_${batchId}_`);
      const first = await claimJobs(db, 'w1', 10, LEASE_MS, 1);
      assert.deepEqual(first.map(isPart).sort(), [false, true]);
      assert.ok(first.some((job) => job.id === single.id));
      assert.deepEqual(await claimJobs(db, 'w2', 10, LEASE_MS, 0), []);
      const second = await claimJobs(db, 'w2', 10, LEASE_MS, 5);
      assert.equal(second.length, 2);
      assert.ok(second.every(isPart));
      await clearJobs();
      await db.query('DELETE FROM batches');
    });

    it('a batch whose upload stopped is canceled with its parts; one still arriving or complete is not', async () => {
      await clearJobs();
      const settings = { modelName: 'iris', modelVersion: 1, plan: {}, maxAttempts: 3, timeoutMs: 60_000 };
      const stalled = { id: newBatchId(), tenantId: tenantA, ...settings };
      const arriving = { id: newBatchId(), tenantId: tenantA, ...settings };
      const complete = { id: newBatchId(), tenantId: tenantB, ...settings };
      for (const batch of [stalled, arriving, complete]) {
        await insertBatch(db, batch);
        await queueBatchParts(db, batch, 0, ['{"part": 0}']);
      }
      await completeBatchUpload(db, complete.id, 1, 1);
      // The stalled one's last part was queued long ago; so was the complete one's.
      await db.query(
        `UPDATE jobs SET queued_at = now() - interval '1 hour' WHERE batch_id = $1 OR batch_id = $2`,
        [stalled.id, complete.id],
      );
      assert.equal(await cancelStalledUploads(db, 600), 1);
      const statuses = await db.query<{ batch_id: string; status: string; canceled: boolean }>(
        `SELECT j.batch_id, j.status, b.canceled_at IS NOT NULL AS canceled
         FROM jobs j JOIN batches b ON b.id = j.batch_id ORDER BY j.batch_id`,
      );
      const of = (id: string) => statuses.find((row) => row.batch_id === id);
      assert.deepEqual(of(stalled.id), { batch_id: stalled.id, status: 'canceled', canceled: true });
      assert.deepEqual(of(arriving.id), { batch_id: arriving.id, status: 'queued', canceled: false });
      assert.deepEqual(of(complete.id), { batch_id: complete.id, status: 'queued', canceled: false });
      assert.equal(await cancelStalledUploads(db, 600), 0);
      await clearJobs();
      await db.query('DELETE FROM batches');
    });

    it('the jobs table is analyzed once it has doubled since it last was, and not before', async () => {
      await clearJobs();
      // Whatever earlier tests left: past the first analyze, the table is as large as when last analyzed.
      await growJobs(db, tenantA, 2000);
      await analyzeJobsIfGrown(db, 0);
      const start = await jobsTableSize(db);
      assert.equal(await analyzeJobsIfGrown(db, 0), undefined);
      while ((await jobsTableSize(db)).pages < 2 * start.analyzed + 10) await growJobs(db, tenantA, 1000);
      const grown = await jobsTableSize(db);
      // A caller that analyzed it at this size itself waits for it to double again.
      assert.equal(await analyzeJobsIfGrown(db, grown.pages), undefined);
      assert.equal((await jobsTableSize(db)).analyzed, start.analyzed);
      assert.equal(await analyzeJobsIfGrown(db, 0), grown.pages);
      assert.equal((await jobsTableSize(db)).analyzed, grown.pages);
      assert.equal(await analyzeJobsIfGrown(db, grown.pages), undefined);
      await clearJobs();
    });
  });
}

if (testDatabaseUrl() !== undefined) {
  describe('queue plans on postgres', () => {
    it('a claim prepared on an empty table scans all of it once large, until the table is analyzed', async () => {
      const [postgres] = testDatabases().filter((database) => database.name === 'postgres');
      const db = await postgres!.open();
      try {
        await migrate(db);
        const tenant = (await insertTenant(db, 'tenant-a')).id;
        // One statement at a time on an otherwise idle pool: every query here runs on the same connection,
        // which holds the claim prepared (pg_prepared_statements and EXPLAIN EXECUTE see that connection's).
        for (let i = 0; i < 8; i++) await claimJobs(db, 'w1', 64, LEASE_MS);
        const [claim] = await db.query<{ name: string }>(
          `SELECT name FROM pg_prepared_statements WHERE statement LIKE 'WITH RECURSIVE tenants%'`,
        );
        assert.ok(claim, 'the claim is a prepared statement on this connection');
        await growJobs(db, tenant, 5000);
        const plan = async () =>
          (
            await db.query<{ 'QUERY PLAN': string }>(
              `EXPLAIN (COSTS OFF) EXECUTE ${claim.name}('w1', ${LEASE_MS}, 64, 64)`,
            )
          )
            .map((row) => row['QUERY PLAN'])
            .join('\n');
        assert.match(await plan(), /Seq Scan on jobs/);
        assert.ok((await analyzeJobsIfGrown(db, 0)) !== undefined);
        assert.doesNotMatch(await plan(), /Seq Scan on jobs/);
      } finally {
        await db.close();
      }
    });
  });
}
