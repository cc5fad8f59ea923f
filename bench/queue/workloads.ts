// What the queue benchmark's jobs carry: one row each. trivial: an Identity model on modelgate (y = x, so
// the job costs the queue and next to no inference) and the same JSON as the payload of the peers' jobs,
// whose handler returns it; wide-mlp: the large example model (modelgate only), the same row bench:realtime
// sends.
import { buildModel } from '../../examples/onnx-writer.ts';
import { buildWorkload } from '../lib/workload.ts';
import type { WorkloadId } from './system.ts';

export interface JobWorkload {
  id: WorkloadId;
  /** The model name modelgate serves it under. */
  model: string;
  onnx: Uint8Array;
  /** `{"instances": [row]}`: modelgate's request body; parsed, the peers' job payload. */
  body: string;
  payload: { instances: number[][] };
  row: number[];
  rowSource: string;
}

// A real row of examples/data/iris.csv (a setosa flower): four plain numbers.
const TRIVIAL_ROW = [5.1, 3.5, 1.4, 0.2];

function identityModel(width: number): Uint8Array {
  return buildModel({
    name: 'identity',
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', width] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['batch', width] }],
    nodes: [{ opType: 'Identity', inputs: ['x'], outputs: ['y'] }],
  });
}

export function buildJobWorkload(id: WorkloadId): JobWorkload {
  if (id === 'trivial') {
    const payload = { instances: [TRIVIAL_ROW] };
    return {
      id,
      model: 'identity',
      onnx: identityModel(TRIVIAL_ROW.length),
      body: JSON.stringify(payload),
      payload,
      row: TRIVIAL_ROW,
      rowSource: 'examples/data/iris.csv row 1',
    };
  }
  const wide = buildWorkload('wide-mlp');
  return {
    id,
    model: 'wide-mlp',
    onnx: wide.onnx,
    body: wide.body,
    payload: { instances: [wide.row] },
    row: wide.row,
    rowSource: wide.rowSource,
  };
}
