// The key cache of the authenticator: concurrent misses share one database read, a revocation that lands
// while a read is under way is never hidden by that read being cached, and known keys stay good while the
// database cannot be reached (through a proxy to the real Postgres that refuses connections).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createKey, createTenant, revokeKey } from '../src/auth/accounts.ts';
import { Authenticator } from '../src/auth/authenticator.ts';
import { isModelgateError } from '../src/errors.ts';
import { isConnectionLoss, type Db } from '../src/store/db.ts';
import { migrate } from '../src/store/migrate.ts';
import { openPglite } from '../src/store/pglite.ts';
import { openPostgres } from '../src/store/postgres.ts';
import { createTestSchema, dropTestSchema, testDatabaseUrl } from './helpers/databases.ts';
import { FaultyProxy } from './helpers/tcp-proxy.ts';

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

test(
  'while the database cannot be reached, a known key stays good past its time and after every key is forgotten; a revoked one does not',
  { timeout: 30_000 },
  async (t) => {
    const url = testDatabaseUrl();
    if (url === undefined) return t.skip('TEST_DATABASE_URL is unset');
    const schema = await createTestSchema(url, 'authenticator');
    const proxy = await FaultyProxy.start(url);
    const remote = await openPostgres(proxy.urlFor(url), { schema, timeoutMs: 1000 });
    t.after(async () => {
      await remote.close();
      await proxy.close();
      await dropTestSchema(url, schema);
    });
    await migrate(remote);
    const remoteTenant = (await createTenant(remote, 'outage')).tenant.id;
    const kept = await createKey(remote, remoteTenant, { scopes: ['predict'] });
    const revoked = await createKey(remote, remoteTenant, { scopes: ['predict'] });
    const unknown = await createKey(remote, remoteTenant, { scopes: ['predict'] });
    // Every lookup is past its time at once: only the fallback can answer from the cache.
    const authenticator = new Authenticator(remote, { cacheTtlMs: 0, negativeCacheTtlMs: 0 });
    for (const key of [kept, revoked]) await authenticator.authenticate(`Bearer ${key.secret}`);

    proxy.setMode('refuse');
    proxy.cut();
    assert.equal((await authenticator.authenticate(`Bearer ${kept.secret}`)).keyId, kept.record.id);
    // Resynchronising (notices were missed) forgets every key; they are still kept for the outage.
    authenticator.forgetKey();
    assert.equal((await authenticator.authenticate(`Bearer ${kept.secret}`)).keyId, kept.record.id);
    // A key whose revocation arrived is gone at once; a key never seen cannot be checked.
    authenticator.forgetKey(revoked.record.id);
    for (const key of [revoked, unknown]) {
      await assert.rejects(authenticator.authenticate(`Bearer ${key.secret}`), (error: unknown) =>
        isConnectionLoss(error),
      );
    }

    proxy.setMode('pass');
    await revokeKey(remote, remoteTenant, kept.record.id);
    await assert.rejects(
      authenticator.authenticate(`Bearer ${kept.secret}`),
      (error: unknown) => isModelgateError(error) && error.code === 'key_revoked',
    );
  },
);
