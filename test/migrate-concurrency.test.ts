// migrate() racing itself: real OS processes migrating one fresh Postgres schema at the same moment, and
// concurrent calls on one Db of each driver. Exactly one caller applies each migration; the rest wait.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Db } from '../src/store/db.ts';
import { migrate, readMigrations } from '../src/store/migrate.ts';
import { openPostgres } from '../src/store/postgres.ts';
import {
  createTestSchema,
  dropTestSchema,
  TEST_DATABASE_TIMEOUT_MS,
  testDatabaseUrl,
  testDatabases,
} from './helpers/databases.ts';

const CHILD_SCRIPT = fileURLToPath(new URL('./helpers/migrate-child.ts', import.meta.url));
const PROCESS_COUNT = 4;

interface MigrateChild {
  process: ChildProcessWithoutNullStreams;
  /** Resolves once the child is connected and waiting for the start signal. */
  ready: Promise<void>;
  /** Resolves when the child has exited and its output is complete. */
  finished: Promise<{ exitCode: number | null; stdout: string; stderr: string }>;
}

function startMigrateChild(url: string, schema: string): MigrateChild {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD_SCRIPT, url, schema]);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => (stderr += chunk));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      if (stdout.startsWith('ready\n')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`migrate child exited (${code}) before ready: ${stderr}`)));
  });
  const finished = once(child, 'close').then(([exitCode]) => ({
    exitCode: exitCode as number | null,
    stdout,
    stderr,
  }));
  return { process: child, ready, finished };
}

/** Exactly one caller applied every migration and each other caller applied none. */
function assertAppliedExactlyOnce(appliedByCaller: string[][], names: string[]): void {
  const longestFirst = [...appliedByCaller].sort((a, b) => b.length - a.length);
  assert.deepEqual(longestFirst, [names, ...appliedByCaller.slice(1).map(() => [])]);
}

async function assertOneRowPerMigration(db: Db): Promise<void> {
  const expected = (await readMigrations()).map(({ id, name }) => ({ id, name }));
  assert.deepEqual(await db.query('SELECT id, name FROM modelgate_migrations ORDER BY id'), expected);
}

test(
  `${PROCESS_COUNT} processes migrating one fresh Postgres schema at once: one applies it, the rest nothing`,
  { timeout: 120_000 },
  async (t) => {
    const url = testDatabaseUrl();
    if (url === undefined) {
      t.skip(
        'TEST_DATABASE_URL is unset; run with TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test',
      );
      return;
    }
    const schema = await createTestSchema(url, 'migrate_concurrency');
    t.after(() => dropTestSchema(url, schema));
    const children = Array.from({ length: PROCESS_COUNT }, () => startMigrateChild(url, schema));
    // Runs before the schema is dropped (after hooks run in order): no child may outlive a failed test.
    t.after(() => {
      for (const child of children) if (child.process.exitCode === null) child.process.kill();
    });

    // Start them together: every child has connected (tsx start-up takes a while) before any migrates.
    await Promise.all(children.map((child) => child.ready));
    for (const child of children) child.process.stdin.end();
    const results = await Promise.all(children.map((child) => child.finished));

    for (const { exitCode, stderr } of results) assert.equal(exitCode, 0, stderr);
    const names = (await readMigrations()).map((migration) => migration.name);
    assert.ok(names.includes('0001_init.sql'));
    assertAppliedExactlyOnce(
      results.map(({ stdout }) => JSON.parse(stdout.split('\n')[1] ?? '') as string[]),
      names,
    );
    const db = await openPostgres(url, { schema, timeoutMs: TEST_DATABASE_TIMEOUT_MS });
    try {
      await assertOneRowPerMigration(db);
    } finally {
      await db.close();
    }
  },
);

for (const database of testDatabases()) {
  test(`two migrate() calls started together on one ${database.name} Db apply the schema once`, async () => {
    const db = await database.open();
    try {
      const names = (await readMigrations()).map((migration) => migration.name);
      assertAppliedExactlyOnce(await Promise.all([migrate(db), migrate(db)]), names);
      await assertOneRowPerMigration(db);
    } finally {
      await db.close();
    }
  });
}
