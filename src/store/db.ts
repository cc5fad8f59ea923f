// The database seen by the rest of modelgate: one SQL dialect (Postgres) behind two drivers,
// PGlite in-process (embedded default) and node-postgres (a server at DATABASE_URL).

export interface Queryable {
  /** Runs one parameterised statement and returns its rows. */
  query<Row = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<Row[]>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Db extends Queryable {
  readonly driver: 'pglite' | 'postgres';
  /**
   * Runs `fn` in one transaction on one connection; commits if it resolves, rolls back if it throws.
   * Inside `fn` use only `tx`: PGlite has one connection, so `db.query` there would wait forever.
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Calls `onPayload` for every NOTIFY on `channel` (from any process on the same database). A listening
   * connection that drops is replaced; notices sent meanwhile are lost, so `onReconnect` is called then
   * for the caller to catch up. An `onPayload` that throws is reported as a process warning; the other
   * listeners and later notices are not affected.
   */
  listen(
    channel: string,
    onPayload: (payload: string) => void,
    options?: { onReconnect?: () => void },
  ): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** pingDatabase(): resolves once the database has answered a trivial query (the readiness check). */
export async function pingDatabase(db: Queryable): Promise<void> {
  await db.query('SELECT 1');
}

/** A database failure translated from its SQLSTATE once, here, so callers never parse driver errors. */
export class StoreError extends Error {
  constructor(
    readonly kind: 'unique_violation' | 'foreign_key_violation' | 'connection' | 'other',
    message: string,
    readonly sqlState: string | undefined,
    options: { cause: unknown },
  ) {
    super(message, options);
    this.name = 'StoreError';
  }
}

const KIND_BY_SQLSTATE: Record<string, StoreError['kind']> = {
  '23505': 'unique_violation',
  '23503': 'foreign_key_violation',
  '08000': 'connection',
  '08003': 'connection',
  '08006': 'connection',
  '57P01': 'connection',
};

export function translateError(error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  const sqlState = (error as { code?: unknown }).code;
  const state = typeof sqlState === 'string' ? sqlState : undefined;
  const known = state === undefined ? undefined : KIND_BY_SQLSTATE[state];
  const kind = known ?? (state === 'ECONNREFUSED' || state === 'ECONNRESET' ? 'connection' : 'other');
  const message = error instanceof Error ? error.message : String(error);
  return new StoreError(kind, message, state, { cause: error });
}

/** `work`, with a failure translated to StoreError: how the drivers wrap every call into their client. */
export async function translating<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    throw translateError(error);
  }
}

/**
 * Hands a NOTIFY payload to a listener, as both drivers do. Anyone who can connect may NOTIFY on a channel,
 * so a listener may meet a payload it cannot read: its failure must not crash the process nor stop the
 * listening connection.
 */
export function deliverNotice(onPayload: (payload: string) => void, payload: string): void {
  try {
    onPayload(payload);
  } catch (error) {
    process.emitWarning(
      `a NOTIFY listener failed: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}
