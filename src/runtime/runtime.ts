// The seam between serving and what runs a model. A Runtime is one kind of model execution (ONNX Runtime
// in-process today; a team's own program and a team's running server next), shared by the process; it
// opens a ModelRunner per model version, which owns that version's loading, readiness and concurrency.
// The predictor, batcher, job worker and batch parts hand a batch of named tensors to a version's runner
// and get tensors back, whatever runs it.
import { ModelgateError } from '../errors.ts';
import type { ModelSignature } from './signature.ts';
import type { NamedTensors } from './tensor.ts';

export interface Runtime {
  /** What model versions record as their `runtime`. */
  readonly name: string;
  /** The Open Inference Protocol's `platform` of the versions it runs (GET /v2/models/{name}). */
  readonly platform: string;
  /**
   * Reads a model being deployed from its staged artifact: its inputs and outputs, and the settings its
   * versions keep for open(). `manifest`: fields the upload gave over the artifact's own manifest (a
   * program's modelgate.json). Throws ModelgateError `invalid_model` when it cannot serve it.
   */
  inspect(artifactPath: string, manifest?: Record<string, unknown>): Promise<InspectedModel>;
  /** A runner for one model version. Nothing is loaded until its load() or first infer(). */
  open(version: RunnableVersion): ModelRunner;
  close(): Promise<void>;
}

export interface InspectedModel {
  signature: ModelSignature;
  settings: Record<string, unknown>;
}

export interface RunnableVersion {
  /** Names the version in this process, uniquely. */
  key: string;
  /** Its artifact's content address. */
  artifactSha256: string;
  /** The settings inspect() gave when it was deployed. */
  settings: Record<string, unknown>;
  /** The version's artifact on local disk, fetched from the artifact store on first need. */
  artifactPath(): Promise<string>;
}

export interface ModelRunner {
  /** Batches of this version that may run at once. */
  readonly concurrency: number;
  /** Loaded, and able to answer without loading first (the v2 ready endpoints). */
  readonly ready: boolean;
  /** What it looks like now in this process (GET /v1/models/{name}): its processes, or its upstream. */
  health(): RunnerHealth;
  /** Loads ahead of the first request (warm-up). */
  load(): Promise<void>;
  /** Runs one batch: every input of the signature in, every output out. */
  infer(inputs: NamedTensors): Promise<NamedTensors>;
  /** Releases what the version holds (its version was deleted, or it was idle longest). */
  close(): Promise<void>;
}

/**
 * A runner's state as this process sees it: `ready` to answer, `loading`, `unavailable` (what serves it
 * is down: a program restarting, an upstream failing its health check) or `not_loaded` here; with what
 * the runtime can tell of it (its processes, its upstream).
 */
export interface RunnerHealth {
  state: 'ready' | 'loading' | 'unavailable' | 'not_loaded';
  [detail: string]: unknown;
}

/** The runtimes of a process, by name. */
export class Runtimes {
  private readonly byName: ReadonlyMap<string, Runtime>;

  constructor(runtimes: readonly Runtime[]) {
    this.byName = new Map(runtimes.map((runtime) => [runtime.name, runtime]));
  }

  /** The runtime named `name`; a version recorded with a runtime this process lacks cannot be served here. */
  get(name: string): Runtime {
    const runtime = this.byName.get(name);
    if (!runtime) {
      throw new ModelgateError('not_ready', `this process has no runtime "${name}" to serve the version`, {
        details: { runtime: name },
      });
    }
    return runtime;
  }

  async close(): Promise<void> {
    await Promise.all([...this.byName.values()].map((runtime) => runtime.close()));
  }
}
