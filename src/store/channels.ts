// modelgate's NOTIFY channels, named after the schema its tables are in (modelgate_channel() in
// 0004_jobs_notify_transaction.sql builds the name for triggers and for this): NOTIFY reaches every session
// of a database, and another installation in another schema must not wake this one.
import type { Db, Queryable } from './db.ts';

async function channelName(db: Queryable, name: string): Promise<string> {
  const [row] = await db.query<{ channel: string }>('SELECT modelgate_channel($1) AS channel', [name]);
  return row!.channel;
}

/** Db.listen on modelgate's channel `name` for this schema. */
export async function listenChannel(
  db: Db,
  name: string,
  onPayload: (payload: string) => void,
  options?: { onReconnect?: () => void },
): Promise<() => Promise<void>> {
  return db.listen(await channelName(db, name), onPayload, options);
}
