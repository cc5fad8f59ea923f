// What the realtime benchmark sends: the example models, built by the same code modelgate's --examples
// uses (so the bytes are identical), and one realistic single-row request body per model, the same bytes
// for every server.
import { buildIrisModel, buildWideMlpModel, createRng, readIrisCsv } from '../../examples/build.ts';

export const MODEL_NAMES = ['iris', 'wide-mlp'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

export interface Workload {
  model: ModelName;
  /** The ONNX file the peer loads. */
  onnx: Uint8Array;
  /** The one row sent, and where it came from. */
  row: number[];
  rowSource: string;
  /** `{"instances": [row]}` */
  body: string;
}

// A versicolor flower: a real row of examples/data/iris.csv, not the easy first (setosa) one.
const IRIS_ROW_INDEX = 50;
export const WIDE_MLP_INPUTS = 64;
const WIDE_MLP_SEED = 7;

/** Standard-normal features (Box–Muller), four decimals, like standardised inputs a client would send. */
export function normalFeatures(rng: () => number, length: number): number[] {
  return Array.from({ length }, () => {
    const radius = Math.sqrt(-2 * Math.log(1 - rng()));
    return Math.round(radius * Math.cos(2 * Math.PI * rng()) * 1e4) / 1e4;
  });
}

const bodyOf = (row: number[]) => JSON.stringify({ instances: [row] });

export function buildWorkload(model: ModelName): Workload {
  if (model === 'iris') {
    const row = readIrisCsv().features[IRIS_ROW_INDEX]!;
    return {
      model,
      onnx: buildIrisModel(),
      row,
      rowSource: `examples/data/iris.csv row ${IRIS_ROW_INDEX + 1}`,
      body: bodyOf(row),
    };
  }
  const row = normalFeatures(createRng(WIDE_MLP_SEED), WIDE_MLP_INPUTS);
  return {
    model,
    onnx: buildWideMlpModel(),
    row,
    rowSource: `${WIDE_MLP_INPUTS} standard-normal values, mulberry32 seed ${WIDE_MLP_SEED}`,
    body: bodyOf(row),
  };
}
