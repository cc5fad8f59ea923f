// Messages between the ONNX runtime (main thread) and its inference threads, and the conversions
// between modelgate tensors and ONNX Runtime tensors.
import type * as ort from 'onnxruntime-node';
import type { Datatype, ModelSignature, TensorSpec } from './signature.ts';
import type { NamedTensors, TensorData } from './tensor.ts';

export interface OnnxThreadOptions {
  intraOpThreads: number;
}

export type OnnxThreadRequest =
  | { id: number; kind: 'inspect'; artifactPath: string }
  | { id: number; kind: 'infer'; modelKey: string; artifactPath: string; inputs: NamedTensors }
  | { id: number; kind: 'load'; modelKey: string; artifactPath: string }
  | { id: number; kind: 'unload'; modelKey: string }
  /** Release every session and let the thread end by itself. */
  | { id: number; kind: 'close' };

export type OnnxThreadResponse =
  | { id: number; ok: true; signature: ModelSignature }
  | { id: number; ok: true; outputs: NamedTensors }
  | { id: number; ok: true }
  | { id: number; ok: false; message: string };

const DATATYPE_BY_ORT_TYPE: Record<string, Datatype> = {
  float32: 'FP32',
  float64: 'FP64',
  float16: 'FP16',
  int8: 'INT8',
  int16: 'INT16',
  int32: 'INT32',
  int64: 'INT64',
  uint8: 'UINT8',
  uint16: 'UINT16',
  uint32: 'UINT32',
  uint64: 'UINT64',
  bool: 'BOOL',
  string: 'BYTES',
};
export const ORT_TYPE_BY_DATATYPE = Object.fromEntries(
  Object.entries(DATATYPE_BY_ORT_TYPE).map(([ortType, datatype]) => [datatype, ortType]),
) as Record<Datatype, ort.Tensor.Type>;

function specOf(metadata: ort.InferenceSession.ValueMetadata): TensorSpec {
  if (!metadata.isTensor)
    throw new Error(`"${metadata.name}" is not a tensor; only tensor inputs/outputs are served`);
  const datatype = DATATYPE_BY_ORT_TYPE[metadata.type];
  if (!datatype) throw new Error(`"${metadata.name}" has unsupported element type ${metadata.type}`);
  const shape = metadata.shape.map((dim) => (typeof dim === 'number' && dim >= 0 ? dim : -1));
  return { name: metadata.name, datatype, shape };
}

export function signatureFromSession(session: ort.InferenceSession): ModelSignature {
  return { inputs: session.inputMetadata.map(specOf), outputs: session.outputMetadata.map(specOf) };
}

export function tensorsFromOrt(outputs: Record<string, ort.Tensor>): NamedTensors {
  const tensors: NamedTensors = {};
  for (const [name, value] of Object.entries(outputs)) {
    const datatype = DATATYPE_BY_ORT_TYPE[value.type];
    if (!datatype) throw new Error(`output "${name}" has unsupported element type ${value.type}`);
    tensors[name] = { datatype, shape: [...value.dims], data: value.data as TensorData };
  }
  return tensors;
}

/** ArrayBuffers that can be moved (not copied) to the other thread: whole buffers owned by one tensor. */
export function transferListOf(tensors: NamedTensors): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  for (const { data } of Object.values(tensors)) {
    if (Array.isArray(data)) continue;
    const buffer = data.buffer as ArrayBuffer;
    if (data.byteOffset === 0 && data.byteLength === buffer.byteLength) buffers.add(buffer);
  }
  return [...buffers];
}
