// Applies the numbered SQL files in ./migrations, in order, once each, under an advisory lock so that
// processes starting at the same time against one database never race.
import { readdir, readFile } from 'node:fs/promises';
import type { Db } from './db.ts';

const MIGRATIONS_DIR = new URL('./migrations/', import.meta.url);
/** Advisory lock key held while migrating: an arbitrary constant owned by modelgate. */
const MIGRATION_LOCK_KEY = 4_242_001;

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

export async function readMigrations(): Promise<Migration[]> {
  const files = (await readdir(MIGRATIONS_DIR)).filter((file) => /^\d{4}_.+\.sql$/.test(file)).sort();
  return Promise.all(
    files.map(async (file) => ({
      id: Number(file.slice(0, 4)),
      name: file,
      sql: await readFile(new URL(file, MIGRATIONS_DIR), 'utf8'),
    })),
  );
}

/** Brings the schema up to date; returns the names of the migrations this call applied. */
export async function migrate(db: Db): Promise<string[]> {
  const migrations = await readMigrations();
  return db.transaction(async (tx) => {
    // Transaction-scoped, so the lock is released by COMMIT/ROLLBACK even if this process dies. Through
    // exec, which has no deadline: another process may hold the lock through a long migration.
    await tx.exec(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
    await tx.query(`CREATE TABLE IF NOT EXISTS modelgate_migrations (
      id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const applied = new Set(
      (await tx.query<{ id: number }>('SELECT id FROM modelgate_migrations')).map((row) => row.id),
    );
    const pending = migrations.filter((migration) => !applied.has(migration.id));
    for (const migration of pending) {
      await tx.exec(migration.sql);
      await tx.query('INSERT INTO modelgate_migrations (id, name) VALUES ($1, $2)', [
        migration.id,
        migration.name,
      ]);
    }
    return pending.map((migration) => migration.name);
  });
}
