// The ONNX runtime's inference threads: a thread that dies fails only what it held, as `inference_failed`,
// and is replaced, so the next request is served; a model that fails at run time is `inference_failed`.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildModel } from '../examples/onnx-writer.ts';
import { isModelgateError } from '../src/errors.ts';
import { OnnxRuntime } from '../src/runtime/onnx.ts';
import type { Child } from '../src/runtime/supervisor.ts';
import { tensorFromJson } from '../src/runtime/tensor.ts';
import { buildIdentityModel } from './helpers/platform.ts';

let dir: string;
let identityPath: string;
let squarePath: string;
let runtime: OnnxRuntime;

const rowOf = (values: number[]) => ({ x: tensorFromJson('x', 'FP32', [1, values.length], values) });
const rejectsWithCode = (promise: Promise<unknown>, code: string) =>
  assert.rejects(promise, (error: unknown) => isModelgateError(error) && error.code === code);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'modelgate-onnx-'));
  identityPath = join(dir, 'identity.onnx');
  await writeFile(identityPath, buildIdentityModel(3));
  // y = x · x: a valid product only when the batch has 3 rows, a run-time error otherwise.
  squarePath = join(dir, 'square.onnx');
  await writeFile(
    squarePath,
    buildModel({
      name: 'square',
      inputs: [{ name: 'x', type: 'float32', shape: ['batch', 3] }],
      outputs: [{ name: 'y', type: 'float32', shape: ['batch', 3] }],
      nodes: [{ opType: 'MatMul', inputs: ['x', 'x'], outputs: ['y'] }],
    }),
  );
  runtime = new OnnxRuntime({ threads: 1, intraOpThreads: 1 });
});
after(async () => {
  await runtime.close();
  await rm(dir, { recursive: true, force: true });
});

test('a thread that dies fails its request as inference_failed and is replaced', async () => {
  assert.deepEqual(
    Array.from((await runtime.infer('id', identityPath, rowOf([1, 2, 3]))).y!.data as Float32Array),
    [1, 2, 3],
  );
  // Reach the one thread and end it, as a crash (out of memory, a native abort in a model) would.
  const thread = (runtime as unknown as { threads: { child: Child<unknown> }[] }).threads[0]!;
  // The thread is told to stop first, so it can never answer the request queued to it: a request
  // that a tiny model answers in microseconds would otherwise race the thread's end.
  const terminated = thread.child.kill();
  const inFlight = runtime.infer('id', identityPath, rowOf([4, 5, 6]));
  await rejectsWithCode(inFlight, 'inference_failed');
  await terminated;

  const after = await runtime.infer('id', identityPath, rowOf([7, 8, 9]));
  assert.deepEqual(Array.from(after.y!.data as Float32Array), [7, 8, 9]);
});

test('a model that fails at run time is inference_failed, and the thread carries on', async () => {
  await rejectsWithCode(runtime.infer('square', squarePath, rowOf([1, 2, 3])), 'inference_failed');
  const square = tensorFromJson('x', 'FP32', [3, 3], [1, 0, 0, 0, 1, 0, 0, 0, 1]);
  const { y } = await runtime.infer('square', squarePath, { x: square });
  assert.deepEqual(Array.from(y!.data as Float32Array), [1, 0, 0, 0, 1, 0, 0, 0, 1]);
});
