// Builds ONNX model bytes from a compact description, so example and test models can be written in
// TypeScript without Python or the onnx package. Models use IR version 8 and the default-domain opset 17.

import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

const IR_VERSION = 8;
const OPSET_VERSION = 17;
const PRODUCER_NAME = 'modelgate-examples';

export type ElementType = 'float32' | 'int64';

/** A fixed size, or a symbolic name such as 'batch' that ONNX Runtime binds per call. */
export type Dim = number | string;

export interface TensorSpec {
  name: string;
  type: ElementType;
  shape: Dim[];
}

export interface Float32Initializer {
  name: string;
  dims: number[];
  values: Float32Array;
}

/** Tagged so that 1 (int) and 1.0 (float) stay distinct, as ONNX operators require. */
export type AttributeValue = { int: number } | { float: number } | { ints: number[] };

export interface NodeSpec {
  opType: string;
  inputs: string[];
  outputs: string[];
  attributes?: Record<string, AttributeValue>;
}

export interface ModelSpec {
  name: string;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  nodes: NodeSpec[];
  initializers?: Float32Initializer[];
  docString?: string;
}

const ELEMENT_TYPE_CODES: Record<ElementType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
};

/** Encodes the described model as ModelProto bytes, ready for InferenceSession.create(bytes). */
export function buildModel(spec: ModelSpec): Uint8Array {
  const model: onnxProto.onnx.IModelProto = {
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET_VERSION }],
    producerName: PRODUCER_NAME,
    docString: spec.docString ?? '',
    graph: {
      name: spec.name,
      input: spec.inputs.map(toValueInfo),
      output: spec.outputs.map(toValueInfo),
      initializer: (spec.initializers ?? []).map(toTensorProto),
      node: spec.nodes.map(toNodeProto),
    },
  };
  return onnx.ModelProto.encode(model).finish();
}

function toValueInfo(tensor: TensorSpec): onnxProto.onnx.IValueInfoProto {
  const dim = tensor.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
  return {
    name: tensor.name,
    type: { tensorType: { elemType: ELEMENT_TYPE_CODES[tensor.type], shape: { dim } } },
  };
}

function toTensorProto(init: Float32Initializer): onnxProto.onnx.ITensorProto {
  const expectedCount = init.dims.reduce((product, d) => product * d, 1);
  if (init.values.length !== expectedCount) {
    throw new Error(
      `initializer ${init.name}: ${init.values.length} values do not fill dims [${init.dims.join(', ')}]`,
    );
  }
  return {
    name: init.name,
    dims: init.dims,
    dataType: onnx.TensorProto.DataType.FLOAT,
    rawData: encodeFloat32LittleEndian(init.values),
  };
}

// ONNX raw_data is little-endian whatever the host; DataView makes that explicit and is fast enough.
function encodeFloat32LittleEndian(values: Float32Array): Uint8Array {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  values.forEach((value, i) => view.setFloat32(i * 4, value, true));
  return bytes;
}

function toNodeProto(node: NodeSpec, index: number): onnxProto.onnx.INodeProto {
  return {
    name: `${node.opType}_${index}`,
    opType: node.opType,
    input: node.inputs,
    output: node.outputs,
    attribute: Object.entries(node.attributes ?? {}).map(([name, value]) => toAttributeProto(name, value)),
  };
}

function toAttributeProto(name: string, value: AttributeValue): onnxProto.onnx.IAttributeProto {
  const { AttributeType } = onnx.AttributeProto;
  if ('int' in value) return { name, type: AttributeType.INT, i: value.int };
  if ('float' in value) return { name, type: AttributeType.FLOAT, f: value.float };
  return { name, type: AttributeType.INTS, ints: value.ints };
}
