// One part of a batch, as a worker runs it: streams the part's rows from the artifact store in chunks,
// turns the usable ones into model inputs, runs them through the predictor, and streams the output rows
// (the pass-through columns, then the predictions) into the store, keeping a few chunks in memory, not the
// part; the row errors follow. Both in input order. The same part run
// twice stores the same content, so its artifacts are the same objects, never duplicates.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { stringify } from 'csv-stringify/sync';
import type { ArtifactStore } from '../artifacts/store.ts';
import { predictionToJson, tensorsFromBody } from '../serving/predict-body.ts';
import type { Predictor } from '../serving/predictor.ts';
import type { PartResult } from '../store/batches.ts';
import type { JobRecord } from '../store/jobs.ts';
import type { InputPart, PartLine } from './input.ts';
import { featuresOf, predictionColumns, type BatchFormat, type BatchPlan } from './plan.ts';

/** A part job's input: the batch's plan and where the part's rows are. */
export interface PartInput {
  batchPart: InputPart & { plan: BatchPlan };
}

/** Rows per call into the predictor, and calls in flight: the dynamic batcher merges them further. */
export const CHUNK_ROWS = 256;
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
  const signature = deps.predictor.resolve(job.tenantId, job.modelName, job.modelVersion).version.signature;
  const passthroughColumns = plan.passthrough.map((column) => plan.columns[column]!);
  const errors: unknown[][] = [];
  let predictionNames: string[] = [];
  let rows = 0;

  /** One chunk of lines: its row errors are noted at once (in order); its output rows come formatted. */
  const runChunk = async (lines: string[], firstRowOfChunk: number): Promise<string> => {
    const usable: { cells: unknown[]; features: number[] }[] = [];
    lines.forEach((line, index) => {
      const row = JSON.parse(line) as PartLine;
      const features = Array.isArray(row) ? featuresOf(plan, row) : row.error;
      if (typeof features === 'string') errors.push([firstRowOfChunk + index, features]);
      else usable.push({ cells: row as unknown[], features });
    });
    if (usable.length === 0) return '';
    const tensors = tensorsFromBody({ instances: usable.map((row) => row.features) }, signature);
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
    predictionNames = predictionColumns(outputs);
    rows += usable.length;
    const outputRows = usable.map(({ cells }, i) => [
      ...plan.passthrough.map((column) => cells[column]),
      ...Object.values(outputs).flatMap((values) => [values[i]].flat(Infinity)),
    ]);
    return formatRows(plan.outputFormat, [...passthroughColumns, ...predictionNames], outputRows);
  };

  /** The part's lines in chunks, CHUNKS_IN_FLIGHT of them running at once, their output in order. */
  async function* outputText(): AsyncGenerator<string> {
    const lines = createInterface({
      input: createReadStream(await deps.artifacts.localPath(input)),
      crlfDelay: Infinity,
    });
    const running: Promise<string>[] = [];
    let chunk: string[] = [];
    let next = firstRow;
    const start = () => {
      const chunkRun = runChunk(chunk, next);
      // Awaited in turn below; until then a failure must not count as unhandled.
      chunkRun.catch(() => undefined);
      running.push(chunkRun);
      next += chunk.length;
      chunk = [];
    };
    for await (const line of lines) {
      if (line === '') continue;
      chunk.push(line);
      if (chunk.length < CHUNK_ROWS) continue;
      start();
      if (running.length >= CHUNKS_IN_FLIGHT) yield await running.shift()!;
    }
    if (chunk.length > 0) start();
    while (running.length > 0) yield await running.shift()!;
  }

  const output = await deps.artifacts.stage(Readable.from(outputText()), Number.MAX_SAFE_INTEGER);
  await output.commit();
  const errorText = formatRows(plan.outputFormat, ['row', 'error'], errors);
  return {
    output: output.sha256,
    errors: await store(deps.artifacts, errorText),
    rows,
    failed: errors.length,
    predictionColumns: predictionNames,
  };
}
