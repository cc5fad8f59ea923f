// Writes the iris classifier's parameters, exactly as examples/build.ts puts them in iris.onnx, to
// examples/iris-python/iris-weights.json for the pure-Python example: `npx tsx examples/export-iris-weights.ts`.
// It reads them back out of the built ONNX bytes rather than retraining, so the two cannot drift apart.

import { writeFileSync, realpathSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

import onnxProto from 'onnx-proto';
import { format, resolveConfig } from 'prettier';

import { buildIrisModel, IRIS_SPECIES } from './build.ts';

const { onnx } = onnxProto;

const WEIGHTS_PATH = fileURLToPath(new URL('./iris-python/iris-weights.json', import.meta.url));
const PARAMETER_NAMES = ['mean', 'std', 'W0', 'b0', 'W1', 'b1'] as const;

/** A float32 initializer's values, nested by its dims (one or two of them in the iris model). */
function readInitializer(tensor: onnxProto.onnx.ITensorProto): number[] | number[][] {
  const dims = (tensor.dims ?? []).map(Number);
  const raw = tensor.rawData!;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const values = Array.from({ length: raw.byteLength / 4 }, (_, i) => view.getFloat32(i * 4, true));
  if (dims.length === 1) return values;
  const [rows, columns] = dims as [number, number];
  return Array.from({ length: rows }, (_, i) => values.slice(i * columns, (i + 1) * columns));
}

/** The iris parameters by initializer name, with the computation they take part in. */
export function extractIrisWeights(modelBytes: Uint8Array = buildIrisModel()): Record<string, unknown> {
  const model = onnx.ModelProto.decode(modelBytes);
  const byName = new Map((model.graph?.initializer ?? []).map((tensor) => [tensor.name!, tensor]));
  const parameters = Object.fromEntries(
    PARAMETER_NAMES.map((name) => {
      const tensor = byName.get(name);
      if (!tensor) throw new Error(`iris.onnx has no initializer ${name}`);
      return [name, readInitializer(tensor)];
    }),
  );
  return {
    description:
      'iris.onnx parameters (float32 values). probabilities = softmax(relu(((x - mean) / std) W0 + b0) W1 + b1); ' +
      'label = argmax(probabilities). W0 is [4][16], W1 is [16][3] ([in][out]).',
    species: IRIS_SPECIES,
    ...parameters,
  };
}

async function writeIrisWeights(path: string = WEIGHTS_PATH): Promise<void> {
  // Formatted by Prettier so that the committed file passes the repository's format check.
  const text = await format(JSON.stringify(extractIrisWeights()), {
    ...(await resolveConfig(path)),
    parser: 'json',
  });
  writeFileSync(path, text);
  console.log(`wrote ${path}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  await writeIrisWeights(process.argv[2]);
}
