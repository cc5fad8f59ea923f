// The ONNX runtime: onnxruntime-node on a pool of worker threads (onnx-thread.ts) shared by every ONNX
// model version of the process. Each thread runs one request at a time; requests go to the thread with
// the least queued work; a version may run as many batches at once as there are threads.
import { Worker } from 'node:worker_threads';
import { ModelgateError } from '../errors.ts';
import type { OnnxThreadOptions, OnnxThreadRequest, OnnxThreadResponse } from './onnx-protocol.ts';
import { transferListOf } from './onnx-protocol.ts';
import type { InspectedModel, ModelRunner, RunnableVersion, Runtime, RunnerHealth } from './runtime.ts';
import { leastQueued, Supervisor } from './supervisor.ts';
import type { ModelSignature } from './signature.ts';
import type { NamedTensors } from './tensor.ts';

export interface OnnxRuntimeOptions {
  /** Inference threads in this process. Default: 1 per core (config `inferenceThreads`). */
  threads: number;
  /** ONNX Runtime intra-op threads per inference thread. Default: 1. */
  intraOpThreads: number;
}

/** A request before the thread gives it an id. */
type ThreadCall = OnnxThreadRequest extends infer R
  ? R extends OnnxThreadRequest
    ? Omit<R, 'id'>
    : never
  : never;

/**
 * How to start the thread's module. The build (npm run build) runs it as JavaScript; from the sources it
 * is TypeScript, loaded through tsx as the main program is.
 */
function threadEntry(): [string | URL, { eval?: boolean }] {
  if (import.meta.url.endsWith('.js')) return [new URL('./onnx-thread.js', import.meta.url), {}];
  const entry = new URL('./onnx-thread.ts', import.meta.url).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  return [
    `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`,
    { eval: true },
  ];
}

/** An inference thread, supervised: it runs one request at a time and is replaced when it dies. */
function startThread(options: OnnxThreadOptions): Supervisor<ThreadCall, OnnxThreadResponse> {
  return new Supervisor((events) => {
    const [entry, how] = threadEntry();
    const worker = new Worker(entry, { ...how, workerData: options });
    worker.on('message', (response: OnnxThreadResponse) => events.answer(response.id, response));
    worker.on('error', (error) =>
      events.failed(
        new ModelgateError('inference_failed', `inference thread failed: ${error.message}`, { cause: error }),
      ),
    );
    worker.on('exit', (code) =>
      events.exited(new ModelgateError('inference_failed', `inference thread exited with code ${code}`)),
    );
    return {
      send: (id, request) =>
        worker.postMessage(
          { ...request, id },
          request.kind === 'infer' ? transferListOf(request.inputs) : [],
        ),
      // The thread releases its sessions and exits once the requests before this one are done.
      // Terminating a thread while onnxruntime-node is still loading aborts the whole process, so kill is
      // only the fallback for a thread that does not end in time.
      end: () => worker.postMessage({ kind: 'close', id: 0 } satisfies OnnxThreadRequest),
      kill: async () => void (await worker.terminate()),
    };
  });
}

/** How long a closing thread may take to end by itself. */
const THREAD_CLOSE_GRACE_MS = 10_000;

export class OnnxRuntime implements Runtime {
  readonly name = 'onnx';
  readonly platform = 'onnxruntime_onnx';
  private readonly threads: Supervisor<ThreadCall, OnnxThreadResponse>[];

  constructor(options: OnnxRuntimeOptions) {
    this.threads = Array.from({ length: Math.max(1, options.threads) }, () =>
      startThread({ intraOpThreads: options.intraOpThreads }),
    );
  }

  async inspect(artifactPath: string): Promise<InspectedModel> {
    const response = await leastQueued(this.threads).request({ kind: 'inspect', artifactPath });
    if (!response.ok) {
      throw new ModelgateError('invalid_model', `not a loadable ONNX model: ${response.message}`);
    }
    return { signature: (response as { signature: ModelSignature }).signature, settings: {} };
  }

  open(version: RunnableVersion): ModelRunner {
    return new OnnxRunner(this, version, this.threads.length * BATCHES_PER_THREAD);
  }

  /** Runs the model at `artifactPath` (loaded under `modelKey` on first use, in each thread) on `inputs`. */
  async infer(modelKey: string, artifactPath: string, inputs: NamedTensors): Promise<NamedTensors> {
    const response = await leastQueued(this.threads).request({
      kind: 'infer',
      modelKey,
      artifactPath,
      inputs,
    });
    if (!response.ok) throw new ModelgateError('inference_failed', `inference failed: ${response.message}`);
    return (response as { outputs: NamedTensors }).outputs;
  }

  /** Loads the model at `artifactPath` under `modelKey` in every thread. */
  async load(modelKey: string, artifactPath: string): Promise<void> {
    const responses = await Promise.all(
      this.threads.map((thread) => thread.request({ kind: 'load', modelKey, artifactPath })),
    );
    const failed = responses.find((response) => !response.ok);
    if (failed && !failed.ok)
      throw new ModelgateError('inference_failed', `model failed to load: ${failed.message}`);
  }

  async unload(modelKey: string): Promise<void> {
    await Promise.all(this.threads.map((thread) => thread.request({ kind: 'unload', modelKey })));
  }

  async close(): Promise<void> {
    await Promise.all(this.threads.map((thread) => thread.close(THREAD_CLOSE_GRACE_MS)));
  }
}

/**
 * Batches of one version sent to each inference thread before it has answered: with two, the thread starts
 * the next batch while the event loop is still handing out the last one's answers, instead of waiting for
 * it. wide-mlp at 64 clients, alternating 4 s runs (2026-12-04): 4,555 / 4,348 / 5,043 req/s against
 * 3,932 / 4,051 / 4,486 with one; iris, bound by the event loop, served the same.
 */
const BATCHES_PER_THREAD = 2;

/** One ONNX model version on the shared threads. */
class OnnxRunner implements ModelRunner {
  ready = false;
  private path: Promise<string> | undefined;

  constructor(
    private readonly runtime: OnnxRuntime,
    private readonly version: RunnableVersion,
    readonly concurrency: number,
  ) {}

  /** Artifacts never change once stored: found once per runner, not once per batch. */
  private artifactPath(): Promise<string> {
    if (!this.path) {
      this.path = this.version.artifactPath();
      this.path.catch(() => (this.path = undefined));
    }
    return this.path;
  }

  health(): RunnerHealth {
    return { state: this.ready ? 'ready' : 'not_loaded' };
  }

  async load(): Promise<void> {
    await this.runtime.load(this.version.key, await this.artifactPath());
    this.ready = true;
  }

  async infer(inputs: NamedTensors): Promise<NamedTensors> {
    const outputs = await this.runtime.infer(this.version.key, await this.artifactPath(), inputs);
    this.ready = true;
    return outputs;
  }

  async close(): Promise<void> {
    this.ready = false;
    await this.runtime.unload(this.version.key);
  }
}
