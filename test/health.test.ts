// Liveness and readiness: /readyz and /v2/health/ready answer 503 with Retry-After while the database does
// not answer, and 200 again once it does; /healthz stays 200 throughout (the process itself is alive).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { StoreError } from '../src/store/db.ts';
import { assertProblem } from './helpers/api.ts';
import { startTestPlatform, type TestPlatform } from './helpers/platform.ts';

let tp: TestPlatform;

before(async () => {
  tp = await startTestPlatform();
});
after(() => tp.close());

test('readiness follows the database; liveness does not', async () => {
  assert.equal((await tp.call('GET', '/readyz')).status, 200);
  const db = tp.platform.db;
  const query = db.query;
  // The connection is refused, as the driver reports it when the server is gone.
  db.query = () =>
    Promise.reject(new StoreError('connection', 'connection refused', '08006', { cause: null }));
  try {
    const response = await tp.call('GET', '/readyz');
    assertProblem(response, 503, 'not_ready');
    assert.ok(Number(response.headers.get('retry-after')) > 0);
    assert.equal((await tp.call('GET', '/healthz')).status, 200);
  } finally {
    db.query = query;
  }
  assert.equal((await tp.call('GET', '/readyz')).status, 200);
});
