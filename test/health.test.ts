// Liveness and readiness against a database that really goes away (a proxy in front of the test Postgres
// that refuses, then black-holes, connections): /readyz answers 503 with Retry-After while the database does
// not answer, and 200 again once it does; /healthz stays 200 (the process is alive), and so does
// /v2/health/ready (inference needs no database). Needs TEST_DATABASE_URL; skipped, saying so, without it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertProblem } from './helpers/api.ts';
import { createTestSchema, dropTestSchema, testDatabaseUrl } from './helpers/databases.ts';
import { startTestPlatform } from './helpers/platform.ts';
import { FaultyProxy, type ProxyMode } from './helpers/tcp-proxy.ts';

const url = testDatabaseUrl();

test('readiness follows the database; liveness and inference readiness do not', async (t) => {
  if (url === undefined) return t.skip('TEST_DATABASE_URL is unset');
  const schema = await createTestSchema(url, 'health');
  const proxy = await FaultyProxy.start(url);
  const tp = await startTestPlatform({
    config: { databaseUrl: proxy.urlFor(url), databaseSchema: schema, databaseTimeoutMs: 500 },
  });
  t.after(async () => {
    await tp.close();
    await proxy.close();
    await dropTestSchema(url, schema);
  });
  assert.equal((await tp.call('GET', '/readyz')).status, 200);

  for (const mode of ['refuse', 'blackhole'] satisfies ProxyMode[]) {
    proxy.setMode(mode);
    proxy.cut();
    const response = await tp.call('GET', '/readyz');
    assertProblem(response, 503, 'not_ready');
    assert.ok(Number(response.headers.get('retry-after')) > 0);
    assert.equal((await tp.call('GET', '/healthz')).status, 200);
    assert.equal((await tp.call('GET', '/v2/health/ready')).status, 200);
    proxy.setMode('pass');
    assert.equal((await tp.call('GET', '/readyz')).status, 200, `ready again after the ${mode}`);
  }
});
