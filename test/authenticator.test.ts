// The key cache of the authenticator: concurrent misses share one database read, and a revocation that
// lands while a read is under way is never hidden by that read being cached.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createKey, createTenant, revokeKey } from '../src/auth/accounts.ts';
import { Authenticator } from '../src/auth/authenticator.ts';
import { isModelgateError } from '../src/errors.ts';
import type { Db } from '../src/store/db.ts';
import { migrate } from '../src/store/migrate.ts';
import { openPglite } from '../src/store/pglite.ts';

let db: Db;
let tenantId: string;

/** `db`, counting reads of api_keys and holding each answer until `release` is called. */
function gatedDb() {
  let reads = 0;
  const releases: (() => void)[] = [];
  const gated: Db = {
    ...db,
    async query(sql, params) {
      const rows = await db.query(sql, params);
      if (sql.includes('FROM api_keys')) {
        // Read, but not yet answered: what the database said is fixed before anything else happens.
        reads++;
        await new Promise<void>((resolve) => releases.push(resolve));
      }
      return rows as never;
    },
  };
  return {
    db: gated,
    reads: () => reads,
    release() {
      for (const release of releases.splice(0)) release();
    },
    waitForRead: async () => {
      while (releases.length === 0) await new Promise((resolve) => setImmediate(resolve));
    },
  };
}

before(async () => {
  db = await openPglite(undefined);
  await migrate(db);
  tenantId = (await createTenant(db, 'cache')).tenant.id;
});
after(() => db.close());

test('concurrent requests with an uncached key read the database once', { timeout: 10_000 }, async () => {
  const { secret } = await createKey(db, tenantId, { scopes: ['predict'] });
  const gate = gatedDb();
  const authenticator = new Authenticator(gate.db);
  const requests = Array.from({ length: 8 }, () => authenticator.authenticate(`Bearer ${secret}`));
  await gate.waitForRead();
  gate.release();
  const principals = await Promise.all(requests);
  assert.ok(principals.every((principal) => principal.tenantId === tenantId));
  assert.equal(gate.reads(), 1);
});

test(
  'a key revoked while its read is under way is refused on the next request',
  { timeout: 10_000 },
  async () => {
    const { secret, record } = await createKey(db, tenantId, { scopes: ['predict'] });
    const gate = gatedDb();
    const authenticator = new Authenticator(gate.db);

    const inFlight = authenticator.authenticate(`Bearer ${secret}`);
    await gate.waitForRead();
    await revokeKey(db, tenantId, record.id);
    authenticator.forgetKey(record.id);
    gate.release();
    // The request that was already under way may pass: it was accepted before the revocation.
    await inFlight;

    const next = authenticator.authenticate(`Bearer ${secret}`);
    await gate.waitForRead();
    gate.release();
    await assert.rejects(next, (error: unknown) => isModelgateError(error) && error.code === 'key_revoked');
  },
);
