// What a runtime outside this process answers (a team's program, a team's server), checked against the
// version's signature before it reaches a caller: every output present, of its datatype, of a shape that
// fits, and as many rows as the batch had. An answer that does not fit is the runtime's failure.
import { ModelgateError, type ErrorCode } from '../errors.ts';
import { isPlainObject } from '../json.ts';
import { tensorFromBinary } from './binary-tensors.ts';
import { DATATYPES, type Datatype, type ModelSignature, type TensorSpec } from './signature.ts';
import { tensorFromJson, type NamedTensors, type Tensor } from './tensor.ts';

/** Who answered, to name in errors, and the code an answer that does not fit fails with. */
export interface AnswerSource {
  /** e.g. "the program's answer". */
  what: string;
  code: ErrorCode;
}

/** One output as answered: its data nested or flat JSON, `{b64}` of its little-endian bytes, or raw bytes. */
export interface AnsweredTensor {
  datatype: unknown;
  shape: unknown;
  data: unknown;
}

/**
 * The answered outputs as tensors, each checked against its spec; `rows` is the batch's row count, which
 * an output with a free first dimension must have.
 */
export function checkedOutputs(
  outputs: unknown,
  specs: readonly TensorSpec[],
  rows: number | undefined,
  source: AnswerSource,
): NamedTensors {
  const fail = (message: string) =>
    new ModelgateError(source.code, `${source.what} is not valid: ${message}`);
  if (!isPlainObject(outputs)) throw fail('outputs is not an object');
  const tensors: NamedTensors = {};
  for (const spec of specs) {
    const value = Object.hasOwn(outputs, spec.name) ? outputs[spec.name] : undefined;
    if (!isPlainObject(value)) throw fail(`output "${spec.name}" is missing`);
    const { datatype, shape, data } = value as unknown as AnsweredTensor;
    if (datatype !== spec.datatype)
      throw fail(`output "${spec.name}" is ${String(datatype)}, not ${spec.datatype}`);
    if (!Array.isArray(shape) || !shape.every((dim) => Number.isInteger(dim) && (dim as number) >= 0)) {
      throw fail(`output "${spec.name}" has no valid shape`);
    }
    const fits =
      spec.shape.length === 0 ||
      (shape.length === spec.shape.length &&
        spec.shape.every((dim, i) => dim === -1 || dim === shape[i]) &&
        (rows === undefined || spec.shape[0] !== -1 || shape[0] === rows));
    if (!fits) {
      throw fail(
        `output "${spec.name}" has shape [${shape.slice(0, 8).join(', ')}], which does not fit ` +
          `[${spec.shape.join(', ')}]${rows === undefined ? '' : ` for ${rows} rows`}`,
      );
    }
    let tensor: Tensor;
    try {
      tensor = Buffer.isBuffer(data)
        ? tensorFromBinary(spec.name, spec.datatype, shape as number[], data)
        : isPlainObject(data) && typeof data.b64 === 'string' && spec.datatype !== 'BYTES'
          ? tensorFromBinary(spec.name, spec.datatype, shape as number[], Buffer.from(data.b64, 'base64'))
          : tensorFromJson(spec.name, spec.datatype, shape as number[], data);
    } catch (error) {
      throw fail(error instanceof Error ? error.message : String(error));
    }
    tensors[spec.name] = tensor;
  }
  return tensors;
}

function specOf(value: unknown, where: string, whose: string): TensorSpec {
  if (
    !isPlainObject(value) ||
    typeof value.name !== 'string' ||
    !DATATYPES.includes(value.datatype as Datatype) ||
    !Array.isArray(value.shape) ||
    !value.shape.every((dim) => Number.isInteger(dim) && (dim as number) >= -1)
  ) {
    throw new ModelgateError('invalid_model', `${whose}: ${where} is not {name, datatype, shape}`);
  }
  return { name: value.name, datatype: value.datatype as Datatype, shape: value.shape as number[] };
}

/** A signature given as JSON (by a program, a deployment or an upstream's metadata), checked; `whose` names it in errors. */
export function parseSignature(value: unknown, whose: string): ModelSignature {
  if (!isPlainObject(value) || !Array.isArray(value.inputs) || !Array.isArray(value.outputs)) {
    throw new ModelgateError('invalid_model', `${whose} has no inputs and outputs lists`);
  }
  return {
    inputs: value.inputs.map((spec, i) => specOf(spec, `inputs[${i}]`, whose)),
    outputs: value.outputs.map((spec, i) => specOf(spec, `outputs[${i}]`, whose)),
  };
}
