// The server driver: node-postgres against DATABASE_URL, optionally confined to one schema.
import { createHash } from 'node:crypto';
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

const statementNames = new Map<string, string>();
/** modelgate's statements are a fixed set; text built at run time beyond this many is not prepared. */
const MAX_NAMED_STATEMENTS = 1000;

function statementName(sql: string): string | undefined {
  let name = statementNames.get(sql);
  if (!name && statementNames.size < MAX_NAMED_STATEMENTS) {
    name = `mg_${createHash('sha1').update(sql).digest('hex').slice(0, 20)}`;
    statementNames.set(sql, name);
  }
  return name;
}

export async function openPostgres(url: string, options: PostgresOptions = {}): Promise<Db> {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.maxConnections ?? 10,
    options: options.schema ? `-c search_path=${options.schema}` : undefined,
  });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  const queryableOf = (target: pg.Pool | pg.PoolClient): Queryable => ({
    // Parameterised statements are prepared once per connection under a name derived from their text:
    // the claim query, for one, costs several times more to plan than to run.
    query: async <Row>(sql: string, params?: readonly unknown[]) =>
      (
        await translating(
          params && params.length > 0
            ? target.query({ name: statementName(sql), text: sql, values: params as unknown[] })
            : target.query(sql),
        )
      ).rows as Row[],
    // Without parameters node-postgres uses the simple protocol, which accepts several statements.
    exec: async (sql: string) => void (await translating(target.query(sql))),
  });
  const poolQueryable = queryableOf(pool);
  /** Stops every active listen() and releases its connection, so close() does not wait on them forever. */
  const listeners = new Set<(error?: Error) => void>();
  // Fail at start, not at the first request, when the server is unreachable.
  await poolQueryable.query('SELECT 1');

  return {
    driver: 'postgres',
    ...poolQueryable,
    async transaction(fn) {
      const client = await translating(pool.connect());
      // The pool stops listening for errors on a client it hands out: a connection dropped mid-transaction
      // would crash the process. The failing query still rejects, so the caller sees the error.
      const onError = () => {};
      client.on('error', onError);
      const release = (error?: Error) => {
        client.off('error', onError);
        client.release(error);
      };
      const tx = queryableOf(client);
      try {
        await tx.query('BEGIN');
        const result = await fn(tx);
        await tx.query('COMMIT');
        release();
        return result;
      } catch (error) {
        // A connection that cannot even roll back is destroyed rather than returned to the pool.
        const rollbackError = await client.query('ROLLBACK').then(
          () => undefined,
          (failure: unknown) => failure as Error,
        );
        release(rollbackError);
        throw error;
      }
    },
    async listen(channel, onPayload, { onReconnect } = {}) {
      // LISTEN needs a connection of its own that stays open; when it drops (server restart, a killed
      // backend, a network cut) a new one is made, and onReconnect tells the caller it may have missed
      // notices.
      let client: pg.PoolClient | undefined;
      let stopped = false;
      const onNotification = (message: pg.Notification) => {
        if (message.channel === channel) onPayload(message.payload ?? '');
      };
      const detach = (lost: pg.PoolClient, error?: Error) => {
        lost.off('notification', onNotification);
        lost.removeAllListeners('error');
        lost.removeAllListeners('end');
        lost.on('error', () => {});
        lost.release(error);
      };
      const connect = async () => {
        const next = await translating(pool.connect());
        const onLost = (error?: Error) => {
          if (client !== next) return;
          client = undefined;
          detach(next, error ?? new Error('connection ended'));
          if (!stopped) void reconnect();
        };
        // Without an error listener a dropped connection would crash the process.
        next.on('error', onLost);
        next.on('end', () => onLost());
        next.on('notification', onNotification);
        try {
          await next.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
        } catch (error) {
          detach(next, error as Error);
          throw translateError(error);
        }
        // Stopped while this connection was being made: it is not needed any more.
        if (stopped) detach(next, new Error('listener stopped'));
        else client = next;
      };
      const reconnect = async () => {
        for (let delayMs = 100; !stopped; delayMs = Math.min(delayMs * 2, 5000)) {
          await new Promise((resolve) => setTimeout(resolve, delayMs));
          if (stopped) return;
          try {
            await connect();
            onReconnect?.();
            return;
          } catch {
            // The server is still away: try again after a longer pause.
          }
        }
      };
      const stop = (error?: Error) => {
        stopped = true;
        listeners.delete(stop);
        const current = client;
        client = undefined;
        if (current) detach(current, error);
      };
      await connect();
      listeners.add(stop);
      return async () => {
        const current = client;
        if (stopped) return;
        if (!current) return stop();
        try {
          await current.query(`UNLISTEN ${pg.escapeIdentifier(channel)}`);
          stop();
        } catch (error) {
          // Still possibly listening: destroy the connection rather than return it to the pool.
          stop(error as Error);
        }
      };
    },
    async close() {
      for (const stop of [...listeners]) stop(new Error('database closed'));
      await pool.end();
    },
  };
}
