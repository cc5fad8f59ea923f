// The embedded driver: Postgres compiled to WebAssembly, running in this process on a data directory.
import { mkdir } from 'node:fs/promises';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import type { Db, Queryable } from './db.ts';
import { deliverNotice, translating } from './db.ts';

/** Opens (creating if needed) the PGlite database in `dataDir`; `undefined` keeps it in memory. */
export async function openPglite(dataDir: string | undefined): Promise<Db> {
  if (dataDir !== undefined) await mkdir(dataDir, { recursive: true });
  const pg = await PGlite.create(dataDir === undefined ? undefined : { dataDir });
  const queryableOf = (target: PGlite | Transaction): Queryable => ({
    query: async <Row>(sql: string, params?: readonly unknown[]) =>
      (await translating(target.query<Row>(sql, params as unknown[]))).rows,
    exec: async (sql: string) => void (await translating(target.exec(sql))),
  });

  return {
    driver: 'pglite',
    ...queryableOf(pg),
    transaction: (fn) => pg.transaction((tx) => fn(queryableOf(tx))),
    async listen(channel, onPayload) {
      // Quoted, as the Postgres driver does: PGlite sends the name unquoted, folding case (and rejecting
      // names that are not plain identifiers), so pg_notify('ModelEvents', …) would never arrive.
      const quoted = `"${channel.replace(/"/g, '""')}"`;
      const listener = (payload: string) => deliverNotice(onPayload, payload);
      await translating(pg.listen(quoted, listener));
      // Not the function pg.listen returns: it passes the unquoted name on, which folds case again.
      return () => pg.unlisten(quoted, listener);
    },
    close: () => pg.close(),
  };
}
