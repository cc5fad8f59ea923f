// Unit tests of the dynamic batcher with a fake runtime whose batches finish when the test says so,
// so which requests share a batch is decided by the test, not by timing.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { ModelgateError } from '../src/errors.ts';
import type { NamedTensors, Tensor } from '../src/runtime/tensor.ts';
import { Batcher, type BatchingSettings } from '../src/serving/batcher.ts';

interface BatchCall {
  inputs: NamedTensors;
  /** Finishes the batch with `outputs`, by default those of `timesTen`. */
  finish(outputs?: NamedTensors): void;
  fail(error: unknown): void;
}

/** The fake model: `y` is `x` times ten, `rowSum` the sum of each row of `x`. */
function timesTen(inputs: NamedTensors): NamedTensors {
  const x = inputs.x!;
  const data = x.data as Float32Array;
  const width = x.shape[1] ?? 1;
  const rowSum = new Float32Array(x.shape[0]!);
  data.forEach((value, i) => (rowSum[Math.floor(i / width)]! += value));
  return {
    y: { datatype: 'FP32', shape: [...x.shape], data: data.map((value) => value * 10) },
    rowSum: { datatype: 'FP32', shape: [x.shape[0]!], data: rowSum },
  };
}

/** An FP32 input `x` with the given rows. */
function rows(...values: number[][]): NamedTensors {
  return {
    x: {
      datatype: 'FP32',
      shape: [values.length, values[0]!.length],
      data: Float32Array.from(values.flat()),
    },
  };
}

function valuesOf(tensor: Tensor | undefined): number[] {
  assert.ok(tensor, 'tensor missing');
  return Array.from(tensor.data as Float32Array);
}

/** Batchers of the running test, closed after it so that no fill or deadline timer outlives it. */
const openBatchers = new Set<Batcher>();
afterEach(() => {
  for (const batcher of openBatchers) batcher.close();
  openBatchers.clear();
});

function createBatcher(overrides: Partial<BatchingSettings> = {}) {
  const calls: BatchCall[] = [];
  const callWaiters: { count: number; wake(): void }[] = [];
  /** Resolves once runBatch has been called `count` times. */
  const callsReached = (count: number) =>
    new Promise<void>((wake) => (calls.length >= count ? wake() : callWaiters.push({ count, wake })));
  const batches: { requests: number; rows: number }[] = [];
  const settings: BatchingSettings = {
    batching: true,
    maxBatchSize: 64,
    // Long, so that only a finished batch or a full one lets queued requests go.
    maxBatchDelayMs: 60_000,
    maxQueueSize: 100,
    maxConcurrentBatches: 1,
    timeoutMs: 60_000,
    ...overrides,
  };
  const batcher = new Batcher(
    settings,
    (inputs) =>
      new Promise<NamedTensors>((resolve, reject) => {
        calls.push({ inputs, finish: (outputs = timesTen(inputs)) => resolve(outputs), fail: reject });
        for (const waiter of callWaiters) if (calls.length >= waiter.count) waiter.wake();
      }),
    {
      onBatch: (requests, rowCount) => batches.push({ requests, rows: rowCount }),
      onQueueDepth: () => {},
    },
  );
  openBatchers.add(batcher);
  return { batcher, calls, batches, callsReached };
}

/** Asserts a rejection with ModelgateError `code`. */
function rejectsWith(promise: Promise<unknown>, code: string) {
  return assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ModelgateError, `expected a ModelgateError, got ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  });
}

describe('Batcher', { timeout: 10_000 }, () => {
  test('a lone request runs at once as a batch of one, whatever maxBatchDelayMs', async () => {
    const { batcher, calls, batches } = createBatcher({ maxBatchDelayMs: 60_000, maxConcurrentBatches: 4 });
    const answer = batcher.submit(rows([1, 2]));
    assert.equal(calls.length, 1, 'runBatch was not called synchronously');
    assert.deepEqual(calls[0]!.inputs.x!.shape, [1, 2]);
    calls[0]!.finish();
    assert.deepEqual(valuesOf((await answer).y), [10, 20]);
    assert.deepEqual(batches, [{ requests: 1, rows: 1 }]);
  });

  test('requests arriving during a batch queue, then leave together when it finishes', async () => {
    const { batcher, calls, batches } = createBatcher({ maxConcurrentBatches: 1 });
    const first = batcher.submit(rows([1]));
    const queued = [batcher.submit(rows([2])), batcher.submit(rows([3])), batcher.submit(rows([4]))];
    assert.equal(calls.length, 1);
    assert.equal(batcher.queueDepth, 3);

    calls[0]!.finish();
    await first;
    assert.equal(calls.length, 2);
    assert.equal(batcher.queueDepth, 0);
    assert.deepEqual(calls[1]!.inputs.x!.shape, [3, 1]);
    assert.deepEqual(valuesOf(calls[1]!.inputs.x), [2, 3, 4]);

    calls[1]!.finish();
    const answers = await Promise.all(queued);
    assert.deepEqual(
      answers.map((outputs) => valuesOf(outputs.y)),
      [[20], [30], [40]],
    );
    assert.deepEqual(batches, [
      { requests: 1, rows: 1 },
      { requests: 3, rows: 3 },
    ]);
  });

  test('with a free batch slot, queued requests wait until their rows fill a batch', async () => {
    const { batcher, calls } = createBatcher({ maxConcurrentBatches: 2, maxBatchSize: 3 });
    const first = batcher.submit(rows([1]));
    const second = batcher.submit(rows([2]));
    const third = batcher.submit(rows([3]));
    assert.equal(calls.length, 1, 'a second batch left before it was full or its delay had passed');
    const fourth = batcher.submit(rows([4]));
    assert.equal(calls.length, 2);
    assert.deepEqual(valuesOf(calls[1]!.inputs.x), [2, 3, 4]);
    calls.forEach((call) => call.finish());
    await Promise.all([first, second, third, fourth]);
  });

  test('with a free batch slot, a partial batch leaves after maxBatchDelayMs', async () => {
    const { batcher, calls, callsReached } = createBatcher({ maxConcurrentBatches: 2, maxBatchDelayMs: 5 });
    const first = batcher.submit(rows([1]));
    const second = batcher.submit(rows([2]));
    assert.equal(calls.length, 1);
    // The first batch never finishes here: only the delay can send the second one.
    await callsReached(2);
    assert.deepEqual(valuesOf(calls[1]!.inputs.x), [2]);
    calls.forEach((call) => call.finish());
    await Promise.all([first, second]);
  });

  test('maxBatchSize caps the rows of a batch, counting every row of a request', async () => {
    const { batcher, calls, batches } = createBatcher({ maxBatchSize: 4 });
    const answers = [
      batcher.submit(rows([1])),
      batcher.submit(rows([2], [2])),
      batcher.submit(rows([3], [3])),
      batcher.submit(rows([4])),
      batcher.submit(rows([5], [5], [5])),
    ];
    calls[0]!.finish();
    await answers[0];
    assert.equal(calls.length, 2);
    calls[1]!.finish();
    await answers[2];
    assert.equal(calls.length, 3);
    calls[2]!.finish();
    await Promise.all(answers);
    assert.deepEqual(
      calls.map((call) => valuesOf(call.inputs.x)),
      [[1], [2, 2, 3, 3], [4, 5, 5, 5]],
    );
    assert.deepEqual(batches, [
      { requests: 1, rows: 1 },
      { requests: 2, rows: 4 },
      { requests: 2, rows: 4 },
    ]);
  });

  test('a request larger than maxBatchSize still runs, alone', async () => {
    const { batcher, calls } = createBatcher({ maxBatchSize: 2 });
    const answer = batcher.submit(rows([1], [2], [3]));
    calls[0]!.finish();
    assert.deepEqual(valuesOf((await answer).y), [10, 20, 30]);
  });

  test('requests with different inner shapes never share a batch', async () => {
    const { batcher, calls } = createBatcher();
    const first = batcher.submit(rows([1, 1]));
    const wide = batcher.submit(rows([2, 2, 2]));
    const narrow = [batcher.submit(rows([3, 3])), batcher.submit(rows([4, 4]))];
    calls[0]!.finish();
    await first;
    assert.equal(calls.length, 2);
    assert.deepEqual(calls[1]!.inputs.x!.shape, [1, 3]);
    calls[1]!.finish();
    assert.deepEqual(valuesOf((await wide).y), [20, 20, 20]);
    assert.equal(calls.length, 3);
    assert.deepEqual(calls[2]!.inputs.x!.shape, [2, 2]);
    calls[2]!.finish();
    assert.deepEqual(
      (await Promise.all(narrow)).map((outputs) => valuesOf(outputs.y)),
      [
        [30, 30],
        [40, 40],
      ],
    );
  });

  test('a request whose inputs disagree on the batch dimension never shares a batch', async () => {
    const { batcher, calls } = createBatcher();
    const pair = (x: number[][], z: number[][]): NamedTensors => ({ ...rows(...x), z: rows(...z).x! });
    const first = batcher.submit(pair([[1]], [[1]]));
    const odd = batcher.submit(pair([[2]], [[2], [2]]));
    const good = batcher.submit(pair([[3]], [[3]]));
    calls[0]!.finish();
    await first;
    assert.equal(calls.length, 2);
    assert.deepEqual(valuesOf(calls[1]!.inputs.x), [2], 'the odd request was stacked with another');
    calls[1]!.finish();
    await odd;
    assert.deepEqual(valuesOf(calls[2]!.inputs.x), [3]);
    calls[2]!.finish();
    assert.deepEqual(valuesOf((await good).y), [30]);
  });

  test('with batching off, every runtime call holds exactly one request', async () => {
    const { batcher, calls, batches } = createBatcher({ batching: false });
    const answers = [batcher.submit(rows([1])), batcher.submit(rows([2])), batcher.submit(rows([3]))];
    for (let i = 0; i < 3; i++) {
      assert.equal(calls.length, i + 1);
      calls[i]!.finish();
      await answers[i];
    }
    assert.deepEqual(
      calls.map((call) => valuesOf(call.inputs.x)),
      [[1], [2], [3]],
    );
    assert.deepEqual(
      batches.map((batch) => batch.requests),
      [1, 1, 1],
    );
  });

  test('a full queue rejects at once with queue_full and a retry delay', async () => {
    const { batcher, calls } = createBatcher({ maxQueueSize: 2 });
    const running = batcher.submit(rows([1]));
    const queued = [batcher.submit(rows([2])), batcher.submit(rows([3]))];
    const refused = batcher.submit(rows([4]));
    await assert.rejects(refused, (error: unknown) => {
      assert.ok(error instanceof ModelgateError);
      assert.equal(error.code, 'queue_full');
      assert.equal(error.status, 503);
      assert.ok(error.retryAfterSeconds !== undefined && error.retryAfterSeconds > 0);
      return true;
    });
    calls[0]!.finish();
    await running;
    calls[1]!.finish();
    await Promise.all(queued);
    assert.equal(calls.length, 2, 'the refused request reached the runtime');
  });

  test('requests past timeoutMs reject with timeout, and a timed-out queued request never runs', async () => {
    const { batcher, calls } = createBatcher({ timeoutMs: 20 });
    const running = batcher.submit(rows([1]));
    const queued = batcher.submit(rows([2]));
    await rejectsWith(running, 'timeout');
    await rejectsWith(queued, 'timeout');
    assert.equal(batcher.queueDepth, 0);

    // The runtime answers late: the expired request must not be sent after it.
    calls[0]!.finish();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(calls.length, 1, 'the expired request was sent to the runtime');
    const later = batcher.submit(rows([3]));
    assert.equal(calls.length, 2);
    assert.deepEqual(valuesOf(calls[1]!.inputs.x), [3]);
    calls[1]!.finish();
    assert.deepEqual(valuesOf((await later).y), [30]);
  });

  test('a runtime error rejects every request of its batch, and the batcher carries on', async () => {
    const { batcher, calls } = createBatcher();
    const first = batcher.submit(rows([1]));
    const second = batcher.submit(rows([2]));
    const third = batcher.submit(rows([3]));
    const firstFails = assert.rejects(first, /boom 1/);
    const batchFails = Promise.all([assert.rejects(second, /boom 2/), assert.rejects(third, /boom 2/)]);
    calls[0]!.fail(new Error('boom 1'));
    await firstFails;
    assert.equal(calls.length, 2);
    calls[1]!.fail(new Error('boom 2'));
    await batchFails;

    const after = batcher.submit(rows([4]));
    assert.equal(calls.length, 3);
    calls[2]!.finish();
    assert.deepEqual(valuesOf((await after).y), [40]);
  });

  test('batched outputs are split back so each caller gets exactly its own rows', async () => {
    const { batcher, calls } = createBatcher();
    const first = batcher.submit(rows([0, 0]));
    const answers = [
      batcher.submit(rows([1, 2], [3, 4])),
      batcher.submit(rows([5, 6])),
      batcher.submit(rows([7, 8], [9, 10], [11, 12])),
    ];
    calls[0]!.finish();
    await first;
    assert.deepEqual(calls[1]!.inputs.x!.shape, [6, 2]);
    calls[1]!.finish();
    const [a, b, c] = await Promise.all(answers);
    assert.deepEqual(a!.y!.shape, [2, 2]);
    assert.deepEqual(valuesOf(a!.y), [10, 20, 30, 40]);
    assert.deepEqual(a!.rowSum!.shape, [2]);
    assert.deepEqual(valuesOf(a!.rowSum), [3, 7]);
    assert.deepEqual(b!.y!.shape, [1, 2]);
    assert.deepEqual(valuesOf(b!.y), [50, 60]);
    assert.deepEqual(valuesOf(b!.rowSum), [11]);
    assert.deepEqual(c!.y!.shape, [3, 2]);
    assert.deepEqual(valuesOf(c!.y), [70, 80, 90, 100, 110, 120]);
    assert.deepEqual(valuesOf(c!.rowSum), [15, 19, 23]);
  });

  test('a batched output without a row per input row fails the batch with inference_failed', async () => {
    const { batcher, calls } = createBatcher();
    const first = batcher.submit(rows([1]));
    const both = [batcher.submit(rows([2])), batcher.submit(rows([3]))];
    const bothFail = Promise.all(both.map((answer) => rejectsWith(answer, 'inference_failed')));
    calls[0]!.finish();
    await first;
    calls[1]!.finish({ total: { datatype: 'FP32', shape: [1], data: Float32Array.from([5]) } });
    await bothFail;
  });

  test('close fails queued requests with not_ready and lets the running batch finish', async () => {
    const { batcher, calls } = createBatcher();
    const running = batcher.submit(rows([1]));
    const queued = batcher.submit(rows([2]));
    const queuedFails = rejectsWith(queued, 'not_ready');
    batcher.close();
    await queuedFails;
    calls[0]!.finish();
    assert.deepEqual(valuesOf((await running).y), [10]);
    assert.equal(calls.length, 1);
  });
});
