// Tensors as modelgate moves them between HTTP, batcher and runtime: a datatype, a shape and flat
// row-major data in a typed array. JSON decoding, validation against a model's signature, and the
// stacking/splitting along the batch dimension that dynamic batching needs.
import { ModelgateError } from '../errors.ts';
import type { Datatype, TensorSpec } from './signature.ts';

export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array
  | string[];

export interface Tensor {
  datatype: Datatype;
  shape: number[];
  data: TensorData;
}

export type NamedTensors = Record<string, Tensor>;

interface NumericKind {
  create(length: number): Exclude<TensorData, string[]>;
  min: number;
  max: number;
  integer: boolean;
  bigint: boolean;
}

const INT = (min: number, max: number) => ({ min, max, integer: true, bigint: false });
const NUMERIC_KINDS: Partial<Record<Datatype, NumericKind>> = {
  FP32: { create: (n) => new Float32Array(n), min: -Infinity, max: Infinity, integer: false, bigint: false },
  FP64: { create: (n) => new Float64Array(n), min: -Infinity, max: Infinity, integer: false, bigint: false },
  INT8: { create: (n) => new Int8Array(n), ...INT(-128, 127) },
  INT16: { create: (n) => new Int16Array(n), ...INT(-32768, 32767) },
  INT32: { create: (n) => new Int32Array(n), ...INT(-(2 ** 31), 2 ** 31 - 1) },
  // 64-bit bounds are the largest doubles inside the range, so BigInt() of any accepted value fits.
  INT64: { create: (n) => new BigInt64Array(n), ...INT(-(2 ** 63), 2 ** 63 - 1024), bigint: true },
  UINT8: { create: (n) => new Uint8Array(n), ...INT(0, 255) },
  UINT16: { create: (n) => new Uint16Array(n), ...INT(0, 65535) },
  UINT32: { create: (n) => new Uint32Array(n), ...INT(0, 2 ** 32 - 1) },
  UINT64: { create: (n) => new BigUint64Array(n), ...INT(0, 2 ** 64 - 2048), bigint: true },
  BOOL: { create: (n) => new Uint8Array(n), ...INT(0, 1) },
};

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((product, dim) => product * dim, 1);
}

function invalid(message: string, details: Record<string, unknown>): ModelgateError {
  return new ModelgateError('invalid_input', message, { details });
}

/** A shape for a message: its dims, or its first few and its rank when it is long. */
function formatShape(shape: readonly number[]): string {
  if (shape.length <= 8) return `[${shape.join(', ')}]`;
  return `[${shape.slice(0, 8).join(', ')}, …] (rank ${shape.length})`;
}

/** A JSON value for a message, never longer than a few dozen characters (it may be nested 10,000 deep). */
function describeValue(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return JSON.stringify(value.length > 32 ? `${value.slice(0, 32)}…` : value);
  return String(value);
}

/**
 * Flattens nested row-major arrays, checking that nesting matches `shape` when data is nested. Walks with a
 * stack of arrays, not recursion: nesting as deep as a body allows costs no call stack.
 */
function flatten(name: string, data: unknown, shape: readonly number[]): unknown[] {
  if (!Array.isArray(data)) {
    if (shape.length === 0) return [data];
    throw invalid(`input "${name}": data must be an array`, { input: name });
  }
  if (!data.some(Array.isArray)) return data;
  const out: unknown[] = [];
  const open: { items: unknown[]; next: number }[] = [];
  const enter = (value: unknown) => {
    if (!Array.isArray(value) || value.length !== shape[open.length]) {
      throw invalid(`input "${name}": nested data does not match shape ${formatShape(shape)}`, {
        input: name,
        shape,
      });
    }
    open.push({ items: value, next: 0 });
  };
  enter(data);
  while (open.length > 0) {
    const level = open[open.length - 1]!;
    if (level.next === level.items.length) {
      open.pop();
      continue;
    }
    const item = level.items[level.next++];
    if (open.length === shape.length) out.push(item);
    else enter(item);
  }
  return out;
}

/** Builds a tensor from JSON: `data` flat or nested row-major, checked element by element. */
export function tensorFromJson(
  name: string,
  datatype: Datatype,
  shape: readonly number[],
  data: unknown,
): Tensor {
  if (!shape.every((dim) => Number.isInteger(dim) && dim >= 0)) {
    throw invalid(`input "${name}": shape must be non-negative integers`, { input: name });
  }
  const values = flatten(name, data, shape);
  const expected = elementCount(shape);
  if (values.length !== expected) {
    throw invalid(
      `input "${name}": shape ${formatShape(shape)} needs ${expected} values, got ${values.length}`,
      {
        input: name,
        values: values.length,
      },
    );
  }
  if (datatype === 'BYTES') {
    if (!values.every((value) => typeof value === 'string')) {
      throw invalid(`input "${name}": BYTES data must be strings`, { input: name });
    }
    return { datatype, shape: [...shape], data: values as string[] };
  }
  const kind = NUMERIC_KINDS[datatype];
  if (!kind) throw invalid(`input "${name}": datatype ${datatype} is not supported in JSON`, { input: name });
  const array = kind.create(expected);
  for (let i = 0; i < expected; i++) {
    let value = values[i];
    if (datatype === 'BOOL' && typeof value === 'boolean') value = value ? 1 : 0;
    // Finite only: JSON has no NaN or Infinity, and a literal beyond float64 (1e309) would become one that
    // a job's stored input could not carry.
    if (
      typeof value !== 'number' ||
      !(kind.integer ? Number.isInteger(value) : Number.isFinite(value)) ||
      value < kind.min ||
      value > kind.max
    ) {
      const finite = typeof value === 'number' && !Number.isFinite(value) ? ' (numbers must be finite)' : '';
      throw invalid(
        `input "${name}": element ${i} (${describeValue(value)}) is not a valid ${datatype}${finite}`,
        { input: name, index: i },
      );
    }
    if (kind.bigint) (array as BigInt64Array)[i] = BigInt(value);
    else (array as Float32Array)[i] = value;
  }
  return { datatype, shape: [...shape], data: array };
}

/** Flat JSON values of a tensor (64-bit integers become numbers; BOOL becomes true/false). */
export function tensorToJson(tensor: Tensor): (number | string | boolean)[] {
  if (tensor.datatype === 'BOOL') return Array.from(tensor.data as Uint8Array, (value) => value !== 0);
  if (Array.isArray(tensor.data)) return tensor.data;
  return Array.from(tensor.data as ArrayLike<number | bigint>, Number);
}

/** Nests flat row-major values into arrays by shape (for plain JSON users who send and get rows). */
export function nestByShape<T>(flat: readonly T[], shape: readonly number[]): unknown {
  // A scalar is its bare value, as inferShape reads it back.
  if (shape.length === 0) return flat[0];
  if (shape.length === 1) return flat.slice();
  const [rowCount = 0, ...inner] = shape;
  const stride = elementCount(inner);
  const rows: unknown[] = [];
  // Count rows by the shape, not the data: [2, 0] is two empty rows.
  for (let row = 0; row < rowCount; row++) {
    rows.push(nestByShape(flat.slice(row * stride, (row + 1) * stride), inner));
  }
  return rows;
}

/** Infers the shape of nested JSON arrays (`[[1,2],[3,4]]` → [2, 2]); scalars give []. */
export function inferShape(data: unknown): number[] {
  const shape: number[] = [];
  let level = data;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0];
  }
  return shape;
}

/** The refusal of an input whose shape does not fit its spec. */
export function shapeMismatch(spec: TensorSpec, shape: readonly number[]): ModelgateError {
  return invalid(
    `input "${spec.name}": expected shape ${formatShape(spec.shape)} (-1 = any), got ${formatShape(shape)}`,
    // A shape as deep as the body allows is not echoed whole.
    { input: spec.name, expected: spec.shape, got: shape.length <= 8 ? shape : shape.slice(0, 8) },
  );
}

/** Checks named inputs against the model's input specs: every input present, known, right type and shape. */
export function validateInputs(inputs: NamedTensors, specs: readonly TensorSpec[]): void {
  for (const name of Object.keys(inputs)) {
    if (!specs.some((spec) => spec.name === name)) {
      throw invalid(
        `unknown input "${name}"; the model takes ${specs.map((s) => `"${s.name}"`).join(', ')}`,
        {
          input: name,
          expected: specs.map((spec) => spec.name),
        },
      );
    }
  }
  for (const spec of specs) {
    // Own properties only: an input may be called "constructor" or "toString".
    const tensor = Object.hasOwn(inputs, spec.name) ? inputs[spec.name] : undefined;
    if (!tensor) throw invalid(`missing input "${spec.name}"`, { input: spec.name });
    if (tensor.datatype !== spec.datatype) {
      throw invalid(`input "${spec.name}": expected datatype ${spec.datatype}, got ${tensor.datatype}`, {
        input: spec.name,
        expected: spec.datatype,
        got: tensor.datatype,
      });
    }
    const fits =
      spec.shape.length === 0 ||
      (tensor.shape.length === spec.shape.length &&
        spec.shape.every((dim, i) => dim === -1 || dim === tensor.shape[i]));
    if (!fits) {
      throw shapeMismatch(spec, tensor.shape);
    }
  }
}

/** Rows along the batch dimension (the first); a scalar counts as one row. */
export function batchRows(tensor: Tensor): number {
  return tensor.shape[0] ?? 1;
}

/** Stacks tensors of one input along the batch dimension. All must share datatype and inner dims. */
export function concatRows(parts: readonly Tensor[]): Tensor {
  const first = parts[0]!;
  if (parts.length === 1) return first;
  const rows = parts.reduce((sum, part) => sum + batchRows(part), 0);
  const shape = [rows, ...first.shape.slice(1)];
  if (Array.isArray(first.data)) {
    return { datatype: first.datatype, shape, data: parts.flatMap((part) => part.data as string[]) };
  }
  const data = NUMERIC_KINDS[first.datatype]!.create(elementCount(shape));
  let offset = 0;
  for (const part of parts) {
    (data as Float32Array).set(part.data as Float32Array, offset);
    offset += part.data.length;
  }
  return { datatype: first.datatype, shape, data };
}

/** Cuts `rows[i]` rows for each caller out of a batched output tensor, in order. */
export function splitRows(tensor: Tensor, rows: readonly number[]): Tensor[] {
  const rowSize = elementCount(tensor.shape.slice(1));
  let offset = 0;
  return rows.map((count) => {
    const data = tensor.data.slice(offset * rowSize, (offset + count) * rowSize) as TensorData;
    offset += count;
    return { datatype: tensor.datatype, shape: [count, ...tensor.shape.slice(1)], data };
  });
}

/** Inner dims (all but the batch dimension) as a key: only requests with equal keys can share a batch. */
export function innerShapeKey(inputs: NamedTensors): string {
  return Object.keys(inputs)
    .sort()
    .map((name) => `${name}:${inputs[name]!.shape.slice(1).join('x')}`)
    .join(',');
}
