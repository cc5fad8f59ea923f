// /v2 inference with Triton's binary tensor data extension over real HTTP: requests framed as a JSON header
// of Inference-Header-Content-Length bytes followed by raw little-endian tensors (sent as
// application/octet-stream or, as tritonclient's Python client does, without a content type), binary
// outputs on request (per output or all), JSON without a content type, and every framing fault a 4xx.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { tensorFromBinary } from '../src/runtime/binary-tensors.ts';
import { assertProblem, deployModel } from './helpers/api.ts';
import {
  buildIdentityModel,
  buildTwoInputModel,
  startTestPlatform,
  type TestPlatform,
} from './helpers/platform.ts';

let tp: TestPlatform;

before(async () => {
  tp = await startTestPlatform();
  await deployModel(tp, tp.adminKey, 'identity', buildIdentityModel(3));
  await deployModel(tp, tp.adminKey, 'two', buildTwoInputModel());
});
after(() => tp.close());

/** A binary request body: the JSON header, then each tensor's bytes in the header's order. */
function frame(header: unknown, ...tensors: Buffer[]): { body: Buffer; headerLength: number } {
  const json = Buffer.from(JSON.stringify(header));
  return { body: Buffer.concat([json, ...tensors]), headerLength: json.length };
}

const float32 = (...values: number[]) => Buffer.from(new Float32Array(values).buffer);

async function post(
  model: string,
  body: Buffer | string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; bytes: Buffer }> {
  const response = await fetch(`${tp.url}/v2/models/${model}/infer`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tp.adminKey}`, ...headers },
    // Bytes go without a content type unless one is given, as tritonclient sends them.
    body: typeof body === 'string' ? body : new Uint8Array(body),
  });
  return {
    status: response.status,
    headers: response.headers,
    bytes: Buffer.from(await response.arrayBuffer()),
  };
}

/** A binary response split into its JSON header and the bytes after it. */
function unframe(answer: { headers: Headers; bytes: Buffer }) {
  const length = Number(answer.headers.get('inference-header-content-length'));
  assert.ok(length > 0, 'the response carries Inference-Header-Content-Length');
  return {
    header: JSON.parse(answer.bytes.subarray(0, length).toString()),
    rest: answer.bytes.subarray(length),
  };
}

const asProblem = (answer: { status: number; headers: Headers; bytes: Buffer }) => ({
  status: answer.status,
  headers: answer.headers,
  body: JSON.parse(answer.bytes.toString()),
});

describe('binary tensors on /v2 infer', () => {
  test('a binary request, as octet-stream or with no content type, answers as the JSON request does', async () => {
    const header = {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 3], parameters: { binary_data_size: 24 } }],
    };
    const { body, headerLength } = frame(header, float32(1.5, -2, 0, 3, 4, 5));
    const expected = (
      await tp.call('POST', '/v2/models/identity/infer', {
        key: tp.adminKey,
        json: { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 3], data: [1.5, -2, 0, 3, 4, 5] }] },
      })
    ).body;
    const contentTypes: Record<string, string>[] = [{ 'content-type': 'application/octet-stream' }, {}];
    for (const contentType of contentTypes) {
      const answer = await post('identity', body, {
        'inference-header-content-length': String(headerLength),
        ...contentType,
      });
      assert.equal(answer.status, 200, answer.bytes.toString());
      assert.equal(answer.headers.get('inference-header-content-length'), null, 'no output asked as binary');
      assert.deepEqual(JSON.parse(answer.bytes.toString()), expected);
    }
  });

  test('binary_data_output: every output comes back as raw bytes after the JSON header', async () => {
    const { body, headerLength } = frame(
      {
        parameters: { binary_data_output: true },
        inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], parameters: { binary_data_size: 12 } }],
      },
      float32(0.25, 7, -1),
    );
    const answer = await post('identity', body, { 'inference-header-content-length': String(headerLength) });
    assert.equal(answer.status, 200, answer.bytes.toString());
    assert.equal(answer.headers.get('content-type'), 'application/octet-stream');
    const { header, rest } = unframe(answer);
    assert.deepEqual(header.outputs, [
      { name: 'y', datatype: 'FP32', shape: [1, 3], parameters: { binary_data_size: 12 } },
    ]);
    assert.deepEqual(rest, float32(0.25, 7, -1));
  });

  test('per output: one binary, one JSON, in the order of the outputs; a JSON request may ask for binary', async () => {
    const json = {
      inputs: [
        { name: 'a', datatype: 'FP32', shape: [1, 2], data: [1, 2] },
        { name: 'b', datatype: 'INT64', shape: [1, 2], data: [3, 4] },
      ],
      outputs: [
        { name: 'a_out', parameters: { binary_data: false } },
        { name: 'b_out', parameters: { binary_data: true } },
      ],
    };
    const answer = await post('two', JSON.stringify(json), { 'content-type': 'application/json' });
    assert.equal(answer.status, 200, answer.bytes.toString());
    const { header, rest } = unframe(answer);
    assert.deepEqual(
      header.outputs.map((output: { name: string; data?: unknown }) => [output.name, output.data]),
      [
        ['a_out', [1, 2]],
        ['b_out', undefined],
      ],
    );
    assert.equal(header.outputs[1].parameters.binary_data_size, 16);
    assert.deepEqual(tensorFromBinary('b_out', 'INT64', [1, 2], rest).data, new BigInt64Array([3n, 4n]));

    // The same inputs sent as binary and as JSON in one request.
    const mixed = frame(
      {
        inputs: [
          { name: 'a', datatype: 'FP32', shape: [1, 2], parameters: { binary_data_size: 8 } },
          { name: 'b', datatype: 'INT64', shape: [1, 2], data: [3, 4] },
        ],
      },
      float32(1, 2),
    );
    const mixedAnswer = await post('two', mixed.body, {
      'inference-header-content-length': String(mixed.headerLength),
    });
    assert.equal(mixedAnswer.status, 200, mixedAnswer.bytes.toString());
    assert.deepEqual(
      JSON.parse(mixedAnswer.bytes.toString()).outputs.map((output: { data: unknown }) => output.data),
      [
        [1, 2],
        [3, 4],
      ],
    );
  });

  test('JSON without a content type (tritonclient sends none) or as text/plain is read as JSON; other types are 415', async () => {
    const json = JSON.stringify({
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }],
    });
    for (const [body, headers] of [
      [Buffer.from(json), {}],
      [json, { 'content-type': 'text/plain' }],
    ] as const) {
      const answer = await post('identity', body, headers);
      assert.equal(answer.status, 200, answer.bytes.toString());
      assert.deepEqual(JSON.parse(answer.bytes.toString()).outputs[0].data, [1, 2, 3]);
    }
    const xml = asProblem(await post('identity', Buffer.from(json), { 'content-type': 'application/xml' }));
    assertProblem(xml, 415, 'unsupported_media_type');
    assertProblem(asProblem(await post('identity', Buffer.from('{"inputs": ['))), 400, 'invalid_json');
    // Read as application/json is: prototype poisoning refused, strings held to the rule for text.
    const poisoned = `{"__proto__": {"admin": true}, ${json.slice(1)}`;
    for (const headers of [{}, { 'content-type': 'text/plain' }] as Record<string, string>[]) {
      const refused = asProblem(await post('identity', Buffer.from(poisoned), headers));
      assertProblem(refused, 400, 'invalid_json');
      assert.match(refused.body.detail, /prototype/);
    }
    const surrogate = JSON.stringify({ id: 'x\ud800', ...JSON.parse(json) });
    const lone = asProblem(await post('identity', Buffer.from(surrogate)));
    assertProblem(lone, 400, 'bad_request');
    assert.match(lone.body.detail, /surrogate/);
  });

  test('a chunked binary body (no Content-Length) is read whole; one over the body limit is 413', async () => {
    const { body, headerLength } = frame(
      { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], parameters: { binary_data_size: 12 } }] },
      float32(1, 2, 3),
    );
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let offset = 0; offset < body.length; offset += 5)
          controller.enqueue(new Uint8Array(body.subarray(offset, offset + 5)));
        controller.close();
      },
    });
    const chunked = await fetch(`${tp.url}/v2/models/identity/infer`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${tp.adminKey}`,
        'inference-header-content-length': String(headerLength),
      },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    assert.equal(chunked.status, 200, await chunked.clone().text());
    assert.deepEqual((await chunked.json()).outputs[0].data, [1, 2, 3]);

    const limited = await startTestPlatform({ config: { bodyLimitBytes: 1024 } });
    try {
      await deployModel(limited, limited.adminKey, 'identity', buildIdentityModel(3));
      const big = frame(
        {
          inputs: [{ name: 'x', datatype: 'FP32', shape: [300, 3], parameters: { binary_data_size: 3600 } }],
        },
        Buffer.alloc(3600),
      );
      const variants: Record<string, string>[] = [
        { 'inference-header-content-length': String(big.headerLength) },
        { 'content-type': 'text/plain' },
      ];
      for (const headers of variants) {
        const answer = await fetch(`${limited.url}/v2/models/identity/infer`, {
          method: 'POST',
          headers: { authorization: `Bearer ${limited.adminKey}`, ...headers },
          body: new Uint8Array(big.body),
        });
        const problem = { status: answer.status, headers: answer.headers, body: await answer.json() };
        assertProblem(problem, 413, 'payload_too_large');
      }
    } finally {
      await limited.close();
    }
  });

  test('a client that goes away mid-body leaves nothing behind: the next binary request is served', async () => {
    const { body, headerLength } = frame(
      { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], parameters: { binary_data_size: 12 } }] },
      float32(1, 2, 3),
    );
    const { port } = new URL(tp.url);
    const socket = connect(Number(port), '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(
      `POST /v2/models/identity/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
        `Authorization: Bearer ${tp.adminKey}\r\nInference-Header-Content-Length: ${headerLength}\r\n` +
        `Content-Length: ${body.length}\r\n\r\n`,
    );
    socket.write(body.subarray(0, headerLength + 4)); // the header and one of three floats
    await new Promise((resolve) => setTimeout(resolve, 100));
    socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));

    const answer = await post('identity', body, { 'inference-header-content-length': String(headerLength) });
    assert.equal(answer.status, 200, answer.bytes.toString());
    assert.deepEqual(JSON.parse(answer.bytes.toString()).outputs[0].data, [1, 2, 3]);
    const metrics = (await tp.call('GET', '/metrics')).body as string;
    assert.match(
      metrics,
      /modelgate_http_requests_total\{[^}]*route="\/v2\/models\/:name\/infer"[^}]*status="200"/,
    );
    assert.doesNotMatch(
      metrics,
      /modelgate_http_requests_total\{[^}]*route="\/v2\/models\/:name\/infer"[^}]*status="5\d\d"/,
    );
  });

  test('every framing fault is a 4xx problem with the protocol error field', async () => {
    const header = {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], parameters: { binary_data_size: 12 } }],
    };
    const { body, headerLength } = frame(header, float32(1, 2, 3));
    const cases: [Buffer, Record<string, string>, number, string][] = [
      [body, { 'inference-header-content-length': String(body.length + 1) }, 400, 'bad_request'],
      [body, { 'inference-header-content-length': 'twelve' }, 400, 'bad_request'],
      [body, { 'inference-header-content-length': '0' }, 400, 'bad_request'],
      [body, { 'inference-header-content-length': String(headerLength - 1) }, 400, 'invalid_json'],
      // Bytes left over, or missing, after the sizes the header gives.
      [
        Buffer.concat([body, Buffer.alloc(1)]),
        { 'inference-header-content-length': String(headerLength) },
        400,
        'bad_request',
      ],
      [
        body.subarray(0, body.length - 4),
        { 'inference-header-content-length': String(headerLength) },
        400,
        'invalid_input',
      ],
      // Sent as JSON, the binary body is not JSON.
      [
        body,
        { 'inference-header-content-length': String(headerLength), 'content-type': 'application/json' },
        400,
        'invalid_json',
      ],
    ];
    for (const [sent, headers, status, code] of cases) {
      const problem = asProblem(await post('identity', sent, headers));
      assertProblem(problem, status, code);
      assert.equal(typeof problem.body.error, 'string', JSON.stringify(problem.body));
    }
    // A size that does not fit the shape: 8 bytes for [1, 3] FP32.
    const short = frame(
      { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], parameters: { binary_data_size: 8 } }] },
      float32(1, 2),
    );
    const problem = asProblem(
      await post('identity', short.body, { 'inference-header-content-length': String(short.headerLength) }),
    );
    assertProblem(problem, 400, 'invalid_input');
    assert.match(problem.body.detail, /"x"|x/);
  });
});
