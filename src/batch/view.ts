// A batch as the API shows it (snake_case, like the rest of the API): its status, read from its parts and
// from whether its files have been joined, and its progress, rate and time left.
import type { BatchRecord, BatchStatus } from '../store/batches.ts';

export function batchStatus(batch: BatchRecord): BatchStatus {
  const { progress, partsTotal } = batch;
  if (batch.canceledAt) return 'canceled';
  if (batch.finishedAt) return progress.partsSucceeded === partsTotal ? 'succeeded' : 'failed';
  // Parts still to arrive or to run, or the output still being joined.
  return progress.partsRunning + progress.partsSucceeded + progress.partsFailed > 0 ? 'running' : 'queued';
}

/** The batch, with its rate and ETA as of `nowMs`. */
export function batchView(batch: BatchRecord, nowMs = Date.now()) {
  const { progress } = batch;
  const status = batchStatus(batch);
  const finished = status === 'succeeded' || status === 'failed' || status === 'canceled';
  // When its files were joined: the end of the batch, as rows_per_second counts it.
  const finishedAt = batch.finishedAt;
  const rowsSeen = progress.rowsDone + progress.rowsFailed;
  const elapsedSeconds = progress.startedAt
    ? ((finishedAt ?? new Date(nowMs)).getTime() - progress.startedAt.getTime()) / 1000
    : 0;
  const rowsPerSecond = elapsedSeconds > 0 ? rowsSeen / elapsedSeconds : null;
  return {
    id: batch.id,
    model: batch.modelName,
    version: batch.modelVersion,
    status,
    rows_total: batch.rowsTotal,
    rows_done: progress.rowsDone,
    rows_failed: progress.rowsFailed,
    parts_total: batch.partsTotal,
    parts_done: progress.partsSucceeded,
    rows_per_second: rowsPerSecond === null ? null : Math.round(rowsPerSecond * 10) / 10,
    eta_seconds:
      !finished && rowsPerSecond
        ? Math.round(((batch.rowsTotal - rowsSeen) / rowsPerSecond) * 10) / 10
        : null,
    created_at: batch.createdAt,
    started_at: progress.startedAt,
    finished_at: finishedAt,
    error: progress.error,
    links: {
      self: `/v1/batches/${batch.id}`,
      output: `/v1/batches/${batch.id}/output`,
      errors: `/v1/batches/${batch.id}/errors`,
      cancel: `/v1/batches/${batch.id}/cancel`,
    },
  };
}
