// Batch runs as the gateway offers them: submit a file (split into parts, each a durable job queued as it
// is stored; the 202 once all are committed), read status and progress, list, cancel, and stream the
// output or the errors once the batch has finished (finish.ts).
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { ArtifactStore } from '../artifacts/store.ts';
import type { Config } from '../config/config.ts';
import { ModelgateError } from '../errors.ts';
import { jobSettings } from '../registry/settings.ts';
import type { Predictor } from '../serving/predictor.ts';
import {
  cancelBatch,
  completeBatchUpload,
  insertBatch,
  listBatches,
  newBatchId,
  queueBatchParts,
  selectBatch,
  type BatchRecord,
  type NewBatch,
} from '../store/batches.ts';
import type { Db } from '../store/db.ts';
import { splitInput } from './input.ts';
import { finishBatchIfDone } from './finish.ts';
import { batchStatus } from './view.ts';
import type { PartInput } from './part.ts';
import { planBatch, type BatchFormat, type BatchPlan, type PlanOptions } from './plan.ts';

export interface SubmitBatch {
  tenantId: string;
  modelName: string;
  version?: number;
  format: BatchFormat;
  source: Readable;
  options: PlanOptions & { partRows?: number };
}

/** Rows per part unless the submit says otherwise: a part is one job, one claim, one output object. */
export const DEFAULT_PART_ROWS = 10_000;

const batchNotFound = (id: string) =>
  new ModelgateError('batch_not_found', `no batch ${id} in your tenant`, { details: { batch_id: id } });

export class BatchService {
  constructor(
    private readonly deps: {
      db: Db;
      predictor: Predictor;
      artifacts: ArtifactStore;
      config: Pick<Config, 'jobMaxAttempts' | 'jobTimeoutMs' | 'batchUploadLimitBytes'>;
      logger: Logger;
    },
  ) {}

  /**
   * Reads the file, queueing each part as soon as it is stored (workers start on the first parts while the
   * rest arrives), and answers once the whole file is in. A file refused part-way (too large, unreadable)
   * cancels the parts queued so far.
   */
  async submit(request: SubmitBatch): Promise<BatchRecord> {
    const { tenantId, modelName } = request;
    const { db } = this.deps;
    const resolved = this.deps.predictor.resolve(tenantId, modelName, request.version);
    const id = newBatchId();
    let batch: NewBatch | undefined;
    try {
      const { parts, rowsTotal } = await splitInput(request.source, request.format, {
        artifacts: this.deps.artifacts,
        maxBytes: this.deps.config.batchUploadLimitBytes,
        partRows: request.options.partRows ?? DEFAULT_PART_ROWS,
        planFor: (columns, firstRow) =>
          planBatch(resolved.version.signature, request.format, columns, firstRow, request.options),
        onPart: async (part, index, plan) => {
          if (!batch) {
            const settings = jobSettings(resolved.model.settings, this.deps.config);
            batch = { id, tenantId, modelName, modelVersion: resolved.version.version, plan, ...settings };
            await insertBatch(db, batch);
          }
          const input = JSON.stringify({ batchPart: { ...part, batchId: id, plan } } satisfies PartInput);
          if (!(await queueBatchParts(db, batch, index, [input]))) {
            throw new ModelgateError('conflict', `batch ${id} was canceled while its file was arriving`, {
              details: { batch_id: id },
            });
          }
        },
      });
      await completeBatchUpload(db, id, rowsTotal, parts);
    } catch (error) {
      if (batch) {
        await this.cancelAndFinish(tenantId, id).catch((cancelError: unknown) =>
          this.deps.logger.error({ err: cancelError, batch: id }, 'canceling a refused batch failed'),
        );
      }
      throw error;
    }
    // Workers may have run every part before the upload was complete: none of them finished the batch. If
    // this fails, housekeeping finishes it.
    await finishBatchIfDone(this.deps, id).catch((error: unknown) =>
      this.deps.logger.error({ err: error, batch: id }, 'finishing a batch failed'),
    );
    return this.get(tenantId, id);
  }

  /** Fails as submit would for a model or version that is not there, before its input is opened. */
  checkModel(tenantId: string, modelName: string, version: number | undefined): void {
    this.deps.predictor.resolve(tenantId, modelName, version);
  }

  async get(tenantId: string, id: string): Promise<BatchRecord> {
    const batch = await selectBatch(this.deps.db, tenantId, id);
    if (!batch) throw batchNotFound(id);
    return batch;
  }

  list(tenantId: string, after: string | undefined, limit: number): Promise<BatchRecord[]> {
    return listBatches(this.deps.db, tenantId, after, limit);
  }

  /** Cancels a batch that is still queued or running; 409 once it has finished or was canceled, as for jobs. */
  async cancel(tenantId: string, id: string): Promise<BatchRecord> {
    if (await this.cancelAndFinish(tenantId, id)) return this.get(tenantId, id);
    const status = batchStatus(await this.get(tenantId, id));
    throw new ModelgateError(
      'conflict',
      `batch ${id} has already ${status === 'canceled' ? 'been canceled' : status}; only queued or running batches can be canceled`,
      { details: { batch_id: id, batch_status: status } },
    );
  }

  /**
   * Cancels the batch's unfinished parts, then joins what its finished parts gave; false if there is no such
   * batch still to cancel.
   */
  private async cancelAndFinish(tenantId: string, id: string): Promise<boolean> {
    const canceled = await this.deps.db.transaction((tx) => cancelBatch(tx, tenantId, id));
    if (canceled) await finishBatchIfDone(this.deps, id);
    return canceled;
  }

  /** The batch's output rows, or its row errors, as one file; only once the batch has finished. */
  async file(
    tenantId: string,
    id: string,
    which: 'output' | 'errors',
  ): Promise<{ format: BatchFormat; body: Readable }> {
    const batch = await this.get(tenantId, id);
    const sha256 = which === 'output' ? batch.outputSha256 : batch.errorsSha256;
    if (!batch.finishedAt || !sha256) {
      const status = batchStatus(batch);
      throw new ModelgateError(
        'batch_not_finished',
        `batch ${id} is ${status}; its ${which} is ready once it has finished`,
        { details: { batch_id: id, batch_status: status } },
      );
    }
    return { format: (batch.plan as BatchPlan).outputFormat, body: await this.deps.artifacts.read(sha256) };
  }
}
