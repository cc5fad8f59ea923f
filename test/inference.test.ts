// Real-time inference end to end over real HTTP, on each database driver: the plain-JSON v1 predict API,
// the Open Inference Protocol v2, every failure a client can cause, dynamic batching, and the metrics that
// show it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { buildIrisModel, buildWideMlpModel, readIrisCsv } from '../examples/build.ts';
import { buildModel } from '../examples/onnx-writer.ts';
import { sampleValue } from './helpers/api.ts';
import { testDatabases } from './helpers/databases.ts';
import {
  buildIdentityModel,
  buildTwoInputModel,
  startTestPlatform,
  type TestPlatform,
} from './helpers/platform.ts';

type Response = Awaited<ReturnType<TestPlatform['call']>>;

/** An output tensor of a v2 inference answer. */
interface OutputTensor {
  name: string;
  datatype: string;
  shape: number[];
  data: number[];
}

const SLOW_WIDTH = 512;
const SLOW_COPIES = 1024;
const SLOW_LAYERS = 48;

/**
 * x [batch, 4] → y [batch]: each row is widened to 512, copied 1024 times and multiplied through 48
 * MatMuls (about 25 GFLOP a row), so one request keeps an inference thread busy for a long while. The
 * work depends on the input, so ONNX Runtime cannot fold it away when it loads the model.
 */
function buildSlowModel(): Uint8Array {
  return buildModel({
    name: 'slow',
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 4] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['batch'] }],
    initializers: [
      { name: 'widen', dims: [4, SLOW_WIDTH], values: new Float32Array(4 * SLOW_WIDTH).fill(0.25) },
      {
        name: 'w',
        dims: [SLOW_WIDTH, SLOW_WIDTH],
        values: new Float32Array(SLOW_WIDTH * SLOW_WIDTH).fill(1 / SLOW_WIDTH),
      },
    ],
    nodes: [
      { opType: 'MatMul', inputs: ['x', 'widen'], outputs: ['wide'] },
      {
        opType: 'Constant',
        inputs: [],
        outputs: ['rowShape'],
        attributes: { value_ints: { ints: [-1, 1, SLOW_WIDTH] } },
      },
      { opType: 'Reshape', inputs: ['wide', 'rowShape'], outputs: ['row'] },
      {
        opType: 'Constant',
        inputs: [],
        outputs: ['copies'],
        attributes: { value_ints: { ints: [1, SLOW_COPIES, 1] } },
      },
      { opType: 'Expand', inputs: ['row', 'copies'], outputs: ['m0'] },
      ...Array.from({ length: SLOW_LAYERS }, (_, i) => ({
        opType: 'MatMul',
        inputs: [`m${i}`, 'w'],
        outputs: [`m${i + 1}`],
      })),
      {
        opType: 'ReduceMean',
        inputs: [`m${SLOW_LAYERS}`],
        outputs: ['y'],
        attributes: { axes: { ints: [1, 2] }, keepdims: { int: 0 } },
      },
    ],
  });
}

/** Identity with names that are also members of Object.prototype, which a plain object lookup would find. */
function buildOddNamesModel(): Uint8Array {
  return buildModel({
    name: 'odd-names',
    inputs: [{ name: 'constructor', type: 'float32', shape: ['batch', 2] }],
    outputs: [{ name: 'toString', type: 'float32', shape: ['batch', 2] }],
    nodes: [{ opType: 'Identity', inputs: ['constructor'], outputs: ['toString'] }],
  });
}

/** Asserts an error answer: status, stable code and a problem+json body; returns the body. */
function assertProblem(response: Response, status: number, code: string) {
  assert.equal(response.status, status, `expected ${status} ${code}, got ${JSON.stringify(response.body)}`);
  assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
  assert.equal(response.body.code, code);
  assert.equal(response.body.status, status);
  assert.equal(typeof response.body.detail, 'string');
  return response.body;
}

/** Asserts an error of a v2 route: the problem fields and the protocol's `error` field. */
function assertV2Problem(response: Response, status: number, code: string) {
  const body = assertProblem(response, status, code);
  assert.equal(typeof body.error, 'string');
  assert.equal(body.error, body.detail);
  return body;
}

function assertClose(actual: number[][], expected: number[][], what: string): void {
  assert.equal(actual.length, expected.length, what);
  actual.forEach((row, i) =>
    row.forEach((value, j) => {
      const reference = expected[i]![j]!;
      const tolerance = 1e-5 * Math.max(Math.abs(reference), 1e-3);
      assert.ok(
        Math.abs(value - reference) <= tolerance,
        `${what}: row ${i} column ${j} is ${value}, expected ${reference}`,
      );
    }),
  );
}

/** Deterministic, distinct rows of `width` values in [-1, 1]. */
function makeRows(count: number, width: number): number[][] {
  return Array.from({ length: count }, (_, i) =>
    Array.from({ length: width }, (_, j) => Math.sin(i * width + j)),
  );
}

for (const { name: driver } of testDatabases()) {
  describe(`inference over HTTP (${driver})`, { timeout: 120_000 }, () => {
    let main: TestPlatform;
    /** A platform with tight limits: small bodies, one inference thread, a queue of one. */
    let limited: TestPlatform;
    const iris = readIrisCsv();
    const postgres = driver === 'postgres';

    before(async () => {
      [main, limited] = await Promise.all([
        startTestPlatform({ postgres }),
        startTestPlatform({
          postgres,
          config: { bodyLimitBytes: 2048, maxQueueSize: 1, inferenceThreads: 1 },
        }),
      ]);
      const admin = main.client();
      const slowModel = buildSlowModel();
      const wideMlp = buildWideMlpModel();
      await admin.deploy('iris', buildIrisModel());
      await admin.deploy('pair', buildTwoInputModel());
      await admin.deploy('odd-names', buildOddNamesModel());
      await admin.deploy('versioned', buildIdentityModel(3));
      await admin.deploy('versioned', buildIdentityModel(5));
      await admin.deploy('wide-batched', wideMlp);
      // A long fill delay makes the concurrent requests below meet in batches however the machine schedules them.
      await admin.updateModelSettings('wide-batched', { maxBatchDelayMs: 25 });
      await admin.deploy('wide-solo', wideMlp);
      await admin.updateModelSettings('wide-solo', { batching: false });
      await admin.deploy('slow', slowModel);
      await limited.client().deploy('slow', slowModel);
    });

    after(async () => {
      await Promise.all([main?.close(), limited?.close()]);
    });

    const predict = (name: string, body: unknown, path = `/v1/models/${name}/predict`) =>
      main.call('POST', path, { key: main.adminKey, json: body });
    const infer = (name: string, body: unknown, path = `/v2/models/${name}/infer`) =>
      main.call('POST', path, { key: main.adminKey, json: body });

    // Rows of iris.csv: the first, a middle and the last row of each species (setosa, versicolor, virginica).
    const KNOWN_ROWS = [0, 24, 49, 50, 74, 99, 100, 124, 149];
    const KNOWN_LABELS = [0, 0, 0, 1, 1, 1, 2, 2, 2];

    describe('v1 predict', () => {
      test('inputs: named nested tensors in, nested outputs out; iris gets the species right', async () => {
        const response = await predict('iris', { inputs: { x: KNOWN_ROWS.map((n) => iris.features[n]) } });
        assert.equal(response.status, 200, JSON.stringify(response.body));
        const { model, version, outputs } = response.body;
        assert.equal(model, 'iris');
        assert.equal(version, 1);
        assert.deepEqual(Object.keys(outputs).sort(), ['label', 'probabilities']);
        assert.deepEqual(
          KNOWN_ROWS.map((n) => iris.labels[n]),
          KNOWN_LABELS,
          'iris.csv changed',
        );
        assert.deepEqual(outputs.label, KNOWN_LABELS);
        assert.equal(outputs.probabilities.length, KNOWN_ROWS.length);
        for (const [i, row] of (outputs.probabilities as number[][]).entries()) {
          assert.equal(row.length, 3);
          const total = row.reduce((sum, p) => sum + p, 0);
          assert.ok(Math.abs(total - 1) <= 1e-5, `row ${i} sums to ${total}`);
          assert.equal(row.indexOf(Math.max(...row)), outputs.label[i], `row ${i}: label is not the argmax`);
        }
      });

      test('instances: rows of a single-input model give the same answer', async () => {
        const rows = KNOWN_ROWS.map((n) => iris.features[n]);
        const byInstances = await predict('iris', { instances: rows });
        const byInputs = await predict('iris', { inputs: { x: rows } });
        assert.equal(byInstances.status, 200);
        assert.deepEqual(byInstances.body, byInputs.body);
      });

      test('a version can be named in the path', async () => {
        const response = await predict(
          'iris',
          { instances: [iris.features[0]] },
          '/v1/models/iris/versions/1/predict',
        );
        assert.equal(response.status, 200);
        assert.equal(response.body.version, 1);
        assert.deepEqual(response.body.outputs.label, [0]);
      });

      test('a two-input model takes FP32 and INT64 inputs by name', async () => {
        const response = await predict('pair', {
          inputs: {
            a: [
              [0.5, -1.25],
              [3, 4],
            ],
            b: [
              [7, -8],
              [2 ** 40, 0],
            ],
          },
        });
        assert.equal(response.status, 200, JSON.stringify(response.body));
        assert.deepEqual(response.body.outputs, {
          a_out: [
            [0.5, -1.25],
            [3, 4],
          ],
          b_out: [
            [7, -8],
            [2 ** 40, 0],
          ],
        });
      });

      test('instances on a two-input model is a 400 naming the inputs', async () => {
        const body = assertProblem(
          await predict('pair', {
            instances: [
              [1, 2],
              [3, 4],
            ],
          }),
          400,
          'invalid_input',
        );
        assert.match(body.detail, /a, b/);
      });
    });

    describe('v2 (Open Inference Protocol)', () => {
      const irisInput = (rows: number[]) => ({
        name: 'x',
        shape: [rows.length, 4],
        datatype: 'FP32',
        data: rows.flatMap((n) => iris.features[n]!),
      });

      test('server metadata, liveness and readiness', async () => {
        const server = await main.call('GET', '/v2');
        assert.equal(server.status, 200);
        assert.equal(server.body.name, 'modelgate');
        assert.equal(typeof server.body.version, 'string');
        assert.ok(Array.isArray(server.body.extensions));
        const live = await main.call('GET', '/v2/health/live');
        assert.equal(live.status, 200);
        assert.equal(live.body.live, true);
        const ready = await main.call('GET', '/v2/health/ready');
        assert.equal(ready.status, 200);
        assert.equal(ready.body.ready, true);
      });

      test('model metadata, latest and by version', async () => {
        const expected = {
          name: 'iris',
          versions: ['1'],
          platform: 'onnxruntime_onnx',
          inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
          outputs: [
            { name: 'label', datatype: 'INT64', shape: [-1] },
            { name: 'probabilities', datatype: 'FP32', shape: [-1, 3] },
          ],
        };
        for (const path of ['/v2/models/iris', '/v2/models/iris/versions/1']) {
          const response = await main.call('GET', path, { key: main.adminKey });
          assert.equal(response.status, 200, path);
          assert.deepEqual(
            {
              ...response.body,
              outputs: [...response.body.outputs].sort((a, b) => a.name.localeCompare(b.name)),
            },
            expected,
            path,
          );
        }
      });

      test('model metadata lists every version and describes the one asked for', async () => {
        const latest = await main.call('GET', '/v2/models/versioned', { key: main.adminKey });
        assert.equal(latest.status, 200);
        assert.deepEqual(latest.body.versions, ['1', '2']);
        assert.deepEqual(latest.body.inputs, [{ name: 'x', datatype: 'FP32', shape: [-1, 5] }]);
        const first = await main.call('GET', '/v2/models/versioned/versions/1', { key: main.adminKey });
        assert.equal(first.status, 200);
        assert.deepEqual(first.body.versions, ['1', '2']);
        assert.deepEqual(first.body.inputs, [{ name: 'x', datatype: 'FP32', shape: [-1, 3] }]);

        const input = { name: 'x', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] };
        const answer = await infer('versioned', { inputs: [input] }, '/v2/models/versioned/versions/1/infer');
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        assert.equal(answer.body.model_version, '1');
        assert.deepEqual(answer.body.outputs[0].data, [1, 2, 3]);
        assertV2Problem(await infer('versioned', { inputs: [input] }), 400, 'invalid_input');
      });

      test('a deployed model is ready', async () => {
        for (const path of ['/v2/models/iris/ready', '/v2/models/iris/versions/1/ready']) {
          const response = await main.call('GET', path, { key: main.adminKey });
          assert.equal(response.status, 200, path);
          assert.equal(response.body.ready, true);
        }
      });

      test('infer with flat data answers typed output tensors and echoes the id', async () => {
        const rows = [0, 50, 100];
        const response = await infer('iris', { id: 'req-42', inputs: [irisInput(rows)] });
        assert.equal(response.status, 200, JSON.stringify(response.body));
        assert.equal(response.body.model_name, 'iris');
        assert.equal(response.body.model_version, '1');
        assert.equal(response.body.id, 'req-42');
        const outputs = new Map(
          (response.body.outputs as OutputTensor[]).map((output) => [output.name, output]),
        );
        assert.deepEqual(outputs.get('label'), {
          name: 'label',
          datatype: 'INT64',
          shape: [3],
          data: rows.map((n) => iris.labels[n]),
        });
        const probabilities = outputs.get('probabilities');
        assert.ok(probabilities, 'no probabilities output');
        assert.equal(probabilities.datatype, 'FP32');
        assert.deepEqual(probabilities.shape, [3, 3]);
        assert.equal(probabilities.data.length, 9);
        for (let row = 0; row < 3; row++) {
          const total = probabilities.data.slice(row * 3, row * 3 + 3).reduce((sum, p) => sum + p, 0);
          assert.ok(Math.abs(total - 1) <= 1e-5, `row ${row} sums to ${total}`);
        }
      });

      test('infer with nested data answers the same as with flat data', async () => {
        const flat = await infer('iris', { inputs: [irisInput([0, 50, 100])] });
        const nested = await infer('iris', {
          inputs: [
            { name: 'x', shape: [3, 4], datatype: 'FP32', data: [0, 50, 100].map((n) => iris.features[n]) },
          ],
        });
        assert.equal(nested.status, 200, JSON.stringify(nested.body));
        assert.deepEqual(nested.body, flat.body);
        assert.equal('id' in nested.body, false);
      });

      test('requested outputs filter the answer', async () => {
        const response = await infer('iris', { inputs: [irisInput([100])], outputs: [{ name: 'label' }] });
        assert.equal(response.status, 200);
        assert.deepEqual(response.body.outputs, [
          { name: 'label', datatype: 'INT64', shape: [1], data: [2] },
        ]);
      });

      test('an unknown requested output is a 400 naming it', async () => {
        const body = assertV2Problem(
          await infer('iris', { inputs: [irisInput([0])], outputs: [{ name: 'logits' }] }),
          400,
          'invalid_input',
        );
        assert.equal(body.output, 'logits');
      });

      test('a version can be named in the path', async () => {
        const response = await infer(
          'iris',
          { inputs: [irisInput([50])] },
          '/v2/models/iris/versions/1/infer',
        );
        assert.equal(response.status, 200);
        assert.equal(response.body.model_version, '1');
      });

      test('inputs and outputs may be named like Object.prototype members', async () => {
        const response = await infer('odd-names', {
          inputs: [{ name: 'constructor', shape: [1, 2], datatype: 'FP32', data: [1, 2] }],
          outputs: [{ name: 'toString' }],
        });
        assert.equal(response.status, 200, JSON.stringify(response.body));
        assert.deepEqual(response.body.outputs, [
          { name: 'toString', datatype: 'FP32', shape: [1, 2], data: [1, 2] },
        ]);
        const missing = assertProblem(await predict('odd-names', { inputs: {} }), 400, 'invalid_input');
        assert.match(missing.detail, /missing input "constructor"/);
      });

      test('errors of v2 routes carry the protocol error field', async () => {
        assertV2Problem(
          await main.call('GET', '/v2/models/nope', { key: main.adminKey }),
          404,
          'model_not_found',
        );
        assertV2Problem(await infer('nope', { inputs: [irisInput([0])] }), 404, 'model_not_found');
        assertV2Problem(
          await infer('iris', { inputs: [irisInput([0])] }, '/v2/models/iris/versions/7/infer'),
          404,
          'version_not_found',
        );
      });
    });

    describe('failure modes', () => {
      test('malformed JSON is 400 invalid_json', async () => {
        for (const path of ['/v1/models/iris/predict', '/v2/models/iris/infer']) {
          const response = await main.call('POST', path, {
            key: main.adminKey,
            body: '{"inputs": [',
            headers: { 'content-type': 'application/json' },
          });
          assertProblem(response, 400, 'invalid_json');
        }
      });

      test('a body that is not JSON is 415 unsupported_media_type', async () => {
        const response = await main.call('POST', '/v1/models/iris/predict', {
          key: main.adminKey,
          body: '5.1,3.5,1.4,0.2',
          headers: { 'content-type': 'text/csv' },
        });
        assertProblem(response, 415, 'unsupported_media_type');
      });

      test('JSON of the wrong structure is 400 bad_request', async () => {
        assertProblem(await predict('iris', {}), 400, 'bad_request');
        assertProblem(await predict('iris', { rows: [[1, 2, 3, 4]] }), 400, 'bad_request');
        assertProblem(await predict('iris', { instances: [] }), 400, 'bad_request');
        assertV2Problem(await infer('iris', { id: 'no-inputs' }), 400, 'bad_request');
        assertV2Problem(
          await infer('iris', {
            inputs: [{ name: 'x', shape: [1, 4], datatype: 'FLOAT', data: [1, 2, 3, 4] }],
          }),
          400,
          'bad_request',
        );
      });

      test('a wrong shape is 400 invalid_input naming the input and the expected shape', async () => {
        const v1 = assertProblem(await predict('iris', { inputs: { x: [[1, 2, 3]] } }), 400, 'invalid_input');
        assert.equal(v1.input, 'x');
        assert.deepEqual(v1.expected, [-1, 4]);
        assert.match(v1.detail, /"x".*\[-1, 4\]/);

        const v2 = assertV2Problem(
          await infer('iris', { inputs: [{ name: 'x', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }] }),
          400,
          'invalid_input',
        );
        assert.equal(v2.input, 'x');
        assert.deepEqual(v2.expected, [-1, 4]);
        assert.match(v2.detail, /"x".*\[-1, 4\]/);
      });

      test('data that does not fill the declared shape is 400 invalid_input', async () => {
        const body = assertV2Problem(
          await infer('iris', {
            inputs: [{ name: 'x', shape: [2, 4], datatype: 'FP32', data: [1, 2, 3, 4] }],
          }),
          400,
          'invalid_input',
        );
        assert.equal(body.input, 'x');
        assertProblem(
          await predict('iris', {
            instances: [
              [1, 2, 3, 4],
              [1, 2],
            ],
          }),
          400,
          'invalid_input',
        );
        assertProblem(await predict('iris', { instances: [[1, 2, 'three', 4]] }), 400, 'invalid_input');
      });

      test('a wrong datatype is 400 invalid_input', async () => {
        const body = assertV2Problem(
          await infer('iris', {
            inputs: [{ name: 'x', shape: [1, 4], datatype: 'INT32', data: [5, 3, 1, 0] }],
          }),
          400,
          'invalid_input',
        );
        assert.equal(body.input, 'x');
        assert.equal(body.expected, 'FP32');
        assert.equal(body.got, 'INT32');
        assertProblem(
          await predict('pair', { inputs: { a: [[1, 2]], b: [[1.5, 2]] } }),
          400,
          'invalid_input',
        );
      });

      test('an unknown or missing input is 400 invalid_input naming it', async () => {
        const v1 = assertProblem(
          await predict('iris', { inputs: { z: [[1, 2, 3, 4]] } }),
          400,
          'invalid_input',
        );
        assert.equal(v1.input, 'z');
        const v2 = assertV2Problem(
          await infer('iris', {
            inputs: [{ name: 'z', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }],
          }),
          400,
          'invalid_input',
        );
        assert.equal(v2.input, 'z');
        const missing = assertProblem(
          await predict('pair', { inputs: { a: [[1, 2]] } }),
          400,
          'invalid_input',
        );
        assert.equal(missing.input, 'b');
      });

      test('an unknown model is 404 model_not_found', async () => {
        const body = assertProblem(
          await predict('nope', { instances: [[1, 2, 3, 4]] }),
          404,
          'model_not_found',
        );
        assert.equal(body.model, 'nope');
      });

      test('an unknown version is 404 version_not_found', async () => {
        for (const version of ['7', 'latest']) {
          assertProblem(
            await predict(
              'iris',
              { instances: [[1, 2, 3, 4]] },
              `/v1/models/iris/versions/${version}/predict`,
            ),
            404,
            'version_not_found',
          );
        }
      });

      test('a body over bodyLimitBytes is 413 payload_too_large', async () => {
        const body = { instances: makeRows(100, 4) };
        assert.ok(JSON.stringify(body).length > 2048);
        const response = await limited.call('POST', '/v1/models/slow/predict', {
          key: limited.adminKey,
          json: body,
        });
        assertProblem(response, 413, 'payload_too_large');
      });

      test('a full queue is 503 queue_full with Retry-After; the requests it took succeed', async () => {
        const responses = await Promise.all(
          Array.from({ length: 16 }, () =>
            limited.call('POST', '/v1/models/slow/predict', {
              key: limited.adminKey,
              json: { instances: [[1, 2, 3, 4]] },
            }),
          ),
        );
        const refused = responses.filter((response) => response.status === 503);
        const answered = responses.filter((response) => response.status === 200);
        assert.ok(refused.length > 0, 'no request was refused with a queue of one');
        assert.ok(answered.length > 0, 'no request was answered');
        assert.equal(refused.length + answered.length, responses.length, 'a request failed otherwise');
        for (const response of refused) {
          assertProblem(response, 503, 'queue_full');
          assert.ok(Number(response.headers.get('retry-after')) > 0, 'Retry-After is missing');
        }
        for (const response of answered) assert.deepEqual(response.body.outputs.y, [2.5]);
      });

      test('a request past its deadline is 504 timeout', async () => {
        await main.client().updateModelSettings('slow', { timeoutMs: 1 });
        assertProblem(await predict('slow', { instances: [[1, 2, 3, 4]] }), 504, 'timeout');
        assertV2Problem(
          await infer('slow', {
            inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }],
          }),
          504,
          'timeout',
        );
      });
    });

    describe('dynamic batching', () => {
      const batchSizeTotals = async (model: string) => {
        const metrics = (await main.call('GET', '/metrics')).body as string;
        const labels = { model, version: '1' };
        return {
          requests: sampleValue(metrics, 'modelgate_batch_size_sum', labels) ?? 0,
          batches: sampleValue(metrics, 'modelgate_batch_size_count', labels) ?? 0,
        };
      };
      const outputsOf = (response: Response): number[] => {
        assert.equal(response.status, 200, JSON.stringify(response.body));
        assert.equal(response.body.outputs.y.length, 1);
        return response.body.outputs.y[0];
      };

      test('concurrent requests share batches and get the answers they would get alone', async () => {
        const rows = makeRows(48, 64);

        const reference: number[][] = [];
        for (const row of rows) reference.push(outputsOf(await predict('wide-solo', { instances: [row] })));
        assert.ok(reference.every((output) => output.length === 16));

        const before = await batchSizeTotals('wide-batched');
        const batched = await Promise.all(rows.map((row) => predict('wide-batched', { instances: [row] })));
        const after = await batchSizeTotals('wide-batched');
        const requests = after.requests - before.requests;
        const batches = after.batches - before.batches;
        assert.equal(requests, rows.length);
        assert.ok(batches < requests, `${requests} requests ran in ${batches} batches: nothing was batched`);
        assertClose(batched.map(outputsOf), reference, 'batched');
      });

      test('with batching off, concurrent requests each run alone', async () => {
        const rows = makeRows(24, 64);
        const before = await batchSizeTotals('wide-solo');
        const responses = await Promise.all(rows.map((row) => predict('wide-solo', { instances: [row] })));
        const after = await batchSizeTotals('wide-solo');
        responses.forEach(outputsOf);
        assert.equal(after.requests - before.requests, rows.length);
        assert.equal(after.batches - before.batches, rows.length);
      });
    });

    describe('metrics and health', () => {
      test('/metrics has the HTTP and inference series of a model after traffic', async () => {
        assert.equal((await predict('iris', { instances: [iris.features[0]] })).status, 200);
        const response = await main.call('GET', '/metrics');
        assert.equal(response.status, 200);
        const metrics = response.body as string;
        const labels = { model: 'iris', version: '1' };
        const predictRoute = { route: '/v1/models/:name/predict', method: 'POST', status: '200' };
        assert.ok((sampleValue(metrics, 'modelgate_http_requests_total', predictRoute) ?? 0) > 0);
        assert.ok(
          (sampleValue(metrics, 'modelgate_inference_request_duration_seconds_count', labels) ?? 0) > 0,
        );
        assert.ok((sampleValue(metrics, 'modelgate_inference_duration_seconds_count', labels) ?? 0) > 0);
        assert.ok((sampleValue(metrics, 'modelgate_batch_size_count', labels) ?? 0) > 0);
        assert.equal(sampleValue(metrics, 'modelgate_queue_depth', labels), 0);
      });

      test('/healthz and /readyz answer 200', async () => {
        assert.equal((await main.call('GET', '/healthz')).status, 200);
        assert.equal((await main.call('GET', '/readyz')).status, 200);
      });
    });
  });
}
