// A batch run across real OS processes on a real Postgres: the worker running it is killed with SIGKILL
// and the gateway restarted in the middle; after a new worker starts, the batch completes and its output
// has every row exactly once, in input order. Needs TEST_DATABASE_URL; skipped, saying so, without it.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { testDatabaseUrl } from './helpers/databases.ts';
import { buildSlowModel } from './helpers/platform.ts';
import { Cluster, waitUntil } from './helpers/processes.ts';

const SKIP_MESSAGE =
  'TEST_DATABASE_URL is unset; run with TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test';
// Throws in CI when unset: there these tests must run.
const databaseUrl = testDatabaseUrl();
if (databaseUrl === undefined) process.stderr.write(`batches-processes: ${SKIP_MESSAGE}\n`);

const ROWS = 600;
const PART_ROWS = 100;
/** The slow model's input width; it answers each row with its mean. */
const WIDTH = 1024;

/** Row r (from 1) is its id and WIDTH copies of r % 10: the slow model's answer is r % 10, exactly. */
function csv(): string {
  const header = ['id', ...Array.from({ length: WIDTH }, (_, i) => `c${i}`)].join(',');
  const rows = Array.from({ length: ROWS }, (_, i) => [i + 1, ...Array(WIDTH).fill((i + 1) % 10)].join(','));
  return `${header}\n${rows.join('\n')}\n`;
}

interface PartRow {
  batch_part: number;
  status: string;
  attempts: number;
  lease_owner: string | null;
}

describe('batch runs across processes', () => {
  test(
    'a worker killed with SIGKILL and the gateway restarted mid-batch: every row once, in order',
    { timeout: 180_000 },
    async (t) => {
      if (databaseUrl === undefined) {
        t.skip(SKIP_MESSAGE);
        return;
      }
      const cluster = await Cluster.start(t, databaseUrl, { env: { MODELGATE_JOB_LEASE_MS: '3000' } });
      const [gateway, doomed] = await Promise.all([cluster.startGateway(), cluster.startWorker()]);
      const client = cluster.client(gateway);
      await client.deploy('slow', buildSlowModel());
      const features = Array.from({ length: WIDTH }, (_, i) => `c${i}`);
      const submitted = await client.submitBatch('slow', Readable.from([csv()]), {
        contentType: 'text/csv',
        features,
        passthrough: ['id'],
        partRows: PART_ROWS,
      });
      assert.equal(submitted.parts_total, ROWS / PART_ROWS);
      const parts = () =>
        cluster.query<PartRow>(
          `SELECT batch_part, status, attempts, lease_owner FROM jobs WHERE batch_id = $1 ORDER BY batch_part`,
          [submitted.id],
        );

      // Mid-batch: a part done and another running on the worker about to die.
      await waitUntil(
        'a part to have finished and another to be running',
        parts,
        (rows) =>
          rows.some((row) => row.status === 'succeeded') && rows.some((row) => row.status === 'running'),
        { timeoutMs: 60_000, intervalMs: 25 },
      );
      doomed.signal('SIGKILL');
      assert.deepEqual(await doomed.waitForExit(), { code: null, signal: 'SIGKILL' });
      gateway.signal('SIGTERM');
      assert.deepEqual(await gateway.waitForExit(), { code: 0, signal: null }, gateway.describe());
      const interrupted = (await parts()).filter((row) => row.status === 'running');
      assert.ok(interrupted.length > 0, 'the dead worker held a part');
      // The dead worker's lease runs out on the clock (3 s), and the new worker takes its part back.

      const [restarted] = await Promise.all([cluster.startGateway(), cluster.startWorker()]);
      const newClient = cluster.client(restarted);
      const done = await waitUntil(
        `batch ${submitted.id} to finish`,
        () => newClient.getBatch(submitted.id),
        (batch) => !['queued', 'running'].includes(batch.status),
        { timeoutMs: 120_000, intervalMs: 100 },
      );
      assert.equal(done.status, 'succeeded', JSON.stringify(done));
      assert.deepEqual([done.rows_done, done.rows_failed, done.parts_done], [ROWS, 0, ROWS / PART_ROWS]);
      const rerun = (await parts()).filter((row) =>
        interrupted.some((part) => part.batch_part === row.batch_part),
      );
      assert.ok(
        rerun.every((row) => row.status === 'succeeded' && row.attempts === 2),
        JSON.stringify(rerun),
      );

      const output = await (await newClient.batchFile(submitted.id, 'output')).text();
      const [header, ...lines] = output.trimEnd().split('\n');
      assert.equal(header, 'id,y');
      assert.deepEqual(
        lines,
        Array.from({ length: ROWS }, (_, i) => `${i + 1},${(i + 1) % 10}`),
      );
    },
  );
});
