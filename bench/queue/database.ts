// The Postgres server of the queue benchmark: its URL, one fresh schema per system and worker count
// (dropped at the end, and swept on the next run if an interrupted run left one behind), and the
// application_name every connection of the run carries, so that the CPU of the backends serving a system
// can be told apart from other clients of the same server.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';
/** Schemas of this benchmark are named `qbench_<pid>_<system>_<random>`. */
const SCHEMA_PREFIX = 'qbench_';
/** application_name of every connection the run makes: `qbench-<pid>-<role>`. */
export const APPLICATION_NAME_PREFIX = `qbench-${process.pid}-`;

export function benchDatabaseUrl(env: NodeJS.ProcessEnv): string {
  return env.BENCH_DATABASE_URL || env.TEST_DATABASE_URL || DEFAULT_DATABASE_URL;
}

/** The URL with `application_name=qbench-<pid>-<role>`: node-postgres takes it from the URL. */
export function urlWithApplicationName(url: string, role: string): string {
  const parsed = new URL(url);
  parsed.searchParams.set('application_name', `${APPLICATION_NAME_PREFIX}${role}`);
  return parsed.toString();
}

/** The URL without its password, for results files. */
export function redactedUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

/** A fresh schema name; `create` also creates it (pg-boss and graphile-worker create their own). */
export function newSchemaName(system: string): string {
  const tag = system.replace(/[^a-z0-9]+/g, '_');
  return `${SCHEMA_PREFIX}${process.pid}_${tag}_${randomBytes(3).toString('hex')}`;
}

export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: urlWithApplicationName(url, 'admin') });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function createSchema(url: string, schema: string): Promise<void> {
  await withClient(url, (client) => client.query(`CREATE SCHEMA ${pg.escapeIdentifier(schema)}`));
}

export async function dropSchema(url: string, schema: string): Promise<void> {
  await withClient(url, (client) =>
    client.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`),
  );
}

/** True while a process with this pid runs (an interrupted run's leftovers are named by its pid). */
export const isProcessAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** Drops the schemas of earlier runs whose process is gone (an interrupted run cannot drop its own). */
export async function dropLeftoverSchemas(url: string): Promise<string[]> {
  return withClient(url, async (client) => {
    const { rows } = await client.query<{ name: string }>(
      `SELECT nspname AS name FROM pg_namespace WHERE nspname LIKE $1`,
      [`${SCHEMA_PREFIX}%`],
    );
    const stale = rows
      .map((row) => row.name)
      .filter((name) => {
        const pid = Number(/^qbench_(\d+)_/.exec(name)?.[1]);
        return Number.isInteger(pid) && pid !== process.pid && !isProcessAlive(pid);
      });
    for (const name of stale)
      await client.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(name)} CASCADE`);
    return stale;
  });
}

/** Server version and the settings that shape queue performance, for the results file. */
export async function describeServer(url: string): Promise<Record<string, string>> {
  return withClient(url, async (client) => {
    const { rows } = await client.query<{ name: string; setting: string; unit: string | null }>(
      `SELECT name, setting, unit FROM pg_settings
       WHERE name IN ('server_version', 'max_connections', 'shared_buffers', 'synchronous_commit', 'fsync',
                      'autovacuum', 'wal_level', 'work_mem')`,
    );
    return Object.fromEntries(
      rows.map((row) => [row.name, row.unit ? `${row.setting} (${row.unit})` : row.setting]),
    );
  });
}
