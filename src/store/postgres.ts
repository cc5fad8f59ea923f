// The server driver: node-postgres against DATABASE_URL, optionally confined to one schema.
import pg from 'pg';
import type { Db, Queryable } from './db.ts';
import { translateError, translating } from './db.ts';

export interface PostgresOptions {
  /** Every connection's search_path; tests give each file its own. Default: the server's default. */
  schema?: string;
  /** Pool size. Default: 10. */
  maxConnections?: number;
}

// bigint (int8) columns come back as JS numbers: counts and sizes here stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export async function openPostgres(url: string, options: PostgresOptions = {}): Promise<Db> {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.maxConnections ?? 10,
    options: options.schema ? `-c search_path=${options.schema}` : undefined,
  });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  const queryableOf = (target: pg.Pool | pg.PoolClient): Queryable => ({
    query: async <Row>(sql: string, params?: readonly unknown[]) =>
      (await translating(target.query(sql, params as unknown[]))).rows as Row[],
    // Without parameters node-postgres uses the simple protocol, which accepts several statements.
    exec: async (sql: string) => void (await translating(target.query(sql))),
  });
  const poolQueryable = queryableOf(pool);
  /** Releases the connection of every active listen(), so close() does not wait on them forever. */
  const listeners = new Set<(error?: Error) => void>();
  // Fail at start, not at the first request, when the server is unreachable.
  await poolQueryable.query('SELECT 1');

  return {
    driver: 'postgres',
    ...poolQueryable,
    async transaction(fn) {
      const client = await translating(pool.connect());
      const tx = queryableOf(client);
      try {
        await tx.query('BEGIN');
        const result = await fn(tx);
        await tx.query('COMMIT');
        client.release();
        return result;
      } catch (error) {
        // A connection that cannot even roll back is destroyed rather than returned to the pool.
        const rollbackError = await client.query('ROLLBACK').then(
          () => undefined,
          (failure: unknown) => failure as Error,
        );
        client.release(rollbackError);
        throw error;
      }
    },
    async listen(channel, onPayload) {
      // LISTEN needs a connection of its own that stays open.
      const client = await translating(pool.connect());
      const onNotification = (message: pg.Notification) => {
        if (message.channel === channel) onPayload(message.payload ?? '');
      };
      // The pool only listens for errors on idle clients; without this a dropped connection crashes the process.
      const onError = () => {};
      client.on('notification', onNotification);
      client.on('error', onError);
      const release = (error?: Error) => {
        listeners.delete(release);
        client.off('notification', onNotification);
        client.off('error', onError);
        client.release(error);
      };
      listeners.add(release);
      try {
        await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      } catch (error) {
        release(error as Error);
        throw translateError(error);
      }
      return async () => {
        if (!listeners.has(release)) return;
        try {
          await client.query(`UNLISTEN ${pg.escapeIdentifier(channel)}`);
          release();
        } catch (error) {
          // Still possibly listening: destroy the connection rather than return it to the pool.
          release(error as Error);
        }
      };
    },
    async close() {
      for (const release of [...listeners]) release(new Error('database closed'));
      await pool.end();
    },
  };
}
