// Unit tests of src/runtime/tensor.ts: JSON decoding, validation against a signature, and the row
// stacking and splitting that dynamic batching relies on.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ModelgateError } from '../src/errors.ts';
import type { TensorSpec } from '../src/runtime/signature.ts';
import {
  concatRows,
  inferShape,
  nestByShape,
  splitRows,
  tensorFromJson,
  tensorToJson,
  validateInputs,
  type NamedTensors,
  type Tensor,
} from '../src/runtime/tensor.ts';

/** Asserts that `run` throws ModelgateError invalid_input whose message names `input` and matches `pattern`. */
function assertInvalidInput(run: () => unknown, input: string, pattern?: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof ModelgateError, `expected a ModelgateError, got ${String(error)}`);
    assert.equal(error.code, 'invalid_input');
    assert.equal(error.status, 400);
    assert.ok(error.message.includes(`"${input}"`), `message does not name "${input}": ${error.message}`);
    if (pattern) assert.match(error.message, pattern);
    return true;
  });
}

describe('tensorFromJson', () => {
  test('FP32 from flat and from nested data gives the same row-major tensor', () => {
    const flat = tensorFromJson('x', 'FP32', [2, 3], [1, 2.5, 3, 4, 5, -6]);
    const nested = tensorFromJson(
      'x',
      'FP32',
      [2, 3],
      [
        [1, 2.5, 3],
        [4, 5, -6],
      ],
    );
    assert.ok(flat.data instanceof Float32Array);
    assert.deepEqual(flat, nested);
    assert.deepEqual(flat.shape, [2, 3]);
    assert.deepEqual(Array.from(flat.data), [1, 2.5, 3, 4, 5, -6]);
  });

  test('FP64 keeps double precision', () => {
    const tensor = tensorFromJson('x', 'FP64', [1, 2], [[0.1, 1e300]]);
    assert.ok(tensor.data instanceof Float64Array);
    assert.deepEqual(Array.from(tensor.data), [0.1, 1e300]);
  });

  test('INT32 accepts its full range', () => {
    const tensor = tensorFromJson('x', 'INT32', [3], [-(2 ** 31), 0, 2 ** 31 - 1]);
    assert.ok(tensor.data instanceof Int32Array);
    assert.deepEqual(Array.from(tensor.data), [-(2 ** 31), 0, 2 ** 31 - 1]);
  });

  test('INT64 becomes a BigInt64Array', () => {
    const tensor = tensorFromJson(
      'ids',
      'INT64',
      [2, 2],
      [
        [1, -2],
        [2 ** 40, 0],
      ],
    );
    assert.ok(tensor.data instanceof BigInt64Array);
    assert.deepEqual(Array.from(tensor.data), [1n, -2n, 2n ** 40n, 0n]);
    assert.deepEqual(tensorToJson(tensor), [1, -2, 2 ** 40, 0]);
  });

  test('UINT8 accepts 0 to 255', () => {
    const tensor = tensorFromJson('pixels', 'UINT8', [1, 3], [[0, 128, 255]]);
    assert.ok(tensor.data instanceof Uint8Array);
    assert.deepEqual(Array.from(tensor.data), [0, 128, 255]);
  });

  test('BOOL accepts true/false and 0/1 alike, and returns booleans', () => {
    const fromBooleans = tensorFromJson(
      'mask',
      'BOOL',
      [2, 2],
      [
        [true, false],
        [false, true],
      ],
    );
    const fromNumbers = tensorFromJson('mask', 'BOOL', [2, 2], [1, 0, 0, 1]);
    assert.deepEqual(fromBooleans, fromNumbers);
    assert.deepEqual(Array.from(fromBooleans.data as Uint8Array), [1, 0, 0, 1]);
    assert.deepEqual(tensorToJson(fromBooleans), [true, false, false, true]);
  });

  test('BYTES takes strings, flat or nested', () => {
    const flat = tensorFromJson('text', 'BYTES', [2], ['hello', 'wörld']);
    const nested = tensorFromJson('text', 'BYTES', [2, 1], [['hello'], ['wörld']]);
    assert.deepEqual(flat.data, ['hello', 'wörld']);
    assert.deepEqual(nested.data, ['hello', 'wörld']);
    assert.deepEqual(nested.shape, [2, 1]);
  });

  test('a scalar (shape []) takes one bare value', () => {
    const tensor = tensorFromJson('t', 'FP32', [], 0.5);
    assert.deepEqual(tensor.shape, []);
    assert.deepEqual(Array.from(tensor.data as Float32Array), [0.5]);
  });

  test('a wrong element count is rejected with the shape and the count', () => {
    assertInvalidInput(
      () => tensorFromJson('x', 'FP32', [2, 3], [1, 2, 3, 4, 5]),
      'x',
      /needs 6 values, got 5/,
    );
    assertInvalidInput(() => tensorFromJson('x', 'FP32', [1], [1, 2]), 'x', /needs 1 values, got 2/);
  });

  test('nested data that does not match the shape is rejected', () => {
    assertInvalidInput(
      () =>
        tensorFromJson(
          'x',
          'FP32',
          [2, 3],
          [
            [1, 2],
            [3, 4],
            [5, 6],
          ],
        ),
      'x',
      /does not match shape \[2, 3\]/,
    );
    assertInvalidInput(() => tensorFromJson('x', 'FP32', [2, 2], [[1, 2], [3]]), 'x', /does not match shape/);
    assertInvalidInput(() => tensorFromJson('x', 'FP32', [2, 2], [[1, 2], 3]), 'x', /does not match shape/);
  });

  test('data that is not an array for a non-scalar shape is rejected', () => {
    assertInvalidInput(() => tensorFromJson('x', 'FP32', [1], 3), 'x', /must be an array/);
  });

  test('non-numeric values are rejected with their index', () => {
    assertInvalidInput(() => tensorFromJson('x', 'FP32', [3], [1, 'two', 3]), 'x', /element 1 \("two"\)/);
    assertInvalidInput(() => tensorFromJson('x', 'FP32', [2], [1, null]), 'x', /element 1/);
    assertInvalidInput(() => tensorFromJson('x', 'FP64', [1], [true]), 'x', /not a valid FP64/);
    assertInvalidInput(() => tensorFromJson('x', 'INT32', [1], ['7']), 'x', /not a valid INT32/);
  });

  test('non-integers are rejected for every integer type', () => {
    for (const datatype of ['INT32', 'INT64', 'UINT8', 'BOOL'] as const) {
      assertInvalidInput(() => tensorFromJson('n', datatype, [2], [1, 0.5]), 'n', /element 1 \(0.5\)/);
    }
  });

  test('values outside the range of the type are rejected', () => {
    assertInvalidInput(() => tensorFromJson('p', 'UINT8', [2], [1, 300]), 'p', /element 1 \(300\).*UINT8/);
    assertInvalidInput(() => tensorFromJson('p', 'UINT8', [1], [-1]), 'p', /UINT8/);
    assertInvalidInput(() => tensorFromJson('i', 'INT32', [1], [2 ** 31]), 'i', /INT32/);
    assertInvalidInput(() => tensorFromJson('b', 'BOOL', [1], [2]), 'b', /BOOL/);
    assertInvalidInput(() => tensorFromJson('l', 'INT64', [1], [2 ** 64]), 'l', /INT64/);
  });

  test('BYTES rejects non-strings', () => {
    assertInvalidInput(() => tensorFromJson('text', 'BYTES', [2], ['a', 1]), 'text', /must be strings/);
  });

  test('FP16 is not supported in JSON', () => {
    assertInvalidInput(() => tensorFromJson('h', 'FP16', [1], [1]), 'h', /FP16 is not supported/);
  });

  test('a shape with negative or fractional dims is rejected', () => {
    assertInvalidInput(() => tensorFromJson('x', 'FP32', [-1, 2], [1, 2]), 'x', /shape/);
    assertInvalidInput(() => tensorFromJson('x', 'FP32', [1.5], [1]), 'x', /shape/);
  });
});

describe('validateInputs', () => {
  const specs: TensorSpec[] = [
    { name: 'a', datatype: 'FP32', shape: [-1, 3] },
    { name: 'b', datatype: 'INT64', shape: [-1, 2] },
  ];
  const a = (rows: number, width = 3): Tensor => ({
    datatype: 'FP32',
    shape: [rows, width],
    data: new Float32Array(rows * width),
  });
  const b = (rows: number): Tensor => ({
    datatype: 'INT64',
    shape: [rows, 2],
    data: new BigInt64Array(rows * 2),
  });

  test('accepts matching inputs, any size in a free dim', () => {
    for (const rows of [1, 17, 1000]) {
      const inputs = { a: a(rows), b: b(rows) };
      assert.doesNotThrow(() => validateInputs(inputs, specs), `${rows} rows`);
      // Only checked, not changed: the same tensors go on to the batcher.
      assert.deepEqual(inputs, { a: a(rows), b: b(rows) });
      // The fixed dim beside the free one is still checked at that size: the check is not a no-op.
      const tooWide = { a: a(rows, 4), b: b(rows) };
      assertInvalidInput(() => validateInputs(tooWide, specs), 'a', new RegExp(`got \\[${rows}, 4\\]`));
    }
  });

  test('rejects an unknown input, naming it and the known ones', () => {
    assertInvalidInput(() => validateInputs({ a: a(1), b: b(1), c: a(1) }, specs), 'c', /"a", "b"/);
  });

  test('rejects a missing input', () => {
    assertInvalidInput(() => validateInputs({ a: a(1) }, specs), 'b', /missing input/);
  });

  test('an input named like an Object.prototype member is missing when not given', () => {
    const odd: TensorSpec[] = [{ name: 'constructor', datatype: 'FP32', shape: [-1] }];
    assertInvalidInput(() => validateInputs({}, odd), 'constructor', /missing input/);
    const given: Tensor = { datatype: 'FP32', shape: [1], data: new Float32Array(1) };
    assert.doesNotThrow(() => validateInputs({ constructor: given }, odd));
  });

  test('rejects a wrong datatype', () => {
    const wrong: NamedTensors = { a: { ...a(1), datatype: 'INT32', data: new Int32Array(3) }, b: b(1) };
    assertInvalidInput(() => validateInputs(wrong, specs), 'a', /expected datatype FP32, got INT32/);
  });

  test('rejects a wrong rank', () => {
    const flat: NamedTensors = { a: { datatype: 'FP32', shape: [3], data: new Float32Array(3) }, b: b(1) };
    assertInvalidInput(() => validateInputs(flat, specs), 'a', /expected shape \[-1, 3\].*got \[3\]/);
  });

  test('rejects a wrong fixed dim', () => {
    assertInvalidInput(() => validateInputs({ a: a(2, 4), b: b(2) }, specs), 'a', /got \[2, 4\]/);
  });
});

describe('concatRows and splitRows', () => {
  test('FP32 parts stack along the batch dimension and split back unchanged', () => {
    const parts: Tensor[] = [
      { datatype: 'FP32', shape: [1, 2], data: Float32Array.from([1, 2]) },
      { datatype: 'FP32', shape: [3, 2], data: Float32Array.from([3, 4, 5, 6, 7, 8]) },
      { datatype: 'FP32', shape: [2, 2], data: Float32Array.from([9, 10, 11, 12]) },
    ];
    const stacked = concatRows(parts);
    assert.deepEqual(stacked.shape, [6, 2]);
    assert.ok(stacked.data instanceof Float32Array);
    assert.deepEqual(Array.from(stacked.data), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    assert.deepEqual(splitRows(stacked, [1, 3, 2]), parts);
  });

  test('INT64 (BigInt64Array) round-trips', () => {
    const parts: Tensor[] = [
      { datatype: 'INT64', shape: [2], data: BigInt64Array.from([1n, -(2n ** 62n)]) },
      { datatype: 'INT64', shape: [1], data: BigInt64Array.from([2n ** 62n]) },
    ];
    const stacked = concatRows(parts);
    assert.ok(stacked.data instanceof BigInt64Array);
    assert.deepEqual(stacked.shape, [3]);
    assert.deepEqual(splitRows(stacked, [2, 1]), parts);
  });

  test('string data round-trips', () => {
    const parts: Tensor[] = [
      { datatype: 'BYTES', shape: [1, 2], data: ['a', 'b'] },
      { datatype: 'BYTES', shape: [2, 2], data: ['c', 'd', 'e', 'f'] },
    ];
    const stacked = concatRows(parts);
    assert.deepEqual(stacked, { datatype: 'BYTES', shape: [3, 2], data: ['a', 'b', 'c', 'd', 'e', 'f'] });
    assert.deepEqual(splitRows(stacked, [1, 2]), parts);
  });

  test('split parts do not share memory with the batch', () => {
    const stacked: Tensor = { datatype: 'FP32', shape: [2, 1], data: Float32Array.from([1, 2]) };
    const [first] = splitRows(stacked, [1, 1]);
    (stacked.data as Float32Array)[0] = 99;
    assert.deepEqual(Array.from(first!.data as Float32Array), [1]);
  });
});

describe('nestByShape and inferShape', () => {
  test('nest flat values by shape and infer the shape back', () => {
    const nested = nestByShape([1, 2, 3, 4, 5, 6], [2, 3]);
    assert.deepEqual(nested, [
      [1, 2, 3],
      [4, 5, 6],
    ]);
    assert.deepEqual(inferShape(nested), [2, 3]);
    assert.deepEqual(nestByShape([1, 2, 3, 4], [2, 1, 2]), [[[1, 2]], [[3, 4]]]);
    assert.deepEqual(nestByShape([1, 2, 3], [3]), [1, 2, 3]);
  });

  test('inferShape of scalars, flat and nested arrays', () => {
    assert.deepEqual(inferShape(5), []);
    assert.deepEqual(inferShape([1, 2, 3]), [3]);
    assert.deepEqual(inferShape([[[1], [2]]]), [1, 2, 1]);
    assert.deepEqual(inferShape([]), [0]);
  });

  test('nesting round-trips through tensorFromJson for every shape, empty and scalar ones included', () => {
    const cases: unknown[] = [
      [
        [1, 2],
        [3, 4],
      ],
      [[[1]], [[2]], [[3]]],
      [[], []],
      [],
      7,
    ];
    for (const data of cases) {
      const tensor = tensorFromJson('x', 'FP32', inferShape(data), data);
      assert.deepEqual(nestByShape(tensorToJson(tensor), tensor.shape), data, JSON.stringify(data));
    }
  });
});
