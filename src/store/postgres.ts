// The server driver: node-postgres against DATABASE_URL, optionally confined to one schema.
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Db, Queryable } from './db.ts';
import { deliverNotice, isConnectionLoss, translateError, translating } from './db.ts';

export interface PostgresOptions {
  /** Every connection's search_path; tests give each file its own. Default: the server's default. */
  schema?: string;
  /** Pool size. Default: 10. */
  maxConnections?: number;
  /**
   * How long a connection may take to be made, and a statement (migrations aside) to be answered, before
   * it is given up as lost: a server that stopped answering (a network cut without a reset) fails calls
   * as a `connection` StoreError instead of hanging them (the configuration's databaseTimeoutMs).
   */
  timeoutMs: number;
}

/** What a listening connection is asked to tell it is alive (named, so operators and tests can tell it apart). */
export const LISTENER_CHECK_SQL = "SELECT 'modelgate listener check'";

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

/**
 * `statement` with node-postgres's per-statement deadline (`query_timeout`, which @types/pg leaves out):
 * past it the call fails with "Query read timeout".
 */
function withDeadline(statement: pg.QueryConfig, timeoutMs: number): pg.QueryConfig {
  return Object.assign(statement, { query_timeout: timeoutMs });
}

export async function openPostgres(url: string, options: PostgresOptions): Promise<Db> {
  const { timeoutMs } = options;
  const connection: pg.ClientConfig = {
    connectionString: url,
    options: options.schema ? `-c search_path=${options.schema}` : undefined,
    connectionTimeoutMillis: timeoutMs,
    keepAlive: true,
  };
  const pool = new pg.Pool({ ...connection, max: options.maxConnections ?? 10 });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  const queryableOf = (target: pg.Pool | pg.PoolClient): Queryable => ({
    // Parameterised statements are prepared once per connection under a name derived from their text:
    // the claim query, for one, costs several times more to plan than to run.
    // A statement past its deadline fails with the connection under it: pg-pool drops a client released
    // with an error, and a transaction's client is dropped rather than rolled back (below).
    query: async <Row>(sql: string, params?: readonly unknown[]) =>
      (
        await translating(
          params && params.length > 0
            ? target.query(
                withDeadline({ name: statementName(sql), text: sql, values: params as unknown[] }, timeoutMs),
              )
            : target.query(withDeadline({ text: sql }, timeoutMs)),
        )
      ).rows as Row[],
    // Without parameters node-postgres uses the simple protocol, which accepts several statements. No
    // deadline: a migration may take long.
    exec: async (sql: string) => void (await translating(target.query(sql))),
  });
  const poolQueryable = queryableOf(pool);
  const listener = new SharedListener(() => new pg.Client(connection), timeoutMs);
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
        // A lost connection, or one whose statement is unanswered (its answer could still come, and be
        // taken for the ROLLBACK's), is destroyed; the server rolls back when it goes. So is one that
        // cannot even roll back.
        if (isConnectionLoss(error)) {
          release(error as Error);
          throw error;
        }
        const rollbackError = await client.query('ROLLBACK').then(
          () => undefined,
          (failure: unknown) => failure as Error,
        );
        release(rollbackError);
        throw error;
      }
    },
    listen: (channel, onPayload, { onReconnect } = {}) => listener.add({ channel, onPayload, onReconnect }),
    async close() {
      await listener.close();
      await pool.end();
    },
  };
}

interface Subscription {
  channel: string;
  onPayload: (payload: string) => void;
  onReconnect: (() => void) | undefined;
}

/**
 * Every listen() of one process on one connection. A NOTIFY wakes every backend of the database that
 * listens to anything, so one listening connection per process rather than per channel saves the server
 * work on every job. When the connection drops (server restart, a killed backend, a network cut) a new one
 * is made with backoff, listens to every channel again, and each subscriber's onReconnect tells it that
 * notices may have been missed. A connection that stopped answering without closing (a network cut without
 * a reset) would wait for notices forever: it is asked a trivial query every `timeoutMs`, and one that
 * goes unanswered that long counts as dropped.
 */
class SharedListener {
  private readonly subscriptions = new Set<Subscription>();
  private client: pg.Client | undefined;
  /** The channels LISTENed on the current connection. */
  private listened = new Set<string>();
  private state: 'idle' | 'connected' | 'reconnecting' | 'closed' = 'idle';
  /** Connecting, LISTEN and UNLISTEN run one at a time. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly newClient: () => pg.Client,
    private readonly timeoutMs: number,
  ) {}

  async add(subscription: Subscription): Promise<() => Promise<void>> {
    if (this.state === 'closed') throw new Error('database closed');
    this.subscriptions.add(subscription);
    try {
      // While reconnecting, the new connection will listen to this channel too.
      await this.serially(async () => {
        if (this.state === 'idle') await this.open();
        else if (this.state === 'connected') await this.sync();
      });
    } catch (error) {
      this.subscriptions.delete(subscription);
      throw translateError(error);
    }
    return async () => {
      if (!this.subscriptions.delete(subscription) || this.state !== 'connected') return;
      // A failure here means the connection is going away, and the channel goes with it.
      await this.serially(() => this.sync()).catch(() => undefined);
    };
  }

  async close(): Promise<void> {
    this.state = 'closed';
    this.subscriptions.clear();
    const { client } = this;
    this.client = undefined;
    if (client) await this.discard(client);
  }

  private serially<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async open(): Promise<void> {
    const next = this.newClient();
    const onLost = () => {
      if (this.client !== next) return;
      this.client = undefined;
      void this.discard(next);
      if (this.state === 'connected') {
        this.state = 'reconnecting';
        void this.reconnect();
      }
    };
    // Without an error listener a dropped connection would crash the process.
    next.on('error', onLost);
    next.on('end', onLost);
    next.on('notification', (message) => {
      for (const subscription of this.subscriptions) {
        if (subscription.channel === message.channel)
          deliverNotice(subscription.onPayload, message.payload ?? '');
      }
    });
    try {
      await next.connect();
      this.client = next;
      this.listened = new Set();
      await this.sync();
    } catch (error) {
      if (this.client === next) this.client = undefined;
      await this.discard(next);
      throw error;
    }
    if (this.state === 'closed') {
      this.client = undefined;
      await this.discard(next);
      return;
    }
    this.state = 'connected';
    // Stops at its first tick after the connection is replaced or closed.
    const check = setInterval(() => {
      if (this.client !== next) return clearInterval(check);
      next.query(withDeadline({ text: LISTENER_CHECK_SQL }, this.timeoutMs)).catch(onLost);
    }, this.timeoutMs);
    check.unref();
  }

  /** LISTENs to every channel subscribed to and UNLISTENs from the others, on the current connection. */
  private async sync(): Promise<void> {
    const { client } = this;
    if (!client) return;
    const wanted = new Set([...this.subscriptions].map((subscription) => subscription.channel));
    for (const channel of wanted) {
      if (this.listened.has(channel)) continue;
      await client.query(withDeadline({ text: `LISTEN ${pg.escapeIdentifier(channel)}` }, this.timeoutMs));
      this.listened.add(channel);
    }
    for (const channel of this.listened) {
      if (wanted.has(channel)) continue;
      await client.query(withDeadline({ text: `UNLISTEN ${pg.escapeIdentifier(channel)}` }, this.timeoutMs));
      this.listened.delete(channel);
    }
  }

  private async reconnect(): Promise<void> {
    for (let delayMs = 100; this.state === 'reconnecting'; delayMs = Math.min(delayMs * 2, 5000)) {
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      if (this.state !== 'reconnecting') return;
      try {
        await this.serially(() => this.open());
      } catch {
        continue; // The server is still away: try again after a longer pause.
      }
      for (const subscription of [...this.subscriptions]) subscription.onReconnect?.();
      return;
    }
  }

  private async discard(client: pg.Client): Promise<void> {
    client.removeAllListeners();
    client.on('error', () => {});
    await client.end().catch(() => undefined);
  }
}
