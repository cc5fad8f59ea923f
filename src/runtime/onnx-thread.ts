// One inference thread: owns ONNX Runtime sessions and runs them one request at a time, so that
// inference never blocks the HTTP event loop. Spawned by onnx.ts.
import { readFile } from 'node:fs/promises';
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { OnnxThreadRequest, OnnxThreadResponse, OnnxThreadOptions } from './onnx-protocol.ts';
import {
  ORT_TYPE_BY_DATATYPE,
  signatureFromSession,
  tensorsFromOrt,
  transferListOf,
} from './onnx-protocol.ts';
import type { NamedTensors } from './tensor.ts';

const options = workerData as OnnxThreadOptions;
const sessionOptions: ort.InferenceSession.SessionOptions = {
  // One pool of threads per process is sized by the operator; ORT's own pools would oversubscribe the cores.
  intraOpNumThreads: options.intraOpThreads,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
};
function tensorsToOrt(tensors: NamedTensors): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, tensor] of Object.entries(tensors)) {
    feeds[name] = new ort.Tensor(ORT_TYPE_BY_DATATYPE[tensor.datatype], tensor.data as never, tensor.shape);
  }
  return feeds;
}

const sessions = new Map<string, Promise<ort.InferenceSession>>();

function sessionFor(modelKey: string, artifactPath: string): Promise<ort.InferenceSession> {
  let session = sessions.get(modelKey);
  if (!session) {
    session = readFile(artifactPath).then((bytes) => ort.InferenceSession.create(bytes, sessionOptions));
    session.catch(() => sessions.delete(modelKey));
    sessions.set(modelKey, session);
  }
  return session;
}

async function handle(request: OnnxThreadRequest): Promise<OnnxThreadResponse> {
  switch (request.kind) {
    case 'inspect': {
      const session = await ort.InferenceSession.create(await readFile(request.artifactPath), sessionOptions);
      try {
        return { id: request.id, ok: true, signature: signatureFromSession(session) };
      } finally {
        await session.release();
      }
    }
    case 'infer': {
      const session = await sessionFor(request.modelKey, request.artifactPath);
      const outputs = await session.run(tensorsToOrt(request.inputs));
      return { id: request.id, ok: true, outputs: tensorsFromOrt(outputs) };
    }
    case 'load': {
      await sessionFor(request.modelKey, request.artifactPath);
      return { id: request.id, ok: true };
    }
    case 'unload': {
      const session = sessions.get(request.modelKey);
      sessions.delete(request.modelKey);
      if (session) await (await session.catch(() => undefined))?.release();
      return { id: request.id, ok: true };
    }
    case 'close': {
      const open = [...sessions.values()];
      sessions.clear();
      await Promise.all(open.map(async (session) => (await session.catch(() => undefined))?.release()));
      // Nothing else keeps the thread alive once the port is closed: it ends on its own.
      setImmediate(() => parentPort!.close());
      return { id: request.id, ok: true };
    }
  }
}

// Requests are handled strictly one after another: with intraOpThreads threads each, N inference
// threads use N × intraOpThreads cores and no more.
let chain: Promise<void> = Promise.resolve();
parentPort!.on('message', (request: OnnxThreadRequest) => {
  chain = chain.then(async () => {
    let response: OnnxThreadResponse;
    try {
      response = await handle(request);
    } catch (error) {
      response = {
        id: request.id,
        ok: false,
        message: error instanceof Error ? error.message : String(error),
      };
    }
    parentPort!.postMessage(
      response,
      response.ok && 'outputs' in response ? transferListOf(response.outputs) : [],
    );
  });
});
