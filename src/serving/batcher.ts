// Dynamic batching for one model version: concurrent requests are stacked along the batch dimension
// into one runtime call and the outputs split back. A request never waits when the model is idle; while
// batches are running, arrivals queue and leave together, up to `maxBatchSize` rows, or after waiting
// `maxBatchDelayMs` for a batch to fill. The queue is bounded and every request has a deadline.
import { ModelgateError } from '../errors.ts';
import type { NamedTensors } from '../runtime/tensor.ts';
import { batchRows, concatRows, innerShapeKey, splitRows } from '../runtime/tensor.ts';

export interface BatchingSettings {
  /** Merge concurrent requests. Off for models without a free batch dimension. */
  batching: boolean;
  /** Most rows in one runtime call. */
  maxBatchSize: number;
  /** Longest a request waits for a batch to fill while the model is busy. */
  maxBatchDelayMs: number;
  /** Most requests waiting; beyond it requests get 503 `queue_full`. */
  maxQueueSize: number;
  /** Batches of this model sent to its runtime at once (the runtime's concurrency). */
  maxConcurrentBatches: number;
  /** Deadline of a request from arrival to answer; past it the client gets 504 `timeout`. */
  timeoutMs: number;
}

export interface BatchObserver {
  onBatch(requests: number, rows: number, durationSeconds: number): void;
  onQueueDepth(depth: number): void;
}

interface PendingRequest {
  inputs: NamedTensors;
  rows: number;
  shapeKey: string;
  enqueuedAtMs: number;
  settled: boolean;
  timer: NodeJS.Timeout;
  resolve(outputs: NamedTensors): void;
  reject(error: unknown): void;
}

export type RunBatch = (inputs: NamedTensors) => Promise<NamedTensors>;

export class Batcher {
  private queue: PendingRequest[] = [];
  private inFlight = 0;
  private fillTimer: NodeJS.Timeout | undefined;
  private unstackableCount = 0;

  constructor(
    private readonly settings: BatchingSettings,
    private readonly runBatch: RunBatch,
    private readonly observer: BatchObserver,
  ) {}

  get queueDepth(): number {
    return this.queue.length;
  }

  /** Nothing queued and nothing running. */
  get idle(): boolean {
    return this.queue.length === 0 && this.inFlight === 0;
  }

  /** Queues a request; it fails with `timeout` after `timeoutMs` (default: the settings' timeoutMs). */
  submit(inputs: NamedTensors, timeoutMs = this.settings.timeoutMs): Promise<NamedTensors> {
    if (this.queue.length >= this.settings.maxQueueSize) {
      return Promise.reject(
        new ModelgateError('queue_full', 'the model is at capacity; retry shortly', { retryAfterSeconds: 1 }),
      );
    }
    const firstInput = Object.values(inputs)[0];
    const rows = firstInput ? batchRows(firstInput) : 1;
    // Inputs that disagree on the batch dimension cannot be stacked with other requests (the outputs would
    // not split back, or the model would fail the whole batch): such a request gets a key of its own.
    const stackable = Object.values(inputs).every((tensor) => batchRows(tensor) === rows);
    const shapeKey = stackable ? innerShapeKey(inputs) : `unstackable#${this.unstackableCount++}`;
    return new Promise<NamedTensors>((resolve, reject) => {
      const request: PendingRequest = {
        inputs,
        rows,
        shapeKey,
        enqueuedAtMs: performance.now(),
        settled: false,
        resolve,
        reject,
        timer: setTimeout(() => this.expire(request, timeoutMs), timeoutMs),
      };
      this.queue.push(request);
      this.observer.onQueueDepth(this.queue.length);
      this.dispatch();
    });
  }

  private settle(request: PendingRequest, outcome: { outputs: NamedTensors } | { error: unknown }): void {
    if (request.settled) return;
    request.settled = true;
    clearTimeout(request.timer);
    if ('outputs' in outcome) request.resolve(outcome.outputs);
    else request.reject(outcome.error);
  }

  private expire(request: PendingRequest, timeoutMs: number): void {
    // Queued: drop it so it never runs. Running: its result is discarded when it arrives.
    const index = this.queue.indexOf(request);
    if (index >= 0) {
      this.queue.splice(index, 1);
      this.observer.onQueueDepth(this.queue.length);
    }
    const timeoutError = new ModelgateError('timeout', `no answer within ${timeoutMs} ms`);
    this.settle(request, { error: timeoutError });
  }

  private dispatch(): void {
    while (this.queue.length > 0 && this.inFlight < this.settings.maxConcurrentBatches) {
      const head = this.queue[0]!;
      if (!this.isReady(head)) {
        const remainingMs = this.settings.maxBatchDelayMs - (performance.now() - head.enqueuedAtMs);
        this.fillTimer ??= setTimeout(
          () => {
            this.fillTimer = undefined;
            this.dispatch();
          },
          Math.max(0, remainingMs),
        );
        return;
      }
      void this.runNextBatch();
    }
  }

  private isReady(head: PendingRequest): boolean {
    if (!this.settings.batching || this.inFlight === 0) return true;
    if (performance.now() - head.enqueuedAtMs >= this.settings.maxBatchDelayMs) return true;
    let rows = 0;
    for (const request of this.queue) {
      if (request.shapeKey === head.shapeKey) rows += request.rows;
      if (rows >= this.settings.maxBatchSize) return true;
    }
    return false;
  }

  /** Takes the head request and, when batching, every queued request of the same shape that still fits. */
  private takeBatch(): PendingRequest[] {
    const head = this.queue.shift()!;
    const batch = [head];
    if (this.settings.batching) {
      let rows = head.rows;
      this.queue = this.queue.filter((request) => {
        const fits = request.shapeKey === head.shapeKey && rows + request.rows <= this.settings.maxBatchSize;
        if (fits) {
          batch.push(request);
          rows += request.rows;
        }
        return !fits;
      });
    }
    this.observer.onQueueDepth(this.queue.length);
    return batch;
  }

  private async runNextBatch(): Promise<void> {
    const batch = this.takeBatch();
    this.inFlight++;
    const startedMs = performance.now();
    try {
      const names = Object.keys(batch[0]!.inputs);
      const inputs: NamedTensors = {};
      for (const name of names) inputs[name] = concatRows(batch.map((request) => request.inputs[name]!));
      const outputs = await this.runBatch(inputs);
      const rowCounts = batch.map((request) => request.rows);
      const totalRows = rowCounts.reduce((sum, rows) => sum + rows, 0);
      const perRequest = batch.map(() => ({}) as NamedTensors);
      for (const [name, tensor] of Object.entries(outputs)) {
        if (batch.length > 1 && tensor.shape[0] !== totalRows) {
          throw new ModelgateError(
            'inference_failed',
            `output "${name}" has ${tensor.shape[0]} rows for ${totalRows} input rows; disable batching for this model`,
          );
        }
        const parts = batch.length > 1 ? splitRows(tensor, rowCounts) : [tensor];
        parts.forEach((part, i) => (perRequest[i]![name] = part));
      }
      this.observer.onBatch(batch.length, totalRows, (performance.now() - startedMs) / 1000);
      batch.forEach((request, i) => this.settle(request, { outputs: perRequest[i]! }));
    } catch (error) {
      for (const request of batch) this.settle(request, { error });
    } finally {
      this.inFlight--;
      this.dispatch();
    }
  }

  /** Fails everything queued (the model version is going away). */
  close(): void {
    clearTimeout(this.fillTimer);
    const error = new ModelgateError('not_ready', 'the model version was unloaded', { retryAfterSeconds: 1 });
    for (const request of this.queue.splice(0)) this.settle(request, { error });
  }
}
