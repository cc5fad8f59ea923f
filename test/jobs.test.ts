// Async jobs over HTTP on one in-process platform (API + worker), on each driver: submit → 202 → long-poll →
// result equal to /predict; every failure mode of the job routes; idempotency keys and their 24 h expiry;
// tenant isolation and scopes; cancel, of a queued and of a running job; list with filters and cursors;
// retries to a dead letter; results in the artifact store; signed webhooks against a real receiver
// (retried with backoff and given up, timed out, signed with a rotated secret, every attempt recorded) and
// the SSRF refusal; the workers list; retention.
import assert from 'node:assert/strict';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openLocalArtifactStore } from '../src/artifacts/local.ts';
import type { ConfigInput } from '../src/config/config.ts';
import { readResult, storeResult } from '../src/jobs/results.ts';
import type { Db, Queryable } from '../src/store/db.ts';
import { insertJob, newJobId } from '../src/store/jobs.ts';
import { deleteModelVersion, insertModelVersion, selectModel } from '../src/store/models.ts';
import { verifyWebhook } from '../src/webhooks/signature.ts';
import { assertProblem, deployModel } from './helpers/api.ts';
import { createTestSchema, dropTestSchema, testDatabases, testDatabaseUrl } from './helpers/databases.ts';
import {
  buildIdentityModel,
  buildSlowModel,
  buildSquareModel,
  slowInput,
  slowResult,
  startTestPlatform,
  type TestPlatform,
} from './helpers/platform.ts';

interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
  /** When the whole request had arrived (Date.now()). */
  receivedAtMs: number;
}

/**
 * A webhook receiver on 127.0.0.1 answering the given statuses in turn, then `otherwise` (default 200);
 * `'never'` reads each request and leaves it unanswered, as a stalled endpoint does.
 */
async function startReceiver(statuses: number[] = [], otherwise: number | 'never' = 200) {
  const deliveries: Delivery[] = [];
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      deliveries.push({
        headers: request.headers,
        body: Buffer.concat(chunks).toString(),
        receivedAtMs: Date.now(),
      });
      const status = statuses.shift() ?? otherwise;
      if (status !== 'never') response.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    deliveries,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Requests left unanswered would hold the close.
        server.closeAllConnections();
      }),
  };
}

/**
 * A database that outlives the platforms started on it one after another (a worker's start runs the
 * housekeeping): their data directory, which holds PGlite's database, and on Postgres a schema of its own.
 * The platforms take it from `config`, so they are started without `postgres`, which would make a fresh one.
 */
async function openLastingDatabase(driver: Db['driver'], prefix: string) {
  const dataDir = await mkdtemp(join(tmpdir(), prefix));
  const url = driver === 'postgres' ? testDatabaseUrl() : undefined;
  if (driver === 'postgres' && url === undefined)
    throw new Error('TEST_DATABASE_URL is required on Postgres');
  const schema = url === undefined ? undefined : await createTestSchema(url, 'jobs_lasting');
  const config = { dataDir, databaseUrl: url, databaseSchema: schema } satisfies Partial<ConfigInput>;
  return {
    config,
    async remove() {
      if (url !== undefined && schema !== undefined) await dropTestSchema(url, schema);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The id of the default tenant, which the test platform's admin key belongs to. */
async function defaultTenantId(db: Queryable): Promise<string> {
  const [tenant] = await db.query<{ id: string }>(`SELECT id FROM tenants WHERE name = 'default'`);
  return tenant!.id;
}

/**
 * Queues a job of the default tenant straight into the store, past the gateway's checks, as another
 * process (or an older version) may have: one row of input, 60 s to run.
 */
async function queueJob(
  db: Queryable,
  job: { modelName: string; modelVersion: number; row: number[]; maxAttempts: number; webhookUrl?: string },
) {
  return insertJob(db, {
    id: newJobId(),
    tenantId: await defaultTenantId(db),
    modelName: job.modelName,
    modelVersion: job.modelVersion,
    inputJson: JSON.stringify({ instances: [job.row] }),
    priority: 0,
    maxAttempts: job.maxAttempts,
    timeoutMs: 60_000,
    webhookUrl: job.webhookUrl,
  });
}

describe('results', () => {
  it('a small result stays inline; a large one, or one holding text jsonb cannot hold, goes to the store', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'modelgate-results-'));
    const artifacts = await openLocalArtifactStore(dir);
    try {
      const read = async (outcome: Awaited<ReturnType<typeof storeResult>>) => {
        const job = { result: outcome.result ?? null, resultSha256: outcome.resultSha256 ?? null };
        return readResult(artifacts, job as Parameters<typeof readResult>[1]);
      };
      const small = { outputs: { label: ['a', 'b'] } };
      const inline = await storeResult(artifacts, small, 1000);
      assert.deepEqual(inline.result, small);
      assert.equal(inline.resultSha256, undefined);

      for (const result of [
        { outputs: { text: ['x'.repeat(2000)] } },
        { outputs: { text: ['a\u0000b'] } },
        { outputs: { text: ['a\ud800'] } },
      ]) {
        const stored = await storeResult(artifacts, result, 1000);
        assert.equal(stored.result, undefined);
        assert.match(stored.resultSha256 ?? '', /^[0-9a-f]{64}$/);
        assert.deepEqual(await read(stored), result);
      }
      // Text that only looks like an escape, and a surrogate pair, are stored inline.
      const escaped = { outputs: { text: ['\\u0000 😀'] } };
      assert.deepEqual((await storeResult(artifacts, escaped, 1000)).result, escaped);
    } finally {
      await artifacts.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

for (const { name: driver } of testDatabases()) {
  describe(`async jobs over HTTP (${driver})`, () => {
    let tp: TestPlatform;
    let key: string;
    let otherTenantKey: string;
    let readKey: string;
    let predictKey: string;

    before(async () => {
      tp = await startTestPlatform({
        postgres: driver === 'postgres',
        config: {
          jobRetryBaseMs: 10,
          jobPollMs: 200,
          webhookAllowPrivateNetworks: true,
          webhookRetryBaseMs: 10,
          drainGraceMs: 1000,
        },
      });
      key = tp.adminKey;
      await deployModel(tp, key, 'identity', buildIdentityModel(3));
      await deployModel(tp, key, 'square', buildSquareModel());
      await deployModel(tp, key, 'slow', buildSlowModel());
      const client = tp.client();
      otherTenantKey = (await client.createTenant('other')).admin_key.key;
      readKey = (await client.createKey({ scopes: ['read'] })).key;
      predictKey = (await client.createKey({ scopes: ['predict'] })).key;
    });
    after(() => tp.close());

    const submit = (
      model: string,
      json: unknown,
      options: { key?: string; idempotencyKey?: string; prefer?: string } = {},
    ) =>
      tp.call('POST', `/v1/models/${model}/jobs`, {
        key: options.key ?? key,
        json,
        headers: {
          ...(options.idempotencyKey === undefined ? {} : { 'idempotency-key': options.idempotencyKey }),
          ...(options.prefer === undefined ? {} : { prefer: options.prefer }),
        },
      });
    const getJob = (id: string, query = '', as = key) =>
      tp.call('GET', `/v1/jobs/${id}${query}`, { key: as });
    /** How the attempts of a model's jobs have ended so far, from /metrics: outcome → count. */
    const attemptOutcomes = async (model: string) => {
      const metrics = (await tp.call('GET', '/metrics')).body as string;
      const counts: Record<string, number> = {};
      const line = /^modelgate_job_attempts_total\{model="([^"]*)",outcome="([^"]*)"\} (\d+)$/gm;
      for (const [, name, outcome, count] of metrics.matchAll(line)) {
        if (name === model) counts[outcome!] = Number(count);
      }
      return counts;
    };

    it('submit answers 202 once committed; a long poll returns the same result /predict gives', async () => {
      const body = { instances: [[1, 2, 3]] };
      const submitted = await submit('identity', body);
      assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
      assert.match(submitted.body.id, /^job_[a-z2-7]+$/);
      assert.ok(['queued', 'running', 'succeeded'].includes(submitted.body.status));
      assert.equal(submitted.body.links.self, `/v1/jobs/${submitted.body.id}`);
      assert.equal(submitted.headers.get('location'), `/v1/jobs/${submitted.body.id}`);

      const done = await getJob(submitted.body.id, '?wait=10');
      assert.equal(done.status, 200);
      assert.equal(done.body.status, 'succeeded');
      assert.equal(done.body.attempts, 1);
      assert.equal(done.body.version, 1);
      assert.ok(done.body.queued_at && done.body.started_at && done.body.finished_at);
      const predicted = await tp.call('POST', '/v1/models/identity/predict', { key, json: body });
      assert.deepEqual(done.body.result, predicted.body);
    });

    it('Prefer: wait=N answers once the job has finished, with its result, in one request', async () => {
      const body = { instances: [[4, 5, 6]] };
      const answered = await submit('identity', body, { prefer: 'respond-async, wait=10' });
      assert.equal(answered.status, 202, JSON.stringify(answered.body));
      assert.equal(answered.headers.get('preference-applied'), 'wait=10');
      assert.equal(answered.headers.get('location'), `/v1/jobs/${answered.body.id}`);
      assert.equal(answered.body.status, 'succeeded');
      const predicted = await tp.call('POST', '/v1/models/identity/predict', { key, json: body });
      assert.deepEqual(answered.body.result, predicted.body);
      // The answer is the job as a read of it shows it (the finished notice brought it along).
      assert.deepEqual(answered.body, (await getJob(answered.body.id)).body);
      // A job too large to come with its notice is read once the notice arrives.
      const large = { instances: Array.from({ length: 800 }, (_, i) => [i, i + 1, i + 2]) };
      const answeredLarge = await submit('identity', large, { prefer: 'wait=10' });
      assert.equal(answeredLarge.body.status, 'succeeded');
      const predictedLarge = await tp.call('POST', '/v1/models/identity/predict', { key, json: large });
      assert.deepEqual(answeredLarge.body.result, predictedLarge.body);
      // A replayed submit waits for the job it made before.
      const options = { prefer: 'wait=10', idempotencyKey: 'prefer-replay' };
      const first = await submit('identity', body, options);
      const replayed = await submit('identity', body, options);
      assert.equal(replayed.headers.get('idempotent-replayed'), 'true');
      assert.equal(replayed.body.id, first.body.id);
      assert.deepEqual(replayed.body.result, predicted.body);
      // A wait that runs out answers with the job as it is then; unknown preferences are ignored.
      const queued = await submit(
        'slow',
        { instances: slowInput(2, 120) },
        { prefer: 'wait=0.05; x=y, lenient' },
      );
      assert.equal(queued.status, 202);
      assert.ok(['queued', 'running'].includes(queued.body.status), queued.body.status);
      assert.equal(queued.body.result, null);
    });

    it('a waiting reader answers with the job as stored whatever else is notified on its channel', async () => {
      // Anyone connected to the database may NOTIFY: unreadable rows, another job's row or an unfinished
      // one must neither crash the gateway nor become the answer.
      const submitted = await submit('slow', { instances: slowInput(40, 30) });
      assert.equal(submitted.status, 202);
      const id: string = submitted.body.id;
      let answered = false;
      const waiting = getJob(id, '?wait=10').finally(() => (answered = true));
      const payloads = [
        `${id} {not json`,
        `${id} 42`,
        `${id} {"id": "job_other", "status": "succeeded", "result": "forged"}`,
        `${id} {"id": "${id}", "status": "running"}`,
      ];
      // Again and again until the reader answers, so that some arrive while it waits.
      while (!answered) {
        for (const payload of payloads) {
          await tp.platform.db.query(`SELECT pg_notify(modelgate_channel('modelgate_jobs_done'), $1)`, [
            payload,
          ]);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const done = await waiting;
      assert.equal(done.status, 200);
      assert.equal(done.body.status, 'succeeded');
      assert.deepEqual(done.body.result, slowResult(40, 30));
      assert.equal((await tp.call('GET', '/healthz')).status, 200);
    });

    it('refuses bad submits with clear problems, storing nothing', async () => {
      const before = (await tp.call('GET', '/v1/jobs?limit=1000', { key })).body.jobs.length;
      assertProblem(await submit('missing', { instances: [[1, 2, 3]] }), 404, 'model_not_found');
      assertProblem(await submit('identity', { instances: [[1, 2]] }), 400, 'invalid_input');
      assertProblem(await submit('identity', { rows: [[1, 2, 3]] }), 400, 'bad_request');
      assertProblem(
        await submit('identity', { instances: [[1, 2, 3]], version: 9 }),
        404,
        'version_not_found',
      );
      assertProblem(
        await submit('identity', { instances: [[1, 2, 3]], priority: 'high' }),
        400,
        'bad_request',
      );
      assertProblem(
        await submit('identity', { instances: [[1, 2, 3]], webhook_url: 'ftp://example.com/x' }),
        400,
        'bad_request',
      );
      assertProblem(await submit('identity', [1, 2, 3]), 400, 'bad_request');
      assertProblem(
        await tp.call('POST', '/v1/models/identity/jobs', {
          key,
          body: '{"instances": [[1, 2',
          headers: { 'content-type': 'application/json' },
        }),
        400,
        'invalid_json',
      );
      assertProblem(
        await submit('identity', { instances: [[1, 2, 3]] }, { idempotencyKey: 'x'.repeat(300) }),
        400,
        'bad_request',
      );
      assertProblem(
        await submit('identity', { instances: [[1, 2, 3]] }, { key: 'mg_nope' }),
        401,
        'unauthenticated',
      );
      assertProblem(await submit('identity', { instances: [[1, 2, 3]] }, { key: readKey }), 403, 'forbidden');
      for (const prefer of ['wait=abc', 'wait=61', 'wait=-1', 'wait=', 'respond-async, wait']) {
        assertProblem(await submit('identity', { instances: [[1, 2, 3]] }, { prefer }), 400, 'bad_request');
      }
      const after = (await tp.call('GET', '/v1/jobs?limit=1000', { key })).body.jobs.length;
      assert.equal(after, before);
    });

    it('refuses bad reads: unknown ids, waits out of range, unknown filters', async () => {
      assertProblem(await getJob('job_nope'), 404, 'job_not_found');
      assertProblem(await getJob('job_nope', '?wait=61'), 400, 'bad_request');
      assertProblem(await getJob('job_nope', '?wait=-1'), 400, 'bad_request');
      assertProblem(await getJob('job_nope', '?wait=abc'), 400, 'bad_request');
      assertProblem(await getJob('job_nope', '?color=red'), 400, 'bad_request');
      assertProblem(await tp.call('GET', '/v1/jobs?status=done', { key }), 400, 'bad_request');
      assertProblem(await tp.call('GET', '/v1/jobs?limit=0', { key }), 400, 'bad_request');
      assertProblem(await tp.call('POST', '/v1/jobs/job_nope/cancel', { key }), 404, 'job_not_found');
    });

    it('an Idempotency-Key returns the same job for the same body, and 422 for another body', async () => {
      const body = { instances: [[4, 5, 6]] };
      const first = await submit('identity', body, { idempotencyKey: 'order-17' });
      const again = await submit('identity', body, { idempotencyKey: 'order-17' });
      assert.equal(first.status, 202);
      assert.equal(again.status, 202);
      assert.equal(again.body.id, first.body.id);
      assert.equal(again.headers.get('idempotent-replayed'), 'true');
      const other = await submit('identity', { instances: [[7, 8, 9]] }, { idempotencyKey: 'order-17' });
      assertProblem(other, 422, 'idempotency_key_reused');
      assert.equal(other.body.job_id, first.body.id);
      // Keys belong to a tenant: the other tenant's same key is a job of its own.
      await deployModel(tp, otherTenantKey, 'identity', buildIdentityModel(3));
      const theirs = await submit('identity', body, { key: otherTenantKey, idempotencyKey: 'order-17' });
      assert.equal(theirs.status, 202);
      assert.notEqual(theirs.body.id, first.body.id);
    });

    it('concurrent submits with one Idempotency-Key make exactly one job', async () => {
      const answers = await Promise.all(
        Array.from({ length: 10 }, () =>
          submit('identity', { instances: [[1, 1, 1]] }, { idempotencyKey: 'burst-1' }),
        ),
      );
      assert.deepEqual(
        answers.map((answer) => answer.status),
        Array(10).fill(202),
      );
      assert.equal(new Set(answers.map((answer) => answer.body.id)).size, 1);
    });

    it("another tenant's job is 404 everywhere and absent from its list", async () => {
      const mine = await submit('identity', { instances: [[1, 2, 3]] });
      assertProblem(await getJob(mine.body.id, '', otherTenantKey), 404, 'job_not_found');
      assertProblem(await getJob(mine.body.id, '?wait=1', otherTenantKey), 404, 'job_not_found');
      assertProblem(
        await tp.call('POST', `/v1/jobs/${mine.body.id}/cancel`, { key: otherTenantKey }),
        404,
        'job_not_found',
      );
      const theirs = await tp.call('GET', '/v1/jobs?limit=1000', { key: otherTenantKey });
      assert.ok(theirs.body.jobs.every((job: { id: string }) => job.id !== mine.body.id));
    });

    it('predict keys submit and read jobs; read keys read', async () => {
      const submitted = await submit('identity', { instances: [[3, 2, 1]] }, { key: predictKey });
      assert.equal(submitted.status, 202);
      assert.equal((await getJob(submitted.body.id, '?wait=10', predictKey)).body.status, 'succeeded');
      assert.equal((await getJob(submitted.body.id, '', readKey)).status, 200);
      assertProblem(
        await tp.call('POST', `/v1/jobs/${submitted.body.id}/cancel`, { key: readKey }),
        403,
        'forbidden',
      );
    });

    it('a job failing at run time is retried with backoff, then failed with its last error', async () => {
      // Two rows: the square model fails on any batch that is not 3 rows.
      const submitted = await submit('square', {
        instances: [
          [1, 0, 0],
          [0, 1, 0],
        ],
      });
      const done = await getJob(submitted.body.id, '?wait=20');
      assert.equal(done.body.status, 'failed');
      assert.equal(done.body.attempts, 3);
      assert.equal(done.body.error.code, 'inference_failed');
      assert.equal(done.body.result, null);
      // The worker counts an attempt once its outcome is written, and a reader may see the outcome first.
      const outcomes = await eventually(
        () => attemptOutcomes('square'),
        (counts) => counts.failed !== undefined,
        'the last attempt to be counted',
      );
      assert.deepEqual(outcomes, { retried: 2, failed: 1 });
      // The same model succeeds on a batch it can multiply.
      const ok = await submit('square', {
        instances: [
          [1, 0, 0],
          [0, 1, 0],
          [0, 0, 1],
        ],
      });
      assert.equal((await getJob(ok.body.id, '?wait=10')).body.status, 'succeeded');
    });

    it("an attempt over its model's jobTimeoutMs fails with timeout; with no attempts left, the job fails", async () => {
      await tp.client().updateModelSettings('slow', { jobTimeoutMs: 20, jobMaxAttempts: 1 });
      // 120 rows through 300 layers: hundreds of milliseconds, far over the 20 ms allowed.
      const submitted = await submit('slow', { instances: slowInput(1, 120) });
      assert.equal(submitted.status, 202);
      const done = await getJob(submitted.body.id, '?wait=20');
      assert.equal(done.body.status, 'failed', JSON.stringify(done.body));
      assert.equal(done.body.attempts, 1);
      assert.equal(done.body.max_attempts, 1);
      assert.equal(done.body.error.code, 'timeout');
    });

    it('a job whose model was deleted before it ran fails with model_not_found, not retried', async () => {
      await deployModel(tp, key, 'doomed', buildIdentityModel(3));
      const { db } = tp.platform;
      // Queued but not yet due, so that no worker takes it before the model is gone.
      const id = await db.transaction(async (tx) => {
        const job = await queueJob(tx, {
          modelName: 'doomed',
          modelVersion: 1,
          row: [1, 2, 3],
          maxAttempts: 3,
        });
        await tx.query(`UPDATE jobs SET run_after = now() + interval '1 hour' WHERE id = $1`, [job.id]);
        return job.id;
      });
      assert.equal((await tp.call('DELETE', '/v1/models/doomed', { key })).status, 204);
      await db.query(`UPDATE jobs SET run_after = now() WHERE id = $1`, [id]);
      const done = await getJob(id, '?wait=20');
      assert.equal(done.body.status, 'failed', JSON.stringify(done.body));
      assert.equal(done.body.error.code, 'model_not_found');
      assert.equal(done.body.attempts, 1, 'a missing model is not worth another attempt');
    });

    it('cancel: a finished job is 409; canceling returns the job as canceled', async () => {
      const done = await submit('identity', { instances: [[1, 2, 3]] });
      await getJob(done.body.id, '?wait=10');
      assertProblem(await tp.call('POST', `/v1/jobs/${done.body.id}/cancel`, { key }), 409, 'conflict');
    });

    it('cancel of a running job: canceled at once, and its late result is discarded, not recorded', async () => {
      // A model of its own: another test changes the settings of `slow`.
      await deployModel(tp, key, 'slow-cancel', buildSlowModel());
      // 400 rows through 300 layers: over a second of work on this worker.
      const submitted = await submit('slow-cancel', { instances: slowInput(3) });
      assert.equal(submitted.status, 202);
      const id: string = submitted.body.id;
      await eventually(
        async () => (await getJob(id)).body,
        (job) => job.status === 'running',
        'the job to be running',
      );

      const canceled = await tp.call('POST', `/v1/jobs/${id}/cancel`, { key });
      assert.equal(canceled.status, 200, JSON.stringify(canceled.body));
      assert.equal(canceled.body.id, id);
      assert.equal(canceled.body.status, 'canceled');
      assert.equal(canceled.body.attempts, 1);
      assert.ok(canceled.body.started_at && canceled.body.finished_at);

      // The attempt runs to its end; its result then finds the lease gone and is dropped ('lost').
      const outcomes = await eventually(
        () => attemptOutcomes('slow-cancel'),
        (counts) => Object.keys(counts).length > 0,
        "the worker's attempt to end",
      );
      const read = await getJob(id);
      assert.equal(read.status, 200);
      assert.equal(read.body.status, 'canceled');
      assert.equal(read.body.result, null);
      assert.equal(read.body.error, null);
      assert.equal(read.body.finished_at, canceled.body.finished_at, "the cancel is the job's end");
      const [row] = await tp.platform.db.query<{ result: unknown; sha: string | null; owner: string | null }>(
        'SELECT result, result_sha256 AS sha, lease_owner AS owner FROM jobs WHERE id = $1',
        [id],
      );
      assert.deepEqual(row, { result: null, sha: null, owner: null });
      assert.deepEqual(outcomes, { lost: 1 });
      assertProblem(await tp.call('POST', `/v1/jobs/${id}/cancel`, { key }), 409, 'conflict');
    });

    it('lists jobs newest first, filtered by model and status, page by page', async () => {
      const ids = [];
      for (let i = 0; i < 3; i++)
        ids.push(
          (
            await submit('square', {
              instances: [
                [1, 0, 0],
                [0, 1, 0],
                [0, 0, 1],
              ],
            })
          ).body.id,
        );
      const first = await tp.call('GET', '/v1/jobs?model=square&limit=2', { key });
      assert.equal(first.status, 200);
      assert.equal(first.body.jobs.length, 2);
      assert.deepEqual(
        first.body.jobs.map((job: { id: string }) => job.id),
        [ids[2], ids[1]],
      );
      const second = await tp.call('GET', `/v1/jobs?model=square&limit=2&cursor=${first.body.next_cursor}`, {
        key,
      });
      assert.equal(second.body.jobs[0].id, ids[0]);
      assert.ok(second.body.jobs.every((job: { model: string }) => job.model === 'square'));
      const failed = await tp.call('GET', '/v1/jobs?status=failed', { key });
      assert.ok(failed.body.jobs.length >= 1);
      assert.ok(failed.body.jobs.every((job: { status: string }) => job.status === 'failed'));
    });

    it('delivers a signed webhook, retrying a failing endpoint and recording every attempt', async () => {
      const receiver = await startReceiver([500]);
      try {
        const submitted = await submit('identity', { instances: [[1, 2, 3]], webhook_url: receiver.url });
        const job = await eventually(
          async () => (await getJob(submitted.body.id)).body,
          (body) => body.webhook?.status === 'delivered',
          'the webhook to be delivered',
        );
        assert.equal(job.webhook.attempts.length, 2);
        assert.equal(job.webhook.attempts[0].ok, false);
        assert.equal(job.webhook.attempts[0].status, 500);
        assert.equal(job.webhook.attempts[1].ok, true);
        assert.equal(receiver.deliveries.length, 2);
        const { secret } = (await tp.call('GET', '/v1/webhook-secret', { key })).body;
        assert.match(secret, /^whsec_/);
        for (const delivery of receiver.deliveries) {
          assert.equal(verifyWebhook(secret, delivery.headers, delivery.body), true);
          assert.equal(delivery.headers['webhook-id'], `msg_${submitted.body.id}`);
        }
        const payload = JSON.parse(receiver.deliveries[1]!.body);
        assert.equal(payload.type, 'job.succeeded');
        assert.equal(payload.data.id, submitted.body.id);
        assert.deepEqual(payload.data.result.outputs, { y: [[1, 2, 3]] });
        // Another tenant's secret does not verify our deliveries.
        const theirs = (await tp.call('GET', '/v1/webhook-secret', { key: otherTenantKey })).body.secret;
        assert.equal(
          verifyWebhook(theirs, receiver.deliveries[0]!.headers, receiver.deliveries[0]!.body),
          false,
        );
      } finally {
        await receiver.close();
      }
    });

    it('workers are listed for operator admins only', async () => {
      const listed = await tp.call('GET', '/v1/workers', { key });
      assert.equal(listed.status, 200);
      const worker = listed.body.workers.find((entry: { id: string }) => entry.id === tp.platform.worker!.id);
      assert.ok(worker, JSON.stringify(listed.body));
      assert.equal(worker.status, 'active');
      assert.equal(worker.pid, process.pid);
      assertProblem(await tp.call('GET', '/v1/workers', { key: otherTenantKey }), 403, 'forbidden');
      assertProblem(await tp.call('GET', '/v1/workers', { key: readKey }), 403, 'forbidden');
    });
  });

  describe(`jobs: results in the artifact store, private webhook targets refused (${driver})`, () => {
    let tp: TestPlatform;

    before(async () => {
      tp = await startTestPlatform({
        postgres: driver === 'postgres',
        config: { inlineResultBytes: 0, webhookMaxAttempts: 1, jobPollMs: 100, drainGraceMs: 1000 },
      });
      await deployModel(tp, tp.adminKey, 'identity', buildIdentityModel(3));
    });
    after(() => tp.close());

    it('a result over the inline limit is kept in the artifact store and read back whole', async () => {
      const submitted = await tp.call('POST', '/v1/models/identity/jobs', {
        key: tp.adminKey,
        json: { instances: [[1, 2, 3]] },
      });
      const done = await tp.call('GET', `/v1/jobs/${submitted.body.id}?wait=10`, { key: tp.adminKey });
      assert.equal(done.body.status, 'succeeded');
      assert.deepEqual(done.body.result, { model: 'identity', version: 1, outputs: { y: [[1, 2, 3]] } });
      const [row] = await tp.platform.db.query<{ result: unknown; sha: string | null }>(
        'SELECT result, result_sha256 AS sha FROM jobs WHERE id = $1',
        [submitted.body.id],
      );
      assert.equal(row!.result, null);
      assert.match(row!.sha ?? '', /^[0-9a-f]{64}$/);
    });

    it('a webhook to a loopback address is refused at delivery, recorded, and given up after the last attempt', async () => {
      const receiver = await startReceiver();
      try {
        // A submit refuses such a URL (test/hostile-input.test.ts); one already stored (by a version before
        // that check, or while the operator allowed private networks) is refused when it is delivered.
        const queued = await queueJob(tp.platform.db, {
          modelName: 'identity',
          modelVersion: 1,
          row: [1, 2, 3],
          maxAttempts: 1,
          webhookUrl: receiver.url,
        });
        const submitted = { body: { id: queued.id } };
        const job = await eventually(
          async () => (await tp.call('GET', `/v1/jobs/${submitted.body.id}`, { key: tp.adminKey })).body,
          (body) => body.webhook?.status === 'failed',
          'the webhook to be given up',
        );
        assert.equal(job.status, 'succeeded', 'the job itself is unaffected');
        assert.equal(job.webhook.attempts.length, 1);
        assert.match(job.webhook.attempts[0].error, /refused: 127\.0\.0\.1 .*loopback/);
        assert.equal(receiver.deliveries.length, 0);
      } finally {
        await receiver.close();
      }
    });
  });

  describe(`jobs on a gateway without workers (${driver})`, () => {
    let tp: TestPlatform;

    before(async () => {
      tp = await startTestPlatform({ postgres: driver === 'postgres', config: { workers: false } });
      await deployModel(tp, tp.adminKey, 'identity', buildIdentityModel(3));
    });
    after(() => tp.close());

    it('a job waits queued; canceled before any worker runs it, it stays canceled', async () => {
      const submitted = await tp.call('POST', '/v1/models/identity/jobs', {
        key: tp.adminKey,
        json: { instances: [[1, 2, 3]] },
      });
      assert.equal(submitted.body.status, 'queued');
      assert.equal(tp.platform.worker, undefined);
      const waited = await tp.call('GET', `/v1/jobs/${submitted.body.id}?wait=0.3`, { key: tp.adminKey });
      assert.equal(waited.status, 200);
      assert.equal(waited.body.status, 'queued', 'a long poll ends at its deadline with the job as it is');
      const canceled = await tp.call('POST', `/v1/jobs/${submitted.body.id}/cancel`, { key: tp.adminKey });
      assert.equal(canceled.status, 200);
      assert.equal(canceled.body.status, 'canceled');
      assert.ok(canceled.body.finished_at);
    });
  });

  describe(`jobs meeting a full model queue (${driver})`, () => {
    let tp: TestPlatform;

    before(async () => {
      tp = await startTestPlatform({
        postgres: driver === 'postgres',
        config: {
          maxQueueSize: 1,
          jobRetryBaseMs: 10,
          jobMaxAttempts: 20,
          jobPollMs: 100,
          drainGraceMs: 1000,
        },
      });
      await deployModel(tp, tp.adminKey, 'identity', buildIdentityModel(3));
    });
    after(() => tp.close());

    it('jobs the batcher refuses with queue_full are retried, not lost', async () => {
      // Queued in one transaction, they are claimed together: the model queue of 1 refuses most at first.
      const ids = await tp.platform.db.transaction(async (tx) => {
        const queued = [];
        for (let i = 0; i < 10; i++) {
          const job = await queueJob(tx, {
            modelName: 'identity',
            modelVersion: 1,
            row: [i, i, i],
            maxAttempts: 20,
          });
          queued.push(job.id);
        }
        return queued;
      });
      for (const [i, id] of ids.entries()) {
        const done = await tp.call('GET', `/v1/jobs/${id}?wait=20`, { key: tp.adminKey });
        assert.equal(done.body.status, 'succeeded', JSON.stringify(done.body));
        assert.deepEqual(done.body.result.outputs.y, [[i, i, i]]);
      }
      const metrics = (await tp.call('GET', '/metrics')).body as string;
      assert.match(metrics, /modelgate_job_attempts_total\{model="identity",outcome="retried"\} [1-9]/);
    });
  });

  describe(`a worker meeting a version its catalogue does not know yet (${driver})`, () => {
    let tp: TestPlatform;

    before(async () => {
      tp = await startTestPlatform({ postgres: driver === 'postgres' });
      await deployModel(tp, tp.adminKey, 'moving', buildIdentityModel(3));
    });
    after(() => tp.close());

    it('follows the change as every process does: the version gone is released, not kept', async () => {
      const { db, predictor } = tp.platform;
      const predicted = await tp.call('POST', '/v1/models/moving/predict', {
        key: tp.adminKey,
        json: { instances: [[1, 2, 3]] },
      });
      assert.equal(predicted.status, 200);
      const tenantId = await defaultTenantId(db);
      const first = predictor.resolve(tenantId, 'moving', 1).version;
      assert.ok(predictor.isLoaded(first));

      // Another process's deploy whose notice has not arrived yet: the database changes, nothing is announced.
      const model = (await selectModel(db, tenantId, 'moving'))!;
      await db.transaction(async (tx) => {
        // The same artifact and settings again: a stored version is what a new one needs, and more.
        await insertModelVersion(tx, model.id, first);
        await deleteModelVersion(tx, model.id, 1);
      });
      const queued = await queueJob(db, {
        modelName: 'moving',
        modelVersion: 2,
        row: [4, 5, 6],
        maxAttempts: 1,
      });
      const done = await tp.call('GET', `/v1/jobs/${queued.id}?wait=20`, { key: tp.adminKey });
      assert.equal(done.body.status, 'succeeded', JSON.stringify(done.body));
      assert.deepEqual(done.body.result.outputs.y, [[4, 5, 6]]);
      // The worker read the model again through the predictor, which let version 1 go (its notice, when it
      // comes, changes nothing more).
      assert.deepEqual(predictor.versionNumbers(tenantId, 'moving'), [2]);
      assert.equal(predictor.isLoaded(first), false, 'version 1 is no longer loaded');
    });

    it("runs its job although the model's newest version cannot load: the worker loads only what the job needs", async () => {
      const { db, predictor } = tp.platform;
      const tenantId = await defaultTenantId(db);
      const current = predictor.resolve(tenantId, 'moving').version;
      // Two versions the process has not heard of: 3 as good as 2, 4 whose file is not in the store.
      const model = (await selectModel(db, tenantId, 'moving'))!;
      await db.transaction(async (tx) => {
        await insertModelVersion(tx, model.id, current);
        await insertModelVersion(tx, model.id, { ...current, artifactSha256: 'f'.repeat(64) });
      });
      const queued = await queueJob(db, {
        modelName: 'moving',
        modelVersion: 3,
        row: [7, 8, 9],
        maxAttempts: 1,
      });
      const done = await tp.call('GET', `/v1/jobs/${queued.id}?wait=20`, { key: tp.adminKey });
      assert.equal(done.body.status, 'succeeded', JSON.stringify(done.body));
      assert.deepEqual(done.body.result.outputs.y, [[7, 8, 9]]);
    });
  });

  describe(`webhooks against a real receiver (${driver})`, () => {
    const MAX_ATTEMPTS = 3;
    const RETRY_BASE_MS = 400;
    const TIMEOUT_MS = 300;
    let tp: TestPlatform;

    before(async () => {
      tp = await startTestPlatform({
        postgres: driver === 'postgres',
        config: {
          webhookAllowPrivateNetworks: true,
          webhookMaxAttempts: MAX_ATTEMPTS,
          webhookRetryBaseMs: RETRY_BASE_MS,
          webhookTimeoutMs: TIMEOUT_MS,
          // The dispatcher looks for due deliveries this often: far below the backoff, so that a retry
          // sent without one would come sooner than the backoff allows.
          jobPollMs: 50,
          drainGraceMs: 1000,
        },
      });
      await deployModel(tp, tp.adminKey, 'identity', buildIdentityModel(3));
    });
    after(() => tp.close());

    /** Submits a job whose webhook goes to `url`; returns the job once its webhook is no longer pending. */
    async function runWithWebhook(url: string) {
      const submitted = await tp.call('POST', '/v1/models/identity/jobs', {
        key: tp.adminKey,
        json: { instances: [[1, 2, 3]], webhook_url: url },
      });
      assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
      return eventually(
        async () => (await tp.call('GET', `/v1/jobs/${submitted.body.id}`, { key: tp.adminKey })).body,
        (job) => job.webhook?.status === 'delivered' || job.webhook?.status === 'failed',
        'the webhook to be delivered or given up',
      );
    }

    it('a receiver answering 500 is retried with backoff up to webhookMaxAttempts, then given up', async () => {
      const receiver = await startReceiver([], 500);
      try {
        const job = await runWithWebhook(receiver.url);
        assert.equal(job.status, 'succeeded', 'the job itself is unaffected');
        assert.equal(job.webhook.status, 'failed');
        const attempts: { at: string; ok: boolean; status?: number; error?: string }[] = job.webhook.attempts;
        assert.deepEqual(
          attempts.map(({ ok, status, error }) => ({ ok, status, error })),
          Array(MAX_ATTEMPTS).fill({ ok: false, status: 500, error: 'the endpoint answered 500' }),
        );
        assert.equal(receiver.deliveries.length, MAX_ATTEMPTS);
        // Given up: nothing is scheduled any more.
        const [row] = await tp.platform.db.query<{ next: Date | null }>(
          'SELECT webhook_next_at AS next FROM jobs WHERE id = $1',
          [job.id],
        );
        assert.equal(row!.next, null);

        // The retry after attempt n waits at least half of base × 2^(n-1) (backoff.ts: 50-100% of it), both
        // as recorded and as the receiver saw it. `at` is taken after the answer, and the next attempt is
        // claimed only once the database's clock (the same machine's) has passed the delay.
        const recordedMs = attempts.map((attempt) => Date.parse(attempt.at));
        const receivedMs = receiver.deliveries.map((delivery) => delivery.receivedAtMs);
        for (let n = 1; n < MAX_ATTEMPTS; n++) {
          const minimumMs = (RETRY_BASE_MS * 2 ** (n - 1)) / 2;
          const recordedGap = recordedMs[n]! - recordedMs[n - 1]!;
          const receivedGap = receivedMs[n]! - receivedMs[n - 1]!;
          assert.ok(recordedGap >= minimumMs, `attempt ${n + 1} came ${recordedGap} ms after attempt ${n}`);
          assert.ok(receivedGap >= minimumMs, `POST ${n + 1} came ${receivedGap} ms after POST ${n}`);
        }
      } finally {
        await receiver.close();
      }
    });

    it('a receiver that accepts and never answers: each attempt fails as timed out after webhookTimeoutMs', async () => {
      const receiver = await startReceiver([], 'never');
      try {
        const job = await runWithWebhook(receiver.url);
        assert.equal(job.webhook.status, 'failed');
        assert.equal(job.webhook.attempts.length, MAX_ATTEMPTS);
        for (const attempt of job.webhook.attempts) {
          assert.equal(attempt.ok, false);
          assert.equal(attempt.status, undefined, 'no answer, so no status');
          assert.equal(attempt.error, `timed out after ${TIMEOUT_MS} ms`);
        }
        assert.equal(receiver.deliveries.length, MAX_ATTEMPTS, 'each request was sent; no answer came');
      } finally {
        await receiver.close();
      }
    });

    it('after POST /v1/webhook-secret/rotate, deliveries are signed with the new secret, not the old', async () => {
      const receiver = await startReceiver();
      try {
        const signedBefore = await runWithWebhook(receiver.url);
        assert.equal(signedBefore.webhook.status, 'delivered');
        const old: string = (await tp.call('GET', '/v1/webhook-secret', { key: tp.adminKey })).body.secret;
        assert.equal(verifyWebhook(old, receiver.deliveries[0]!.headers, receiver.deliveries[0]!.body), true);

        const rotated = await tp.call('POST', '/v1/webhook-secret/rotate', { key: tp.adminKey });
        assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
        const secret: string = rotated.body.secret;
        assert.match(secret, /^whsec_/);
        assert.notEqual(secret, old);
        assert.equal((await tp.call('GET', '/v1/webhook-secret', { key: tp.adminKey })).body.secret, secret);

        const signedAfter = await runWithWebhook(receiver.url);
        assert.equal(signedAfter.webhook.status, 'delivered');
        assert.equal(receiver.deliveries.length, 2);
        const delivery = receiver.deliveries[1]!;
        assert.equal(delivery.headers['webhook-id'], `msg_${signedAfter.id}`);
        assert.equal(verifyWebhook(secret, delivery.headers, delivery.body), true);
        assert.equal(verifyWebhook(old, delivery.headers, delivery.body), false);
      } finally {
        await receiver.close();
      }
    });
  });

  describe(`idempotency keys expire after 24 h (${driver})`, () => {
    it('a key replays for 24 h, whatever the job retention; then housekeeping removes it and it makes a new job', async () => {
      const database = await openLastingDatabase(driver, 'modelgate-keys-');
      const body = { instances: [[1, 2, 3]] };
      const submit = (tp: TestPlatform, idempotencyKey: string) =>
        tp.call('POST', '/v1/models/identity/jobs', {
          key: tp.adminKey,
          json: body,
          headers: { 'idempotency-key': idempotencyKey, prefer: 'wait=10' },
        });
      try {
        const first = await startTestPlatform({ config: database.config });
        let expiring: string;
        let kept: string;
        let purged: string;
        try {
          await deployModel(first, first.adminKey, 'identity', buildIdentityModel(3));
          const submitted = await submit(first, 'order-old');
          assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
          assert.equal(submitted.body.status, 'succeeded');
          assert.equal(submitted.headers.get('idempotent-replayed'), null);
          expiring = submitted.body.id;
          const replayed = await submit(first, 'order-old');
          assert.equal(replayed.headers.get('idempotent-replayed'), 'true');
          assert.equal(replayed.body.id, expiring);
          kept = (await submit(first, 'order-young')).body.id;
          purged = (await submit(first, 'order-purged')).body.id;

          // Housekeeping reads the key's created_at (and a job's finished_at). One key just past a day old,
          // its job finished as long ago; one key 23 h old, far past the job retention below, whose job
          // finished just now.
          const { db } = first.platform;
          await db.query(
            `UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'order-old'`,
          );
          await db.query(`UPDATE jobs SET finished_at = now() - interval '25 hours' WHERE id = $1`, [
            expiring,
          ]);
          await db.query(
            `UPDATE idempotency_keys SET created_at = now() - interval '23 hours' WHERE key = 'order-young'`,
          );
          // And one whose job outlived the job retention below, though its key is young.
          await db.query(`UPDATE jobs SET finished_at = now() - interval '2 hours' WHERE id = $1`, [purged]);
        } finally {
          await first.close();
        }

        // A worker's start runs the housekeeping; job retention is an hour, far shorter than the keys' day.
        const second = await startTestPlatform({ config: { ...database.config, jobRetentionSeconds: 3600 } });
        try {
          // Removed in the housekeeping's one transaction with the expired keys.
          await eventually(
            async () => (await second.call('GET', `/v1/jobs/${expiring}`, { key: second.adminKey })).status,
            (status) => status === 404,
            'the expired job to be removed',
          );
          const keys = await second.platform.db.query<{ key: string }>(
            'SELECT key FROM idempotency_keys ORDER BY key',
          );
          assert.deepEqual(
            keys.map((row) => row.key),
            ['order-purged', 'order-young'],
          );

          const again = await submit(second, 'order-old');
          assert.equal(again.status, 202, JSON.stringify(again.body));
          assert.equal(again.headers.get('idempotent-replayed'), null, 'the expired key is new again');
          assert.notEqual(again.body.id, expiring);
          assert.equal(again.body.status, 'succeeded');
          const young = await submit(second, 'order-young');
          assert.equal(young.status, 202, JSON.stringify(young.body));
          assert.equal(young.headers.get('idempotent-replayed'), 'true');
          assert.equal(young.body.id, kept);
          // The key outlived its job: not run again, and said so.
          const gone = await submit(second, 'order-purged');
          assertProblem(gone, 409, 'conflict');
          assert.equal(gone.body.job_id, purged);
          assert.match(gone.body.detail, /removed after its retention/);
        } finally {
          await second.close();
        }
      } finally {
        await database.remove();
      }
    });
  });

  describe(`retention (${driver})`, () => {
    it("finished jobs past jobRetentionSeconds go at a worker's start, their unused results after a grace period", async () => {
      const database = await openLastingDatabase(driver, 'modelgate-retention-');
      const { dataDir } = database.config;
      try {
        // Results over 10 bytes go to the artifact store.
        const first = await startTestPlatform({ config: { ...database.config, inlineResultBytes: 10 } });
        let id: string;
        let sha: string;
        try {
          await deployModel(first, first.adminKey, 'identity', buildIdentityModel(3));
          const submitted = await first.call('POST', '/v1/models/identity/jobs', {
            key: first.adminKey,
            json: { instances: [[7, 8, 9]] },
            headers: { prefer: 'wait=10' },
          });
          assert.equal(submitted.body.status, 'succeeded', JSON.stringify(submitted.body));
          id = submitted.body.id;
          const [row] = await first.platform.db.query<{ sha: string }>(
            `UPDATE jobs SET finished_at = now() - interval '2 days' WHERE id = $1 RETURNING result_sha256 AS sha`,
            [id],
          );
          sha = row!.sha;
          await access(join(dataDir, 'artifacts', 'sha256', sha));
        } finally {
          await first.close();
        }

        const second = await startTestPlatform({
          config: { ...database.config, jobRetentionSeconds: 86_400 },
        });
        try {
          await eventually(
            async () => (await second.call('GET', `/v1/jobs/${id}`, { key: second.adminKey })).status,
            (status) => status === 404,
            'the expired job to be removed',
          );
          // The artifact stays for the grace period: another job may have just stored the same result.
          await access(join(dataDir, 'artifacts', 'sha256', sha));
          await second.platform.db.query(`UPDATE artifact_removals SET due_at = now() WHERE sha256 = $1`, [
            sha,
          ]);
        } finally {
          await second.close();
        }

        // Once due, the next housekeeping (here at a worker's start) removes it.
        const third = await startTestPlatform({
          config: { ...database.config, jobRetentionSeconds: 86_400 },
        });
        try {
          await eventually(
            () =>
              access(join(dataDir, 'artifacts', 'sha256', sha)).then(
                () => 'present',
                (error: NodeJS.ErrnoException) => error.code,
              ),
            (state) => state === 'ENOENT',
            'the result artifact to be removed',
          );
        } finally {
          await third.close();
        }
      } finally {
        await database.remove();
      }
    });
  });
}
