// graphile-worker as the queue benchmark runs it: this process installs it in a fresh schema and adds the
// jobs (workerUtils.addJob, its own pool); N child processes (peers/graphile-worker.ts) run them.
// graphile-worker deletes a job when it completes and keeps a failed one (attempts = max_attempts,
// unlocked), so a job is finished when its row is gone or has failed for good.
import { join } from 'node:path';
import pg from 'pg';
import { makeWorkerUtils, type WorkerUtils } from 'graphile-worker';
import { startServer, type ServerProcess } from '../lib/children.ts';
import { REPO_ROOT } from '../lib/servers.ts';
import { urlWithApplicationName } from './database.ts';
import { pollUntil, RESULT_POLL_MS } from './poll.ts';
import type { Outcomes, RunningSystem } from './system.ts';
import type { JobWorkload } from './workloads.ts';

const TASK = 'trivial';

export interface GraphileWorkerOptions {
  url: string;
  schema: string;
  workers: number;
  /** Jobs one worker process runs at once. */
  concurrency: number;
  workload: JobWorkload;
}

const peerEnv = () =>
  Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('MODELGATE_')));

export async function startGraphileWorker(options: GraphileWorkerOptions): Promise<RunningSystem> {
  const { schema, workload } = options;
  const poller = new pg.Client({ connectionString: urlWithApplicationName(options.url, 'poll') });
  const workers: ServerProcess[] = [];
  let utils: WorkerUtils | undefined;
  const stop = async () => {
    await Promise.all(workers.map((worker) => worker.stop()));
    await Promise.resolve(utils?.release()).catch(() => undefined);
    await poller.end().catch(() => undefined);
  };
  try {
    utils = await makeWorkerUtils({
      connectionString: urlWithApplicationName(options.url, 'graphile-worker-submitter'),
      schema,
    });
    await utils.migrate();
    await poller.connect();
    for (let i = 1; i <= options.workers; i++) {
      workers.push(
        await startServer({
          label: `graphile-worker-${i}`,
          command: process.execPath,
          args: [
            '--import',
            'tsx',
            join(REPO_ROOT, 'bench/queue/peers/graphile-worker.ts'),
            `--database-url=${urlWithApplicationName(options.url, `graphile-worker-${i}`)}`,
            `--schema=${schema}`,
            `--task=${TASK}`,
            `--concurrency=${options.concurrency}`,
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
    const jobTable = `${pg.escapeIdentifier(schema)}._private_jobs`;
    const submitter = utils;
    const submit = async () => String((await submitter.addJob(TASK, workload.payload)).id);
    return {
      system: 'graphile-worker',
      workers: options.workers,
      workloads: ['trivial'],
      submit,
      async runOne() {
        const id = await submit();
        const row = await pollUntil(
          async () => {
            const { rows } = await poller.query<{ failed: boolean }>(
              `SELECT attempts >= max_attempts AND locked_at IS NULL AS failed FROM ${jobTable} WHERE id = $1`,
              [id],
            );
            return rows[0];
          },
          (value) => value === undefined || value.failed,
        );
        if (row) throw new Error(`job ${id} failed`);
      },
      async countUnfinished() {
        const { rows } = await poller.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM ${jobTable} WHERE attempts < max_attempts OR locked_at IS NOT NULL`,
        );
        return rows[0]!.n;
      },
      async outcomes(ids: readonly string[]): Promise<Outcomes> {
        const { rows } = await poller.query<{ failed: boolean; n: number }>(
          `SELECT attempts >= max_attempts AND locked_at IS NULL AS failed, count(*)::int AS n
           FROM ${jobTable} WHERE id = ANY($1::bigint[]) GROUP BY 1`,
          [ids],
        );
        const failed = rows.find((row) => row.failed)?.n ?? 0;
        const unfinished = rows.find((row) => !row.failed)?.n ?? 0;
        return { succeeded: ids.length - failed - unfinished, failed, unfinished };
      },
      processes: () => workers.map((worker, i) => ({ label: `worker-${i + 1}`, pid: worker.pid })),
      describe: () => ({
        command: `${options.workers} x node --import tsx bench/queue/peers/graphile-worker.ts`,
        database: `Postgres, schema ${schema}`,
        worker: {
          call: 'run({ connectionString, schema, concurrency, taskList, noHandleSignals: true }) once per process',
          concurrency: options.concurrency,
          otherOptions:
            'defaults: maxPoolSize 10, pollInterval 2000 ms (LISTEN/NOTIFY wakes it), no localQueue, completeJobBatchDelay off',
          task: 'reads the job’s input rows and returns; graphile-worker deletes the completed job',
        },
        submit: 'workerUtils.addJob(task, {"instances": [row]}) from the benchmark process (pool of 10)',
        result: `SELECT … FROM <schema>._private_jobs WHERE id = $1, every ${RESULT_POLL_MS} ms, until the row is gone`,
        batchCompletion:
          'SELECT count(*) FROM <schema>._private_jobs WHERE attempts < max_attempts OR locked_at IS NOT NULL until 0',
      }),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
