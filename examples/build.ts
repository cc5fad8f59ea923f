// Writes the example models (an Iris classifier trained here, a wide random MLP for batching benchmarks,
// and a small random convolutional net over 320×320 images for large-tensor benchmarks)
// deterministically: `npx tsx examples/build.ts [outDir]`, default examples/models.

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { buildModel, type Float32Initializer, type NodeSpec } from './onnx-writer.ts';

export const IRIS_SPECIES = ['setosa', 'versicolor', 'virginica'] as const;
const IRIS_CSV_PATH = fileURLToPath(new URL('./data/iris.csv', import.meta.url));
const DEFAULT_OUT_DIR = fileURLToPath(new URL('./models', import.meta.url));

const IRIS_HIDDEN_UNITS = 16;
const IRIS_EPOCHS = 2000;
const IRIS_LEARNING_RATE = 0.1;
const IRIS_MIN_ACCURACY = 0.95;
const WIDE_LAYER_SIZES = [64, 1024, 1024, 1024, 16];
/** The conv model's input: one RGB image of CONV_IMAGE_SIZE × CONV_IMAGE_SIZE, channels first. */
export const CONV_IMAGE_SIZE = 320;
export const CONV_CHANNELS = 3;
/** Output channels of its 3×3 stride-2 Conv + Relu layers (320 → 160 → 80 → 40 → 20 pixels a side). */
const CONV_LAYER_CHANNELS = [16, 24, 32, 32];
export const CONV_CLASSES = 10;
const SEED = 20240601;

export interface IrisData {
  features: number[][];
  labels: number[];
}

interface Layer {
  weights: number[][]; // [in][out], the layout Gemm expects with transB=0
  biases: number[];
}

/** Parses iris.csv into feature rows and species indices into IRIS_SPECIES. */
export function readIrisCsv(path: string = IRIS_CSV_PATH): IrisData {
  const rows = readFileSync(path, 'utf8').trim().split('\n').slice(1);
  const features: number[][] = [];
  const labels: number[] = [];
  for (const row of rows) {
    const cells = row.split(',');
    const label = IRIS_SPECIES.indexOf(cells[4] as (typeof IRIS_SPECIES)[number]);
    if (cells.length !== 5 || label < 0) throw new Error(`bad iris row: ${row}`);
    features.push(cells.slice(0, 4).map(Number));
    labels.push(label);
  }
  return { features, labels };
}

/** mulberry32: tiny, seedable and identical on every platform, unlike Math.random. */
export function createRng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// He-uniform keeps the activation variance roughly constant through ReLU layers.
function initLayer(rng: () => number, inputs: number, outputs: number): Layer {
  const limit = Math.sqrt(6 / inputs);
  const weights = Array.from({ length: inputs }, () =>
    Array.from({ length: outputs }, () => (rng() * 2 - 1) * limit),
  );
  return { weights, biases: new Array<number>(outputs).fill(0) };
}

function computeColumnStats(rows: number[][]): { mean: number[]; std: number[] } {
  const columns = rows[0]!.map((_, j) => rows.map((row) => row[j]!));
  const mean = columns.map((column) => column.reduce((sum, v) => sum + v, 0) / column.length);
  const std = columns.map((column, j) =>
    Math.sqrt(column.reduce((sum, v) => sum + (v - mean[j]!) ** 2, 0) / column.length),
  );
  return { mean, std };
}

function applyLayer(layer: Layer, input: number[]): number[] {
  return layer.biases.map((bias, k) => input.reduce((sum, v, i) => sum + v * layer.weights[i]![k]!, bias));
}

function relu(values: number[]): number[] {
  return values.map((v) => Math.max(0, v));
}

function softmax(logits: number[]): number[] {
  const max = Math.max(...logits);
  const exps = logits.map((v) => Math.exp(v - max));
  const total = exps.reduce((sum, v) => sum + v, 0);
  return exps.map((v) => v / total);
}

function argmax(values: number[]): number {
  return values.reduce((best, v, i) => (v > values[best]! ? i : best), 0);
}

function predictProbabilities(layers: [Layer, Layer], input: number[]): number[] {
  return softmax(applyLayer(layers[1], relu(applyLayer(layers[0], input))));
}

// One full-batch gradient step on mean softmax cross-entropy, by hand since the net is tiny.
function stepGradientDescent(layers: [Layer, Layer], data: IrisData, learningRate: number): void {
  const [hiddenLayer, outputLayer] = layers;
  const gradHidden = initZeroGradient(hiddenLayer);
  const gradOutput = initZeroGradient(outputLayer);
  data.features.forEach((input, n) => {
    const hidden = relu(applyLayer(hiddenLayer, input));
    const dLogits = softmax(applyLayer(outputLayer, hidden)).map(
      (p, k) => p - (k === data.labels[n] ? 1 : 0),
    );
    const dHidden = hidden.map((h, j) =>
      h > 0 ? dLogits.reduce((sum, d, k) => sum + d * outputLayer.weights[j]![k]!, 0) : 0,
    );
    accumulateGradient(gradOutput, hidden, dLogits);
    accumulateGradient(gradHidden, input, dHidden);
  });
  const scale = learningRate / data.features.length;
  applyGradient(hiddenLayer, gradHidden, scale);
  applyGradient(outputLayer, gradOutput, scale);
}

function initZeroGradient(layer: Layer): Layer {
  return { weights: layer.weights.map((row) => row.map(() => 0)), biases: layer.biases.map(() => 0) };
}

function accumulateGradient(grad: Layer, input: number[], dOutput: number[]): void {
  input.forEach((v, i) => dOutput.forEach((d, k) => (grad.weights[i]![k]! += v * d)));
  dOutput.forEach((d, k) => (grad.biases[k]! += d));
}

function applyGradient(layer: Layer, grad: Layer, scale: number): void {
  layer.weights.forEach((row, i) => row.forEach((_, k) => (row[k]! -= scale * grad.weights[i]![k]!)));
  layer.biases.forEach((_, k) => (layer.biases[k]! -= scale * grad.biases[k]!));
}

function measureAccuracy(layers: [Layer, Layer], data: IrisData): number {
  const correct = data.features.filter(
    (input, n) => argmax(predictProbabilities(layers, input)) === data.labels[n],
  ).length;
  return correct / data.features.length;
}

/** Trains a 4 → 16 ReLU → 3 MLP on standardised features; throws if it misses the accuracy floor. */
function trainIrisClassifier(data: IrisData): { mean: number[]; std: number[]; layers: [Layer, Layer] } {
  const { mean, std } = computeColumnStats(data.features);
  const standardised: IrisData = {
    features: data.features.map((row) => row.map((v, j) => (v - mean[j]!) / std[j]!)),
    labels: data.labels,
  };
  const rng = createRng(SEED);
  const layers: [Layer, Layer] = [initLayer(rng, 4, IRIS_HIDDEN_UNITS), initLayer(rng, IRIS_HIDDEN_UNITS, 3)];
  // A fixed epoch count (well past the floor) keeps the bytes reproducible and leaves float32 headroom.
  for (let epoch = 0; epoch < IRIS_EPOCHS; epoch++) {
    stepGradientDescent(layers, standardised, IRIS_LEARNING_RATE);
  }
  const accuracy = measureAccuracy(layers, standardised);
  console.log(`iris: training accuracy ${(accuracy * 100).toFixed(1)}% after ${IRIS_EPOCHS} epochs`);
  if (accuracy < IRIS_MIN_ACCURACY) {
    throw new Error(`iris training accuracy ${accuracy} below ${IRIS_MIN_ACCURACY}`);
  }
  return { mean, std, layers };
}

function toInitializer(name: string, values: number[] | number[][]): Float32Initializer {
  const dims = Array.isArray(values[0]) ? [values.length, values[0].length] : [values.length];
  return { name, dims, values: Float32Array.from(values.flat()) };
}

function toLayerInitializers(layers: Layer[]): Float32Initializer[] {
  return layers.flatMap((layer, i) => [
    toInitializer(`W${i}`, layer.weights),
    toInitializer(`b${i}`, layer.biases),
  ]);
}

/** Gemm + Relu for every layer but the last, which stays linear and writes `output`. */
function buildMlpNodes(input: string, layerCount: number, output: string): NodeSpec[] {
  const nodes: NodeSpec[] = [];
  let current = input;
  for (let i = 0; i < layerCount - 1; i++) {
    nodes.push({ opType: 'Gemm', inputs: [current, `W${i}`, `b${i}`], outputs: [`linear${i}`] });
    nodes.push({ opType: 'Relu', inputs: [`linear${i}`], outputs: [`relu${i}`] });
    current = `relu${i}`;
  }
  const last = layerCount - 1;
  nodes.push({ opType: 'Gemm', inputs: [current, `W${last}`, `b${last}`], outputs: [output] });
  return nodes;
}

export function buildIrisModel(): Uint8Array {
  const { mean, std, layers } = trainIrisClassifier(readIrisCsv());
  return buildModel({
    name: 'iris',
    docString: `Iris species classifier; label indexes ${JSON.stringify(IRIS_SPECIES)}.`,
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 4] }],
    outputs: [
      { name: 'label', type: 'int64', shape: ['batch'] },
      { name: 'probabilities', type: 'float32', shape: ['batch', 3] },
    ],
    initializers: [toInitializer('mean', mean), toInitializer('std', std), ...toLayerInitializers(layers)],
    nodes: [
      { opType: 'Sub', inputs: ['x', 'mean'], outputs: ['centred'] },
      { opType: 'Div', inputs: ['centred', 'std'], outputs: ['standardised'] },
      ...buildMlpNodes('standardised', layers.length, 'logits'),
      { opType: 'Softmax', inputs: ['logits'], outputs: ['probabilities'], attributes: { axis: { int: 1 } } },
      // ArgMax over the probabilities (not the logits) so label always agrees with the published output.
      {
        opType: 'ArgMax',
        inputs: ['probabilities'],
        outputs: ['label'],
        attributes: { axis: { int: 1 }, keepdims: { int: 0 } },
      },
    ],
  });
}

export function buildWideMlpModel(): Uint8Array {
  const rng = createRng(SEED + 1);
  const layers = WIDE_LAYER_SIZES.slice(1).map((outputs, i) => initLayer(rng, WIDE_LAYER_SIZES[i]!, outputs));
  const parameterCount = layers.reduce(
    (sum, l) => sum + l.weights.length * l.biases.length + l.biases.length,
    0,
  );
  console.log(`wide-mlp: ${parameterCount} parameters (${WIDE_LAYER_SIZES.join(' → ')})`);
  return buildModel({
    name: 'wide_mlp',
    docString: 'Random-weight MLP for batching benchmarks; its outputs mean nothing.',
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 64] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['batch', 16] }],
    initializers: toLayerInitializers(layers),
    nodes: buildMlpNodes('x', layers.length, 'y'),
  });
}

/** He-uniform 3×3 kernels [out][in][3][3] and zero biases, the layout ONNX Conv expects. */
function initConvLayer(
  rng: () => number,
  index: number,
  inputs: number,
  outputs: number,
): Float32Initializer[] {
  const fanIn = inputs * 3 * 3;
  const limit = Math.sqrt(6 / fanIn);
  return [
    {
      name: `K${index}`,
      dims: [outputs, inputs, 3, 3],
      values: Float32Array.from({ length: outputs * fanIn }, () => (rng() * 2 - 1) * limit),
    },
    { name: `c${index}`, dims: [outputs], values: new Float32Array(outputs) },
  ];
}

/**
 * A small random-weight CNN over one 320×320 RGB image (1.2 MB of float32 input): four 3×3 stride-2
 * Conv + Relu layers with few channels, a global average pool and a Gemm to CONV_CLASSES scores. Sized so
 * that one inference costs a few milliseconds (about 3 ms on one ONNX Runtime thread of a 2-core AMD EPYC
 * VM), so that moving the input's bytes is a visible part of serving it. Its outputs mean nothing.
 */
export function buildConvModel(): Uint8Array {
  const rng = createRng(SEED + 2);
  const initializers: Float32Initializer[] = [];
  const nodes: NodeSpec[] = [];
  let current = 'image';
  let channels = CONV_CHANNELS;
  CONV_LAYER_CHANNELS.forEach((outputs, i) => {
    initializers.push(...initConvLayer(rng, i, channels, outputs));
    nodes.push({
      opType: 'Conv',
      inputs: [current, `K${i}`, `c${i}`],
      outputs: [`conv${i}`],
      attributes: { kernel_shape: { ints: [3, 3] }, strides: { ints: [2, 2] }, pads: { ints: [1, 1, 1, 1] } },
    });
    nodes.push({ opType: 'Relu', inputs: [`conv${i}`], outputs: [`feature${i}`] });
    current = `feature${i}`;
    channels = outputs;
  });
  const head = initLayer(rng, channels, CONV_CLASSES);
  initializers.push(toInitializer('Wh', head.weights), toInitializer('bh', head.biases));
  nodes.push(
    { opType: 'GlobalAveragePool', inputs: [current], outputs: ['pooled'] },
    { opType: 'Flatten', inputs: ['pooled'], outputs: ['flat'], attributes: { axis: { int: 1 } } },
    { opType: 'Gemm', inputs: ['flat', 'Wh', 'bh'], outputs: ['scores'] },
  );
  console.log(
    `conv: ${CONV_CHANNELS} → ${CONV_LAYER_CHANNELS.join(' → ')} channels, ${CONV_IMAGE_SIZE}×${CONV_IMAGE_SIZE} input`,
  );
  return buildModel({
    name: 'conv',
    docString: 'Random-weight convolutional net for large-tensor benchmarks; its outputs mean nothing.',
    inputs: [
      { name: 'image', type: 'float32', shape: ['batch', CONV_CHANNELS, CONV_IMAGE_SIZE, CONV_IMAGE_SIZE] },
    ],
    outputs: [{ name: 'scores', type: 'float32', shape: ['batch', CONV_CLASSES] }],
    initializers,
    nodes,
  });
}

// Written the way Prettier formats it, so the generated file passes the repo's format check.
function formatLabelsJson(): Uint8Array {
  return Buffer.from(`[${IRIS_SPECIES.map((species) => JSON.stringify(species)).join(', ')}]\n`);
}

function writeArtifact(outDir: string, fileName: string, bytes: Uint8Array): void {
  const path = join(outDir, fileName);
  writeFileSync(path, bytes);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  console.log(`wrote ${describePath(path)} (${bytes.length} bytes, sha256 ${sha256.slice(0, 12)})`);
}

// Paths under the working directory read best relative; anything else stays absolute.
function describePath(path: string): string {
  const fromCwd = relative(process.cwd(), path);
  return fromCwd.startsWith('..') ? path : fromCwd;
}

/** Builds every example model into outDir. */
function buildExamples(outDir: string = DEFAULT_OUT_DIR): void {
  mkdirSync(outDir, { recursive: true });
  writeArtifact(outDir, 'iris.onnx', buildIrisModel());
  writeArtifact(outDir, 'iris.labels.json', formatLabelsJson());
  writeArtifact(outDir, 'wide-mlp.onnx', buildWideMlpModel());
  writeArtifact(outDir, 'conv.onnx', buildConvModel());
}

// Node runs the main module from its real path, so compare against the resolved argv[1].
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  buildExamples(process.argv[2] ? resolve(process.argv[2]) : undefined);
}
