// modelgate as the queue benchmark runs it, from bin/modelgate.js like an operator would. On Postgres: a
// gateway (`serve --no-workers`) and N `worker` processes on one fresh schema, sharing a data directory
// (the artifact store) under bench/tmp/. On PGlite: one `serve` process with its embedded database and
// in-process worker. Jobs go in through POST /v1/models/{name}/jobs and come back through
// GET /v1/jobs/{id}?wait=N; completion of a whole batch is read from the jobs table (Postgres) or the
// jobs listing (PGlite, whose database only its own process can open).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { Pool } from 'undici';
import { resolveConfig } from '../../src/config/config.ts';
import { startServer, type ServerProcess } from '../lib/children.ts';
import { HOST, REPO_ROOT } from '../lib/servers.ts';
import { urlWithApplicationName } from './database.ts';
import type { Outcomes, RunningSystem, WorkloadId } from './system.ts';
import type { JobWorkload } from './workloads.ts';

/** modelgate settings the benchmark sets; every other MODELGATE_* variable of this environment passes through. */
export const OWNED_MODELGATE_ENV = [
  'MODELGATE_DATA_DIR',
  'MODELGATE_ARTIFACTS_DIR',
  'MODELGATE_PORT',
  'MODELGATE_HOST',
  'MODELGATE_ADMIN_KEY',
  'MODELGATE_LOG_LEVEL',
  'MODELGATE_DATABASE_URL',
  'MODELGATE_DATABASE_SCHEMA',
  'MODELGATE_WORKERS',
  'MODELGATE_CONFIG',
  'DATABASE_URL',
];

/**
 * One inference thread per process unless MODELGATE_INFERENCE_THREADS says otherwise: on 2 cores that is
 * modelgate's own default, and with 4 workers on 2 cores more threads per worker would only oversubscribe.
 */
export const DEFAULT_BENCH_INFERENCE_THREADS = '1';

/** A long poll waits at most this long for one job (the API allows up to 60 s). */
const WAIT_SECONDS = 10;
const LIST_PAGE_SIZE = 1000;

export interface ModelgateOptions {
  runDir: string;
  adminKey: string;
  workloads: readonly JobWorkload[];
  /** On Postgres: the server, the fresh (existing, empty) schema and the number of worker processes. */
  postgres?: { url: string; schema: string; workers: number };
  /** Extra node flags for every modelgate process (e.g. --cpu-prof). */
  nodeArgs?: readonly string[];
  /** The checkout to run (bench:queue-ab compares two). Default: this one. */
  root?: string;
  /** Run the build (dist/, made by `npm run build`) as production does, not the sources through tsx. */
  build?: boolean;
}

export function modelgateEnv(options: ModelgateOptions, dataDir: string, role: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of OWNED_MODELGATE_ENV) delete env[name];
  env.MODELGATE_INFERENCE_THREADS ??= DEFAULT_BENCH_INFERENCE_THREADS;
  Object.assign(env, {
    MODELGATE_DATA_DIR: dataDir,
    MODELGATE_ADMIN_KEY: options.adminKey,
    MODELGATE_LOG_LEVEL: 'warn',
  });
  if (options.postgres) {
    env.MODELGATE_DATABASE_URL = urlWithApplicationName(options.postgres.url, role);
    env.MODELGATE_DATABASE_SCHEMA = options.postgres.schema;
  }
  return env;
}

/** The configuration each process resolves, as modelgate itself resolves it, key and URL left out. */
function resolvedConfig(env: NodeJS.ProcessEnv, flags: { workers: boolean; http: boolean }) {
  try {
    const config: Record<string, unknown> = {
      ...resolveConfig({ host: HOST, port: 0, workers: flags.workers }, env),
    };
    delete config.adminKey;
    if (config.databaseUrl) config.databaseUrl = '(the benchmark database, with an application_name)';
    if (!flags.http)
      for (const key of ['host', 'port', 'bodyLimitBytes', 'uploadLimitBytes']) delete config[key];
    return config;
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}

export function startModelgateProcess(
  label: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  { nodeArgs = [], root = REPO_ROOT, build = false }: Pick<ModelgateOptions, 'nodeArgs' | 'root' | 'build'>,
): Promise<ServerProcess> {
  return startServer({
    label,
    command: process.execPath,
    args: [...nodeArgs, join(root, build ? 'dist/src/cli/main.js' : 'bin/modelgate.js'), ...args],
    cwd: root,
    env,
    parseReadyLine: (line) => {
      const gateway = /modelgate is running at (http:\/\/\S+)/.exec(line);
      if (gateway) return { url: gateway[1]! };
      const worker = /modelgate worker (\S+) is running/.exec(line);
      return worker ? { url: '', info: { workerId: worker[1]! } } : undefined;
    },
  });
}

interface JobView {
  id: string;
  status: string;
  result?: unknown;
  error?: unknown;
}

export async function startModelgate(options: ModelgateOptions): Promise<RunningSystem> {
  const { postgres } = options;
  const dataDir = join(options.runDir, postgres ? `modelgate-${postgres.schema}` : 'modelgate-pglite');
  mkdirSync(dataDir, { recursive: true });
  const gatewayEnv = modelgateEnv(options, dataDir, 'modelgate-gateway');
  const serveArgs = ['serve', '--host', HOST, '--port', '0', ...(postgres ? ['--no-workers'] : [])];
  let gateway: ServerProcess | undefined;
  const workers: ServerProcess[] = [];
  let poller: pg.Client | undefined;
  let client: Pool | undefined;
  const stop = async () => {
    // Workers first, so that none is left polling a gateway's database that went away.
    await Promise.all(workers.filter(Boolean).map((child) => child.stop()));
    await gateway?.stop();
    await poller?.end().catch(() => undefined);
    await client?.close().catch(() => undefined);
  };
  try {
    const started = await startModelgateProcess(
      postgres ? 'modelgate-gateway' : 'modelgate-pglite',
      serveArgs,
      gatewayEnv,
      options,
    );
    gateway = started;
    const workerEnvs = Array.from({ length: postgres?.workers ?? 0 }, (_, i) =>
      modelgateEnv(options, dataDir, `modelgate-worker-${i + 1}`),
    );
    await Promise.all(
      workerEnvs.map(async (env, i) => {
        workers[i] = await startModelgateProcess(`modelgate-worker-${i + 1}`, ['worker'], env, options);
      }),
    );
    const headers = { authorization: `Bearer ${options.adminKey}` };
    // Deployed after the workers started: every process hears of the new model and loads it.
    for (const workload of options.workloads) {
      const response = await fetch(`${started.url}/v1/models/${workload.model}/versions`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/octet-stream' },
        body: Buffer.from(workload.onnx),
      });
      if (response.status !== 201) {
        throw new Error(`deploying ${workload.model} answered ${response.status}: ${await response.text()}`);
      }
    }
    if (postgres) {
      poller = new pg.Client({ connectionString: urlWithApplicationName(postgres.url, 'poll') });
      await poller.connect();
    }

    const byId = new Map(options.workloads.map((workload) => [workload.id, workload]));
    const jsonHeaders = { ...headers, 'content-type': 'application/json' };
    const jobsTable = postgres ? `${pg.escapeIdentifier(postgres.schema)}.jobs` : '';
    // undici's own API: a keep-alive pool that costs the client a fraction of the CPU fetch() does, so
    // the shared cores go to the system measured.
    const http = (client = new Pool(started.url));
    const getJson = async <T>(path: string): Promise<T> => {
      const response = await http.request({ path, method: 'GET', headers });
      if (response.statusCode !== 200)
        throw new Error(`GET ${path} answered ${response.statusCode}: ${await response.body.text()}`);
      return (await response.body.json()) as T;
    };
    const countListed = async (status: string, model: string, wanted: Set<string>) => {
      let found = 0;
      let cursor: string | null = null;
      do {
        const query: string = `status=${status}&model=${model}&limit=${LIST_PAGE_SIZE}${cursor ? `&cursor=${cursor}` : ''}`;
        const page: { jobs: { id: string }[]; next_cursor: string | null } = await getJson(
          `/v1/jobs?${query}`,
        );
        found += page.jobs.filter((job) => wanted.has(job.id)).length;
        cursor = page.next_cursor;
      } while (cursor);
      return found;
    };

    return {
      system: postgres ? 'modelgate' : 'modelgate-pglite',
      workers: postgres?.workers ?? 1,
      workloads: options.workloads.map((workload) => workload.id),
      async submit(workload: WorkloadId) {
        const { model, body } = byId.get(workload)!;
        const response = await http.request({
          path: `/v1/models/${model}/jobs`,
          method: 'POST',
          headers: jsonHeaders,
          body,
        });
        if (response.statusCode !== 202)
          throw new Error(`submit answered ${response.statusCode}: ${await response.body.text()}`);
        return ((await response.body.json()) as JobView).id;
      },
      async runOne(workload: WorkloadId) {
        const { model, body } = byId.get(workload)!;
        const response = await http.request({
          path: `/v1/models/${model}/jobs`,
          method: 'POST',
          headers: { ...jsonHeaders, prefer: `wait=${WAIT_SECONDS}` },
          body,
        });
        const job = (await response.body.json()) as JobView;
        if (response.statusCode !== 202 || job.status !== 'succeeded' || !job.result) {
          throw new Error(
            `job ${job.id} answered ${response.statusCode}, ${job.status}: ${JSON.stringify(job)}`,
          );
        }
      },
      async countUnfinished() {
        if (poller) {
          const { rows } = await poller.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM ${jobsTable} WHERE status IN ('queued', 'running')`,
          );
          return rows[0]!.n;
        }
        // The embedded database is this process's alone: ask the API whether any job is still waiting.
        for (const status of ['queued', 'running']) {
          const page = await getJson<{ jobs: unknown[] }>(`/v1/jobs?status=${status}&limit=1`);
          if (page.jobs.length > 0) return 1;
        }
        return 0;
      },
      async outcomes(ids: readonly string[], workload: WorkloadId): Promise<Outcomes> {
        let succeeded: number;
        let failed: number;
        if (poller) {
          const { rows } = await poller.query<{ status: string; n: number }>(
            `SELECT status, count(*)::int AS n FROM ${jobsTable} WHERE id = ANY($1) GROUP BY status`,
            [ids],
          );
          const count = (status: string) => rows.find((row) => row.status === status)?.n ?? 0;
          succeeded = count('succeeded');
          failed = count('failed') + count('canceled');
        } else {
          const wanted = new Set(ids);
          const model = byId.get(workload)!.model;
          succeeded = await countListed('succeeded', model, wanted);
          failed =
            (await countListed('failed', model, wanted)) + (await countListed('canceled', model, wanted));
        }
        return { succeeded, failed, unfinished: ids.length - succeeded - failed };
      },
      processes: () => [
        { label: postgres ? 'gateway' : 'serve', pid: started.pid },
        ...workers.map((worker, i) => ({ label: `worker-${i + 1}`, pid: worker.pid })),
      ],
      describe: () => ({
        command: postgres
          ? `node bin/modelgate.js ${serveArgs.join(' ')} + ${postgres.workers} x node bin/modelgate.js worker`
          : `node bin/modelgate.js ${serveArgs.join(' ')}`,
        database: postgres
          ? `Postgres, schema ${postgres.schema}`
          : 'PGlite (embedded, in the serve process)',
        gateway: resolvedConfig(gatewayEnv, { workers: !postgres, http: true }),
        ...(postgres
          ? { worker: resolvedConfig(workerEnvs[0] ?? gatewayEnv, { workers: true, http: false }) }
          : {}),
        submit: 'POST /v1/models/{name}/jobs, JSON {"instances": [row]}, keep-alive (undici Pool)',
        result: `latency: POST with Prefer: wait=${WAIT_SECONDS}, answered once the job has finished (woken by the jobs-done notice)`,
        batchCompletion: postgres
          ? `SELECT count(*) FROM <schema>.jobs WHERE status IN ('queued', 'running') until 0`
          : 'GET /v1/jobs?status=queued&limit=1, then ?status=running&limit=1, until both are empty',
      }),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
