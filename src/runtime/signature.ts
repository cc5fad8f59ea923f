// What a model takes and returns, in Open Inference Protocol terms, read from the model file itself.

/** Tensor element types of the Open Inference Protocol v2. */
export const DATATYPES = [
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'FP32',
  'FP64',
  'BYTES',
] as const;
export type Datatype = (typeof DATATYPES)[number];

export interface TensorSpec {
  name: string;
  datatype: Datatype;
  /** Dimensions; -1 where the model leaves a dimension free (symbolic or unknown). */
  shape: number[];
}

export interface ModelSignature {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

/** True when every input's first dimension is free, so requests can be stacked along it. */
export function hasFreeBatchDimension(signature: ModelSignature): boolean {
  return (
    signature.inputs.length > 0 &&
    signature.inputs.every((input) => input.shape.length > 0 && input.shape[0] === -1) &&
    signature.outputs.every((output) => output.shape.length > 0 && output.shape[0] === -1)
  );
}
