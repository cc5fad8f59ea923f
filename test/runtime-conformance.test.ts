// One conformance suite, run on every runtime: the iris model as an ONNX file (onnx), as a Python program
// (command, examples/iris-python), behind a second modelgate over the Open Inference Protocol v2 (http v2)
// and behind the Python standard-library server speaking KServe v1 JSON (http v1). Same inputs give the
// same outputs on every path a user has (/predict, /v2 infer, a job, a batch run); metadata, readiness,
// health, metrics and batching behave alike. A slow model on each runtime (an ONNX chain of MatMuls, a
// Python program that sleeps, the slow ONNX model behind modelgate over v2) shows deadlines and
// backpressure behave alike too.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildIrisModel } from '../examples/build.ts';
import { assertProblem, deployModel, sampleValue, uploadRaw, waitForBatch } from './helpers/api.ts';
import { archiveOf, IRIS_PROGRAM, IRIS_SIGNATURE, startIrisHttpServer } from './helpers/examples.ts';
import { buildSlowModel, startTestPlatform, type TestPlatform } from './helpers/platform.ts';
import { waitUntil } from './helpers/processes.ts';

const ROWS = [
  [5.1, 3.5, 1.4, 0.2],
  [6.7, 3.0, 5.2, 2.3],
  [5.9, 3.0, 4.2, 1.5],
  [4.9, 3.1, 1.5, 0.1],
];
const SLOW_WIDTH = 1024;

/** A Python program as slow as the slow ONNX model's purpose needs: y = mean(x) per row, after 1.5 s. */
const SLOW_PROGRAM = `
import time
from modelgate_runtime import serve

def predict(inputs):
    time.sleep(1.5)
    return {"y": [[sum(row) / len(row)] for row in inputs["x"]]}

serve(predict, {
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, ${SLOW_WIDTH}]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}],
})
`;

let front: TestPlatform;
let upstream: TestPlatform;
let work: string;
let python: ChildProcess;
let pythonUrl: string;

interface Subject {
  runtime: string;
  platform: string;
  /** The iris model's name on the front. */
  iris: string;
  /** A slow model's name on the front, where this runtime has one. */
  slow?: string;
}

const SUBJECTS: Subject[] = [
  { runtime: 'onnx', platform: 'onnxruntime_onnx', iris: 'iris-onnx', slow: 'slow-onnx' },
  { runtime: 'command', platform: 'modelgate_command', iris: 'iris-command', slow: 'slow-command' },
  { runtime: 'http', platform: 'modelgate_http', iris: 'iris-http-v2', slow: 'slow-http-v2' },
  { runtime: 'http', platform: 'modelgate_http', iris: 'iris-http-v1' },
];

async function deployDefinition(name: string, definition: Record<string, unknown>): Promise<void> {
  const answer = await front.call('POST', `/v1/models/${name}/versions`, {
    key: front.adminKey,
    json: { runtime: 'http', ...definition },
  });
  assert.equal(answer.status, 201, JSON.stringify(answer.body));
}

const call = (method: string, path: string, json?: unknown) =>
  front.call(method, path, { key: front.adminKey, json });

const settle = (name: string, settings: Record<string, unknown>) =>
  call('PATCH', `/v1/models/${name}`, { settings }).then((answer) => assert.equal(answer.status, 200));

let reference: { label: number[]; probabilities: number[][] };

function assertIris(outputs: { label: number[]; probabilities: number[][] }, what: string): void {
  assert.deepEqual(outputs.label, reference.label, what);
  outputs.probabilities.forEach((row, i) =>
    row.forEach((value, j) =>
      assert.ok(
        Math.abs(value - reference.probabilities[i]![j]!) <= 1e-5,
        `${what}: probabilities[${i}][${j}] ${value} vs ${reference.probabilities[i]![j]}`,
      ),
    ),
  );
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'modelgate-conformance-'));
  [front, upstream] = await Promise.all([startTestPlatform(), startTestPlatform()]);
  ({ url: pythonUrl, child: python } = await startIrisHttpServer());
  const iris = buildIrisModel();
  await deployModel(upstream, upstream.adminKey, 'iris', iris);
  await deployModel(upstream, upstream.adminKey, 'slow', buildSlowModel());
  await deployModel(front, front.adminKey, 'iris-onnx', iris);
  await deployModel(front, front.adminKey, 'slow-onnx', buildSlowModel());
  const irisArchive = await archiveOf(work, 'iris-python', {
    ...IRIS_PROGRAM,
    'modelgate.json': JSON.stringify({ command: ['python3', 'predict.py'], processes: 2 }),
  });
  assert.equal((await uploadRaw(front, front.adminKey, 'iris-command', irisArchive)).status, 201);
  const slowArchive = await archiveOf(work, 'slow-python', {
    'predict.py': SLOW_PROGRAM,
    'modelgate.json': JSON.stringify({ command: ['python3', 'predict.py'], processes: 1, inFlight: 2 }),
  });
  assert.equal((await uploadRaw(front, front.adminKey, 'slow-command', slowArchive)).status, 201);
  const headers = { authorization: `Bearer ${upstream.adminKey}` };
  await deployDefinition('iris-http-v2', { protocol: 'v2', url: upstream.url, model: 'iris', headers });
  await deployDefinition('slow-http-v2', {
    protocol: 'v2',
    url: upstream.url,
    model: 'slow',
    headers,
    concurrency: 2,
  });
  await deployDefinition('iris-http-v1', {
    protocol: 'v1',
    url: `${pythonUrl}/v1/models/iris:predict`,
    healthUrl: `${pythonUrl}/healthz`,
    signature: IRIS_SIGNATURE,
  });
  reference = (await call('POST', '/v1/models/iris-onnx/predict', { instances: ROWS })).body.outputs;
});
after(async () => {
  python?.kill();
  await Promise.all([front?.close(), upstream?.close()]);
  await rm(work, { recursive: true, force: true });
});

for (const subject of SUBJECTS) {
  describe(`${subject.iris} (runtime ${subject.runtime})`, () => {
    test('describes itself: runtime, /v2 platform, readiness, health in GET /v1/models/{name}', async () => {
      const model = await call('GET', `/v1/models/${subject.iris}`);
      assert.deepEqual({ inputs: model.body.inputs, outputs: model.body.outputs }, IRIS_SIGNATURE);
      const [version] = model.body.versions;
      assert.equal(version.runtime, subject.runtime);
      assert.equal(version.runtime_status.state, 'ready', JSON.stringify(version.runtime_status));
      if (subject.runtime === 'command') {
        const { processes } = version.runtime_status;
        assert.equal(processes.length, 2);
        for (const process of processes) {
          assert.equal(process.state, 'ready');
          assert.ok(Number.isInteger(process.pid));
        }
      }
      if (subject.runtime === 'http') {
        assert.match(version.runtime_status.upstream, /^http:\/\/127\.0\.0\.1:\d+/);
        assert.ok(Date.parse(version.runtime_status.checked_at) > 0);
        assert.equal(version.runtime_status.error, null);
      }
      const metadata = await call('GET', `/v2/models/${subject.iris}`);
      assert.equal(metadata.body.platform, subject.platform);
      assert.equal((await call('GET', `/v2/models/${subject.iris}/ready`)).status, 200);
    });

    test('the same inputs give the same outputs on /predict, /v2 infer, a job and a batch run', async () => {
      const predicted = await call('POST', `/v1/models/${subject.iris}/predict`, { instances: ROWS });
      assert.equal(predicted.status, 200, JSON.stringify(predicted.body));
      assertIris(predicted.body.outputs, '/predict');

      const inferred = await call('POST', `/v2/models/${subject.iris}/infer`, {
        inputs: [{ name: 'x', datatype: 'FP32', shape: [ROWS.length, 4], data: ROWS.flat() }],
      });
      assert.equal(inferred.status, 200, JSON.stringify(inferred.body));
      const output = (name: string) =>
        inferred.body.outputs.find((entry: { name: string }) => entry.name === name).data as number[];
      const probabilities = output('probabilities');
      assertIris(
        { label: output('label'), probabilities: ROWS.map((_, i) => probabilities.slice(i * 3, i * 3 + 3)) },
        '/v2 infer',
      );

      const submittedJob = await call('POST', `/v1/models/${subject.iris}/jobs`, { instances: ROWS });
      assert.equal(submittedJob.status, 202, JSON.stringify(submittedJob.body));
      const job = await waitUntil(
        `job ${submittedJob.body.id}`,
        async () => (await call('GET', `/v1/jobs/${submittedJob.body.id}`)).body,
        (body) => body.status === 'succeeded' || body.status === 'failed',
      );
      assert.equal(job.status, 'succeeded', JSON.stringify(job));
      assertIris(job.result.outputs, 'job');

      const csv = `a,b,c,d\n${ROWS.map((row) => row.join(',')).join('\n')}\n`;
      const submitted = await fetch(
        `${front.url}/v1/models/${subject.iris}/batches?part_rows=2&output=jsonl`,
        {
          method: 'POST',
          headers: { authorization: `Bearer ${front.adminKey}`, 'content-type': 'text/csv' },
          body: csv,
        },
      );
      assert.equal(submitted.status, 202, await submitted.clone().text());
      const { id } = (await submitted.json()) as { id: string };
      const batch = await waitForBatch(front, front.adminKey, id);
      assert.equal(batch.status, 'succeeded', JSON.stringify(batch));
      const output2 = await fetch(`${front.url}/v1/batches/${id}/output`, {
        headers: { authorization: `Bearer ${front.adminKey}` },
      });
      const rows = (await output2.text())
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, number>);
      assertIris(
        {
          label: rows.map((row) => row.label!),
          probabilities: rows.map((row) => [0, 1, 2].map((k) => row[`probabilities_${k}`]!)),
        },
        'batch run',
      );
    });

    test('merges concurrent requests into batches, counted under its runtime label', async () => {
      // On the slow model where the runtime has one: requests that arrive while a batch runs must wait and
      // leave together (a fast model can answer each before the next arrives, and merge nothing).
      const model = subject.slow ?? subject.iris;
      await settle(model, { maxBatchDelayMs: 20 });
      const rowOf = (i: number) =>
        subject.slow
          ? Array.from({ length: SLOW_WIDTH }, (_, k) => (k === 0 ? i : 0))
          : ROWS[i % ROWS.length]!;
      const answers = await Promise.all(
        Array.from({ length: 48 }, (_, i) =>
          call('POST', `/v1/models/${model}/predict`, { instances: [rowOf(i)] }),
        ),
      );
      answers.forEach((answer, i) => {
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        if (!subject.slow) assert.deepEqual(answer.body.outputs.label, [reference.label[i % ROWS.length]]);
        else assert.ok(Math.abs(answer.body.outputs.y[0][0] - i / SLOW_WIDTH) <= 1e-6, `row ${i}`);
      });
      const metrics = String((await call('GET', '/metrics')).body);
      const labels = { model, runtime: subject.runtime };
      const requests = sampleValue(metrics, 'modelgate_batch_size_sum', labels) ?? 0;
      const batches = sampleValue(metrics, 'modelgate_batch_size_count', labels) ?? 0;
      assert.ok(batches > 0 && requests > batches, `${requests} requests in ${batches} batches`);
      assert.ok(
        (sampleValue(metrics, 'modelgate_inference_requests_total', { ...labels, outcome: 'ok' }) ?? 0) >= 48,
      );
    });

    if (subject.slow) {
      const slow = subject.slow;
      const slowRows = (rows: number) =>
        Array.from({ length: rows }, (_, r) =>
          Array.from({ length: SLOW_WIDTH }, (_, k) => (k === 0 ? r : 0)),
        );

      test('a request past its deadline is 504 timeout, and the model serves on', async () => {
        // The ONNX chain takes ~1 s for 400 rows on these machines; the Python program sleeps 1.5 s.
        await settle(slow, { timeoutMs: 150 });
        const late = await call('POST', `/v1/models/${slow}/predict`, { instances: slowRows(400) });
        assertProblem(late, 504, 'timeout');
        await settle(slow, { timeoutMs: 30_000 });
        const served = await call('POST', `/v1/models/${slow}/predict`, { instances: slowRows(2) });
        assert.equal(served.status, 200, JSON.stringify(served.body));
        assert.equal(served.body.outputs.y.length, 2);
      });

      test('a full queue is 503 queue_full with Retry-After, and what was accepted is answered', async () => {
        await settle(slow, { maxQueueSize: 1, timeoutMs: 60_000 });
        const answers = await Promise.all(
          Array.from({ length: 12 }, () =>
            call('POST', `/v1/models/${slow}/predict`, { instances: slowRows(200) }),
          ),
        );
        const statuses = answers.map((answer) => answer.status);
        const said = answers.map((answer) => `${answer.status} ${answer.body.code ?? ''}`).join(', ');
        const refused = answers.filter((answer) => answer.status === 503);
        assert.ok(refused.length > 0, said);
        for (const answer of refused) {
          assertProblem(answer, 503, 'queue_full');
          assert.equal(answer.headers.get('retry-after'), '1');
        }
        assert.ok(statuses.includes(200), said);
        assert.ok(
          statuses.every((status) => status === 200 || status === 503),
          said,
        );
        await settle(slow, { maxQueueSize: 1000 });
      });
    }
  });
}
