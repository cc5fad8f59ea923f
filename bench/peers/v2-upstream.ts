// Benchmark upstream: a model server as a team runs one behind a gateway. A bare node:http server speaking
// the Open Inference Protocol v2 in JSON (KServe's and Triton's REST API) over onnxruntime-node in this
// process, running one inference at a time (a queue, at most one session.run in flight) with ORT's default
// session options, or `--threads N` intra-op threads: what a server without dynamic batching does. It gains
// from batches (a batch of N rows costs far less than N calls), which is what a gateway in front of it can add.
// Usage: node --import tsx bench/peers/v2-upstream.ts --port 0 --model wide-mlp=/path/to/wide-mlp.onnx \
//          [--threads 1] ...
// Prints one JSON line `{"event":"listening","port":…,"sessionOptions":…,"processThreads":…}` on stdout.
//
//   GET  /v2                        {"name","version","extensions":[]}
//   GET  /v2/health/live, /v2/health/ready
//   GET  /v2/models/{m}             {name, versions, platform, inputs:[{name,datatype,shape}], outputs}
//   GET  /v2/models/{m}/ready
//   POST /v2/models/{m}/infer       {"inputs":[{name,datatype,shape,data: flat}]} → {model_name, outputs}
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import * as ort from 'onnxruntime-node';
import { countProcessThreads, readPeerArgs, serve } from './serve.ts';

const { port, paths, others } = readPeerArgs('model', ['threads']);

const SERVER = { name: 'v2-upstream', version: '1', extensions: [] as string[] };
// By default empty, as in bare-onnx.ts: a hand-written server keeps ORT's defaults (a pool of one spinning
// thread per core). With --threads, that many intra-op threads: on a machine it shares, a team sets one.
const threads = others.threads === undefined ? undefined : Number(others.threads);
if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1)) {
  throw new Error(`--threads takes a whole number from 1, got "${others.threads}"`);
}
const SESSION_OPTIONS: ort.InferenceSession.SessionOptions =
  threads === undefined ? {} : { intraOpNumThreads: threads };
const MAX_BODY_BYTES = 64 * 1024 * 1024;

/** The v2 datatypes of the ORT element types this server takes and gives. */
const DATATYPES: Partial<Record<ort.Tensor.Type, string>> = { float32: 'FP32', int64: 'INT64' };

interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

interface ServedModel {
  session: ort.InferenceSession;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

class BadRequest extends Error {}

function metadataOf(value: ort.InferenceSession.ValueMetadata): TensorMetadata {
  const datatype = value.isTensor ? DATATYPES[value.type] : undefined;
  if (!value.isTensor || !datatype) throw new Error(`${value.name}: only FP32 and INT64 tensors are served`);
  // Symbolic dimensions (a batch of any size) are -1, as KServe and Triton report them.
  return {
    name: value.name,
    datatype,
    shape: value.shape.map((dim) => (typeof dim === 'number' ? dim : -1)),
  };
}

const threadsBeforeSessions = countProcessThreads();
const models = new Map<string, ServedModel>();
for (const [name, path] of paths) {
  const session = await ort.InferenceSession.create(readFileSync(path), SESSION_OPTIONS);
  models.set(name, {
    session,
    inputs: session.inputMetadata.map(metadataOf),
    outputs: session.outputMetadata.map(metadataOf),
  });
}

// One inference at a time: each run starts when the one before it has finished.
let queueTail: Promise<unknown> = Promise.resolve();
function runOneAtATime<T>(task: () => Promise<T>): Promise<T> {
  const run = queueTail.then(task);
  queueTail = run.catch(() => undefined);
  return run;
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of request) {
    bytes += (chunk as Buffer).length;
    if (bytes > MAX_BODY_BYTES) throw new BadRequest(`the body is over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function feedsOf(model: ServedModel, body: unknown): Record<string, ort.Tensor> {
  const inputs = (body as { inputs?: unknown } | null)?.inputs;
  if (!Array.isArray(inputs))
    throw new BadRequest('the body must be {"inputs": [{name, datatype, shape, data}]}');
  const feeds: Record<string, ort.Tensor> = {};
  for (const spec of model.inputs) {
    const input = (inputs as Record<string, unknown>[]).find((candidate) => candidate?.name === spec.name);
    if (!input) throw new BadRequest(`missing input "${spec.name}"`);
    const { datatype, shape, data } = input;
    if (datatype !== spec.datatype) throw new BadRequest(`input "${spec.name}" must be ${spec.datatype}`);
    if (
      !Array.isArray(shape) ||
      shape.length !== spec.shape.length ||
      !shape.every(
        (dim, i) => Number.isInteger(dim) && dim >= 0 && (spec.shape[i] === -1 || dim === spec.shape[i]),
      )
    ) {
      throw new BadRequest(`input "${spec.name}" must have shape [${spec.shape.join(', ')}]`);
    }
    const count = (shape as number[]).reduce((product, dim) => product * dim, 1);
    if (!Array.isArray(data) || data.length !== count || !data.every((v) => typeof v === 'number')) {
      throw new BadRequest(`input "${spec.name}": data must be a flat array of ${count} numbers`);
    }
    feeds[spec.name] =
      datatype === 'INT64'
        ? new ort.Tensor(
            'int64',
            BigInt64Array.from(data as number[], (v) => BigInt(Math.trunc(v))),
            shape,
          )
        : new ort.Tensor('float32', Float32Array.from(data as number[]), shape as number[]);
  }
  return feeds;
}

async function infer(name: string, model: ServedModel, request: IncomingMessage): Promise<unknown> {
  let body: unknown;
  try {
    body = JSON.parse((await readBody(request)).toString('utf8'));
  } catch (error) {
    throw error instanceof BadRequest ? error : new BadRequest(`the body is not JSON: ${String(error)}`);
  }
  const feeds = feedsOf(model, body);
  const results = await runOneAtATime(() => model.session.run(feeds));
  return {
    model_name: name,
    model_version: '1',
    ...(typeof (body as { id?: unknown }).id === 'string' ? { id: (body as { id: string }).id } : {}),
    outputs: model.outputs.map((spec) => {
      const tensor = results[spec.name]!;
      return {
        name: spec.name,
        datatype: spec.datatype,
        shape: tensor.dims,
        data: Array.from(tensor.data as ArrayLike<number | bigint>, Number),
      };
    }),
  };
}

function send(response: ServerResponse, status: number, answer: unknown): void {
  const bytes = Buffer.from(JSON.stringify(answer));
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length });
  response.end(bytes);
}

const MODEL_PATH = /^\/v2\/models\/([^/]+)(\/ready|\/infer)?$/;

const server = createServer((request, response) => {
  const path = (request.url ?? '').split('?')[0]!;
  const match = MODEL_PATH.exec(path);
  if (request.method === 'GET' && path === '/v2') return send(response, 200, SERVER);
  if (request.method === 'GET' && (path === '/v2/health/live' || path === '/v2/health/ready')) {
    return send(response, 200, { [path.endsWith('live') ? 'live' : 'ready']: true });
  }
  const name = match ? decodeURIComponent(match[1]!) : '';
  const model = models.get(name);
  if (!match || !model) {
    request.resume();
    return send(response, 404, { error: `no such model or route: ${request.method} ${path}` });
  }
  if (request.method === 'GET' && match[2] === undefined) {
    return send(response, 200, {
      name,
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: model.inputs,
      outputs: model.outputs,
    });
  }
  if (request.method === 'GET' && match[2] === '/ready') return send(response, 200, { name, ready: true });
  if (request.method === 'POST' && match[2] === '/infer') {
    infer(name, model, request).then(
      (answer) => send(response, 200, answer),
      (error: unknown) =>
        send(response, error instanceof BadRequest ? 400 : 500, {
          error: error instanceof Error ? error.message : String(error),
        }),
    );
    return;
  }
  request.resume();
  send(response, 405, { error: `${request.method} ${path} is not allowed` });
});

serve(server, port, () => ({
  sessionOptions: SESSION_OPTIONS,
  inferencesAtOnce: 1,
  threadsBeforeSessions,
  processThreads: countProcessThreads(),
}));
