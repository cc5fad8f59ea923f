// The http runtime against real servers on 127.0.0.1: a second modelgate speaking the Open Inference
// Protocol v2 (with binary tensors, which it lists), the Python standard-library iris server speaking
// KServe v1 JSON, and a node:http server that misbehaves on demand (refuses, stalls, answers malformed
// JSON, 4xx, 5xx, outputs that do not fit). Each failure has its own stable code; upstream URLs to
// internal addresses are refused unless the operator opened them, and nothing is stored.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { buildIrisModel } from '../examples/build.ts';
import { internalAddressKind } from '../src/network/targets.ts';
import { assertProblem, deployModel } from './helpers/api.ts';
import { IRIS_SIGNATURE, startIrisHttpServer } from './helpers/examples.ts';
import { startTestPlatform, type TestPlatform } from './helpers/platform.ts';

const ROWS = [
  [5.1, 3.5, 1.4, 0.2],
  [6.7, 3.0, 5.2, 2.3],
  [5.9, 3.0, 4.2, 1.5],
];

let front: TestPlatform;
let upstream: TestPlatform;
let python: ChildProcess;
let pythonUrl: string;
let fake: Server;
let fakeUrl: string;
/** What the misbehaving server does with the next requests. */
let behave: (request: IncomingMessage, body: Buffer, response: ServerResponse) => void;
/** Requests the misbehaving server received, by method and path. */
const seen: string[] = [];

const deploy = (tp: TestPlatform, name: string, definition: Record<string, unknown>) =>
  tp.call('POST', `/v1/models/${name}/versions`, {
    key: tp.adminKey,
    json: { runtime: 'http', ...definition },
  });

const predict = (tp: TestPlatform, name: string, instances: number[][] = ROWS) =>
  tp.call('POST', `/v1/models/${name}/predict`, { key: tp.adminKey, json: { instances } });

function assertClose(actual: number[][], expected: number[][], tolerance = 1e-5): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((row, i) =>
    row.forEach((value, j) =>
      assert.ok(
        Math.abs(value - expected[i]![j]!) <= tolerance,
        `[${i}][${j}] ${value} vs ${expected[i]![j]}`,
      ),
    ),
  );
}

/** A v1 deployment on the misbehaving server, with iris's signature. */
const fakeV1 = (timeoutMs = 2000) => ({
  protocol: 'v1',
  url: `${fakeUrl}/predict`,
  signature: IRIS_SIGNATURE,
  timeoutMs,
});

/** An answer that fits iris for `rows` instances. */
const fitting = (rows: number) =>
  JSON.stringify({
    predictions: Array.from({ length: rows }, () => ({ label: 1, probabilities: [0.1, 0.8, 0.1] })),
  });

before(async () => {
  [front, upstream] = await Promise.all([startTestPlatform(), startTestPlatform()]);
  await deployModel(upstream, upstream.adminKey, 'iris', buildIrisModel());
  ({ url: pythonUrl, child: python } = await startIrisHttpServer());
  behave = (_request, _body, response) => response.end(fitting(1));
  fake = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      seen.push(`${request.method} ${request.url}`);
      behave(request, Buffer.concat(chunks), response);
    });
  });
  await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
  fakeUrl = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
});
after(async () => {
  python?.kill();
  fake?.closeAllConnections();
  await new Promise((resolve) => fake?.close(resolve));
  await Promise.all([front?.close(), upstream?.close()]);
});

describe('a v2 upstream (a second modelgate)', () => {
  test('takes the signature from its metadata, speaks binary tensors to it, and answers as it does', async () => {
    const deployed = await deploy(front, 'iris-v2', {
      protocol: 'v2',
      url: upstream.url,
      model: 'iris',
      headers: { authorization: `Bearer ${upstream.adminKey}` },
    });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    assert.equal(deployed.body.versions[0].runtime, 'http');
    assert.deepEqual({ inputs: deployed.body.inputs, outputs: deployed.body.outputs }, IRIS_SIGNATURE);

    const through = await predict(front, 'iris-v2');
    const direct = await predict(upstream, 'iris');
    assert.equal(through.status, 200, JSON.stringify(through.body));
    assert.deepEqual(through.body.outputs.label, direct.body.outputs.label);
    assertClose(through.body.outputs.probabilities, direct.body.outputs.probabilities, 0);

    // The binary extension was chosen from the upstream's GET /v2, and its answers were binary.
    const metrics = await upstream.call('GET', '/metrics', { key: upstream.adminKey });
    assert.match(String(metrics.body), /modelgate_http_requests_total\{route="\/v2\/models\/:name\/infer"/);

    const metadata = await front.call('GET', '/v2/models/iris-v2', { key: front.adminKey });
    assert.equal(metadata.body.platform, 'modelgate_http');
  });

  test('in JSON when told so, and through /v2 infer of the front', async () => {
    const deployed = await deploy(front, 'iris-v2-json', {
      protocol: 'v2',
      url: upstream.url,
      model: 'iris',
      binaryTensors: false,
      headers: { authorization: `Bearer ${upstream.adminKey}` },
    });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    const answer = await front.call('POST', '/v2/models/iris-v2-json/infer', {
      key: front.adminKey,
      json: { inputs: [{ name: 'x', datatype: 'FP32', shape: [3, 4], data: ROWS.flat() }] },
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const direct = await predict(upstream, 'iris');
    const label = answer.body.outputs.find((output: { name: string }) => output.name === 'label');
    assert.deepEqual(label.data, direct.body.outputs.label);
  });

  test('a model the upstream does not have, or a signature that differs from its metadata, is 400 and nothing is stored', async () => {
    const headers = { authorization: `Bearer ${upstream.adminKey}` };
    const missing = await deploy(front, 'v2-missing', {
      protocol: 'v2',
      url: upstream.url,
      model: 'nope',
      headers,
    });
    assertProblem(missing, 400, 'invalid_model');
    assert.match(missing.body.detail, /has no model "nope"/);
    const differs = await deploy(front, 'v2-differs', {
      protocol: 'v2',
      url: upstream.url,
      model: 'iris',
      headers,
      signature: { ...IRIS_SIGNATURE, inputs: [{ name: 'x', datatype: 'FP64', shape: [-1, 4] }] },
    });
    assertProblem(differs, 400, 'invalid_model');
    // Without its key the upstream answers 401: the deploy says so.
    const unauthorized = await deploy(front, 'v2-unauthorized', {
      protocol: 'v2',
      url: upstream.url,
      model: 'iris',
    });
    assertProblem(unauthorized, 400, 'upstream_rejected');
    assert.equal(unauthorized.body.upstream_status, 401);
    for (const name of ['v2-missing', 'v2-differs', 'v2-unauthorized']) {
      assertProblem(
        await front.call('GET', `/v1/models/${name}`, { key: front.adminKey }),
        404,
        'model_not_found',
      );
    }
  });
});

describe('a v1 upstream (the Python standard-library iris server)', () => {
  test('answers as the ONNX iris model does, within 1e-5', async () => {
    const deployed = await deploy(front, 'iris-v1', {
      protocol: 'v1',
      url: `${pythonUrl}/v1/models/iris:predict`,
      healthUrl: `${pythonUrl}/healthz`,
      signature: IRIS_SIGNATURE,
    });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    const through = await predict(front, 'iris-v1');
    const onnx = await predict(upstream, 'iris');
    assert.equal(through.status, 200, JSON.stringify(through.body));
    assert.deepEqual(through.body.outputs.label, onnx.body.outputs.label);
    assertClose(through.body.outputs.probabilities, onnx.body.outputs.probabilities);
  });

  test('its 400 for a request it refuses is upstream_rejected with its message', async () => {
    // A signature wider than the server's rows: modelgate's checks pass, the server refuses.
    const deployed = await deploy(front, 'iris-v1-wide', {
      protocol: 'v1',
      url: `${pythonUrl}/v1/models/iris:predict`,
      signature: { ...IRIS_SIGNATURE, inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 5] }] },
    });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    const answer = await predict(front, 'iris-v1-wide', [[1, 2, 3, 4, 5]]);
    assertProblem(answer, 400, 'upstream_rejected');
    assert.match(answer.body.detail, /instances\[0\] must be a list of 4 numbers/);
    assert.equal(answer.body.upstream_status, 400);
  });

  test('a health URL that fails, or a signature without rows, is refused at deploy', async () => {
    const unhealthy = await deploy(front, 'v1-unhealthy', {
      protocol: 'v1',
      url: `${pythonUrl}/v1/models/iris:predict`,
      healthUrl: `${pythonUrl}/no-such-route`,
      signature: IRIS_SIGNATURE,
    });
    assertProblem(unhealthy, 400, 'upstream_rejected');
    const rowless = await deploy(front, 'v1-rowless', {
      protocol: 'v1',
      url: `${pythonUrl}/v1/models/iris:predict`,
      signature: { ...IRIS_SIGNATURE, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4] }] },
    });
    assertProblem(rowless, 400, 'invalid_model');
  });
});

describe('an upstream that fails', () => {
  before(async () => {
    behave = (_request, _body, response) => response.end(fitting(1));
    const deployed = await deploy(front, 'fake', fakeV1(400));
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
  });

  const cases: [what: string, behaviour: typeof behave, status: number, code: string, detail: RegExp][] = [
    [
      'stalls past the deadline: 504 upstream_timeout',
      () => undefined, // never answers
      504,
      'upstream_timeout',
      /did not answer within 400 ms/,
    ],
    [
      'answers malformed JSON: 502 upstream_invalid_answer',
      (_request, _body, response) => response.end('{"predictions": [{"label": 1,'),
      502,
      'upstream_invalid_answer',
      /is not JSON/,
    ],
    [
      'answers 422: 400 upstream_rejected with its message',
      (_request, _body, response) => {
        response.writeHead(422, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ detail: [{ loc: ['body', 'instances'], msg: 'field required' }] }));
      },
      400,
      'upstream_rejected',
      /refused the request \(422\).*field required/,
    ],
    [
      'answers 500: 502 upstream_failed',
      (_request, _body, response) => {
        response.writeHead(500);
        response.end('Internal Server Error: CUDA out of memory');
      },
      502,
      'upstream_failed',
      /failed \(500\): Internal Server Error: CUDA out of memory/,
    ],
    [
      'answers 503: 503 runtime_unavailable',
      (_request, _body, response) => {
        response.writeHead(503, { 'retry-after': '7' });
        response.end('{"error": "warming up"}');
      },
      503,
      'runtime_unavailable',
      /unavailable \(503\): warming up/,
    ],
    [
      'answers fewer rows than asked: 502',
      (_request, _body, response) => response.end(fitting(2)),
      502,
      'upstream_invalid_answer',
      /2 predictions for 3 instances/,
    ],
    [
      'answers an output of the wrong width: 502',
      (_request, _body, response) =>
        response.end(JSON.stringify({ predictions: ROWS.map(() => ({ label: 1, probabilities: [1, 0] })) })),
      502,
      'upstream_invalid_answer',
      /"probabilities" has shape \[3, 2\], which does not fit \[-1, 3\]/,
    ],
    [
      'answers without an output: 502',
      (_request, _body, response) =>
        response.end(JSON.stringify({ predictions: ROWS.map(() => ({ label: 1 })) })),
      502,
      'upstream_invalid_answer',
      /prediction 0 has no "probabilities"/,
    ],
    [
      'answers a redirect: 502, not followed',
      (_request, _body, response) => {
        response.writeHead(307, { location: 'http://169.254.169.254/' });
        response.end();
      },
      502,
      'upstream_invalid_answer',
      /answered 307; redirects are not followed/,
    ],
  ];
  for (const [what, behaviour, status, code, detail] of cases) {
    test(what, async () => {
      behave = behaviour;
      const before = seen.length;
      const answer = await predict(front, 'fake');
      assertProblem(answer, status, code);
      assert.match(answer.body.detail, detail);
      assert.ok(seen.length > before, 'the upstream was called');
      if (code === 'runtime_unavailable') assert.equal(answer.headers.get('retry-after'), '7');
    });
  }

  test('that refuses connections: 503 runtime_unavailable with Retry-After; a deploy that needs it is refused', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const url = `http://127.0.0.1:${port}`;
    const deployed = await deploy(front, 'refusing', { ...fakeV1(), url: `${url}/predict` });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body)); // v1 without a health URL: nothing to ask
    const answer = await predict(front, 'refusing');
    assertProblem(answer, 503, 'runtime_unavailable');
    assert.match(answer.body.detail, /cannot be reached: .*ECONNREFUSED/);
    assert.equal(answer.headers.get('retry-after'), '1');
    const v2 = await deploy(front, 'refusing-v2', { protocol: 'v2', url, model: 'iris' });
    assertProblem(v2, 503, 'runtime_unavailable');
    assertProblem(
      await front.call('GET', '/v1/models/refusing-v2', { key: front.adminKey }),
      404,
      'model_not_found',
    );
  });

  test('health checks after a good load: GET /v1/models shows the upstream going down and coming back', async () => {
    // A server of its own: the checks keep going in the background until the version is deleted.
    let healthy = true;
    const watched = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        if (request.url === '/healthz') {
          response.writeHead(healthy ? 200 : 503);
          return void response.end(healthy ? 'ok' : '{"error": "reloading weights"}');
        }
        const body = JSON.parse(Buffer.concat(chunks).toString()) as { instances: unknown[] };
        response.end(fitting(body.instances.length));
      });
    });
    await new Promise<void>((resolve) => watched.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(watched.address() as AddressInfo).port}`;
    try {
      const deployed = await deploy(front, 'watched', {
        ...fakeV1(),
        url: `${url}/predict`,
        healthUrl: `${url}/healthz`,
        healthIntervalMs: 100,
      });
      assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
      const status = async () =>
        (await front.call('GET', '/v1/models/watched', { key: front.adminKey })).body.versions[0]
          .runtime_status as { state: string; error: string | null; checked_at: string };
      const waitFor = async (state: string) => {
        let seenStatus = await status();
        for (let i = 0; i < 100 && seenStatus.state !== state; i++) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          seenStatus = await status();
        }
        assert.equal(seenStatus.state, state, JSON.stringify(seenStatus));
        return seenStatus;
      };
      assert.equal((await predict(front, 'watched')).status, 200);
      assert.equal((await waitFor('ready')).error, null);

      healthy = false;
      const down = await waitFor('unavailable');
      assert.match(down.error!, /503.*reloading weights/);
      healthy = true;
      const back = await waitFor('ready');
      assert.equal(back.error, null);
      assert.ok(Date.parse(back.checked_at) >= Date.parse(down.checked_at));
      assert.equal((await predict(front, 'watched')).status, 200);
    } finally {
      await front.call('DELETE', '/v1/models/watched', { key: front.adminKey });
      watched.closeAllConnections();
      await new Promise((resolve) => watched.close(resolve));
    }
  });

  test('a job meeting a stalled upstream is retried, and succeeds once it answers', async () => {
    let calls = 0;
    behave = (_request, body, response) => {
      calls++;
      if (calls === 1) return; // the first attempt times out
      const rows = (JSON.parse(body.toString()) as { instances: unknown[] }).instances.length;
      response.end(fitting(rows));
    };
    const submitted = await front.call('POST', '/v1/models/fake/jobs?wait=20', {
      key: front.adminKey,
      json: { instances: [ROWS[0]] },
    });
    assert.ok([200, 202].includes(submitted.status), JSON.stringify(submitted.body));
    const id = submitted.body.id as string;
    let job = submitted.body;
    for (let i = 0; i < 100 && job.status !== 'succeeded' && job.status !== 'failed'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      job = (await front.call('GET', `/v1/jobs/${id}`, { key: front.adminKey })).body;
    }
    assert.equal(job.status, 'succeeded', JSON.stringify(job));
    assert.equal(job.attempts, 2);
    assert.deepEqual(job.result.outputs.label, [1]);
  });
});

describe('deployments the runtime refuses (400, nothing stored)', () => {
  let closedFront: TestPlatform;
  before(async () => {
    // A production-like front: no internal network opened.
    closedFront = await startTestPlatform({ config: { upstreamAllowedNetworks: [] } });
  });
  after(() => closedFront?.close());

  test('an upstream URL at an internal address: loopback, private, metadata, IPv6, localhost', async () => {
    for (const url of [
      'http://127.0.0.1:9/predict',
      'http://10.1.2.3/predict',
      'http://169.254.169.254/latest/meta-data/',
      'http://[::1]:9/predict',
      'http://[::ffff:127.0.0.1]:9/predict',
      'http://0x7f000001:9/predict',
      'http://localhost:9/predict',
      'http://metadata.localhost/predict',
    ]) {
      const answer = await deploy(closedFront, 'internal', { ...fakeV1(), url });
      assertProblem(answer, 400, 'bad_request');
      assert.equal(answer.body.setting, 'upstreamAllowedNetworks', url);
    }
    assertProblem(
      await closedFront.call('GET', '/v1/models/internal', { key: closedFront.adminKey }),
      404,
      'model_not_found',
    );
  });

  test('a name that resolves to an internal address is refused when it connects', async () => {
    const name = hostname();
    const { address } = await lookup(name);
    assert.ok(
      internalAddressKind(address),
      `${name} resolves to ${address}, expected an internal address here`,
    );
    const port = new URL(fakeUrl).port;
    const answer = await deploy(closedFront, 'rebound', {
      ...fakeV1(),
      url: `http://${name}:${port}/predict`,
      healthUrl: `http://${name}:${port}/healthz`,
    });
    assertProblem(answer, 400, 'bad_request');
    assert.match(
      answer.body.detail,
      new RegExp(`refused: ${name} resolves to ${address.replace(/\./g, '\\.')}`),
    );
    assert.equal(answer.body.setting, 'upstreamAllowedNetworks');
  });

  test('an opened network lets the same upstream through', async () => {
    const opened = await startTestPlatform({ config: { upstreamAllowedNetworks: ['127.0.0.1/32'] } });
    try {
      behave = (_request, _body, response) => response.end(fitting(3));
      const answer = await deploy(opened, 'opened', fakeV1());
      assert.equal(answer.status, 201, JSON.stringify(answer.body));
      assert.equal((await predict(opened, 'opened')).status, 200);
    } finally {
      await opened.close();
    }
  });

  test('definitions that are not valid', async () => {
    const invalid: [string, Record<string, unknown>][] = [
      ['an unknown protocol', { protocol: 'grpc', url: fakeUrl }],
      ['an unknown field', { ...fakeV1(), retries: 3 }],
      ['v2 without a model', { protocol: 'v2', url: fakeUrl }],
      ['v1 without a signature', { protocol: 'v1', url: `${fakeUrl}/predict` }],
      ['a file URL', { ...fakeV1(), url: 'file:///etc/passwd' }],
      ['a URL with a password', { ...fakeV1(), url: `http://user:secret@${new URL(fakeUrl).host}/predict` }],
      ['not a URL', { ...fakeV1(), url: 'predict' }],
      ['a health URL on another server', { ...fakeV1(), healthUrl: 'http://127.0.0.2:9/healthz' }],
      ['a signature that is not one', { ...fakeV1(), signature: { inputs: [{ name: 'x' }], outputs: [] } }],
      ['a concurrency of 0', { ...fakeV1(), concurrency: 0 }],
    ];
    for (const [what, definition] of invalid) {
      const answer = await deploy(front, 'invalid-definition', definition);
      assertProblem(answer, 400, 'invalid_model');
      assert.ok(answer.body.detail, what);
    }
    assertProblem(
      await front.call('GET', '/v1/models/invalid-definition', { key: front.adminKey }),
      404,
      'model_not_found',
    );
  });
});
