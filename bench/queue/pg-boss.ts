// pg-boss as the queue benchmark runs it: this process installs it in a fresh schema, creates the queue and
// sends the jobs (boss.send, its own pool); N child processes (peers/pg-boss-worker.ts) work them. pg-boss
// has no completion notice, so completion is read from its job table: a job's state becomes 'completed'.
import { join } from 'node:path';
import pg from 'pg';
import PgBoss from 'pg-boss';
import { startServer, type ServerProcess } from '../lib/children.ts';
import { REPO_ROOT } from '../lib/servers.ts';
import { urlWithApplicationName } from './database.ts';
import { pollUntil, RESULT_POLL_MS } from './poll.ts';
import type { Outcomes, RunningSystem } from './system.ts';
import type { JobWorkload } from './workloads.ts';

const QUEUE = 'trivial';

export interface PgBossOptions {
  url: string;
  schema: string;
  workers: number;
  /** Jobs one work() call fetches per poll: the jobs a worker process holds at once. */
  batchSize: number;
  /** pg-boss's polling interval; 0.5 s is the least it accepts. */
  pollingIntervalSeconds: number;
  workload: JobWorkload;
}

const peerEnv = () =>
  Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('MODELGATE_')));

export async function startPgBoss(options: PgBossOptions): Promise<RunningSystem> {
  const { schema, workload } = options;
  const boss = new PgBoss({
    // node-postgres takes application_name from the URL over pg-boss's own 'pgboss'.
    connectionString: urlWithApplicationName(options.url, 'pg-boss-submitter'),
    schema,
    // The submitting side only sends: maintenance and cron monitoring run in the workers.
    supervise: false,
    schedule: false,
  });
  boss.on('error', (error: Error) => process.stderr.write(`pg-boss (submitter) error: ${error.message}\n`));
  const poller = new pg.Client({ connectionString: urlWithApplicationName(options.url, 'poll') });
  const workers: ServerProcess[] = [];
  const stop = async () => {
    await Promise.all(workers.map((worker) => worker.stop()));
    await boss.stop({ graceful: false, wait: true }).catch(() => undefined);
    await poller.end().catch(() => undefined);
  };
  try {
    await boss.start();
    await boss.createQueue(QUEUE);
    await poller.connect();
    for (let i = 1; i <= options.workers; i++) {
      workers.push(
        await startServer({
          label: `pg-boss-worker-${i}`,
          command: process.execPath,
          args: [
            '--import',
            'tsx',
            join(REPO_ROOT, 'bench/queue/peers/pg-boss-worker.ts'),
            `--database-url=${urlWithApplicationName(options.url, `pg-boss-worker-${i}`)}`,
            `--schema=${schema}`,
            `--queue=${QUEUE}`,
            `--batch-size=${options.batchSize}`,
            `--polling-interval-seconds=${options.pollingIntervalSeconds}`,
          ],
          cwd: REPO_ROOT,
          env: peerEnv(),
          parseReadyLine: (line) =>
            line.startsWith('{"event":"ready"')
              ? { url: '', info: JSON.parse(line) as Record<string, unknown> }
              : undefined,
        }),
      );
    }
    const jobTable = `${pg.escapeIdentifier(schema)}.job`;
    const stateOf = async (id: string) => {
      const { rows } = await poller.query<{ state: string }>(
        `SELECT state FROM ${jobTable} WHERE name = $1 AND id = $2`,
        [QUEUE, id],
      );
      return rows[0]?.state;
    };
    const submit = async () => {
      const id = await boss.send(QUEUE, workload.payload);
      if (!id) throw new Error('pg-boss did not create the job');
      return id;
    };
    return {
      system: 'pg-boss',
      workers: options.workers,
      workloads: ['trivial'],
      submit,
      async runOne() {
        const id = await submit();
        const state = await pollUntil(
          () => stateOf(id),
          (value) => value === 'completed' || value === 'failed' || value === 'cancelled',
        );
        if (state !== 'completed') throw new Error(`job ${id} is ${state}`);
      },
      async countUnfinished() {
        // States are an enum in this order: created, retry, active, completed, cancelled, failed.
        const { rows } = await poller.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM ${jobTable} WHERE name = $1 AND state < 'completed'`,
          [QUEUE],
        );
        return rows[0]!.n;
      },
      async outcomes(ids: readonly string[]): Promise<Outcomes> {
        const { rows } = await poller.query<{ state: string; n: number }>(
          `SELECT state, count(*)::int AS n FROM ${jobTable} WHERE name = $1 AND id = ANY($2::uuid[]) GROUP BY state`,
          [QUEUE, ids],
        );
        const count = (state: string) => rows.find((row) => row.state === state)?.n ?? 0;
        const succeeded = count('completed');
        const failed = count('failed') + count('cancelled');
        return { succeeded, failed, unfinished: ids.length - succeeded - failed };
      },
      processes: () => workers.map((worker, i) => ({ label: `worker-${i + 1}`, pid: worker.pid })),
      describe: () => ({
        command: `${options.workers} x node --import tsx bench/queue/peers/pg-boss-worker.ts`,
        database: `Postgres, schema ${schema}`,
        queue: `${QUEUE}, policy standard (createQueue defaults)`,
        worker: {
          call: 'boss.work(queue, { batchSize, pollingIntervalSeconds }, handler) once per process',
          batchSize: options.batchSize,
          pollingIntervalSeconds: options.pollingIntervalSeconds,
          handler: 'returns each job’s input rows; pg-boss completes the batch when it returns',
          constructorOptions: 'defaults (pool of 10, supervise and schedule on), schema and application_name',
        },
        submit:
          'boss.send(queue, {"instances": [row]}) from the benchmark process (pool of 10, supervise off)',
        result: `SELECT state FROM <schema>.job WHERE id = $1, every ${RESULT_POLL_MS} ms, until completed`,
        batchCompletion: `SELECT count(*) FROM <schema>.job WHERE name = $1 AND state < 'completed' until 0`,
      }),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
