// The databases a store conformance suite runs on: in-memory PGlite always, and a fresh schema on the
// Postgres server at TEST_DATABASE_URL when set (required in CI), dropped again when the Db is closed.
import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import pg from 'pg';
import type { Db } from '../../src/store/db.ts';
import { openPglite } from '../../src/store/pglite.ts';
import { openPostgres } from '../../src/store/postgres.ts';

export interface TestDatabase {
  name: Db['driver'];
  /** Opens a fresh, empty (not yet migrated) database; closing the Db removes it. */
  open(): Promise<Db>;
}

const ENABLE_POSTGRES_HINT = 'TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test';
/** The statement deadline of the tests' Postgres Dbs (the configuration's default). */
export const TEST_DATABASE_TIMEOUT_MS = 15_000;
/** Postgres truncates identifiers at 63 bytes; a tag this long leaves room for `t_` and the random suffix. */
const MAX_TAG_LENGTH = 40;

/**
 * The Postgres server tests may create schemas on, or undefined when none is configured. Throws when unset
 * in CI (`CI=true`): there the Postgres half of the suites must never be skipped.
 */
export function testDatabaseUrl(): string | undefined {
  const url = process.env.TEST_DATABASE_URL;
  if (url) return url;
  if (process.env.CI === 'true') {
    throw new Error('TEST_DATABASE_URL is unset in CI, where the Postgres half of the tests must run');
  }
  return undefined;
}

/** Every driver the suite must pass on. `tag` names the schemas (default: the running test file's name). */
export function testDatabases(tag = runningFileTag()): TestDatabase[] {
  const pglite: TestDatabase = { name: 'pglite', open: () => openPglite(undefined) };
  const url = testDatabaseUrl();
  if (url === undefined) {
    process.stderr.write(
      `${tag}: TEST_DATABASE_URL is unset, so the Postgres half is skipped; run with ${ENABLE_POSTGRES_HINT}\n`,
    );
    return [pglite];
  }
  return [pglite, { name: 'postgres', open: () => openPostgresInFreshSchema(url, tag) }];
}

/** Creates an empty schema named `t_<tag>_<random>` and returns its name. */
export async function createTestSchema(url: string, tag: string): Promise<string> {
  const schema = `t_${sanitizeTag(tag)}_${randomBytes(4).toString('hex')}`;
  await withAdminClient(url, (client) => client.query(`CREATE SCHEMA ${pg.escapeIdentifier(schema)}`));
  return schema;
}

/** Drops the schema and everything in it; a schema that is already gone is fine. */
export async function dropTestSchema(url: string, schema: string): Promise<void> {
  await withAdminClient(url, (client) =>
    client.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`),
  );
}

async function openPostgresInFreshSchema(url: string, tag: string): Promise<Db> {
  const schema = await createTestSchema(url, tag);
  let db: Db;
  try {
    db = await openPostgres(url, { schema, timeoutMs: TEST_DATABASE_TIMEOUT_MS });
  } catch (error) {
    await dropTestSchema(url, schema);
    throw error;
  }
  return {
    ...db,
    async close() {
      try {
        await db.close();
      } finally {
        // After the pool has ended, so no connection of the Db still holds a lock in the schema.
        await dropTestSchema(url, schema);
      }
    },
  };
}

/** Runs `fn` on a connection of its own, closed afterwards whatever happens. */
async function withAdminClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

function runningFileTag(): string {
  // With the default process isolation of `node --test`, each test file runs as its own process's main module.
  const entry = process.argv[1];
  return entry === undefined ? 'test' : basename(entry).replace(/\.test\.[cm]?[jt]s$|\.[cm]?[jt]s$/, '');
}

/** Lowercase letters, digits and underscores only: openPostgres puts the schema into search_path unquoted. */
function sanitizeTag(tag: string): string {
  const clean = tag
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, MAX_TAG_LENGTH);
  return clean === '' ? 'test' : clean;
}
