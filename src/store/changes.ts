// Change notices between processes sharing one database (NOTIFY/LISTEN): a gateway that caches keys or
// the model catalogue drops its copy when another process changes them.
import { listenChannel } from './channels.ts';
import type { Db, Queryable } from './db.ts';

const CHANNEL = 'modelgate_changes';

export type Change = { kind: 'key'; keyId: string } | { kind: 'model'; tenantId: string; name: string };

/** publishChange($1 channel, $2 payload): delivered to listeners when the surrounding transaction commits. */
export async function publishChange(db: Queryable, change: Change): Promise<void> {
  await db.query('SELECT pg_notify(modelgate_channel($1), $2)', [CHANNEL, JSON.stringify(change)]);
}

/** `onMissed` runs when notices may have been lost (the listening connection was replaced). */
export function subscribeChanges(
  db: Db,
  onChange: (change: Change) => void,
  onMissed: () => void,
): Promise<() => Promise<void>> {
  return listenChannel(db, CHANNEL, (payload) => onChange(JSON.parse(payload) as Change), {
    onReconnect: onMissed,
  });
}
