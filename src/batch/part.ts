// One part of a batch, as a worker runs it: reads the part's rows from the artifact store, turns the usable
// ones into model inputs, runs them through the predictor in chunks, and stores the output rows (the
// pass-through columns, then the predictions) and the row errors, each in input order. The same part run
// twice stores the same content, so its artifacts are the same objects, never duplicates.
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { stringify } from 'csv-stringify/sync';
import type { ArtifactStore } from '../artifacts/store.ts';
import { predictionToJson, tensorsFromBody } from '../serving/predict-body.ts';
import type { Predictor } from '../serving/predictor.ts';
import type { PartResult } from '../store/batches.ts';
import type { JobRecord } from '../store/jobs.ts';
import type { InputPart, PartLine } from './input.ts';
import { featuresOf, predictionColumns, type BatchFormat, type BatchPlan, type RowError } from './plan.ts';

/** A part job's input: the batch's plan and where the part's rows are. */
export interface PartInput {
  batchPart: InputPart & { plan: BatchPlan };
}

/** Rows per call into the predictor, and calls in flight: the dynamic batcher merges them further. */
const CHUNK_ROWS = 256;
const CHUNKS_IN_FLIGHT = 4;

export const isPartInput = (input: unknown): input is PartInput =>
  typeof input === 'object' && input !== null && 'batchPart' in input;

/** Formats rows of values with these column names; CSV rows carry no header (the output adds it once). */
export function formatRows(
  format: BatchFormat,
  columns: readonly string[],
  rows: readonly unknown[][],
): string {
  if (format === 'csv') return rows.length === 0 ? '' : stringify(rows as unknown[][]);
  return rows
    .map((row) => `${JSON.stringify(Object.fromEntries(columns.map((name, i) => [name, row[i]])))}\n`)
    .join('');
}

async function store(artifacts: ArtifactStore, text: string): Promise<string> {
  const bytes = Buffer.from(text);
  const staged = await artifacts.stage(Readable.from([bytes]), bytes.length);
  await staged.commit();
  return staged.sha256;
}

export async function runBatchPart(
  job: JobRecord,
  deps: { predictor: Predictor; artifacts: ArtifactStore },
): Promise<PartResult> {
  const { plan, input, firstRow } = (job.input as unknown as PartInput).batchPart;
  const text = await readFile(await deps.artifacts.localPath(input), 'utf8');
  const lines = text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as PartLine);
  const usable: { index: number; features: number[] }[] = [];
  const errors: RowError[] = [];
  lines.forEach((row, index) => {
    const features = Array.isArray(row) ? featuresOf(plan, row) : row.error;
    if (typeof features === 'string') errors.push({ row: firstRow + index, error: features });
    else usable.push({ index, features });
  });

  const signature = deps.predictor.resolve(job.tenantId, job.modelName, job.modelVersion).version.signature;
  const predictions: unknown[][] = new Array<unknown[]>(lines.length);
  let columns: string[] = [];
  const chunks: (typeof usable)[] = [];
  for (let start = 0; start < usable.length; start += CHUNK_ROWS)
    chunks.push(usable.slice(start, start + CHUNK_ROWS));
  const runChunk = async (chunk: typeof usable) => {
    const tensors = tensorsFromBody({ instances: chunk.map((row) => row.features) }, signature);
    const prediction = await deps.predictor.predict(
      job.tenantId,
      job.modelName,
      job.modelVersion,
      tensors,
      job.timeoutMs,
    );
    const outputs = predictionToJson(job.modelName, job.modelVersion, prediction.outputs).outputs as Record<
      string,
      unknown[]
    >;
    columns = predictionColumns(outputs);
    chunk.forEach((row, i) => {
      predictions[row.index] = Object.values(outputs).flatMap((rows) => [rows[i]].flat(Infinity));
    });
  };
  for (let next = 0; next < chunks.length; next += CHUNKS_IN_FLIGHT) {
    await Promise.all(chunks.slice(next, next + CHUNKS_IN_FLIGHT).map(runChunk));
  }

  const outputRows = usable.map(({ index }) => {
    const cells = lines[index] as unknown[];
    return [...plan.passthrough.map((column) => cells[column]), ...predictions[index]!];
  });
  const outputColumns = [...plan.passthrough.map((column) => plan.columns[column]!), ...columns];
  const errorRows = errors.map(({ row, error }) => [row, error]);
  const [output, errorsSha] = await Promise.all([
    store(deps.artifacts, formatRows(plan.outputFormat, outputColumns, outputRows)),
    store(deps.artifacts, formatRows(plan.outputFormat, ['row', 'error'], errorRows)),
  ]);
  return {
    output,
    errors: errorsSha,
    rows: usable.length,
    failed: errors.length,
    predictionColumns: columns,
  };
}
