// The Open Inference Protocol's binary tensor data extension, as Triton defines it
// (triton-inference-server/server docs/protocol/extension_binary_data.md): a JSON header of
// `Inference-Header-Content-Length` bytes, then the raw little-endian bytes of each tensor that carries
// `parameters.binary_data_size`, in the order the tensors appear in the header. Framing and codec only;
// no IO.
import { endianness } from 'node:os';
import { ModelgateError } from '../errors.ts';
import { isPlainObject } from '../json.ts';
import { DATATYPES, type Datatype } from './signature.ts';
import { elementCount, type Tensor, type TensorData } from './tensor.ts';

/** The HTTP header that gives the byte length of the JSON header at the front of the body. */
export const INFERENCE_HEADER_CONTENT_LENGTH = 'inference-header-content-length';

/**
 * The content type Triton's HTTP server sets on a response that carries binary data (src/http_server.cc
 * `SetResponseHeader`); its C++ client sends it on binary requests too, while the Python client sends none,
 * so a binary request is recognised by `Inference-Header-Content-Length`, not by its content type.
 */
export const BINARY_CONTENT_TYPE = 'application/octet-stream';

type FixedDatatype = Exclude<Datatype, 'BYTES'>;

type FixedArray = Exclude<TensorData, string[]>;

interface FixedKind {
  bytesPerElement: number;
  /** The typed array the datatype lives in: a fresh one of a length, or a view of a buffer. */
  Array: {
    new (length: number): FixedArray;
    new (buffer: ArrayBuffer, byteOffset: number, length: number): FixedArray;
  };
}

/** Each fixed-size datatype's width on the wire and the typed array it lives in (FP16 as raw halves). */
const FIXED_KINDS: Record<FixedDatatype, FixedKind> = {
  BOOL: { bytesPerElement: 1, Array: Uint8Array },
  UINT8: { bytesPerElement: 1, Array: Uint8Array },
  UINT16: { bytesPerElement: 2, Array: Uint16Array },
  UINT32: { bytesPerElement: 4, Array: Uint32Array },
  UINT64: { bytesPerElement: 8, Array: BigUint64Array },
  INT8: { bytesPerElement: 1, Array: Int8Array },
  INT16: { bytesPerElement: 2, Array: Int16Array },
  INT32: { bytesPerElement: 4, Array: Int32Array },
  INT64: { bytesPerElement: 8, Array: BigInt64Array },
  // onnxruntime-node carries float16 as a Uint16Array of raw IEEE 754 halves; so do we.
  FP16: { bytesPerElement: 2, Array: Uint16Array },
  FP32: { bytesPerElement: 4, Array: Float32Array },
  FP64: { bytesPerElement: 8, Array: Float64Array },
};

/** BYTES elements are each a 4-byte little-endian unsigned length, then that many bytes. */
const BYTES_LENGTH_PREFIX = 4;

const HOST_IS_LITTLE_ENDIAN = endianness() === 'LE';

// fatal: a BYTES element must be UTF-8 to become a string; ignoreBOM: a leading U+FEFF is data, not a mark.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export interface BinaryInferBody {
  /** The JSON header, parsed but otherwise unchecked (the route validates it as a JSON request). */
  header: Record<string, unknown>;
  /** The raw bytes of each input that carries `parameters.binary_data_size`, by input name. */
  tensors: Map<string, Buffer>;
  /** Each tensor's bytes are a buffer of its own (readBinaryInferBody), not views of a shared body. */
  owned: boolean;
}

function badRequest(message: string, details?: Record<string, unknown>): ModelgateError {
  return new ModelgateError('bad_request', message, details ? { details } : {});
}

function invalid(name: string, message: string, details: Record<string, unknown> = {}): ModelgateError {
  return new ModelgateError('invalid_input', `input "${name}": ${message}`, {
    details: { input: name, ...details },
  });
}

/** The `parameters` object of a tensor entry, or undefined when it has none (or not an object). */
function parametersOf(entry: Record<string, unknown>): Record<string, unknown> | undefined {
  const parameters = entry.parameters;
  return isPlainObject(parameters) ? parameters : undefined;
}

/**
 * Reads the `Inference-Header-Content-Length` header: undefined when absent (the body is plain JSON), else
 * its value as a byte count. Stricter than Triton's `std::stoi`, which also takes "12abc" and " 12".
 */
export function parseInferenceHeaderLength(value: string | string[] | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) throw badRequest('Inference-Header-Content-Length is given more than once');
  if (!/^[0-9]{1,15}$/.test(value)) {
    throw badRequest(
      `Inference-Header-Content-Length must be a byte count, got ${JSON.stringify(value.slice(0, 32))}`,
    );
  }
  return Number(value);
}

/** What a binary body's header announces: the header itself, and each binary tensor's name and size, in order. */
interface BinaryLayout {
  header: Record<string, unknown>;
  sizes: { name: string; size: number }[];
}

/**
 * Checks the framing of a binary inference body of `bodyLength` bytes whose first `headerLength` bytes
 * are `headerBytes`: that `headerLength` lies within the body, that the header is a JSON object, that
 * every `binary_data_size` of `header[part]` is a byte count, that no input has both `data` and
 * `binary_data_size`, and that the sizes account for every byte after the header. `headerLength` 0
 * (Triton's "raw binary request", the body being the single input's bytes with no header) is refused: it
 * needs the model's signature to read.
 */
function binaryLayout(
  headerBytes: Buffer,
  headerLength: number,
  bodyLength: number,
  part: 'inputs' | 'outputs',
): BinaryLayout {
  if (!Number.isSafeInteger(headerLength) || headerLength < 0 || headerLength > bodyLength) {
    throw badRequest(
      `Inference-Header-Content-Length must be an integer from 1 to the body's ${bodyLength} bytes, got ${headerLength}`,
      { headerLength: String(headerLength) },
    );
  }
  if (headerLength === 0) {
    throw badRequest(
      'Inference-Header-Content-Length 0 (a raw binary request without a JSON header) is not supported',
    );
  }
  let header: unknown;
  try {
    header = JSON.parse(utf8.decode(headerBytes.subarray(0, headerLength)));
  } catch (error) {
    throw new ModelgateError(
      'invalid_json',
      `the first ${headerLength} bytes of the body (Inference-Header-Content-Length) are not UTF-8 JSON: ${(error as Error).message}`,
      { cause: error },
    );
  }
  if (!isPlainObject(header)) throw badRequest('the inference header must be a JSON object');
  const inputs = header[part] ?? [];
  if (!Array.isArray(inputs)) throw badRequest(`the inference header: ${part} must be an array`);

  const sizes: BinaryLayout['sizes'] = [];
  let offset = headerLength;
  inputs.forEach((input: unknown, index) => {
    if (!isPlainObject(input)) throw badRequest(`the inference header: ${part}[${index}] must be an object`);
    const size = parametersOf(input)?.binary_data_size;
    if (size === undefined) return;
    const name = typeof input.name === 'string' ? input.name : `${part}[${index}]`;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
      throw invalid(name, `binary_data_size must be a non-negative integer, got ${JSON.stringify(size)}`);
    }
    // Triton (ValidateInputContentType) takes exactly one of data, binary_data_size, shared_memory_region.
    if (Object.hasOwn(input, 'data')) throw invalid(name, 'has both data and parameters.binary_data_size');
    if (sizes.some((entry) => entry.name === name)) throw invalid(name, 'is given twice');
    const remaining = bodyLength - offset;
    if (size > remaining) {
      throw invalid(name, `binary_data_size is ${size} bytes but only ${remaining} remain in the body`, {
        binaryDataSize: size,
        remaining,
      });
    }
    sizes.push({ name, size });
    offset += size;
  });
  if (offset !== bodyLength) {
    throw badRequest(
      `${bodyLength - offset} bytes after the inference header belong to no input (the binary_data_size values sum to ${offset - headerLength})`,
      { unclaimedBytes: bodyLength - offset },
    );
  }
  return { header, sizes };
}

/**
 * Splits a binary inference body into its JSON header and the raw bytes of each binary tensor of
 * `header[part]`: a request's inputs, or (from an upstream server) a response's outputs, as views of the
 * body. The framing is checked as binaryLayout says.
 */
export function parseBinaryInferBody(
  body: Buffer,
  headerLength: number,
  part: 'inputs' | 'outputs' = 'inputs',
): BinaryInferBody {
  const { header, sizes } = binaryLayout(body, headerLength, body.length, part);
  const tensors = new Map<string, Buffer>();
  let offset = headerLength;
  for (const { name, size } of sizes) {
    tensors.set(name, body.subarray(offset, offset + size));
    offset += size;
  }
  return { header, tensors, owned: false };
}

/**
 * Reads a binary inference body of `bodyLength` bytes (its Content-Length) as it arrives: the JSON header
 * first, checked as binaryLayout says before anything else is read, then each binary tensor's bytes
 * straight into a buffer of its own. One copy from the socket's chunks, and each tensor's buffer is its
 * ArrayBuffer alone (aligned for any datatype, and movable to an inference thread without a copy).
 */
export async function readBinaryInferBody(
  chunks: AsyncIterable<Buffer>,
  headerLength: number,
  bodyLength: number,
): Promise<BinaryInferBody> {
  const iterator = chunks[Symbol.asyncIterator]();
  let pending: Buffer = Buffer.alloc(0);
  let received = 0;
  /** The next bytes of the body, up to `most`; undefined at its end. */
  const next = async (most: number): Promise<Buffer | undefined> => {
    if (pending.length === 0) {
      const { value, done } = await iterator.next();
      if (done) return undefined;
      pending = value;
      received += value.length;
    }
    const taken = pending.subarray(0, most);
    pending = pending.subarray(taken.length);
    return taken;
  };
  const cutShort = () =>
    badRequest(`the body ended after ${received} of its ${bodyLength} bytes (Content-Length)`);

  const headerBytes = Buffer.alloc(Math.min(Math.max(headerLength, 0), bodyLength));
  for (let filled = 0; filled < headerBytes.length;) {
    const chunk = await next(headerBytes.length - filled);
    if (!chunk) throw cutShort();
    filled += chunk.copy(headerBytes, filled);
  }
  const { header, sizes } = binaryLayout(headerBytes, headerLength, bodyLength, 'inputs');
  const tensors = new Map<string, Buffer>();
  for (const { name, size } of sizes) {
    const bytes = Buffer.allocUnsafeSlow(size);
    for (let filled = 0; filled < size;) {
      const chunk = await next(size - filled);
      if (!chunk) throw cutShort();
      filled += chunk.copy(bytes, filled);
    }
    tensors.set(name, bytes);
  }
  return { header, tensors, owned: true };
}

function isDatatype(value: string): value is Datatype {
  return (DATATYPES as readonly string[]).includes(value);
}

function checkShape(name: string, shape: readonly number[]): number {
  if (!shape.every((dim) => Number.isSafeInteger(dim) && dim >= 0)) {
    throw invalid(name, 'shape must be non-negative integers');
  }
  const count = elementCount(shape);
  if (!Number.isSafeInteger(count)) throw invalid(name, 'shape has too many elements');
  return count;
}

/** Reorders each element's bytes in place, little-endian to host order or back (a no-op on little-endian hosts). */
function toOrFromLittleEndian(bytes: Buffer, bytesPerElement: number): void {
  if (HOST_IS_LITTLE_ENDIAN) return;
  if (bytesPerElement === 2) bytes.swap16();
  else if (bytesPerElement === 4) bytes.swap32();
  else if (bytesPerElement === 8) bytes.swap64();
}

function bytesToStrings(name: string, count: number, bytes: Buffer): string[] {
  const strings: string[] = [];
  let offset = 0;
  for (let index = 0; index < count; index++) {
    if (bytes.length - offset < BYTES_LENGTH_PREFIX) {
      throw invalid(
        name,
        `BYTES element ${index} is truncated: its 4-byte length needs ${BYTES_LENGTH_PREFIX} bytes, ${bytes.length - offset} remain`,
        { index },
      );
    }
    const length = bytes.readUInt32LE(offset);
    offset += BYTES_LENGTH_PREFIX;
    if (bytes.length - offset < length) {
      throw invalid(
        name,
        `BYTES element ${index} is truncated: its length says ${length} bytes, ${bytes.length - offset} remain`,
        { index },
      );
    }
    try {
      strings.push(utf8.decode(bytes.subarray(offset, offset + length)));
    } catch (error) {
      throw new ModelgateError('invalid_input', `input "${name}": BYTES element ${index} is not UTF-8`, {
        cause: error,
        details: { input: name, index },
      });
    }
    offset += length;
  }
  if (offset !== bytes.length) {
    throw invalid(
      name,
      `holds more than the ${count} BYTES elements its shape gives (${bytes.length - offset} bytes left over)`,
    );
  }
  return strings;
}

/**
 * Builds a tensor from an input's binary bytes: exactly product(shape) elements of the datatype's width,
 * little-endian; BYTES as length-prefixed UTF-8 elements (becoming strings, as JSON BYTES do). Copies into a
 * fresh typed array, so `bytes` may sit at any offset (pooled Buffers are often unaligned) and the tensor
 * does not keep the request body alive; unless `owned` says the bytes are a buffer of their own, given to
 * the tensor (readBinaryInferBody's), which it then uses in place.
 */
export function tensorFromBinary(
  name: string,
  datatype: string,
  shape: readonly number[],
  bytes: Buffer,
  owned = false,
): Tensor {
  if (!isDatatype(datatype)) {
    throw invalid(name, `datatype ${JSON.stringify(datatype)} cannot be read as binary data`, { datatype });
  }
  const count = checkShape(name, shape);
  if (datatype === 'BYTES') return { datatype, shape: [...shape], data: bytesToStrings(name, count, bytes) };
  const kind = FIXED_KINDS[datatype];
  const expected = count * kind.bytesPerElement;
  if (bytes.length !== expected) {
    throw invalid(
      name,
      `shape [${shape.slice(0, 8).join(', ')}${shape.length > 8 ? ', …' : ''}] of ${datatype} needs ${expected} bytes, binary_data_size gives ${bytes.length}`,
      { expectedBytes: expected, gotBytes: bytes.length },
    );
  }
  const inPlace = owned && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
  const data = inPlace ? new kind.Array(bytes.buffer as ArrayBuffer, 0, count) : new kind.Array(count);
  const target = inPlace ? bytes : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (!inPlace) bytes.copy(target);
  toOrFromLittleEndian(target, kind.bytesPerElement);
  if (datatype === 'BOOL') {
    const index = (data as Uint8Array).findIndex((value) => value > 1);
    if (index !== -1) {
      throw invalid(name, `BOOL element ${index} is byte ${(data as Uint8Array)[index]}, not 0 or 1`, {
        index,
      });
    }
  }
  return { datatype, shape: [...shape], data };
}

/** The byte length of a tensor's binary form, checking that its data fits its datatype and shape. */
function binaryByteLength(name: string, tensor: Tensor): number {
  const count = elementCount(tensor.shape);
  if (tensor.data.length !== count) {
    throw new ModelgateError(
      'internal',
      `output "${name}": ${tensor.data.length} values for shape [${tensor.shape.join(', ')}]`,
    );
  }
  if (tensor.datatype === 'BYTES') {
    if (!Array.isArray(tensor.data)) {
      throw new ModelgateError('internal', `output "${name}": BYTES data must be strings`);
    }
    return tensor.data.reduce(
      (sum, value) => sum + BYTES_LENGTH_PREFIX + Buffer.byteLength(value, 'utf8'),
      0,
    );
  }
  const kind = FIXED_KINDS[tensor.datatype];
  if (Array.isArray(tensor.data) || tensor.data.BYTES_PER_ELEMENT !== kind.bytesPerElement) {
    throw new ModelgateError('internal', `output "${name}": data does not hold ${tensor.datatype} elements`);
  }
  return count * kind.bytesPerElement;
}

/** Writes a tensor's binary form into `target` at `offset`; returns the offset after it. */
function writeBinary(tensor: Tensor, target: Buffer, offset: number): number {
  if (Array.isArray(tensor.data)) {
    for (const value of tensor.data) {
      const length = target.write(value, offset + BYTES_LENGTH_PREFIX, 'utf8');
      target.writeUInt32LE(length, offset);
      offset += BYTES_LENGTH_PREFIX + length;
    }
    return offset;
  }
  const source = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  const written = target.subarray(offset, offset + source.length);
  source.copy(written);
  toOrFromLittleEndian(written, tensor.data.BYTES_PER_ELEMENT);
  return offset + source.length;
}

/** A tensor's binary form: little-endian elements, BOOL one byte each, BYTES length-prefixed UTF-8. A copy. */
export function tensorToBinary(tensor: Tensor): Buffer {
  const bytes = Buffer.allocUnsafe(binaryByteLength('tensor', tensor));
  writeBinary(tensor, bytes, 0);
  return bytes;
}

export interface BinaryTensor {
  name: string;
  tensor: Tensor;
}

export interface EncodedBinaryBody {
  body: Buffer;
  /** The value for `Inference-Header-Content-Length`: the JSON header's length in bytes. */
  headerLength: number;
}

/**
 * Encodes a body with some tensors as binary data: a response's outputs, or (towards an upstream server)
 * a request's inputs. Each of `binaryTensors` must name an entry of `header[part]`; that entry gets the
 * tensor's datatype and shape and `parameters.binary_data_size`, and loses `data`. The bytes follow the
 * JSON in the order of `header[part]` (which is how readers find them), whatever the order of
 * `binaryTensors`. `header` itself is not modified.
 */
export function encodeBinaryInferBody(
  header: Record<string, unknown>,
  binaryTensors: readonly BinaryTensor[],
  part: 'inputs' | 'outputs' = 'outputs',
): EncodedBinaryBody {
  const byName = new Map<string, Tensor>();
  for (const { name, tensor } of binaryTensors) {
    if (byName.has(name)) throw new ModelgateError('internal', `binary output "${name}" is given twice`);
    byName.set(name, tensor);
  }
  const outputs: unknown[] = Array.isArray(header[part]) ? (header[part] as unknown[]) : [];
  const ordered: Tensor[] = [];
  let binaryLength = 0;
  const encodedOutputs = outputs.map((output) => {
    if (!isPlainObject(output) || typeof output.name !== 'string' || !byName.has(output.name)) return output;
    const tensor = byName.get(output.name)!;
    byName.delete(output.name);
    const size = binaryByteLength(output.name, tensor);
    ordered.push(tensor);
    binaryLength += size;
    const described: Record<string, unknown> = { ...output };
    delete described.data;
    return {
      ...described,
      datatype: tensor.datatype,
      shape: [...tensor.shape],
      parameters: { ...parametersOf(output), binary_data_size: size },
    };
  });
  const [missing] = byName.keys();
  if (missing !== undefined) {
    throw new ModelgateError('internal', `binary tensor "${missing}" is not among the body's ${part}`);
  }
  const json = JSON.stringify({ ...header, [part]: encodedOutputs });
  const headerLength = Buffer.byteLength(json, 'utf8');
  const body = Buffer.allocUnsafe(headerLength + binaryLength);
  body.write(json, 0, 'utf8');
  let offset = headerLength;
  for (const tensor of ordered) offset = writeBinary(tensor, body, offset);
  return { body, headerLength };
}

/**
 * Whether the client asked for an output as binary data: the output's own `parameters.binary_data` when it
 * lists the output with one, else the request's `parameters.binary_data_output` (default false), as the
 * extension's document says. (Triton's server, src/http_server.cc, applies binary_data_output only to
 * outputs the request does not list; its clients always set binary_data on listed outputs, so both agree.)
 */
export function wantsBinaryOutput(header: Record<string, unknown>, outputName: string): boolean {
  const listed = Array.isArray(header.outputs)
    ? header.outputs.find((output: unknown) => isPlainObject(output) && output.name === outputName)
    : undefined;
  const own = isPlainObject(listed) ? parametersOf(listed)?.binary_data : undefined;
  if (own !== undefined) {
    if (typeof own !== 'boolean') {
      throw badRequest(`output "${outputName}": parameters.binary_data must be true or false`, {
        output: outputName,
      });
    }
    return own;
  }
  const all = parametersOf(header)?.binary_data_output;
  if (all === undefined) return false;
  if (typeof all !== 'boolean') throw badRequest('parameters.binary_data_output must be true or false');
  return all;
}
