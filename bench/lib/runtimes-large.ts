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
import { runClosedLoop } from './closed-loop.ts';
import { SETUPS, type Cell, type SetupId } from './runtimes-report.ts';
import {
  callSetup,
  checkAnswer,
  deployVersion,
  expectStatus,
  jsonOf,
  largestDifference,
  log,
  measureSetup,
  modelgateServing,
  startModelgate,
  undiciLoad,
  type Answer,
  type Part,
  type RunCell,
  type RunContext,
} from './runtimes-measure.ts';
import { modelgateConfigFor, startNodePeer } from './servers.ts';

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

/** A POST of /v2/models/conv/infer, the same bytes every time. */
interface V2Request {
  body: Buffer;
  headers: Record<string, string>;
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
  let binaryRequest: V2Request;
  try {
    expectStatus(await deployVersion(context, modelgate, 'conv', onnx), 201, 'deploying conv');
    const auth = { authorization: `Bearer ${context.adminKey}` };
    const serving = modelgateServing(modelgate, 'conv');
    // (ii) and (iii) alike: one call, its scores checked against (i), then the load of that same request.
    const measureV2 = async (setup: SetupId, request: V2Request, scoresOf: (answer: Answer) => number[]) => {
      const answer = await callSetup(setup, `${modelgate.url}${path}`, request);
      checkAnswer(context, setup, largestDifference(scoresOf(answer), reference), {
        requestBytes: request.body.length,
        responseBytes: answer.bytes.length,
      });
      const load = undiciLoad(modelgate.url, path, request.headers, request.body);
      cells.push(...(await measureSetup(setup, serving, load, options, CLIENTS)));
      return answer;
    };

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
    binaryRequest = {
      body: Buffer.concat([header, Buffer.from(pixels.buffer)]),
      headers: {
        ...auth,
        'content-type': 'application/octet-stream',
        'inference-header-content-length': String(header.length),
      },
    };
    const binaryScoresOf = (binary: Answer) => {
      const headerLength = Number(binary.headers.get('inference-header-content-length'));
      const raw = binary.bytes.subarray(headerLength);
      return Array.from(new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length)));
    };
    binaryAnswer = (await measureV2('modelgate-binary', binaryRequest, binaryScoresOf)).bytes;

    // (iii) The same through /v2 JSON: the image as a flat array of numbers.
    const jsonRequest = {
      body: Buffer.from(
        JSON.stringify({ inputs: [{ name: 'image', datatype: 'FP32', shape: IMAGE_SHAPE, data: image }] }),
      ),
      headers: { ...auth, 'content-type': 'application/json' },
    };
    const jsonScoresOf = (json: Answer) => (jsonOf(json).outputs as { data: number[] }[])[0]!.data;
    await measureV2('modelgate-json', jsonRequest, jsonScoresOf);
  } finally {
    await modelgate.stop();
  }

  // (0) What moving these bytes over HTTP costs here without any inference: the floor of any API round trip.
  log(`starting ${SETUPS['transport-floor'].label}`);
  const answerPath = join(context.runDir, 'conv.response.bin');
  writeFileSync(answerPath, binaryAnswer);
  const floor = await startNodePeer('transport-floor', 'bench/peers/fixed-response.ts', [
    `--response=conv=${answerPath}`,
  ]);
  try {
    checkAnswer(context, 'transport-floor', 0, { answers: 'the bytes of (ii), without reading them' });
    const serving = { processes: { 'node:http': floor.pid } };
    const load = undiciLoad(floor.url, path, binaryRequest.headers, binaryRequest.body);
    cells.push(...(await measureSetup('transport-floor', serving, load, options, [1])));
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
