// Real-time inference: resolves a model version from the in-memory catalogue, validates the inputs
// against its signature, and hands them to that version's batcher, which runs batches on the version's
// runner (opened from the runtime the version records).
import type { ArtifactStore } from '../artifacts/store.ts';
import { isModelgateError } from '../errors.ts';
import type { Metrics } from '../observability/metrics.ts';
import { resolveSettings, type ServingDefaults } from '../registry/settings.ts';
import type { ModelRunner, RunnerHealth, Runtimes } from '../runtime/runtime.ts';
import { hasFreeBatchDimension } from '../runtime/signature.ts';
import type { NamedTensors } from '../runtime/tensor.ts';
import { validateInputs } from '../runtime/tensor.ts';
import type { ModelVersionRecord } from '../store/models.ts';
import type { Counter, Histogram } from 'prom-client';
import { Batcher } from './batcher.ts';
import type { Catalog, CatalogEntry, ResolvedVersion } from './catalog.ts';

export interface PredictorOptions {
  catalog: Catalog;
  runtimes: Runtimes;
  artifacts: ArtifactStore;
  metrics: Metrics;
  defaults: ServingDefaults;
  /** Most model versions kept loaded; the least recently used idle one is unloaded beyond it. */
  maxLoadedModels: number;
}

export interface Prediction extends ResolvedVersion {
  outputs: NamedTensors;
}

const versionKey = (version: ModelVersionRecord) => `${version.modelId}@${version.version}`;

/** A version being served: its batcher, and its metrics bound to their labels once (not per request). */
interface ServedVersion {
  batcher: Batcher;
  requestsOk: Counter.Internal;
  requestDuration: Histogram.Internal<string>;
}

export class Predictor {
  private readonly served = new Map<string, ServedVersion>();
  /** The refresh of each model in progress (by tenant and name): refreshes of one model run in turn. */
  private readonly refreshing = new Map<string, Promise<void>>();
  /** The runner of each version opened in this process; it outlives the batchers a settings change replaces. */
  private readonly runners = new Map<string, ModelRunner>();
  /** Opened versions, least recently used first. */
  private readonly recent = new Map<string, true>();

  constructor(private readonly options: PredictorOptions) {}

  resolve(tenantId: string, name: string, version?: number): ResolvedVersion {
    return this.options.catalog.resolve(tenantId, name, version);
  }

  /** The version numbers a request may name, oldest first. */
  versionNumbers(tenantId: string, name: string): number[] {
    return this.options.catalog.versionsOf(tenantId, name).map((version) => version.version);
  }

  /** How many versions are loaded (workers report it). */
  loadedCount(): number {
    return [...this.runners.values()].filter((runner) => runner.ready).length;
  }

  isLoaded(version: ModelVersionRecord): boolean {
    return this.runners.get(versionKey(version))?.ready ?? false;
  }

  /** The version's runner as this process sees it; `not_loaded` when it has none. */
  healthOf(version: ModelVersionRecord): RunnerHealth {
    return this.runners.get(versionKey(version))?.health() ?? { state: 'not_loaded' };
  }

  /** The Open Inference Protocol `platform` of the version. */
  platformOf(version: ModelVersionRecord): string {
    return this.options.runtimes.get(version.runtime).platform;
  }

  private runnerFor(version: ModelVersionRecord): ModelRunner {
    const key = versionKey(version);
    let runner = this.runners.get(key);
    if (!runner) {
      const { runtimes, artifacts } = this.options;
      runner = runtimes.get(version.runtime).open({
        key,
        artifactSha256: version.artifactSha256,
        settings: version.runtimeSettings,
        artifactPath: () => artifacts.localPath(version.artifactSha256),
      });
      this.runners.set(key, runner);
    }
    return runner;
  }

  /** Closes the version's runner, if it has one. */
  private async closeRunner(key: string): Promise<void> {
    const runner = this.runners.get(key);
    this.runners.delete(key);
    await runner?.close();
  }

  /** Runs `inputs` through the version's batcher; `timeoutMs` overrides the model's request deadline (jobs). */
  async predict(
    tenantId: string,
    name: string,
    versionNumber: number | undefined,
    inputs: NamedTensors,
    timeoutMs?: number,
  ) {
    const resolved = this.resolve(tenantId, name, versionNumber);
    const served = this.servedVersion(resolved);
    this.touch(versionKey(resolved.version));
    const startedMs = performance.now();
    try {
      validateInputs(inputs, resolved.version.signature.inputs);
      const outputs = await served.batcher.submit(inputs, timeoutMs);
      served.requestsOk.inc();
      return { ...resolved, outputs } satisfies Prediction;
    } catch (error) {
      const outcome = isModelgateError(error) ? error.code : 'internal';
      const { version } = resolved;
      const labels = { model: name, version: String(version.version), runtime: version.runtime };
      this.options.metrics.inferenceRequests.inc({ ...labels, outcome });
      throw error;
    } finally {
      served.requestDuration.observe((performance.now() - startedMs) / 1000);
    }
  }

  /** Loads a version ahead of traffic (after deploy and at start). */
  async warm(version: ModelVersionRecord): Promise<void> {
    await this.runnerFor(version).load();
    this.touch(versionKey(version));
  }

  /** Marks a version used now; beyond maxLoadedModels, unloads the least recently used idle ones. */
  private touch(key: string): void {
    this.recent.delete(key);
    this.recent.set(key, true);
    if (this.recent.size > this.options.maxLoadedModels) {
      this.evictLeastRecentlyUsed().catch(() => undefined);
    }
  }

  private async evictLeastRecentlyUsed(): Promise<void> {
    for (const key of [...this.recent.keys()]) {
      if (this.recent.size <= this.options.maxLoadedModels) return;
      const served = this.served.get(key);
      // In use: keep it; a later call evicts it once it is idle.
      if (served && !served.batcher.idle) continue;
      this.recent.delete(key);
      this.served.delete(key);
      await this.closeRunner(key);
    }
  }

  private servedVersion({ model, version }: ResolvedVersion): ServedVersion {
    const key = versionKey(version);
    const existing = this.served.get(key);
    if (existing) return existing;
    const runner = this.runnerFor(version);
    const settings = resolveSettings(
      this.options.defaults,
      model.settings,
      hasFreeBatchDimension(version.signature),
      runner.concurrency,
    );
    const { metrics } = this.options;
    const labels = { model: model.name, version: String(version.version), runtime: version.runtime };
    const batchSize = metrics.batchSize.labels(labels);
    const inferenceDuration = metrics.inferenceDuration.labels(labels);
    const queueDepth = metrics.queueDepth.labels(labels);
    const batcher = new Batcher(settings, (inputs) => runner.infer(inputs), {
      onBatch(requests, _rows, durationSeconds) {
        batchSize.observe(requests);
        inferenceDuration.observe(durationSeconds);
      },
      onQueueDepth: (depth) => queueDepth.set(depth),
    });
    const served = {
      batcher,
      requestsOk: metrics.inferenceRequests.labels({ ...labels, outcome: 'ok' }),
      requestDuration: metrics.inferenceRequestDuration.labels(labels),
    };
    this.served.set(key, served);
    return served;
  }

  /**
   * Re-reads one model into the catalogue and follows what changed: the one path by which a model change
   * reaches serving, whether it was made here, announced by another process, or met by a worker whose
   * job names a version it has not seen yet. The newest version is loaded ahead of its traffic unless
   * `warmNewest` is false (a worker refreshing for one job loads the version that job needs, and no other
   * version's failure to load may fail it).
   */
  refreshModel(tenantId: string, name: string, { warmNewest = true } = {}): Promise<void> {
    const key = JSON.stringify([tenantId, name]);
    const refresh = (this.refreshing.get(key) ?? Promise.resolve())
      .catch(() => undefined)
      .then(async () => {
        const { previous, current, changed } = await this.options.catalog.refresh(tenantId, name);
        if (!changed) return;
        await this.followChange(previous, current);
        const latest = current?.versions.at(-1);
        if (latest && warmNewest) await this.warm(latest);
      });
    this.refreshing.set(key, refresh);
    const forget = () => {
      if (this.refreshing.get(key) === refresh) this.refreshing.delete(key);
    };
    refresh.then(forget, forget);
    return refresh;
  }

  /** Refreshes every model this process knows or the database holds (after change notices were missed). */
  async refreshAll(): Promise<void> {
    const models = await this.options.catalog.knownModels();
    const failed = (
      await Promise.allSettled(models.map(({ tenantId, name }) => this.refreshModel(tenantId, name)))
    ).filter((outcome) => outcome.status === 'rejected');
    if (failed.length > 0) {
      throw new AggregateError(
        failed.map((outcome) => outcome.reason),
        `${failed.length} of ${models.length} models could not be refreshed`,
      );
    }
  }

  /**
   * Follows a change of one model in the catalogue. Remaining versions get a fresh batcher (new settings)
   * while the old one drains what it holds; removed versions fail what is queued and are unloaded.
   */
  private async followChange(
    previous: CatalogEntry | undefined,
    current: CatalogEntry | undefined,
  ): Promise<void> {
    const remaining = new Set(current?.versions.map(versionKey));
    for (const version of previous?.versions ?? []) {
      const key = versionKey(version);
      const served = this.served.get(key);
      this.served.delete(key);
      if (remaining.has(key)) continue;
      served?.batcher.close();
      this.recent.delete(key);
      await this.closeRunner(key);
    }
  }

  /** Fails what is queued and closes every runner (a program's processes stop; ONNX threads stay with their runtime). */
  async close(): Promise<void> {
    for (const { batcher } of this.served.values()) batcher.close();
    this.served.clear();
    const runners = [...this.runners.values()];
    this.runners.clear();
    await Promise.all(runners.map((runner) => runner.close()));
  }
}
