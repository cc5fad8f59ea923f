// Opens the configured database (PGlite in a data directory, or Postgres at a URL) and migrates it.
import { join } from 'node:path';
import type { Db } from './db.ts';
import { migrate } from './migrate.ts';
import { openPglite } from './pglite.ts';
import { openPostgres } from './postgres.ts';

export interface StoreConfig {
  /** Postgres server URL; when unset, PGlite runs embedded in `dataDir`. */
  databaseUrl?: string;
  /** Schema for the Postgres driver (search_path). */
  databaseSchema?: string;
  /** Deadline of a connection and of a statement on the Postgres driver (PostgresOptions.timeoutMs). */
  databaseTimeoutMs: number;
  dataDir: string;
}

export async function openStore(config: StoreConfig): Promise<Db> {
  const db = config.databaseUrl
    ? await openPostgres(config.databaseUrl, {
        schema: config.databaseSchema,
        timeoutMs: config.databaseTimeoutMs,
      })
    : await openPglite(join(config.dataDir, 'pg'));
  try {
    await migrate(db);
  } catch (error) {
    await db.close();
    throw error;
  }
  return db;
}
