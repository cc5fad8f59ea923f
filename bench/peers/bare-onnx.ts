// Benchmark peer: what a team writes by hand. A bare node:http server calling onnxruntime-node in this
// process, one session.run per request: no batching, no auth, no worker threads, ORT's default session
// options (so ORT picks its own thread counts). It takes the same `{"instances": [[…]]}` body and answers
// the same JSON shape as modelgate's POST /v1/models/{name}/predict.
// Usage: node --import tsx bench/peers/bare-onnx.ts --port 0 --model iris=/path/to/iris.onnx ...
// Prints one JSON line `{"event":"listening","port":…,"sessionOptions":…,"processThreads":…}` on stdout.
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import * as ort from 'onnxruntime-node';
import { countProcessThreads, readPeerArgs, serve } from './serve.ts';

const { port, paths } = readPeerArgs('model');

const PREDICT_PATH = /^\/v1\/models\/([^/]+)\/predict$/;
// Deliberately empty: a hand-written server keeps ORT's defaults (intra-op threads = physical cores).
const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {};

const threadsBeforeSessions = countProcessThreads();
const sessions = new Map<string, ort.InferenceSession>();
for (const [name, path] of paths) {
  sessions.set(name, await ort.InferenceSession.create(readFileSync(path), SESSION_OPTIONS));
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

function nestRows(flat: number[], dims: readonly number[]): unknown {
  if (dims.length <= 1) return flat;
  const width = flat.length / dims[0]!;
  return Array.from({ length: dims[0]! }, (_, row) => flat.slice(row * width, (row + 1) * width));
}

async function predict(name: string, session: ort.InferenceSession, body: unknown): Promise<unknown> {
  const instances = (body as { instances?: unknown }).instances;
  if (!Array.isArray(instances) || instances.length === 0 || !Array.isArray(instances[0])) {
    throw new TypeError('body must be {"instances": [[…], …]}');
  }
  const rows = instances as number[][];
  const input = new ort.Tensor('float32', Float32Array.from(rows.flat()), [rows.length, rows[0]!.length]);
  const results = await session.run({ [session.inputNames[0]!]: input });
  const outputs: Record<string, unknown> = {};
  for (const outputName of session.outputNames) {
    const tensor = results[outputName]!;
    outputs[outputName] = nestRows(
      Array.from(tensor.data as ArrayLike<number | bigint>, Number),
      tensor.dims,
    );
  }
  return { model: name, version: 1, outputs };
}

const server = createServer((request, response) => {
  const name = PREDICT_PATH.exec(request.url ?? '')?.[1] ?? '';
  const session = sessions.get(name);
  if (request.method !== 'POST' || !session) {
    response.writeHead(404).end();
    return;
  }
  readJson(request)
    .then((body) => predict(name, session, body))
    .then(
      (answer) => {
        const bytes = Buffer.from(JSON.stringify(answer));
        response.writeHead(200, {
          'content-type': 'application/json; charset=utf-8',
          'content-length': bytes.length,
        });
        response.end(bytes);
      },
      (error: unknown) => {
        response.writeHead(error instanceof SyntaxError || error instanceof TypeError ? 400 : 500);
        response.end(JSON.stringify({ error: String(error) }));
      },
    );
});

serve(server, port, () => ({
  sessionOptions: SESSION_OPTIONS,
  threadsBeforeSessions,
  processThreads: countProcessThreads(),
}));
