// The database going away under load, for real: a gateway and two workers reach Postgres through a TCP
// proxy the test controls (test/helpers/tcp-proxy.ts), which resets every connection and answers new ones
// as a server that is starting up (a restart), black-holes them (a network cut without a reset), and
// refuses them. Submitters with Idempotency-Keys, real-time predictions, readiness probes and long polls
// run throughout. During each fault: predictions answer, everything that needs the database answers 503
// not_ready with Retry-After (never 500), long polls end; after it everything resumes by itself and every
// acknowledged job completes once. Needs TEST_DATABASE_URL; skipped, saying so, without it.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { clusterTest, startProcesses } from './helpers/cluster-tests.ts';
import { buildIdentityModel, buildSlowModel, slowInput } from './helpers/platform.ts';
import { waitUntil, type Worker } from './helpers/processes.ts';
import { FaultyProxy, type ProxyMode } from './helpers/tcp-proxy.ts';

/** A statement or connection unanswered this long counts as lost: a black-holed request ends by then. */
const DATABASE_TIMEOUT_MS = 1000;
/** How long each fault lasts: longer than the deadline above, shorter than a lease. */
const FAULT_MS = 3000;
const SUBMITTERS = 4;

interface Answer {
  status: number;
  code?: string;
  retryAfter: string | null;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What every caller saw, by phase: the answers' statuses (and codes), so a test can ask what a fault did. */
class Observations {
  phase = 'before';
  readonly byPhase = new Map<string, Map<string, number>>();
  /**
   * Answers that break a promise whatever the phase: a 5xx other than 503 not_ready with Retry-After, a
   * failed request, a prediction that did not answer 200 (they never need the database).
   */
  readonly broken: string[] = [];

  record(caller: string, answer: Answer | Error): void {
    const label =
      answer instanceof Error
        ? `${caller} error`
        : `${caller} ${answer.status}${answer.code ? ` ${answer.code}` : ''}`;
    const counts = this.byPhase.get(this.phase) ?? new Map<string, number>();
    this.byPhase.set(this.phase, counts);
    counts.set(label, (counts.get(label) ?? 0) + 1);
    if (answer instanceof Error) return void this.broken.push(`${this.phase}: ${caller}: ${answer.message}`);
    if (answer.status >= 500 && answer.status !== 503) this.broken.push(`${this.phase}: ${label}`);
    if (caller === 'predict' && answer.status !== 200) this.broken.push(`${this.phase}: ${label}`);
    if (answer.status === 503 && (answer.code !== 'not_ready' || answer.retryAfter === null)) {
      this.broken.push(`${this.phase}: ${label} with Retry-After ${answer.retryAfter}`);
    }
  }

  count(phase: string, label: string): number {
    return this.byPhase.get(phase)?.get(label) ?? 0;
  }

  summary(): string {
    return JSON.stringify(
      Object.fromEntries([...this.byPhase].map(([phase, counts]) => [phase, Object.fromEntries(counts)])),
    );
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function call(url: string, init: RequestInit): Promise<Answer & { body: any }> {
  // Bounded: a request the gateway never answers fails the test rather than hanging it.
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(30_000) });
  const text = await response.text();
  const body = text ? JSON.parse(text) : undefined;
  return { status: response.status, code: body?.code, retryAfter: response.headers.get('retry-after'), body };
}

describe('the database going away', { concurrency: 1 }, () => {
  let proxy: FaultyProxy;
  clusterTest(
    'restarted, black-holed, refused under load: 503 not_ready meanwhile, predictions answer, every acknowledged job completes once',
    async (databaseUrl, t) => {
      proxy = await FaultyProxy.start(databaseUrl);
      t.after(() => proxy.close());
      return {
        processDatabaseUrl: proxy.urlFor(databaseUrl),
        env: {
          MODELGATE_DATABASE_TIMEOUT_MS: String(DATABASE_TIMEOUT_MS),
          MODELGATE_JOB_LEASE_MS: '10000',
          MODELGATE_LOG_LEVEL: 'info',
        },
      };
    },
    async (cluster) => {
      const { gateway, workers, client } = await startProcesses(cluster, 2);
      await client.deploy('identity', buildIdentityModel(3));
      await client.deploy('slow', buildSlowModel());
      const headers = { authorization: `Bearer ${cluster.adminKey}`, 'content-type': 'application/json' };
      const seen = new Observations();
      let stopping = false;

      // Submitters: each job under its own key, sent again with the same key until it is acknowledged.
      const acked = new Map<string, { id: string; row: number[] }>();
      const submitter = async (s: number) => {
        for (let n = 0; !stopping; n++) {
          const key = `submitter-${s}-${n}`;
          const row = [s, n, 1];
          for (;;) {
            const answer = await call(`${gateway.url}/v1/models/identity/jobs`, {
              method: 'POST',
              headers: { ...headers, 'idempotency-key': key },
              body: JSON.stringify({ instances: [row] }),
            }).catch((error: Error) => error);
            seen.record('submit', answer);
            if (!(answer instanceof Error) && answer.status === 202) {
              acked.set(key, { id: answer.body.id, row });
              break;
            }
            if (answer instanceof Error || answer.status !== 503) return;
            await sleep(100);
          }
          await sleep(20);
        }
      };
      const predictions = async () => {
        while (!stopping) {
          const answer = await call(`${gateway.url}/v1/models/identity/predict`, {
            method: 'POST',
            headers,
            body: JSON.stringify({ instances: [[1, 2, 3]] }),
          }).catch((error: Error) => error);
          seen.record('predict', answer);
          if (!(answer instanceof Error) && answer.status === 200)
            assert.deepEqual(answer.body.outputs, { y: [[1, 2, 3]] });
          await sleep(20);
        }
      };
      const readiness = async () => {
        while (!stopping) {
          seen.record('readyz', await call(`${gateway.url}/readyz`, {}).catch((error: Error) => error));
          await sleep(50);
        }
      };
      const traffic = [
        ...Array.from({ length: SUBMITTERS }, (_, s) => submitter(s)),
        predictions(),
        readiness(),
      ];

      /**
       * Long polls held across a fault: on a slow job queued just before it, `?wait=` reads and a
       * `Prefer: wait` submit. Each must end with an answer, the job as last read or a 503.
       */
      const longPolls = async () => {
        const slow = await client.submitJob('slow', { instances: slowInput(1, 200) });
        const polls = [
          ...[1, 2, 3].map(() =>
            call(`${gateway.url}/v1/jobs/${slow.id}?wait=20`, { headers }).catch((error: Error) => error),
          ),
          call(`${gateway.url}/v1/models/slow/jobs`, {
            method: 'POST',
            headers: { ...headers, prefer: 'wait=20' },
            body: JSON.stringify({ instances: slowInput(2, 200) }),
          }).catch((error: Error) => error),
        ];
        // Time for the gateway to read the job once before the fault (the answer is then the job as read).
        await sleep(500);
        return polls;
      };

      const fault = async (name: string, mode: ProxyMode, cut: boolean) => {
        const polls = await longPolls();
        seen.phase = name;
        proxy.setMode(mode);
        if (cut) proxy.cut();
        // Until the fault has shown at the gateway, then for the rest of its time.
        const startedMs = Date.now();
        await waitUntil(
          `the ${name} to show as 503s`,
          async () => ({
            ready: seen.count(name, 'readyz 503 not_ready'),
            submits: seen.count(name, 'submit 503 not_ready'),
          }),
          ({ ready, submits }) => ready > 0 && submits > 0,
          { timeoutMs: 20_000 },
        );
        await sleep(Math.max(0, FAULT_MS - (Date.now() - startedMs)));
        proxy.setMode('pass');
        seen.phase = `after ${name}`;
        await waitUntil(
          `readiness after the ${name}`,
          () => call(`${gateway.url}/readyz`, {}),
          (answer) => answer.status === 200,
          { timeoutMs: 30_000, intervalMs: 100 },
        );
        for (const poll of await Promise.all(polls)) {
          seen.record('long poll', poll);
          if (!(poll instanceof Error))
            assert.ok([200, 202, 503].includes(poll.status), `long poll: ${JSON.stringify(poll)}`);
          if (!(poll instanceof Error) && poll.status !== 503)
            assert.ok(
              ['queued', 'running'].includes(poll.body.status),
              `long poll: ${JSON.stringify(poll.body)}`,
            );
        }
        const ackedBefore = acked.size;
        await waitUntil(
          `submits to be acknowledged after the ${name}`,
          async () => acked.size,
          (size) => size > ackedBefore + SUBMITTERS,
          { timeoutMs: 20_000 },
        );
      };

      await waitUntil(
        'the first acknowledgements',
        async () => acked.size,
        (size) => size >= 20,
      );
      await fault('restart', 'starting', true);
      await fault('black hole', 'blackhole', false);
      await fault('refusal', 'refuse', true);
      stopping = true;
      await Promise.all(traffic);
      process.stderr.write(
        `database-outage: ${acked.size} jobs acknowledged; answers by phase: ${seen.summary()}\n`,
      );

      assert.deepEqual(seen.broken, [], seen.summary());
      for (const phase of ['restart', 'black hole', 'refusal']) {
        assert.ok(seen.count(phase, 'predict 200') > 0, `predictions answered during the ${phase}`);
      }
      // Long polls that had read their job before a fault answered with it (the others with a 503).
      const answered = ['restart', 'black hole', 'refusal']
        .map(
          (phase) =>
            seen.count(`after ${phase}`, 'long poll 200') + seen.count(`after ${phase}`, 'long poll 202'),
        )
        .reduce((sum, n) => sum + n, 0);
      assert.ok(answered > 0, `a long poll answered with the job as last read: ${seen.summary()}`);

      // Every acknowledged job completes, once, with its own result; no key made two jobs.
      await waitUntil(
        'every job to finish',
        async () =>
          (
            await cluster.query<{ count: number }>(
              `SELECT count(*)::int AS count FROM jobs WHERE status IN ('queued', 'running')`,
            )
          )[0]!.count,
        (count) => count === 0,
        { timeoutMs: 60_000, intervalMs: 200 },
      );
      const rows = await cluster.query<{
        id: string;
        status: string;
        result: { outputs: { y: number[][] } };
      }>(`SELECT id, status, result FROM jobs WHERE model_name = 'identity'`);
      const byId = new Map(rows.map((row) => [row.id, row]));
      for (const [key, { id, row }] of acked) {
        const job = byId.get(id);
        assert.ok(job, `the job acknowledged for ${key} exists`);
        assert.equal(job.status, 'succeeded', `${key}: ${JSON.stringify(job)}`);
        assert.deepEqual(job.result.outputs.y, [row], key);
      }
      const [keys] = await cluster.query<{ keys: number; jobs: number }>(
        `SELECT count(*)::int AS keys, count(DISTINCT job_id)::int AS jobs FROM idempotency_keys`,
      );
      assert.equal(keys!.jobs, keys!.keys, 'one job per key');
      assert.equal(rows.length, acked.size, 'no job beyond the acknowledged ones');
      // Recorded once. A worker whose outcome write committed but whose answer was lost with the
      // connection writes it again, is refused by the fence, and counts the attempt as lost: the
      // successes may fall short of the jobs by those, never exceed them.
      const attempts = await Promise.all(workers.map((worker) => worker.jobAttempts()));
      const total = (outcome: string) =>
        attempts.reduce((sum, counts) => sum + (counts[`identity/${outcome}`] ?? 0), 0);
      assert.ok(total('succeeded') <= rows.length, JSON.stringify(attempts));
      assert.ok(total('succeeded') + total('lost') >= rows.length, JSON.stringify(attempts));

      // Each process lived through it; each worker said once per fault that it lost the database.
      for (const process of [gateway, ...workers]) assert.ok(process.running, process.describe());
      for (const worker of workers) assertOutagesReported(worker);
      process.stderr.write(`database-outage: attempts by worker ${JSON.stringify(attempts)}\n`);
    },
  );
});

function assertOutagesReported(worker: Worker): void {
  const lost = worker.logRecords('lost the database; trying again with backoff').length;
  const back = worker.logRecords('the database is back').length;
  assert.ok(lost >= 1 && lost <= 3, `lost ${lost} times: ${worker.describe()}`);
  assert.equal(back, lost, worker.describe());
  assert.equal(worker.logRecords('claiming jobs failed; retrying with backoff').length, 0, worker.describe());
}
