// Hostile input at every route, over real HTTP on each driver: text the database cannot hold (NUL, lone
// surrogates) in paths, queries and bodies, path segments past the router's limit, headers past Node's,
// tensors nested 10,000 deep, malformed multipart uploads, and numbers JSON cannot carry. Each answers a
// documented 4xx problem, never a 500, and what the gateway accepts runs as /predict would.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createRequire } from 'node:module';
import fastify from 'fastify';
import { buildModel } from '../examples/onnx-writer.ts';
import { ERROR_CODES, type ErrorCode } from '../src/errors.ts';
import { toModelgateError } from '../src/http/errors.ts';
import { assertProblem, deployModel, waitForBatch } from './helpers/api.ts';
import { testDatabases } from './helpers/databases.ts';
import { buildIdentityModel, startTestPlatform, type TestPlatform } from './helpers/platform.ts';
import { waitUntil } from './helpers/processes.ts';

type Response = Awaited<ReturnType<TestPlatform['call']>>;
const require = createRequire(import.meta.url);

/** y = log(x), FP32 [batch, 4]: log(0) is -Infinity and log(-1) NaN, which JSON cannot carry. */
function buildLogModel(): Uint8Array {
  return buildModel({
    name: 'log',
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 4] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['batch', 4] }],
    nodes: [{ opType: 'Log', inputs: ['x'], outputs: ['y'] }],
  });
}

/** `[[[…1…]]]`, `depth` arrays deep. */
const nested = (depth: number) => `${'['.repeat(depth)}1${']'.repeat(depth)}`;

/** Sends raw bytes to the server and reads until it closes the connection: for what HTTP clients refuse to send. */
function rawRequest(url: string, bytes: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(answer));
    socket.on('error', (error) => (answer ? resolve(answer) : reject(error)));
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    socket.end(bytes);
  });
}

/** The status and problem document of a raw HTTP answer. */
function parseRawAnswer(answer: string): { status: number; type: string; body: Record<string, unknown> } {
  const [head = '', body = ''] = answer.split('\r\n\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  const type = /^content-type: *(.*)$/im.exec(head)?.[1] ?? '';
  return { status, type, body: JSON.parse(body) as Record<string, unknown> };
}

describe("Fastify's own errors", () => {
  it("every error Fastify or @fastify/multipart marks as the client's maps to a documented 4xx code", async () => {
    const codes: [code: string, status: number][] = Object.values(fastify.errorCodes).map((Ctor) => {
      const error = new Ctor('a', 'b', 'c');
      return [error.code, error.statusCode ?? 500];
    });
    // The plugin does not export its errors: read them where it makes them.
    const source = await readFile(require.resolve('@fastify/multipart'), 'utf8');
    for (const [, code, status] of source.matchAll(/createError\('(FST_\w+)', '[^']*', (\d{3})\)/g)) {
      codes.push([code!, Number(status)]);
    }
    assert.ok(
      codes.some(([code]) => code === 'FST_INVALID_MULTIPART_CONTENT_TYPE'),
      'the plugin was read',
    );
    const clientCodes = codes.filter(([, status]) => status >= 400 && status < 500);
    assert.ok(clientCodes.length >= 15, JSON.stringify(clientCodes));
    for (const [code, status] of clientCodes) {
      const mapped = toModelgateError(Object.assign(new Error(code), { code, statusCode: status }));
      assert.ok(mapped.status >= 400 && mapped.status < 500, `${code} (${status}) became ${mapped.code}`);
      assert.ok(mapped.code in ERROR_CODES);
    }
  });
});

/** Every route of the app as [method, path with :params], read from Fastify's own route tree. */
function routesOf(tree: string): [method: string, path: string][] {
  const routes: [string, string][] = [];
  const prefixes: string[] = [];
  for (const line of tree.split('\n')) {
    const match = /^([│ ]*)[├└]── (\S+) \(([^)]+)\)$/.exec(line);
    if (!match) continue;
    const depth = match[1]!.length / 4;
    prefixes.length = depth;
    const path = prefixes.join('') + match[2]!;
    prefixes.push(match[2]!);
    for (const method of match[3]!.split(', ')) if (method !== 'HEAD') routes.push([method, path]);
  }
  return routes;
}

/** Path parameter values a hostile client tries: odd text, escapes, lengths, names that are JS internals. */
const HOSTILE_PARAMS = [
  '%00',
  'x%00y',
  'a'.repeat(600),
  '%ED%A0%80',
  '%F0%9F%98%80',
  '%2e%2e',
  '%2F',
  '%25',
  '__proto__',
  'constructor',
  '%20',
  "'%3B%20DROP%20TABLE%20jobs%3B--",
  '1e309',
  '-1',
  '0',
  '99999999999999999999',
];
/** Query strings: wrong types, repeats, out of range, odd text. */
const HOSTILE_QUERIES = [
  '?limit=-1',
  '?limit=1e999',
  '?limit=abc&limit=2',
  `?cursor=${'z'.repeat(300)}`,
  '?cursor=%00',
  '?wait=1e309',
  '?wait=-0',
  '?__proto__=x',
  '?constructor=x',
  '?model=%ED%A0%80',
  '?status=%00',
  '?features=,,,',
  '?inputs=x:&passthrough=%00',
  '?part_rows=0&output=xml',
  '?version=-1',
  '?version=1e309',
];
/** Bodies, each sent with every content type of HOSTILE_CONTENT_TYPES. */
const HOSTILE_BODIES = [
  '',
  '{',
  'null',
  '[]',
  '"x"',
  '1e309',
  '{"__proto__": {"polluted": 1}}',
  '{"constructor": {"prototype": {"polluted": 1}}}',
  `{"instances": ${nested(5000)}}`,
  '{"instances": null}',
  '{"instances": [[1e309, 1, 1, 1]]}',
  '{"inputs": {"x": "text"}, "version": 1e309, "priority": -1e309}',
  '{"inputs": [{"name": "x", "shape": [1e309], "datatype": "FP32", "data": []}]}',
  '{"inputs": [{"name": "x", "shape": [-1, 4], "datatype": "BYTES", "data": [null]}], "outputs": [{}]}',
  '{"settings": {"maxBatchSize": 1e309, "timeoutMs": -1, "batching": "yes"}}',
  '{"name": "\\u0000", "scopes": ["admin", "admin"], "expires_in_seconds": 1e309}',
  '{"name": "x", "scopes": [], "expires_at": "9999-99-99T99:99:99Z"}',
  '{"input": "file:///etc/passwd"}',
  '{"input": "s3://../x"}',
  '{"webhook_url": "http://[::ffff:127.0.0.1]/", "instances": [[1, 2, 3, 4]]}',
  'id,a,b,c,d\n"unclosed,1,2,3,4\n',
  '\u0000\u0001\u0002 binary',
];
const HOSTILE_CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-16',
  'text/plain',
  'text/csv',
  'application/jsonl',
  'application/octet-stream',
  'multipart/form-data',
  'multipart/form-data; boundary=x',
];

for (const { name: driver } of testDatabases()) {
  describe(`hostile input (${driver})`, () => {
    let tp: TestPlatform;
    let key: string;
    let dataDir: string;
    const call = (method: string, path: string, options: Parameters<TestPlatform['call']>[2] = {}) =>
      tp.call(method, path, { key, ...options });
    const rawJson = (method: string, path: string, body: string) =>
      call(method, path, { body, headers: { 'content-type': 'application/json' } });
    /** A file the API answers with, as its text. */
    const fileText = async (path: string) =>
      (await fetch(tp.url + path, { headers: { authorization: `Bearer ${key}` } })).text();
    /** Jobs stored so far: a refused submit must store none. */
    const jobCount = async () => (await call('GET', '/v1/jobs?limit=1000')).body.jobs.length as number;

    before(async () => {
      dataDir = await mkdtemp(join(tmpdir(), 'modelgate-hostile-'));
      tp = await startTestPlatform({ postgres: driver === 'postgres', config: { dataDir } });
      key = tp.adminKey;
      await deployModel(tp, key, 'm', buildIdentityModel(4));
      await deployModel(tp, key, 'log', buildLogModel());
    });

    after(async () => {
      await tp.close();
      await rm(dataDir, { recursive: true, force: true });
    });

    it('a NUL or a lone surrogate in a path segment, query value or JSON string is 400 bad_request', async () => {
      const routes: [string, string, string?][] = [
        ['GET', '/v1/models/%00'],
        ['PATCH', '/v1/models/%00', '{"settings": {}}'],
        ['DELETE', '/v1/models/%00'],
        ['GET', '/v1/models/%00/versions/1'],
        ['DELETE', '/v1/models/%00/versions/1'],
        ['POST', '/v1/models/%00/predict', '{"instances": [[1, 2, 3, 4]]}'],
        ['POST', '/v1/models/%00/jobs', '{"instances": [[1, 2, 3, 4]]}'],
        ['GET', '/v1/jobs/%00'],
        ['GET', '/v1/jobs/job_%00x'],
        ['POST', '/v1/jobs/%00/cancel'],
        ['GET', '/v1/batches/%00'],
        ['GET', '/v1/batches/%00/output'],
        ['GET', '/v1/batches/%00/errors'],
        ['POST', '/v1/batches/%00/cancel'],
        ['GET', '/v1/tenants/%00'],
        ['GET', '/v1/keys/%00'],
        ['DELETE', '/v1/keys/%00'],
        ['GET', '/v2/models/%00'],
        ['GET', '/v2/models/m/versions/%00/ready'],
        ['GET', '/v1/jobs?cursor=%00'],
        ['GET', '/v1/jobs?model=%00'],
        ['GET', '/v1/jobs?model=a&%00=1'],
        ['GET', '/v1/batches?cursor=%00'],
        ['POST', '/v1/keys', '{"name": "a\\u0000b", "scopes": ["read"]}'],
        ['POST', '/v1/keys', '{"name": "a\\ud800b", "scopes": ["read"]}'],
        ['POST', '/v1/keys', '{"name": "a\\udc00", "scopes": ["read"]}'],
        ['POST', '/v1/tenants', '{"name": "a\\u0000"}'],
        ['PATCH', '/v1/models/m', '{"settings": {"\\u0000": 1}}'],
        [
          'POST',
          '/v1/models/m/jobs',
          '{"instances": [[1, 2, 3, 4]], "webhook_url": "https://a.example/\\u0000"}',
        ],
        ['POST', '/v1/models/m/jobs', '{"inputs": {"x\\u0000": [[1, 2, 3, 4]]}}'],
        ['POST', '/v1/models/m/batches', '{"input": "s3://bucket/\\u0000.csv"}'],
      ];
      const jobsBefore = await jobCount();
      for (const [method, path, body] of routes) {
        const response = body === undefined ? await call(method, path) : await rawJson(method, path, body);
        assertProblem(response, 400, 'bad_request');
        assert.match(response.body.detail, /NUL|surrogate/, `${method} ${path}`);
      }
      assert.equal(await jobCount(), jobsBefore, 'no job was stored');
      // Checked after authentication: without a key, the answer is 401 whatever the path holds.
      assertProblem(await tp.call('GET', '/v1/jobs/%00'), 401, 'unauthenticated');
      assert.equal((await call('GET', '/v1/keys')).body.keys.length, 1, 'no key was stored');
      // Text that is only escaped, or a valid surrogate pair, is text.
      const created = await rawJson(
        'POST',
        '/v1/keys',
        '{"name": "\\\\u0000 \\ud83d\\ude00", "scopes": ["read"]}',
      );
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.name, '\\u0000 😀');
    });

    it('a path segment over 512 characters is 414 uri_too_long on every route with one', async () => {
      const long = 'a'.repeat(1000);
      for (const [method, path] of [
        ['GET', `/v1/models/${long}`],
        ['PATCH', `/v1/models/${long}`],
        ['DELETE', `/v1/models/${long}`],
        ['GET', `/v1/models/m/versions/${long}`],
        ['DELETE', `/v1/models/m/versions/${long}`],
        ['POST', `/v1/models/${long}/versions`],
        ['POST', `/v1/models/${long}/predict`],
        ['POST', `/v1/models/m/versions/${long}/predict`],
        ['POST', `/v1/models/${long}/jobs`],
        ['POST', `/v1/models/${long}/batches`],
        ['GET', `/v1/jobs/${long}`],
        ['POST', `/v1/jobs/${long}/cancel`],
        ['GET', `/v1/batches/${long}`],
        ['GET', `/v1/batches/${long}/output`],
        ['POST', `/v1/batches/${long}/cancel`],
        ['GET', `/v1/tenants/${long}`],
        ['GET', `/v1/keys/${long}`],
        ['DELETE', `/v1/keys/${long}`],
        ['GET', `/v2/models/${long}`],
        ['POST', `/v2/models/m/versions/${long}/infer`],
      ]) {
        const response = await call(method!, path!);
        assertProblem(response, 414, 'uri_too_long');
      }
    });

    it('what Node refuses before routing gets a problem document too: headers too large, broken HTTP', async () => {
      const tooLarge = parseRawAnswer(
        await rawRequest(
          tp.url,
          `GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Padding: ${'p'.repeat(20_000)}\r\n\r\n`,
        ),
      );
      assert.equal(tooLarge.status, 431);
      assert.match(tooLarge.type, /^application\/problem\+json/);
      assert.equal(tooLarge.body.code, 'headers_too_large');
      assert.equal(tooLarge.body.status, 431);

      const broken = parseRawAnswer(await rawRequest(tp.url, 'GET /v1/models HTTP/1.1\r\nHost x\r\n\r\n'));
      assert.equal(broken.status, 400);
      assert.equal(broken.body.code, 'bad_request');
      assert.equal(typeof broken.body.request_id, 'string');
    });

    it('tensors nested 10,000 deep are 400 invalid_input with a short message, on every inference route', async () => {
      const deep = nested(10_000);
      for (const [method, path, body] of [
        ['POST', '/v1/models/m/predict', `{"instances": ${deep}}`],
        ['POST', '/v1/models/m/versions/1/predict', `{"instances": ${deep}}`],
        ['POST', '/v1/models/m/predict', `{"inputs": {"x": ${deep}}}`],
        ['POST', '/v1/models/m/jobs', `{"instances": ${deep}}`],
        ['POST', '/v1/models/m/jobs', `{"inputs": {"x": ${deep}}, "priority": 1}`],
        // Three deep where the model takes two.
        ['POST', '/v1/models/m/predict', '{"instances": [[[1, 2, 3, 4]]]}'],
        // v2: the shape given, the data nested deeper than it, or as deep as the shape says.
        [
          'POST',
          '/v2/models/m/infer',
          `{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [${deep}, 1, 1, 1]}]}`,
        ],
        [
          'POST',
          '/v2/models/m/infer',
          `{"inputs": [{"name": "x", "shape": [${Array(10_000).fill(1).join(',')}], "datatype": "FP32", "data": ${deep}}]}`,
        ],
        [
          'POST',
          '/v2/models/m/versions/1/infer',
          `{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": ${deep}}]}`,
        ],
      ] as const) {
        const response = await rawJson(method, path, body);
        assertProblem(response, 400, 'invalid_input');
        assert.ok(JSON.stringify(response.body).length < 2000, `${path}: ${JSON.stringify(response.body)}`);
      }
    });

    it('a malformed multipart upload is 400 bad_request and leaves nothing behind', async () => {
      const head = '--b\r\nContent-Disposition: form-data; name="file"; filename="model.onnx"\r\n';
      for (const [contentType, body] of [
        ['multipart/form-data', 'no boundary in the content type'],
        ['multipart/form-data; boundary=b', 'a body without the boundary'],
        ['multipart/form-data; boundary=b', `${head}\r\nbytes of a file that never ends`],
        ['multipart/form-data; boundary=b', `${head}Content-Type: application/octet-stream`],
      ]) {
        const response = await call('POST', '/v1/models/upload/versions', {
          body,
          headers: { 'content-type': contentType! },
        });
        assertProblem(response, 400, 'bad_request');
        assert.match(response.body.detail, /multipart form/, body);
      }
      assertProblem(await call('GET', '/v1/models/upload'), 404, 'model_not_found');
      assert.deepEqual(await readdir(join(dataDir, 'artifacts', 'tmp')), [], 'no staged file is left');
    });

    it('a number JSON cannot carry (1e309) is refused by /predict, v2 and jobs alike; none is stored', async () => {
      const jobsBefore = await jobCount();
      for (const [path, body] of [
        ['/v1/models/m/predict', '{"instances": [[1e309, 1, 1, 1]]}'],
        ['/v1/models/m/predict', '{"instances": [[1, -1e400, 1, 1]]}'],
        ['/v1/models/m/jobs', '{"instances": [[1e309, 1, 1, 1]]}'],
        ['/v1/models/m/jobs', '{"inputs": {"x": [[1, 1, 1, -1e309]]}}'],
        [
          '/v2/models/m/infer',
          '{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 1, 1e309, 1]}]}',
        ],
      ]) {
        const response = await rawJson('POST', path!, body!);
        assertProblem(response, 400, 'invalid_input');
        assert.match(response.body.detail, /must be finite/);
      }
      assert.equal(await jobCount(), jobsBefore);
    });

    it('non-finite outputs are null in JSON and empty in CSV: /predict, jobs and batches agree', async () => {
      const row = [1, 0, -1, Math.E];
      const predicted = await call('POST', '/v1/models/log/predict', { json: { instances: [row] } });
      assert.equal(predicted.status, 200, JSON.stringify(predicted.body));
      const [y] = predicted.body.outputs.y as (number | null)[][];
      assert.deepEqual(y!.slice(0, 3), [0, null, null]);
      assert.ok(Math.abs(y![3]! - 1) < 1e-6);

      const job = await call('POST', '/v1/models/log/jobs', {
        json: { instances: [row] },
        headers: { prefer: 'wait=30' },
      });
      assert.equal(job.body.status, 'succeeded', JSON.stringify(job.body));
      assert.deepEqual(job.body.result, predicted.body);

      for (const [type, body, output] of [
        ['text/csv', 'id,a,b,c,d\nr1,1,0,-1,1\n', 'id,y_0,y_1,y_2,y_3\nr1,0,,,0\n'],
        [
          'application/jsonl',
          '{"id": "r1", "a": 1, "b": 0, "c": -1, "d": 1}\n',
          '{"id":"r1","y_0":0,"y_1":null,"y_2":null,"y_3":0}\n',
        ],
      ] as const) {
        const submitted = await call('POST', '/v1/models/log/batches?features=a,b,c,d', {
          body,
          headers: { 'content-type': type },
        });
        assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
        const batch = await waitForBatch(tp, key, submitted.body.id);
        assert.equal(batch.status, 'succeeded', JSON.stringify(batch));
        assert.equal(await fileText(`/v1/batches/${batch.id}/output`), output);
      }
    });

    it('a batch that has finished or was canceled answers a cancel 409 conflict, as a job does', async () => {
      const submitted = await call('POST', '/v1/models/m/batches', {
        body: 'a,b,c,d\n1,2,3,4\n',
        headers: { 'content-type': 'text/csv' },
      });
      assert.equal(submitted.status, 202);
      const done = await waitForBatch(tp, key, submitted.body.id);
      assert.equal(done.status, 'succeeded');
      const refused = await call('POST', `/v1/batches/${done.id}/cancel`);
      assertProblem(refused, 409, 'conflict');
      assert.equal(refused.body.batch_status, 'succeeded');
      assert.equal((await call('GET', `/v1/batches/${done.id}`)).body.status, 'succeeded', 'unchanged');
      assert.equal(await fileText(`/v1/batches/${done.id}/output`), 'y_0,y_1,y_2,y_3\n1,2,3,4\n');

      // A job finished: the same answer.
      const job = await call('POST', '/v1/models/m/jobs', {
        json: { instances: [[1, 2, 3, 4]] },
        headers: { prefer: 'wait=30' },
      });
      assert.equal(job.body.status, 'succeeded');
      const jobRefused = await call('POST', `/v1/jobs/${job.body.id}/cancel`);
      assertProblem(jobRefused, 409, 'conflict');
      assert.equal(jobRefused.body.job_status, 'succeeded');
      assertProblem(await call('POST', '/v1/batches/bat_nope/cancel'), 404, 'batch_not_found');
    });

    it('a webhook URL to an internal IP literal is refused at submit, naming the setting; nothing is stored', async () => {
      const jobsBefore = await jobCount();
      for (const url of [
        'http://127.0.0.1:9/hook',
        'http://169.254.169.254/latest/meta-data/',
        'http://[::1]:9/',
        'http://[::ffff:10.0.0.1]/',
        'http://localhost:9/',
      ]) {
        const response = await call('POST', '/v1/models/m/jobs', {
          json: { instances: [[1, 2, 3, 4]], webhook_url: url },
        });
        assertProblem(response, 400, 'bad_request');
        assert.equal(response.body.setting, 'webhookAllowPrivateNetworks', url);
        assert.match(response.body.detail, /webhookAllowPrivateNetworks/);
      }
      assert.equal(await jobCount(), jobsBefore);
      // A name that may resolve anywhere is checked when the delivery connects.
      const named = await call('POST', '/v1/models/m/jobs', {
        json: { instances: [[1, 2, 3, 4]], webhook_url: 'https://hooks.example.com/ml' },
      });
      assert.equal(named.status, 202, JSON.stringify(named.body));
    });

    it('a batch file whose column names the store cannot hold is 400; such text in cells passes through', async () => {
      for (const [type, body] of [
        ['application/jsonl', '{"i\\u0000d": "r1", "a": 1, "b": 2, "c": 3, "d": 4}\n'],
        ['application/jsonl', '{"i\\ud800d": "r1", "a": 1, "b": 2, "c": 3, "d": 4}\n'],
      ] as const) {
        const response = await call('POST', '/v1/models/m/batches?features=a,b,c,d', {
          body,
          headers: { 'content-type': type },
        });
        assertProblem(response, 400, 'invalid_input');
        assert.match(response.body.detail, /name of column 1/);
      }
      const submitted = await call('POST', '/v1/models/m/batches?features=a,b,c,d', {
        body: '{"id": "r\\u0000\\ud800", "a": 1, "b": 2, "c": 3, "d": 4}\n',
        headers: { 'content-type': 'application/jsonl' },
      });
      assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
      const batch = await waitForBatch(tp, key, submitted.body.id);
      assert.equal(batch.status, 'succeeded', JSON.stringify(batch));
      const output = await fileText(`/v1/batches/${batch.id}/output`);
      assert.deepEqual(JSON.parse(output), { id: 'r\u0000\ud800', y_0: 1, y_1: 2, y_2: 3, y_3: 4 });
    });

    it('a sweep of hostile requests over every route: none is answered 5xx, every error is documented', async (t) => {
      // A model of its own: the sweep changes and deletes it.
      await deployModel(tp, key, 'swept', buildIdentityModel(4));
      const routes = routesOf(tp.platform.app!.printRoutes({ commonPrefix: false }));
      assert.ok(routes.length >= 35, `${routes.length} routes`);
      const requests: { method: string; path: string; body?: string; type?: string }[] = [];
      const withParams = (path: string, value: string) =>
        path
          .replace(':name', value)
          .replace(':version', value === 'swept' ? '1' : value)
          .replace(':id', value);
      for (const [method, path] of routes) {
        for (const value of HOSTILE_PARAMS) requests.push({ method, path: withParams(path, value) });
        for (const query of HOSTILE_QUERIES) {
          requests.push({ method, path: withParams(path, 'swept') + query });
        }
        if (method === 'GET') continue;
        for (const body of HOSTILE_BODIES) {
          for (const type of HOSTILE_CONTENT_TYPES) {
            requests.push({ method, path: withParams(path, 'swept'), body, type });
          }
        }
      }
      // Destructive routes last, so that the model is there for the others.
      requests.sort((a, b) => Number(a.method === 'DELETE') - Number(b.method === 'DELETE'));
      const failures: string[] = [];
      for (const { method, path, body, type } of requests) {
        const response = await call(method, path, {
          body: body === undefined ? undefined : body,
          headers: type === undefined ? {} : { 'content-type': type },
        });
        const what = `${method} ${path.slice(0, 80)} ${type ?? ''} ${(body ?? '').slice(0, 40)}`;
        const { status } = response;
        const allowed503 = status === 503 && ['queue_full', 'not_ready'].includes(response.body?.code);
        if (status >= 500 && !allowed503)
          failures.push(`${status} ${what}: ${JSON.stringify(response.body)}`);
        if (status >= 400) {
          const code = response.body?.code;
          const documented = typeof code === 'string' && ERROR_CODES[code as ErrorCode] === status;
          const problem = /^application\/problem\+json/.test(response.headers.get('content-type') ?? '');
          if (!documented || !problem) failures.push(`${status} ${what}: not a documented problem`);
        }
      }
      t.diagnostic(`${requests.length} requests over ${routes.length} routes`);
      assert.deepEqual(failures.slice(0, 20), []);
      // Still serving.
      const health = await tp.call('GET', '/readyz');
      assert.equal(health.status, 200);
    });

    it('the server is still healthy and answers after all of it', async () => {
      const response: Response = await call('POST', '/v1/models/m/predict', {
        json: { instances: [[1, 2, 3, 4]] },
      });
      assert.equal(response.status, 200);
      await waitUntil(
        'readiness',
        () => tp.call('GET', '/readyz'),
        (ready) => ready.status === 200,
      );
    });
  });
}
