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
  // Class 08: the connection failed or was lost.
  '08000': 'connection',
  '08001': 'connection',
  '08003': 'connection',
  '08004': 'connection',
  '08006': 'connection',
  // The server is shutting down (admin, crash) or not accepting connections yet (starting, recovering).
  '57P01': 'connection',
  '57P02': 'connection',
  '57P03': 'connection',
  '53300': 'connection', // too many connections
};

/** What the socket under a connection says when it cannot be made or is lost. */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * node-postgres's own errors (they carry no code) when a connection is lost, cannot be made in time, or
 * stopped answering (a statement past its deadline, as on a network cut without a reset).
 */
const DRIVER_CONNECTION_MESSAGES = [
  'Connection terminated',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
  'timeout exceeded when trying to connect',
  'timeout expired',
  'Query read timeout',
];

function kindOf(error: unknown, state: string | undefined): StoreError['kind'] {
  if (state !== undefined && Object.hasOwn(KIND_BY_SQLSTATE, state)) return KIND_BY_SQLSTATE[state]!;
  if (state !== undefined && SOCKET_CODES.has(state)) return 'connection';
  const message = error instanceof Error ? error.message : '';
  return DRIVER_CONNECTION_MESSAGES.some((prefix) => message.startsWith(prefix)) ? 'connection' : 'other';
}

export function translateError(error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  const sqlState = (error as { code?: unknown } | undefined)?.code;
  const state = typeof sqlState === 'string' ? sqlState : undefined;
  const message = error instanceof Error ? error.message : String(error);
  return new StoreError(kindOf(error, state), message, state, { cause: error });
}

/** Whether `error` says the database cannot be reached now (worth trying again), not that a statement failed. */
export function isConnectionLoss(error: unknown): boolean {
  return error instanceof StoreError && error.kind === 'connection';
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
