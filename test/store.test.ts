// The store conformance suite: migrations, transactions, error translation, LISTEN/NOTIFY and every query
// module, run identically on each driver from testDatabases() (PGlite, and Postgres when configured).
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { ModelSignature } from '../src/runtime/signature.ts';
import { StoreError, type Db } from '../src/store/db.ts';
import {
  insertApiKey,
  listApiKeys,
  revokeApiKey,
  selectApiKeyByDigest,
  type NewApiKey,
} from '../src/store/keys.ts';
import { migrate, readMigrations } from '../src/store/migrate.ts';
import { unreferencedArtifacts } from '../src/store/artifacts.ts';
import {
  deleteModel,
  insertModelVersion,
  listModels,
  listModelVersions,
  upsertModel,
  type NewModelVersion,
} from '../src/store/models.ts';
import { countTenants, insertTenant, listTenants, selectTenantByName } from '../src/store/tenants.ts';
import { listenChannel } from '../src/store/channels.ts';
import { openPostgres } from '../src/store/postgres.ts';
import { TEST_DATABASE_TIMEOUT_MS, testDatabases, testDatabaseUrl } from './helpers/databases.ts';
import { waitUntil, withApplicationName } from './helpers/processes.ts';

const SIGNATURE: ModelSignature = {
  inputs: [{ name: 'features', datatype: 'FP32', shape: [-1, 4] }],
  outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [-1, 3] }],
};

function randomDigest(): string {
  return createHash('sha256').update(randomUUID()).digest('hex');
}

function newKey(tenantId: string, overrides: Partial<NewApiKey> = {}): NewApiKey {
  return {
    tenantId,
    name: 'ci',
    digest: randomDigest(),
    displayPrefix: 'mg_live_ab12',
    scopes: ['infer', 'models:read'],
    expiresAt: null,
    ...overrides,
  };
}

function newVersion(artifactSha256 = randomDigest()): NewModelVersion {
  // Above 2^32, so a size squeezed through a 32-bit integer anywhere would show.
  return {
    runtime: 'onnx',
    runtimeSettings: {},
    artifactSha256,
    sizeBytes: 5_000_000_123,
    signature: SIGNATURE,
  };
}

/** Rejection matcher for assert.rejects: a StoreError of this kind and SQLSTATE that keeps the driver's error. */
function storeError(kind: StoreError['kind'], sqlState: string) {
  return (error: unknown) => {
    assert.ok(error instanceof StoreError, `expected a StoreError, got ${String(error)}`);
    assert.equal(error.kind, kind);
    assert.equal(error.sqlState, sqlState);
    assert.ok(error.cause instanceof Error, 'the driver error is kept as cause');
    return true;
  };
}

/** Listens on `channel`, recording every payload; `firstPayload` resolves with the first one. */
async function subscribe(db: Db, channel: string) {
  const payloads: string[] = [];
  let resolveFirst!: (payload: string) => void;
  const firstPayload = new Promise<string>((resolve) => (resolveFirst = resolve));
  const unlisten = await db.listen(channel, (payload) => {
    payloads.push(payload);
    resolveFirst(payload);
  });
  return { payloads, firstPayload, unlisten };
}

for (const database of testDatabases()) {
  describe(`store on ${database.name}`, () => {
    let db: Db;

    before(async () => {
      db = await database.open();
      await migrate(db);
    });

    after(async () => {
      await db?.close();
    });

    it('migrate applies every migration once and a second call applies nothing', async () => {
      const fresh = await database.open();
      try {
        const names = (await readMigrations()).map((migration) => migration.name);
        assert.ok(names.includes('0001_init.sql'));
        assert.deepEqual(await migrate(fresh), names);
        assert.deepEqual(await migrate(fresh), []);
        const rows = await fresh.query<{ name: string }>('SELECT name FROM modelgate_migrations ORDER BY id');
        assert.deepEqual(
          rows.map((row) => row.name),
          names,
        );
      } finally {
        await fresh.close();
      }
    });

    it('query takes parameters and exec runs a script of several statements', async () => {
      await db.exec(`
        CREATE TABLE conformance_scratch (id integer PRIMARY KEY, label text NOT NULL);
        INSERT INTO conformance_scratch VALUES (1, 'one');
        INSERT INTO conformance_scratch VALUES (2, 'two');`);
      const rows = await db.query<{ id: number; label: string }>(
        'SELECT id, label FROM conformance_scratch WHERE id >= $1 ORDER BY id',
        [1],
      );
      assert.deepEqual(rows, [
        { id: 1, label: 'one' },
        { id: 2, label: 'two' },
      ]);
      assert.deepEqual(await db.query('SELECT 1 AS one WHERE false'), []);
    });

    it('transaction commits when its function resolves and returns its value', async () => {
      const result = await db.transaction(async (tx) => {
        const tenant = await insertTenant(tx, 'tx-commit');
        return tenant.id;
      });
      assert.equal((await selectTenantByName(db, 'tx-commit'))?.id, result);
    });

    it('transaction rolls back when its function throws and rethrows the very same error', async () => {
      const thrown = new Error('abort the upload');
      await assert.rejects(
        db.transaction(async (tx) => {
          await insertTenant(tx, 'tx-rollback');
          assert.ok(await selectTenantByName(tx, 'tx-rollback'), 'visible inside the transaction');
          throw thrown;
        }),
        (error) => error === thrown,
      );
      assert.equal(await selectTenantByName(db, 'tx-rollback'), undefined);
    });

    it('a failing statement inside a transaction rolls back the statements before it', async () => {
      await insertTenant(db, 'tx-taken');
      await assert.rejects(
        db.transaction(async (tx) => {
          await insertTenant(tx, 'tx-partial');
          await insertTenant(tx, 'tx-taken');
        }),
        storeError('unique_violation', '23505'),
      );
      assert.equal(await selectTenantByName(db, 'tx-partial'), undefined);
    });

    it('translates a unique violation into StoreError unique_violation 23505', async () => {
      await insertTenant(db, 'unique-acme');
      await assert.rejects(insertTenant(db, 'unique-acme'), storeError('unique_violation', '23505'));
    });

    it('translates a foreign key violation into StoreError foreign_key_violation 23503', async () => {
      await assert.rejects(
        insertApiKey(db, newKey('tn_missing')),
        storeError('foreign_key_violation', '23503'),
      );
    });

    it('listen delivers a NOTIFY payload to the subscriber', async () => {
      const subscriber = await subscribe(db, 'conformance_delivery');
      try {
        await db.query('SELECT pg_notify($1, $2)', ['conformance_delivery', 'model uploaded']);
        assert.equal(await subscriber.firstPayload, 'model uploaded');
      } finally {
        await subscriber.unlisten();
      }
      assert.deepEqual(subscriber.payloads, ['model uploaded']);
    });

    it('a listener that throws is reported as a warning; the others and later notices still arrive', async () => {
      const channel = 'conformance_throwing';
      const warnings: string[] = [];
      const onWarning = (warning: Error) => warnings.push(warning.message);
      process.on('warning', onWarning);
      const unlistenThrowing = await db.listen(channel, () => {
        throw new Error('cannot read this payload');
      });
      const other = await subscribe(db, channel);
      try {
        await db.query('SELECT pg_notify($1, $2)', [channel, 'first']);
        await db.query('SELECT pg_notify($1, $2)', [channel, 'second']);
        const deadline = Date.now() + 5000;
        while ((other.payloads.length < 2 || warnings.length < 2) && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        assert.deepEqual(other.payloads, ['first', 'second']);
        assert.deepEqual(warnings, [
          'a NOTIFY listener failed: cannot read this payload',
          'a NOTIFY listener failed: cannot read this payload',
        ]);
      } finally {
        process.off('warning', onWarning);
        await unlistenThrowing();
        await other.unlisten();
      }
    });

    it('after unlisten a subscriber gets nothing more, even when the channel is listened to again', async () => {
      const channel = 'conformance_unlisten';
      const first = await subscribe(db, channel);
      await first.unlisten();
      // The second subscriber is the barrier: once it has the payload, the first would have had it too
      // were it still subscribed.
      const second = await subscribe(db, channel);
      try {
        await db.query('SELECT pg_notify($1, $2)', [channel, 'model deleted']);
        assert.equal(await second.firstPayload, 'model deleted');
      } finally {
        await second.unlisten();
      }
      assert.deepEqual(first.payloads, []);
    });

    if (database.name === 'postgres') {
      it('every channel of a process shares one listening connection, and all of them survive its loss', async () => {
        const name = `store-listen-${randomUUID().slice(0, 8)}`;
        const own = await openPostgres(withApplicationName(testDatabaseUrl()!, name), {
          timeoutMs: TEST_DATABASE_TIMEOUT_MS,
        });
        const admin = await openPostgres(testDatabaseUrl()!, { timeoutMs: TEST_DATABASE_TIMEOUT_MS });
        try {
          const reconnected: string[] = [];
          const received: string[] = [];
          for (const channel of ['shared_a', 'shared_b']) {
            await own.listen(channel, (payload) => received.push(`${channel}:${payload}`), {
              onReconnect: () => reconnected.push(channel),
            });
          }
          const listening = () =>
            admin.query<{ pid: number }>(
              `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'`,
              [name],
            );
          assert.equal((await listening()).length, 1);
          await admin.query(
            'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
            [name],
          );
          await waitUntil(
            'both subscribers told of the reconnect',
            async () => reconnected.length,
            (n) => n === 2,
          );
          assert.deepEqual(reconnected.sort(), ['shared_a', 'shared_b']);
          assert.equal((await listening()).length, 1);
          // A channel added after the connection was replaced goes onto the new connection.
          await own.listen('shared_c', (payload) => received.push(`shared_c:${payload}`));
          await admin.query(
            `SELECT pg_notify('shared_a', '1'), pg_notify('shared_b', '2'), pg_notify('shared_c', '3')`,
          );
          await waitUntil(
            'the notices',
            async () => received.length,
            (n) => n === 3,
          );
          assert.deepEqual(received.sort(), ['shared_a:1', 'shared_b:2', 'shared_c:3']);
        } finally {
          await own.close();
          await admin.close();
        }
      });
    }

    if (database.name === 'postgres') {
      it("modelgate's channels are scoped to the schema: another schema's notices never arrive", async () => {
        const other = await database.open();
        try {
          await migrate(other);
          const received: string[] = [];
          const unlisten = await listenChannel(db, 'scoped', (payload) => received.push(payload));
          try {
            await other.query(`SELECT pg_notify(modelgate_channel('scoped'), 'other schema')`);
            await db.query(`SELECT pg_notify(modelgate_channel('scoped'), 'this schema')`);
            await waitUntil(
              'the notice of this schema',
              async () => received.length,
              (n) => n > 0,
            );
            // Notices arrive in commit order: had the other schema's reached us, it would have come first.
            assert.deepEqual(received, ['this schema']);
          } finally {
            await unlisten();
          }
        } finally {
          await other.close();
        }
      });
    }

    it('tenants: insert, select by name, list oldest first, count', async () => {
      const countBefore = await countTenants(db);
      const older = await insertTenant(db, 'tenants-older', true);
      const newer = await insertTenant(db, 'tenants-newer');
      // Deterministic order without waiting: move the first tenant an hour into the past.
      await db.query(`UPDATE tenants SET created_at = created_at - interval '1 hour' WHERE id = $1`, [
        older.id,
      ]);

      assert.match(older.id, /^tn_[a-z2-7]{26}$/);
      assert.equal(older.name, 'tenants-older');
      assert.equal(older.operator, true);
      assert.equal(newer.operator, false);
      assert.ok(newer.createdAt instanceof Date);
      assert.deepEqual(await selectTenantByName(db, 'tenants-newer'), newer);
      assert.equal(await selectTenantByName(db, 'tenants-nobody'), undefined);

      const ours = (await listTenants(db)).filter(
        (tenant) => tenant.id === older.id || tenant.id === newer.id,
      );
      assert.deepEqual(
        ours.map((tenant) => tenant.name),
        ['tenants-older', 'tenants-newer'],
      );
      assert.equal(await countTenants(db), countBefore + 2);
    });

    it('api keys: insert, select by digest, list by tenant', async () => {
      const tenant = await insertTenant(db, 'keys-owner');
      const other = await insertTenant(db, 'keys-other');
      const expiresAt = new Date('2031-01-02T03:04:05.678Z');
      const first = await insertApiKey(db, newKey(tenant.id, { name: 'deploy', expiresAt }));
      const second = await insertApiKey(db, newKey(tenant.id, { scopes: [] }));
      await insertApiKey(db, newKey(other.id));
      await db.query(`UPDATE api_keys SET created_at = created_at - interval '1 hour' WHERE id = $1`, [
        first.id,
      ]);

      assert.match(first.id, /^key_[a-z2-7]{26}$/);
      assert.equal(first.tenantId, tenant.id);
      assert.equal(first.name, 'deploy');
      assert.equal(first.displayPrefix, 'mg_live_ab12');
      assert.deepEqual(first.scopes, ['infer', 'models:read']);
      assert.deepEqual(second.scopes, []);
      assert.deepEqual(first.expiresAt, expiresAt);
      assert.equal(second.expiresAt, null);
      assert.equal(first.revokedAt, null);
      assert.ok(first.createdAt instanceof Date);

      const found = await selectApiKeyByDigest(db, second.digest);
      assert.deepEqual(found, second);
      assert.equal(await selectApiKeyByDigest(db, randomDigest()), undefined);
      assert.deepEqual(
        (await listApiKeys(db, tenant.id)).map((key) => key.id),
        [first.id, second.id],
      );
      await assert.rejects(
        insertApiKey(db, newKey(other.id, { digest: first.digest })),
        storeError('unique_violation', '23505'),
      );
    });

    it("revokeApiKey keeps the first revocation time and refuses another tenant's key", async () => {
      const tenant = await insertTenant(db, 'revoke-owner');
      const stranger = await insertTenant(db, 'revoke-stranger');
      const key = await insertApiKey(db, newKey(tenant.id));

      assert.equal(await revokeApiKey(db, stranger.id, key.id), undefined);
      assert.equal((await selectApiKeyByDigest(db, key.digest))?.revokedAt, null);

      const revoked = await revokeApiKey(db, tenant.id, key.id);
      assert.ok(revoked?.revokedAt instanceof Date);
      // Move the revocation a day back: a second revoke that overwrote it would show now() instead.
      const [moved] = await db.query<{ revokedAt: Date }>(
        `UPDATE api_keys SET revoked_at = revoked_at - interval '1 day' WHERE id = $1
         RETURNING revoked_at AS "revokedAt"`,
        [key.id],
      );
      const again = await revokeApiKey(db, tenant.id, key.id);
      assert.deepEqual(again?.revokedAt, moved?.revokedAt);
      assert.equal(await revokeApiKey(db, tenant.id, 'key_unknown'), undefined);
    });

    it('upsertModel is idempotent per tenant and listModels lists one tenant by name', async () => {
      const tenant = await insertTenant(db, 'models-owner');
      const other = await insertTenant(db, 'models-other');
      const iris = await upsertModel(db, tenant.id, 'iris');
      assert.match(iris.id, /^mdl_[a-z2-7]{26}$/);
      assert.deepEqual(iris.settings, {});
      assert.ok(iris.createdAt instanceof Date);
      assert.deepEqual(await upsertModel(db, tenant.id, 'iris'), iris);
      const othersIris = await upsertModel(db, other.id, 'iris');
      assert.notEqual(othersIris.id, iris.id);
      const alpha = await upsertModel(db, tenant.id, 'alpha');

      assert.deepEqual(await listModels(db, tenant.id), [alpha, iris]);
      assert.deepEqual(await listModels(db, other.id), [othersIris]);
    });

    it('insertModelVersion numbers versions 1, 2, 3 and keeps every field', async () => {
      const tenant = await insertTenant(db, 'versions-owner');
      const model = await upsertModel(db, tenant.id, 'iris');
      const inserted = [];
      for (let i = 0; i < 3; i++) {
        inserted.push(await db.transaction((tx) => insertModelVersion(tx, model.id, newVersion())));
      }
      assert.deepEqual(
        inserted.map((version) => version.version),
        [1, 2, 3],
      );
      const [first] = inserted;
      assert.equal(first?.modelId, model.id);
      assert.equal(first?.runtime, 'onnx');
      assert.equal(first?.sizeBytes, 5_000_000_123);
      assert.deepEqual(first?.signature, SIGNATURE);
      assert.equal(first?.status, 'ready');
      assert.ok(first?.createdAt instanceof Date);
      assert.deepEqual(await listModelVersions(db, [model.id]), inserted);
    });

    it('concurrent insertModelVersion transactions get distinct consecutive numbers', async () => {
      const tenant = await insertTenant(db, 'concurrent-owner');
      const model = await upsertModel(db, tenant.id, 'iris');
      const inserted = await Promise.all(
        Array.from({ length: 5 }, () =>
          db.transaction((tx) => insertModelVersion(tx, model.id, newVersion())),
        ),
      );
      assert.deepEqual(
        inserted.map((version) => version.version).sort((a, b) => a - b),
        [1, 2, 3, 4, 5],
      );
    });

    it('listModelVersions returns the versions of several models, by model then version', async () => {
      const tenant = await insertTenant(db, 'list-versions-owner');
      const first = await upsertModel(db, tenant.id, 'first');
      const second = await upsertModel(db, tenant.id, 'second');
      const unrelated = await upsertModel(db, tenant.id, 'unrelated');
      for (const model of [second, first, second, unrelated]) {
        await db.transaction((tx) => insertModelVersion(tx, model.id, newVersion()));
      }
      const listed = await listModelVersions(db, [first.id, second.id]);
      // Postgres orders by model_id; these ids are plain ASCII of equal length, so a JS sort agrees.
      const versionsByModel = new Map([
        [first.id, [1]],
        [second.id, [1, 2]],
      ]);
      const expected = [...versionsByModel.keys()]
        .sort()
        .flatMap((modelId) => versionsByModel.get(modelId)!.map((version) => ({ modelId, version })));
      assert.deepEqual(
        listed.map(({ modelId, version }) => ({ modelId, version })),
        expected,
      );
      assert.deepEqual(await listModelVersions(db, []), []);
    });

    it('deleteModel removes the model with its versions; an artifact is referenced from any tenant', async () => {
      const tenant = await insertTenant(db, 'delete-owner');
      const other = await insertTenant(db, 'delete-other');
      const shared = randomDigest();
      const model = await upsertModel(db, tenant.id, 'iris');
      const othersModel = await upsertModel(db, other.id, 'iris');
      await db.transaction((tx) => insertModelVersion(tx, model.id, newVersion(shared)));
      await db.transaction((tx) => insertModelVersion(tx, model.id, newVersion(shared)));
      await db.transaction((tx) => insertModelVersion(tx, othersModel.id, newVersion(shared)));
      const unused = randomDigest();
      assert.deepEqual(await unreferencedArtifacts(db, [shared, unused]), [unused]);

      assert.deepEqual(await deleteModel(db, tenant.id, 'iris'), model);
      assert.deepEqual(await listModelVersions(db, [model.id]), []);
      assert.deepEqual(await listModels(db, tenant.id), []);
      assert.deepEqual(await unreferencedArtifacts(db, [shared]), [], "the other tenant's version uses it");
      assert.equal(await deleteModel(db, tenant.id, 'iris'), undefined);
      assert.deepEqual(await listModels(db, other.id), [othersModel]);
    });
  });
}
