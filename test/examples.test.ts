// Checks that the example-model builder writes working, deterministic models and that onnx-writer output
// loads in ONNX Runtime.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { InferenceSession, Tensor } from 'onnxruntime-node';

import { IRIS_SPECIES, readIrisCsv } from '../examples/build.ts';
import { buildModel } from '../examples/onnx-writer.ts';

const BUILD_SCRIPT = fileURLToPath(new URL('../examples/build.ts', import.meta.url));

async function runBuilder(outDir: string): Promise<void> {
  await promisify(execFile)(process.execPath, ['--import', 'tsx', BUILD_SCRIPT, outDir]);
}

async function loadSession(dir: string, fileName: string): Promise<InferenceSession> {
  return InferenceSession.create(await readFile(join(dir, fileName)));
}

function indexOfMax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

describe('examples/build.ts', () => {
  let tempRoot: string;
  let firstDir: string;
  let secondDir: string;

  before(async () => {
    tempRoot = await mkdtemp(join(tmpdir(), 'modelgate-examples-'));
    firstDir = join(tempRoot, 'first');
    secondDir = join(tempRoot, 'second');
    await runBuilder(firstDir);
    await runBuilder(secondDir);
  });

  after(async () => {
    await rm(tempRoot, { recursive: true, force: true });
  });

  test('iris classifies the whole data set in one batch with at least 95% accuracy', async () => {
    const { features, labels } = readIrisCsv();
    const session = await loadSession(firstDir, 'iris.onnx');
    const x = new Tensor('float32', Float32Array.from(features.flat()), [features.length, 4]);
    const result = await session.run({ x });
    const label = result.label!;
    const probabilities = result.probabilities!;

    assert.equal(label.type, 'int64');
    assert.deepEqual(label.dims, [150]);
    assert.deepEqual(probabilities.dims, [150, 3]);
    const predicted = Array.from(label.data as BigInt64Array, Number);
    const correct = predicted.filter((p, n) => p === labels[n]).length;
    assert.ok(correct / labels.length >= 0.95, `accuracy ${correct}/${labels.length}`);

    const probs = probabilities.data as Float32Array;
    predicted.forEach((p, n) => {
      const row = probs.subarray(n * 3, n * 3 + 3);
      const total = row.reduce((sum, v) => sum + v, 0);
      assert.ok(Math.abs(total - 1) <= 1e-5, `row ${n} sums to ${total}`);
      assert.equal(p, indexOfMax(row), `row ${n}: label is not the argmax of probabilities`);
    });
  });

  test('writes the iris labels next to the model', async () => {
    const labels: unknown = JSON.parse(await readFile(join(firstDir, 'iris.labels.json'), 'utf8'));
    assert.deepEqual(labels, [...IRIS_SPECIES]);
  });

  test('wide-mlp accepts any batch size and returns finite [N, 16] outputs', async () => {
    const session = await loadSession(firstDir, 'wide-mlp.onnx');
    for (const batch of [1, 7]) {
      const input = Float32Array.from({ length: batch * 64 }, (_, i) => Math.sin(i));
      const { y } = await session.run({ x: new Tensor('float32', input, [batch, 64]) });
      assert.deepEqual(y!.dims, [batch, 16]);
      assert.ok((y!.data as Float32Array).every(Number.isFinite), `non-finite output for batch ${batch}`);
    }
  });

  test('conv takes [N, 3, 320, 320] images and returns finite [N, 10] scores', async () => {
    const session = await loadSession(firstDir, 'conv.onnx');
    const pixels = 3 * 320 * 320;
    for (const batch of [1, 2]) {
      const input = Float32Array.from({ length: batch * pixels }, (_, i) => (i % 256) / 255);
      const { scores } = await session.run({ image: new Tensor('float32', input, [batch, 3, 320, 320]) });
      assert.deepEqual(scores!.dims, [batch, 10]);
      assert.ok(
        (scores!.data as Float32Array).every(Number.isFinite),
        `non-finite output for batch ${batch}`,
      );
    }
  });

  test('two builds write identical bytes', async () => {
    const fileNames = (await readdir(firstDir)).sort();
    assert.deepEqual(fileNames, ['conv.onnx', 'iris.labels.json', 'iris.onnx', 'wide-mlp.onnx']);
    assert.deepEqual((await readdir(secondDir)).sort(), fileNames);
    for (const fileName of fileNames) {
      const [first, second] = await Promise.all([
        readFile(join(firstDir, fileName)),
        readFile(join(secondDir, fileName)),
      ]);
      assert.ok(first.equals(second), `${fileName} differs between builds`);
    }
  });
});

describe('examples/onnx-writer.ts', () => {
  test('an int64 Identity model loads and echoes its input', async () => {
    const bytes = buildModel({
      name: 'echo',
      inputs: [{ name: 'x', type: 'int64', shape: ['batch', 3] }],
      outputs: [{ name: 'y', type: 'int64', shape: ['batch', 3] }],
      nodes: [{ opType: 'Identity', inputs: ['x'], outputs: ['y'] }],
    });
    const session = await InferenceSession.create(bytes);
    assert.deepEqual(session.inputNames, ['x']);
    assert.deepEqual(session.outputNames, ['y']);

    const values = BigInt64Array.from([1n, -2n, 3n, 2n ** 40n, 0n, -(2n ** 62n)]);
    const { y } = await session.run({ x: new Tensor('int64', values, [2, 3]) });
    assert.deepEqual(y!.dims, [2, 3]);
    assert.deepEqual(Array.from(y!.data as BigInt64Array), Array.from(values));
  });
});
