// Real modelgate processes for crash tests: gateways (`serve --no-workers`) and `worker`s spawned from
// bin/modelgate.js on one fresh Postgres schema and artifact folder. Each process gets its own
// application_name, so a test can find its database connections (and terminate them); every child is
// killed, by its pid, when the test ends, whatever happened.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import pg from 'pg';
import { generateKey } from '../../src/auth/keys.ts';
import { ModelgateClient } from '../../src/client/client.ts';
import { createTestSchema, dropTestSchema } from './databases.ts';

export const BIN = new URL('../../bin/modelgate.js', import.meta.url).pathname;

/** How long a process may take to say it is running: tsx compiles the sources, ONNX Runtime loads. */
const START_TIMEOUT_MS = 60_000;
const EXIT_TIMEOUT_MS = 15_000;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A spawned modelgate process. */
export class ModelgateProcess {
  readonly pid: number;
  /** Resolves once the process has exited (never rejects). */
  readonly exited: Promise<Exit>;
  private output = '';

  constructor(
    readonly role: 'gateway' | 'worker',
    /** The application_name of its database connections. */
    readonly applicationName: string,
    readonly child: ChildProcess,
  ) {
    assert.ok(child.pid !== undefined, `${role} did not start`);
    this.pid = child.pid;
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (this.output += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.output += chunk));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Signals this process by its pid. */
  signal(signal: NodeJS.Signals): void {
    process.kill(this.pid, signal);
  }

  /** Its exit, or a failure naming what it printed when it does not exit within `timeoutMs`. */
  async waitForExit(timeoutMs = EXIT_TIMEOUT_MS): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${this.describe()} did not exit within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.exited, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Everything it wrote so far: JSON log lines on stdout, messages on stderr. */
  log(): string {
    return this.output;
  }

  /** The pino log records it wrote whose msg is `message`. */
  logRecords(message: string): Record<string, unknown>[] {
    return this.output
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((record) => record.msg === message);
  }

  describe(): string {
    return `${this.role} pid ${this.pid} (${this.applicationName}); its output:\n${this.output.slice(-4000)}`;
  }

  /** Resolves with the first match of `pattern` in its output; fails if it exits or takes too long. */
  waitForOutput(pattern: RegExp, timeoutMs = START_TIMEOUT_MS): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const match = pattern.exec(this.output);
        if (!match) return false;
        finish();
        resolve(match);
        return true;
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
        finish();
        reject(new Error(`${this.describe()}\nexited (${code ?? signal}) before printing ${pattern}`));
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`${this.describe()}\ndid not print ${pattern} within ${timeoutMs} ms`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.child.stderr?.off('data', check);
        this.child.stdout?.off('data', check);
        this.child.off('exit', onExit);
      };
      if (check()) return;
      if (!this.running) return onExit(this.child.exitCode, this.child.signalCode);
      // Registered after the output collectors, so the chunk is already appended when check() runs.
      this.child.stderr?.on('data', check);
      this.child.stdout?.on('data', check);
      this.child.once('exit', onExit);
    });
  }
}

export class Gateway extends ModelgateProcess {
  url = '';
}

export class Worker extends ModelgateProcess {
  /** Its id in the workers table and in job leases (wrk_…). */
  id = '';
  /** Base URL of its /metrics and /healthz. */
  metricsUrl = '';

  /** Its modelgate_job_attempts_total counters, by `model/outcome` (succeeded, retried, failed, lost). */
  async jobAttempts(): Promise<Record<string, number>> {
    const response = await fetch(`${this.metricsUrl}/metrics`);
    assert.equal(response.status, 200);
    const counts: Record<string, number> = {};
    for (const match of (await response.text()).matchAll(/^modelgate_job_attempts_total\{(.*)\} (\S+)$/gm)) {
      const labels = Object.fromEntries(
        [...match[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((label) => [label[1]!, label[2]!]),
      );
      counts[`${labels.model}/${labels.outcome}`] = Number(match[2]);
    }
    return counts;
  }
}

export interface ClusterOptions {
  /** MODELGATE_* variables over the defaults below, for every process of the cluster. */
  env?: Record<string, string>;
  /**
   * Where the processes reach the database, when not straight at the server (a proxy in front of it);
   * the test's own queries always go straight.
   */
  processDatabaseUrl?: string;
}

/**
 * One modelgate deployment for one test: a fresh schema on the Postgres server at `databaseUrl`, a
 * temporary artifact folder, an admin key, and the processes the test starts on them. Closed (children
 * killed, schema dropped, folder removed) when the test ends.
 */
export class Cluster {
  readonly adminKey = generateKey().secret;
  readonly processes: ModelgateProcess[] = [];
  private readonly pool: pg.Pool;
  private started = 0;

  private constructor(
    private readonly databaseUrl: string,
    readonly schema: string,
    readonly dataDir: string,
    private readonly env: Record<string, string>,
    private readonly processDatabaseUrl: string,
  ) {
    this.pool = new pg.Pool({
      connectionString: withApplicationName(databaseUrl, `${schema}_test`),
      options: `-c search_path=${schema}`,
      max: 4,
    });
    this.pool.on('error', () => {});
  }

  static async start(t: TestContext, databaseUrl: string, options: ClusterOptions = {}): Promise<Cluster> {
    const schema = await createTestSchema(databaseUrl, 'jobs_processes');
    const dataDir = await mkdtemp(join(tmpdir(), 'modelgate-processes-'));
    const processUrl = options.processDatabaseUrl ?? databaseUrl;
    const cluster = new Cluster(databaseUrl, schema, dataDir, options.env ?? {}, processUrl);
    t.after(() => cluster.close());
    return cluster;
  }

  /** The environment of a process named `applicationName`: only this cluster's MODELGATE_* settings. */
  private envFor(applicationName: string, overrides: Record<string, string>): NodeJS.ProcessEnv {
    const inherited = Object.fromEntries(
      Object.entries(process.env).filter(
        ([name]) => !name.startsWith('MODELGATE_') && name !== 'DATABASE_URL' && name !== 'NODE_TEST_CONTEXT',
      ),
    );
    return {
      ...inherited,
      MODELGATE_DATABASE_URL: withApplicationName(this.processDatabaseUrl, applicationName),
      MODELGATE_DATABASE_SCHEMA: this.schema,
      MODELGATE_DATA_DIR: this.dataDir,
      MODELGATE_ARTIFACTS_DIR: join(this.dataDir, 'artifacts'),
      MODELGATE_ADMIN_KEY: this.adminKey,
      MODELGATE_LOG_LEVEL: 'warn',
      MODELGATE_INFERENCE_THREADS: '1',
      MODELGATE_JOB_LEASE_MS: '10000',
      MODELGATE_JOB_POLL_MS: '200',
      MODELGATE_JOB_RETRY_BASE_MS: '100',
      ...this.env,
      ...overrides,
    };
  }

  private spawn<P extends ModelgateProcess>(
    Kind: new (role: 'gateway' | 'worker', name: string, child: ChildProcess) => P,
    role: 'gateway' | 'worker',
    args: string[],
    env: Record<string, string>,
  ): P {
    const applicationName = `${this.schema}_${role}${++this.started}`;
    const child = spawn(process.execPath, [BIN, ...args], {
      env: this.envFor(applicationName, env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const started = new Kind(role, applicationName, child);
    this.processes.push(started);
    liveChildren.add(started.pid);
    void started.exited.then(() => liveChildren.delete(started.pid));
    return started;
  }

  /** Starts `modelgate serve --no-workers --port 0` and waits until it prints its URL. */
  async startGateway(env: Record<string, string> = {}): Promise<Gateway> {
    const gateway = this.spawn(Gateway, 'gateway', ['serve', '--no-workers', '--port', '0'], env);
    gateway.url = (await gateway.waitForOutput(/modelgate is running at (http:\/\/\S+)/))[1]!;
    return gateway;
  }

  /** Starts `modelgate worker` (with /metrics on a free port) and waits until it says it is running. */
  async startWorker(env: Record<string, string> = {}): Promise<Worker> {
    const worker = this.spawn(Worker, 'worker', ['worker'], { MODELGATE_METRICS_PORT: '0', ...env });
    const match = await worker.waitForOutput(
      /modelgate worker (wrk_\S+) is running \(pid (\d+)\); metrics at (http:\/\/\S+)\/metrics/,
    );
    assert.equal(Number(match[2]), worker.pid, 'the worker reports its own pid');
    worker.id = match[1]!;
    worker.metricsUrl = match[3]!;
    return worker;
  }

  /** A client of `gateway` with the admin key. */
  client(gateway: Gateway): ModelgateClient {
    return new ModelgateClient({ url: gateway.url, key: this.adminKey });
  }

  /** A query on this cluster's schema, on a connection of the test's own. */
  async query<Row = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<Row[]> {
    return (await this.pool.query(sql, params)).rows as Row[];
  }

  /** A connection of the test's own on this schema (release it when done). */
  connect(): Promise<pg.PoolClient> {
    return this.pool.connect();
  }

  /** Terminates every database connection of `target` (pg_terminate_backend); returns how many. */
  async terminateBackends(target: ModelgateProcess): Promise<number> {
    const rows = await this.query<{ terminated: boolean }>(
      `SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity WHERE application_name = $1`,
      [target.applicationName],
    );
    return rows.filter((row) => row.terminated).length;
  }

  async close(): Promise<void> {
    for (const started of this.processes) {
      if (started.running) started.signal('SIGKILL');
    }
    await Promise.all(this.processes.map((started) => started.waitForExit().catch(() => undefined)));
    await this.pool.end();
    // A killed client's backend may linger a moment; it would hold the schema's locks against the drop.
    const admin = new pg.Client({ connectionString: this.databaseUrl });
    await admin.connect();
    try {
      await admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE starts_with(application_name, $1)`,
        [`${this.schema}_`],
      );
    } finally {
      await admin.end();
    }
    await dropTestSchema(this.databaseUrl, this.schema);
    await rm(this.dataDir, { recursive: true, force: true });
  }
}

/** Children still running: killed if this test process exits without closing its clusters. */
const liveChildren = new Set<number>();
process.once('exit', () => {
  for (const pid of liveChildren) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
});

/** `url` with `?application_name=name`, which node-postgres sends for every connection. */
export function withApplicationName(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.searchParams.set('application_name', name);
  return parsed.toString();
}

/** Polls `read` until `done` holds for its value; fails after `timeoutMs` showing the last value. */
export async function waitUntil<T>(
  what: string,
  read: () => Promise<T>,
  done: (value: T) => boolean,
  { timeoutMs = 30_000, intervalMs = 50 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) {
      assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(value)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
