// The interface every model runtime implements (ONNX Runtime in-process today; `http` and `command`
// runtimes later). The serving layer batches requests and calls `infer` with whole batches.
import type { NamedTensors } from './tensor.ts';
import type { ModelSignature } from './signature.ts';

export interface Runtime {
  readonly name: string;
  /** Reads inputs and outputs from a model file; throws ModelgateError `invalid_model` if it cannot load. */
  inspect(artifactPath: string): Promise<ModelSignature>;
  /**
   * Runs the model stored at `artifactPath` on `inputs` and returns every output. The runtime loads the
   * model on first use and keeps it under `modelKey` until `unload`.
   */
  infer(modelKey: string, artifactPath: string, inputs: NamedTensors): Promise<NamedTensors>;
  /** Loads a model ahead of its first request (warm-up). */
  load(modelKey: string, artifactPath: string): Promise<void>;
  /** Drops a loaded model (after its version is deleted). */
  unload(modelKey: string): Promise<void>;
  close(): Promise<void>;
}
