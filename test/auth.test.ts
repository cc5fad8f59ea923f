// Authentication, scopes, tenants and API keys over real HTTP, on each database driver: who may call what,
// that keys are shown once and stored only as digests, and that no route lets one tenant see or touch
// another tenant's objects.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { generateKey } from '../src/auth/keys.ts';
import { ConfigError, resolveConfig } from '../src/config/config.ts';
import { assertProblem, deployModel, uploadRaw } from './helpers/api.ts';
import { testDatabases } from './helpers/databases.ts';
import { buildIdentityModel, startTestPlatform, type TestPlatform } from './helpers/platform.ts';

const MODEL = 'classifier';
const PREDICT_BODY = { instances: [[1, 2, 3]] };
const INFER_BODY = { inputs: [{ name: 'x', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }] };

interface Tenant {
  id: string;
  adminKey: string;
}

for (const { name: driver } of testDatabases()) {
  describe(`access control (${driver})`, () => {
    let tp: TestPlatform;
    let tenantA: Tenant;
    let tenantB: Tenant;

    async function createTenant(name: string): Promise<Tenant> {
      const response = await tp.call('POST', '/v1/tenants', { key: tp.adminKey, json: { name } });
      assert.equal(response.status, 201, JSON.stringify(response.body));
      return { id: response.body.id, adminKey: response.body.admin_key.key };
    }

    /** Creates a key with `adminKey` and returns the whole answer (it carries `key` this once). */
    async function createKey(adminKey: string, body: Record<string, unknown>) {
      const response = await tp.call('POST', '/v1/keys', { key: adminKey, json: body });
      assert.equal(response.status, 201, JSON.stringify(response.body));
      return response.body as { id: string; key: string; prefix: string; expires_at: string | null };
    }

    before(async () => {
      tp = await startTestPlatform({ postgres: driver === 'postgres' });
      tenantA = await createTenant('tenant-a');
      tenantB = await createTenant('tenant-b');
      await deployModel(tp, tenantA.adminKey, MODEL, buildIdentityModel(3));
    });

    after(async () => {
      await tp?.close();
    });

    describe('authentication', () => {
      test('a request without an Authorization header is 401 unauthenticated', async () => {
        assertProblem(await tp.call('GET', '/v1/models'), 401, 'unauthenticated');
        assertProblem(
          await tp.call('POST', `/v1/models/${MODEL}/predict`, { json: PREDICT_BODY }),
          401,
          'unauthenticated',
        );
      });

      test('a malformed Authorization header is 401 unauthenticated', async () => {
        for (const authorization of [
          tp.adminKey,
          `Basic ${tp.adminKey}`,
          'Bearer',
          'Bearer ',
          `Bearer ${tp.adminKey} extra`,
        ]) {
          const response = await tp.call('GET', '/v1/models', { headers: { authorization } });
          assertProblem(response, 401, 'unauthenticated');
        }
      });

      test('an unknown key is 401 unauthenticated', async () => {
        assertProblem(
          await tp.call('GET', '/v1/models', { key: generateKey().secret }),
          401,
          'unauthenticated',
        );
        assertProblem(
          await tp.call('GET', '/v1/models', { key: 'mg_not-a-real-key' }),
          401,
          'unauthenticated',
        );
      });

      test('a revoked key is refused with key_revoked on the very next request', async () => {
        const created = await createKey(tenantA.adminKey, { name: 'to revoke', scopes: ['read'] });
        // Used once first, so the key sits in the authenticator's cache when it is revoked.
        assert.equal((await tp.call('GET', '/v1/models', { key: created.key })).status, 200);

        const revoked = await tp.call('DELETE', `/v1/keys/${created.id}`, { key: tenantA.adminKey });
        assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
        assert.equal(revoked.body.id, created.id);
        assert.ok(revoked.body.revoked_at, 'the answer carries the revocation time');

        assertProblem(await tp.call('GET', '/v1/models', { key: created.key }), 401, 'key_revoked');
        const listed = await tp.call('GET', `/v1/keys/${created.id}`, { key: tenantA.adminKey });
        assert.equal(listed.body.revoked_at, revoked.body.revoked_at);
      });

      test('a key past its expiry is refused with key_expired', async () => {
        const startedMs = Date.now();
        const expiring = await createKey(tenantA.adminKey, { scopes: ['read'], expires_in_seconds: 3600 });
        const expiresAtMs = Date.parse(expiring.expires_at!);
        assert.ok(
          expiresAtMs >= startedMs + 3600_000 && expiresAtMs <= Date.now() + 3600_000,
          `expires_at ${expiring.expires_at} is an hour after creation`,
        );
        // A twin that stays valid shows the refusal below is the expiry's doing.
        const twin = await createKey(tenantA.adminKey, { scopes: ['read'], expires_in_seconds: 3600 });

        // Unused so far, so not cached: the next request reads the moved expiry.
        await tp.platform.db.query(
          `UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1`,
          [expiring.id],
        );
        assertProblem(await tp.call('GET', '/v1/models', { key: expiring.key }), 401, 'key_expired');
        assert.equal((await tp.call('GET', '/v1/models', { key: twin.key })).status, 200);
      });

      test('a predict key predicts but cannot read, deploy or manage keys', async () => {
        const { key } = await createKey(tenantA.adminKey, { scopes: ['predict'] });
        assert.equal(
          (await tp.call('POST', `/v1/models/${MODEL}/predict`, { key, json: PREDICT_BODY })).status,
          200,
        );
        assert.equal(
          (await tp.call('POST', `/v2/models/${MODEL}/infer`, { key, json: INFER_BODY })).status,
          200,
        );
        assertProblem(await uploadRaw(tp, key, MODEL, buildIdentityModel(3)), 403, 'forbidden');
        assertProblem(await tp.call('DELETE', `/v1/models/${MODEL}`, { key }), 403, 'forbidden');
        assertProblem(await tp.call('GET', '/v1/models', { key }), 403, 'forbidden');
        assertProblem(await tp.call('GET', '/v1/keys', { key }), 403, 'forbidden');
        assertProblem(
          await tp.call('POST', '/v1/keys', { key, json: { scopes: ['admin'] } }),
          403,
          'forbidden',
        );
      });

      test('a read key reads but cannot predict or deploy', async () => {
        const { key } = await createKey(tenantA.adminKey, { scopes: ['read'] });
        assert.equal((await tp.call('GET', `/v1/models/${MODEL}`, { key })).status, 200);
        assert.equal((await tp.call('GET', `/v2/models/${MODEL}`, { key })).status, 200);
        assertProblem(
          await tp.call('POST', `/v1/models/${MODEL}/predict`, { key, json: PREDICT_BODY }),
          403,
          'forbidden',
        );
        assertProblem(
          await tp.call('POST', `/v2/models/${MODEL}/infer`, { key, json: INFER_BODY }),
          403,
          'forbidden',
        );
        assertProblem(await uploadRaw(tp, key, MODEL, buildIdentityModel(3)), 403, 'forbidden');
        assertProblem(
          await tp.call('PATCH', `/v1/models/${MODEL}`, { key, json: { settings: { maxBatchSize: 2 } } }),
          403,
          'forbidden',
        );
        assertProblem(await tp.call('GET', '/v1/keys', { key }), 403, 'forbidden');
      });

      test('a deploy key deploys and reads but cannot manage keys or tenants', async () => {
        const { key } = await createKey(tenantA.adminKey, { scopes: ['deploy'] });
        assert.equal((await tp.call('GET', '/v1/models', { key })).status, 200);
        assert.equal((await tp.call('GET', `/v1/models/${MODEL}/versions/1`, { key })).status, 200);
        assert.equal((await uploadRaw(tp, key, 'deployed-by-deploy-key', buildIdentityModel(2))).status, 201);
        assertProblem(await tp.call('GET', '/v1/keys', { key }), 403, 'forbidden');
        assertProblem(
          await tp.call('POST', '/v1/keys', { key, json: { scopes: ['read'] } }),
          403,
          'forbidden',
        );
        assertProblem(await tp.call('GET', '/v1/tenants', { key }), 403, 'forbidden');
      });

      test('a key of several scopes has the union of them', async () => {
        const { key } = await createKey(tenantA.adminKey, { scopes: ['read', 'predict'] });
        assert.equal((await tp.call('GET', `/v1/models/${MODEL}`, { key })).status, 200);
        assert.equal(
          (await tp.call('POST', `/v1/models/${MODEL}/predict`, { key, json: PREDICT_BODY })).status,
          200,
        );
        assertProblem(await uploadRaw(tp, key, MODEL, buildIdentityModel(3)), 403, 'forbidden');
      });
    });

    describe('API keys', () => {
      test('the key is shown once, at creation; later only its prefix', async () => {
        const created = await createKey(tenantA.adminKey, { name: 'ci', scopes: ['read', 'predict'] });
        assert.match(created.key, /^mg_[a-z2-7]{39}$/);
        assert.ok(created.key.startsWith(created.prefix), `prefix ${created.prefix} begins the key`);
        assert.ok(created.prefix.length < created.key.length / 2, 'the prefix is a small part of the key');
        assert.equal((await tp.call('GET', '/v1/models', { key: created.key })).status, 200);

        const digest = createHash('sha256').update(created.key).digest('hex');
        const listed = await tp.call('GET', '/v1/keys', { key: tenantA.adminKey });
        const single = await tp.call('GET', `/v1/keys/${created.id}`, { key: tenantA.adminKey });
        assert.equal(single.status, 200);
        const entry = listed.body.keys.find((k: { id: string }) => k.id === created.id);
        assert.deepEqual(entry, single.body);
        assert.deepEqual(Object.keys(single.body).sort(), [
          'created_at',
          'expires_at',
          'id',
          'name',
          'prefix',
          'revoked_at',
          'scopes',
          'tenant_id',
        ]);
        assert.equal(single.body.prefix, created.prefix);
        assert.deepEqual(single.body.scopes, ['read', 'predict']);
        assert.equal(single.body.tenant_id, tenantA.id);
        for (const text of [JSON.stringify(listed.body), JSON.stringify(single.body)]) {
          assert.ok(!text.includes(created.key), 'the key is never listed');
          assert.ok(!text.includes(digest), 'nor its digest');
        }
      });

      test('the stored row holds the SHA-256 digest of the key, never the key', async () => {
        const created = await createKey(tenantA.adminKey, { scopes: ['read'] });
        const [row] = await tp.platform.db.query<{ digest: string; everything: string }>(
          'SELECT digest, row_to_json(api_keys)::text AS everything FROM api_keys WHERE id = $1',
          [created.id],
        );
        assert.ok(row);
        assert.match(row.digest, /^[0-9a-f]{64}$/);
        assert.equal(row.digest, createHash('sha256').update(created.key).digest('hex'));
        assert.ok(!row.everything.includes(created.key), 'no column holds the key');
      });

      test('a key body with no scopes, an unknown scope, a bad expiry or an unknown field is 400', async () => {
        for (const body of [
          {},
          { scopes: [] },
          { scopes: ['root'] },
          { scopes: ['read'], expires_in_seconds: 60, expires_at: '2099-01-01T00:00:00Z' },
          { scopes: ['read'], expires_in_seconds: -5 },
          { scopes: ['read'], expires_in_seconds: 1e15 },
          { scopes: ['read'], expires_at: '2001-01-01T00:00:00Z' },
          { scopes: ['read'], expires_at: 'tomorrow' },
          { scopes: ['read'], tenant_id: tenantB.id },
        ]) {
          assertProblem(
            await tp.call('POST', '/v1/keys', { key: tenantA.adminKey, json: body }),
            400,
            'bad_request',
          );
        }
      });

      test('a key may expire at a given time', async () => {
        const expiresAt = '2099-12-31T23:59:59.000Z';
        const created = await createKey(tenantA.adminKey, { scopes: ['read'], expires_at: expiresAt });
        assert.equal(created.expires_at, expiresAt);
        assert.equal((await tp.call('GET', '/v1/models', { key: created.key })).status, 200);
      });

      test('GET and DELETE of an unknown key id are 404', async () => {
        assertProblem(await tp.call('GET', '/v1/keys/key_nope', { key: tenantA.adminKey }), 404, 'not_found');
        assertProblem(
          await tp.call('DELETE', '/v1/keys/key_nope', { key: tenantA.adminKey }),
          404,
          'not_found',
        );
      });
    });

    describe('tenants', () => {
      test('an operator admin creates a tenant whose admin key works at once', async () => {
        const response = await tp.call('POST', '/v1/tenants', {
          key: tp.adminKey,
          json: { name: 'fresh_1' },
        });
        assert.equal(response.status, 201, JSON.stringify(response.body));
        assert.equal(response.body.name, 'fresh_1');
        assert.equal(response.body.operator, false);
        assert.match(response.body.admin_key.key, /^mg_/);
        assert.deepEqual(response.body.admin_key.scopes, ['admin']);
        assert.equal(response.body.admin_key.tenant_id, response.body.id);

        const own = await tp.call('GET', '/v1/tenants', { key: response.body.admin_key.key });
        assert.equal(own.status, 200);
        assert.deepEqual(
          own.body.tenants.map((t: { id: string }) => t.id),
          [response.body.id],
        );
      });

      test('only admin keys of the operator tenant create tenants', async () => {
        assertProblem(
          await tp.call('POST', '/v1/tenants', { key: tenantA.adminKey, json: { name: 'by-tenant-a' } }),
          403,
          'forbidden',
        );
        const operatorDeployKey = (await createKey(tp.adminKey, { scopes: ['deploy'] })).key;
        assertProblem(
          await tp.call('POST', '/v1/tenants', { key: operatorDeployKey, json: { name: 'by-deploy-key' } }),
          403,
          'forbidden',
        );
        const operatorTenants = await tp.call('GET', '/v1/tenants', { key: tp.adminKey });
        const names = operatorTenants.body.tenants.map((t: { name: string }) => t.name);
        assert.ok(!names.includes('by-tenant-a') && !names.includes('by-deploy-key'), names.join());
      });

      test('a taken tenant name is 409 conflict', async () => {
        for (const name of ['tenant-a', 'default']) {
          assertProblem(
            await tp.call('POST', '/v1/tenants', { key: tp.adminKey, json: { name } }),
            409,
            'conflict',
          );
        }
      });

      test('a bad tenant name is 400', async () => {
        for (const body of [
          {},
          { name: '' },
          { name: 'Upper' },
          { name: 'has space' },
          { name: '-leading-dash' },
          { name: 'a'.repeat(64) },
          { name: 42 },
          { name: 'ok', operator: true },
        ]) {
          assertProblem(
            await tp.call('POST', '/v1/tenants', { key: tp.adminKey, json: body }),
            400,
            'bad_request',
          );
        }
      });

      test('the operator lists every tenant; any other admin only its own', async () => {
        const operator = await tp.call('GET', '/v1/tenants', { key: tp.adminKey });
        assert.equal(operator.status, 200);
        const names = operator.body.tenants.map((t: { name: string }) => t.name);
        for (const name of ['default', 'tenant-a', 'tenant-b']) assert.ok(names.includes(name), names.join());
        assert.equal(
          operator.body.tenants.find((t: { name: string }) => t.name === 'default').operator,
          true,
        );

        const own = await tp.call('GET', '/v1/tenants', { key: tenantB.adminKey });
        assert.deepEqual(own.body.tenants, [
          operator.body.tenants.find((t: { id: string }) => t.id === tenantB.id),
        ]);
      });

      test('a tenant sees itself by id, not another tenant; the operator sees any', async () => {
        const own = await tp.call('GET', `/v1/tenants/${tenantA.id}`, { key: tenantA.adminKey });
        assert.equal(own.status, 200);
        assert.equal(own.body.name, 'tenant-a');
        assertProblem(
          await tp.call('GET', `/v1/tenants/${tenantB.id}`, { key: tenantA.adminKey }),
          404,
          'not_found',
        );
        const byOperator = await tp.call('GET', `/v1/tenants/${tenantB.id}`, { key: tp.adminKey });
        assert.equal(byOperator.body.name, 'tenant-b');
        assertProblem(await tp.call('GET', '/v1/tenants/tn_nope', { key: tp.adminKey }), 404, 'not_found');
      });
    });

    describe('tenant isolation', () => {
      /** Every route that names a model, with a body it would accept from the model's owner. */
      const modelRoutes: { method: string; path: string; json?: unknown }[] = [
        { method: 'GET', path: `/v1/models/${MODEL}` },
        { method: 'GET', path: `/v1/models/${MODEL}/versions/1` },
        { method: 'PATCH', path: `/v1/models/${MODEL}`, json: { settings: { maxBatchSize: 7 } } },
        { method: 'DELETE', path: `/v1/models/${MODEL}/versions/1` },
        { method: 'DELETE', path: `/v1/models/${MODEL}` },
        { method: 'POST', path: `/v1/models/${MODEL}/predict`, json: PREDICT_BODY },
        { method: 'POST', path: `/v1/models/${MODEL}/versions/1/predict`, json: PREDICT_BODY },
        { method: 'GET', path: `/v2/models/${MODEL}` },
        { method: 'GET', path: `/v2/models/${MODEL}/versions/1` },
        { method: 'GET', path: `/v2/models/${MODEL}/ready` },
        { method: 'GET', path: `/v2/models/${MODEL}/versions/1/ready` },
        { method: 'POST', path: `/v2/models/${MODEL}/infer`, json: INFER_BODY },
        { method: 'POST', path: `/v2/models/${MODEL}/versions/1/infer`, json: INFER_BODY },
      ];

      test('the owner reaches every read and predict route of its model (the control for the 404s below)', async () => {
        for (const { method, path, json } of modelRoutes.filter(
          (r) => r.method === 'GET' || r.method === 'POST',
        )) {
          const response = await tp.call(method, path, { key: tenantA.adminKey, json });
          assert.equal(response.status, 200, `${method} ${path}: ${JSON.stringify(response.body)}`);
        }
      });

      test("another tenant's admin gets 404 model_not_found on every route of the model, and changes nothing", async () => {
        for (const key of [tenantB.adminKey, tp.adminKey]) {
          for (const { method, path, json } of modelRoutes) {
            const response = await tp.call(method, path, { key, json });
            assert.equal(response.status, 404, `${method} ${path}: ${JSON.stringify(response.body)}`);
            assertProblem(response, 404, 'model_not_found');
          }
        }
        const owned = await tp.call('GET', `/v1/models/${MODEL}`, { key: tenantA.adminKey });
        assert.equal(owned.status, 200);
        assert.deepEqual(
          owned.body.versions.map((v: { version: number }) => v.version),
          [1],
        );
        assert.deepEqual(owned.body.settings, {});
      });

      test("another tenant's admin gets 404 for a key id of the tenant, and the key keeps working", async () => {
        const created = await createKey(tenantA.adminKey, { scopes: ['read'] });
        assertProblem(
          await tp.call('GET', `/v1/keys/${created.id}`, { key: tenantB.adminKey }),
          404,
          'not_found',
        );
        assertProblem(
          await tp.call('DELETE', `/v1/keys/${created.id}`, { key: tenantB.adminKey }),
          404,
          'not_found',
        );
        const listedByB = await tp.call('GET', '/v1/keys', { key: tenantB.adminKey });
        assert.ok(!listedByB.body.keys.some((k: { id: string }) => k.id === created.id));
        assert.ok(listedByB.body.keys.every((k: { tenant_id: string }) => k.tenant_id === tenantB.id));
        assert.equal((await tp.call('GET', '/v1/models', { key: created.key })).status, 200);
      });

      test('two tenants deploy models of the same name and each sees and runs only its own', async () => {
        const before = await tp.call('GET', '/v1/models', { key: tenantB.adminKey });
        assert.ok(
          !before.body.models.some((m: { name: string }) => m.name === MODEL),
          'B does not list A model',
        );

        const deployed = await uploadRaw(tp, tenantB.adminKey, MODEL, buildIdentityModel(2));
        assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
        assert.equal(deployed.body.deployed_version, 1, "B's model starts its own numbering");

        const seenByA = await tp.call('GET', `/v1/models/${MODEL}`, { key: tenantA.adminKey });
        const seenByB = await tp.call('GET', `/v1/models/${MODEL}`, { key: tenantB.adminKey });
        assert.deepEqual(seenByA.body.inputs, [{ name: 'x', datatype: 'FP32', shape: [-1, 3] }]);
        assert.deepEqual(seenByB.body.inputs, [{ name: 'x', datatype: 'FP32', shape: [-1, 2] }]);

        const predictA = await tp.call('POST', `/v1/models/${MODEL}/predict`, {
          key: tenantA.adminKey,
          json: { instances: [[1, 2, 3]] },
        });
        assert.deepEqual(predictA.body.outputs, { y: [[1, 2, 3]] });
        const predictB = await tp.call('POST', `/v1/models/${MODEL}/predict`, {
          key: tenantB.adminKey,
          json: { instances: [[4, 5]] },
        });
        assert.deepEqual(predictB.body.outputs, { y: [[4, 5]] });

        // B deleting its model leaves A's alone.
        assert.equal((await tp.call('DELETE', `/v1/models/${MODEL}`, { key: tenantB.adminKey })).status, 204);
        assert.equal((await tp.call('GET', `/v1/models/${MODEL}`, { key: tenantA.adminKey })).status, 200);
        const stillA = await tp.call('POST', `/v1/models/${MODEL}/predict`, {
          key: tenantA.adminKey,
          json: PREDICT_BODY,
        });
        assert.deepEqual(stillA.body.outputs, { y: [[1, 2, 3]] });
      });
    });

    describe('errors', () => {
      test('every kind of error is a problem document carrying the request id', async () => {
        const cases: [Promise<Awaited<ReturnType<TestPlatform['call']>>>, number, string][] = [
          [tp.call('GET', '/v1/models'), 401, 'unauthenticated'],
          [
            tp.call('GET', '/v1/keys', {
              key: (await createKey(tenantA.adminKey, { scopes: ['read'] })).key,
            }),
            403,
            'forbidden',
          ],
          [tp.call('GET', '/v1/models/nope', { key: tenantA.adminKey }), 404, 'model_not_found'],
          [
            tp.call('GET', `/v1/models/${MODEL}/versions/9`, { key: tenantA.adminKey }),
            404,
            'version_not_found',
          ],
          [tp.call('GET', '/v1/no-such-route', { key: tenantA.adminKey }), 404, 'not_found'],
          [tp.call('POST', '/v1/tenants', { key: tp.adminKey, json: { name: 'tenant-a' } }), 409, 'conflict'],
          [tp.call('POST', '/v1/keys', { key: tenantA.adminKey, json: { scopes: [] } }), 400, 'bad_request'],
          [
            tp.call('POST', '/v1/keys', {
              key: tenantA.adminKey,
              body: '{"scopes": [',
              headers: { 'content-type': 'application/json' },
            }),
            400,
            'invalid_json',
          ],
          [
            tp.call('POST', `/v2/models/${MODEL}/infer`, { key: tenantA.adminKey, json: { inputs: [] } }),
            400,
            'bad_request',
          ],
        ];
        for (const [response, status, code] of cases) assertProblem(await response, status, code);
      });

      test('a given X-Request-Id is echoed in the header and the problem document', async () => {
        const failed = await tp.call('GET', '/v1/models', { headers: { 'x-request-id': 'trace-abc.123' } });
        assertProblem(failed, 401, 'unauthenticated');
        assert.equal(failed.headers.get('x-request-id'), 'trace-abc.123');

        const succeeded = await tp.call('GET', '/v1/models', {
          key: tenantA.adminKey,
          headers: { 'x-request-id': 'trace-def-456' },
        });
        assert.equal(succeeded.status, 200);
        assert.equal(succeeded.headers.get('x-request-id'), 'trace-def-456');
      });

      test('an unusable X-Request-Id is replaced by a fresh id', async () => {
        const response = await tp.call('GET', '/v1/models', {
          headers: { 'x-request-id': 'has spaces/and slashes' },
        });
        assertProblem(response, 401, 'unauthenticated');
        assert.match(response.headers.get('x-request-id')!, /^[0-9a-f-]{36}$/);
      });
    });

    describe('MODELGATE_ADMIN_KEY', () => {
      test('the configured admin key is an operator admin key', async () => {
        const tenants = await tp.call('GET', '/v1/tenants', { key: tp.adminKey });
        assert.equal(tenants.status, 200);
        assert.ok(tenants.body.tenants.length >= 3, 'the operator sees every tenant');
      });
    });
  });
}

describe('MODELGATE_ADMIN_KEY', () => {
  test('a malformed admin key is refused when the configuration is resolved, before anything starts', () => {
    for (const adminKey of ['not-a-key', 'mg_short', `xx_${'a'.repeat(40)}`, `mg_${'a'.repeat(30)} b`]) {
      assert.throws(() => resolveConfig({ adminKey }, {}), ConfigError, adminKey);
    }
  });
});
