// The runtimes benchmark's large part: a convolutional model (examples/build.ts buildConvModel) on one
// 320×320 RGB image, 1.2 MB of float32: (i) onnxruntime-node in this process with modelgate's session
// options, and modelgate's POST /v2/models/conv/infer with (ii) Triton's binary tensor extension and
// (iii) JSON, and (0) the transport floor: a bare node:http server that reads the same binary request and
// answers modelgate's binary response bytes, with no inference; 1 client (and 4 for modelgate), a closed
// loop of undici requests.
import { writeFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { buildConvModel, CONV_CHANNELS, CONV_IMAGE_SIZE, createRng } from '../../examples/build.ts';
import { startServer } from './children.ts';
import { runClosedLoop } from './closed-loop.ts';
import { SETUPS, type Cell } from './runtimes-report.ts';
import {
  call,
  checkAnswer,
  expectStatus,
  jsonOf,
  largestDifference,
  log,
  measureSetup,
  parseListeningLine,
  peerEnv,
  startModelgate,
  undiciLoad,
  type Part,
  type RunCell,
  type RunContext,
} from './runtimes-measure.ts';
import { modelgateConfigFor, REPO_ROOT } from './servers.ts';

const CLIENTS = [1, 4];

/** The session options of modelgate's inference threads (src/runtime/onnx-thread.ts), so (i) does the same compute. */
function modelgateSessionOptions(intraOpThreads: number): ort.InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: intraOpThreads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
}

const IMAGE_SEED = 11;
const IMAGE_SHAPE = [1, CONV_CHANNELS, CONV_IMAGE_SIZE, CONV_IMAGE_SIZE];

/** A deterministic image: values in [0, 1) with four decimals, as a client would send normalised pixels. */
function buildImage(): number[] {
  const rng = createRng(IMAGE_SEED);
  return Array.from({ length: IMAGE_SHAPE.reduce((a, b) => a * b, 1) }, () => Math.round(rng() * 1e4) / 1e4);
}

async function runLargePart(context: RunContext): Promise<Cell[]> {
  const { options } = context;
  if (endianness() !== 'LE') throw new Error('binary tensors are little-endian; this host is not');
  const onnx = buildConvModel();
  const image = buildImage();
  const pixels = Float32Array.from(image);
  const cells: Cell[] = [];

  // (i) First, with nothing else running: ONNX Runtime in this process, modelgate's session options.
  const intraOpThreads = Number(
    modelgateConfigFor('modelgate-batching', context.adminKey).intraOpThreads ?? 1,
  );
  const sessionOptions = modelgateSessionOptions(intraOpThreads);
  log(`starting ${SETUPS['in-process'].label}`);
  const session = await ort.InferenceSession.create(onnx, sessionOptions);
  let reference: number[];
  try {
    const runOnce = () => session.run({ image: new ort.Tensor('float32', pixels, IMAGE_SHAPE) });
    reference = Array.from((await runOnce()).scores!.data as Float32Array);
    checkAnswer(context, 'in-process', 0, {
      sessionOptions,
      process: 'the benchmark process (the load driver)',
    });
    const run: RunCell = (clients, durationSeconds) =>
      runClosedLoop({ clients, durationSeconds, send: async () => (await runOnce()).scores !== undefined });
    // One client: concurrent run() calls on one session would only measure ORT's own queueing.
    cells.push(
      ...(await measureSetup('in-process', { processes: {}, inThisProcess: true }, run, options, [1])),
    );
  } finally {
    await session.release();
  }

  log(`starting modelgate for ${SETUPS['modelgate-binary'].label} and ${SETUPS['modelgate-json'].label}`);
  const path = '/v2/models/conv/infer';
  const modelgate = await startModelgate(context, 'large');
  let binaryAnswer: Buffer;
  let binaryRequest: { body: Buffer; headers: Record<string, string> };
  try {
    const deployed = await call(`${modelgate.url}/v1/models/conv/versions`, {
      key: context.adminKey,
      body: onnx,
      headers: { 'content-type': 'application/octet-stream' },
    });
    expectStatus(deployed, 201, 'deploying conv');
    const auth = { authorization: `Bearer ${context.adminKey}` };

    // (ii) Triton's binary tensor extension: a JSON header, then the image's raw bytes; the scores back raw.
    const header = Buffer.from(
      JSON.stringify({
        inputs: [
          {
            name: 'image',
            datatype: 'FP32',
            shape: IMAGE_SHAPE,
            parameters: { binary_data_size: pixels.byteLength },
          },
        ],
        outputs: [{ name: 'scores', parameters: { binary_data: true } }],
      }),
    );
    const binaryBody = Buffer.concat([header, Buffer.from(pixels.buffer)]);
    const binaryHeaders = {
      ...auth,
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(header.length),
    };
    const binary = await call(`${modelgate.url}${path}`, { body: binaryBody, headers: binaryHeaders });
    expectStatus(binary, 200, SETUPS['modelgate-binary'].label);
    binaryAnswer = binary.bytes;
    binaryRequest = { body: binaryBody, headers: binaryHeaders };
    const headerLength = Number(binary.headers.get('inference-header-content-length'));
    const raw = binary.bytes.subarray(headerLength);
    const binaryScores = Array.from(
      new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length)),
    );
    checkAnswer(context, 'modelgate-binary', largestDifference(binaryScores, reference), {
      requestBytes: binaryBody.length,
      responseBytes: binary.bytes.length,
    });
    const serving = {
      processes: { modelgate: modelgate.pid },
      modelgate: { url: modelgate.url, model: 'conv' },
    };
    cells.push(
      ...(await measureSetup(
        'modelgate-binary',
        serving,
        undiciLoad(modelgate.url, path, binaryHeaders, binaryBody),
        options,
        CLIENTS,
      )),
    );

    // (iii) The same through /v2 JSON: the image as a flat array of numbers.
    const jsonBody = Buffer.from(
      JSON.stringify({ inputs: [{ name: 'image', datatype: 'FP32', shape: IMAGE_SHAPE, data: image }] }),
    );
    const jsonHeaders = { ...auth, 'content-type': 'application/json' };
    const json = await call(`${modelgate.url}${path}`, { body: jsonBody, headers: jsonHeaders });
    expectStatus(json, 200, SETUPS['modelgate-json'].label);
    const jsonScores = (jsonOf(json).outputs as { data: number[] }[])[0]!.data;
    checkAnswer(context, 'modelgate-json', largestDifference(jsonScores, reference), {
      requestBytes: jsonBody.length,
      responseBytes: json.bytes.length,
    });
    cells.push(
      ...(await measureSetup(
        'modelgate-json',
        serving,
        undiciLoad(modelgate.url, path, jsonHeaders, jsonBody),
        options,
        CLIENTS,
      )),
    );
  } finally {
    await modelgate.stop();
  }

  // (0) What moving these bytes over HTTP costs here without any inference: the floor of any API round trip.
  log(`starting ${SETUPS['transport-floor'].label}`);
  const answerPath = join(context.runDir, 'conv.response.bin');
  writeFileSync(answerPath, binaryAnswer);
  const floor = await startServer({
    label: 'transport-floor',
    command: process.execPath,
    args: [
      '--import',
      'tsx',
      join(REPO_ROOT, 'bench/peers/fixed-response.ts'),
      '--port',
      '0',
      `--response=conv=${answerPath}`,
    ],
    cwd: REPO_ROOT,
    env: peerEnv(),
    parseReadyLine: parseListeningLine,
  });
  try {
    checkAnswer(context, 'transport-floor', 0, { answers: 'the bytes of (ii), without reading them' });
    cells.push(
      ...(await measureSetup(
        'transport-floor',
        { processes: { 'node:http': floor.pid } },
        undiciLoad(floor.url, path, binaryRequest.headers, binaryRequest.body),
        options,
        [1],
      )),
    );
  } finally {
    await floor.stop();
  }
  return cells;
}

export const largePart: Part = {
  clients: CLIENTS,
  settings: { imageShape: IMAGE_SHAPE, imageSeed: IMAGE_SEED },
  run: runLargePart,
};
