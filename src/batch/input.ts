// A batch's input file, read as it streams in: CSV (a header line, then rows) or JSONL (one JSON object a
// line). The plan is decided at the first row; rows are then written to the artifact store in parts of
// `partRows`, each a JSONL file of one JSON array of cells a row, and each part is handed on as soon as it
// is stored, so that memory holds one part at most whatever the size of the file, and work on the first
// parts starts while the rest arrives.
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { createInterface } from 'node:readline';
import { parse } from 'csv-parse';
import { storeContent, type ArtifactStore } from '../artifacts/store.ts';
import { ModelgateError } from '../errors.ts';
import type { BatchFormat, BatchPlan } from './plan.ts';

/** One part of the input as stored: its artifact, and the number of its first row (from 1) and its rows. */
export interface InputPart {
  input: string;
  firstRow: number;
  rows: number;
}

/** A line of a part: the row's cells, or why the row could not even be read (a broken JSONL line). */
export type PartLine = unknown[] | { error: string };

/** Counts bytes on the way through and fails with payload_too_large beyond `maxBytes`. */
function byteLimit(maxBytes: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > maxBytes) {
        callback(new ModelgateError('payload_too_large', `the batch input exceeds ${maxBytes} bytes`));
        return;
      }
      callback(null, chunk);
    },
  });
}

const notThisFormat = (format: BatchFormat, why: string) =>
  new ModelgateError('invalid_input', `the body is not ${format === 'csv' ? 'CSV' : 'JSONL'}: ${why}`);

/** The file as [columns, ...rows] of cells; rows that fail to read come as { error }. */
async function* rowsOf(source: Readable, format: BatchFormat): AsyncGenerator<string[] | PartLine> {
  if (format === 'csv') {
    const parser = parse({ bom: true, relax_column_count: true, skip_empty_lines: true });
    source.on('error', (error) => parser.destroy(error));
    source.pipe(parser);
    try {
      for await (const record of parser) yield record as string[];
    } catch (error) {
      if (error instanceof ModelgateError) throw error;
      throw notThisFormat(format, error instanceof Error ? error.message : String(error));
    }
    return;
  }
  let columns: string[] | undefined;
  const lines = createInterface({ input: source, crlfDelay: Infinity });
  source.on('error', (error) => lines.emit('error', error));
  for await (const line of lines) {
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      if (!columns) throw notThisFormat(format, `line 1 is not JSON (${(error as Error).message})`);
      yield { error: 'not a JSON line' };
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      if (!columns) throw notThisFormat(format, 'line 1 is not a JSON object');
      yield { error: 'not a JSON object' };
      continue;
    }
    const record = value as Record<string, unknown>;
    if (!columns) {
      columns = Object.keys(record);
      yield columns;
    }
    yield columns.map((name) => record[name] ?? null);
  }
}

/**
 * Reads `source` to the end: decides the plan with `planFor(columns, firstRow)`, stores the rows in parts
 * and hands each to `onPart`; returns the plan and the counts. Fails before storing anything on an empty
 * or unreadable file, and with payload_too_large past `maxBytes` (parts handed on by then stay handed on).
 */
export async function splitInput(
  source: Readable,
  format: BatchFormat,
  options: {
    artifacts: ArtifactStore;
    maxBytes: number;
    partRows: number;
    planFor(columns: string[], firstRow: readonly unknown[]): BatchPlan;
    /** Called with each part (numbered from 0) once it is stored, in order; the next waits for it. */
    onPart(part: InputPart, index: number, plan: BatchPlan): Promise<void>;
  },
): Promise<{ plan: BatchPlan; parts: number; rowsTotal: number }> {
  const limited = source.pipe(byteLimit(options.maxBytes));
  source.on('error', (error) => limited.destroy(error));
  let columns: string[] | undefined;
  let plan: BatchPlan | undefined;
  let parts = 0;
  let lines: string[] = [];
  let rowsTotal = 0;
  const flush = async () => {
    if (lines.length === 0) return;
    const input = await storeContent(options.artifacts, lines.join(''));
    const part = { input, firstRow: rowsTotal - lines.length + 1, rows: lines.length };
    lines = [];
    await options.onPart(part, parts, plan!);
    parts++;
  };
  try {
    for await (const row of rowsOf(limited, format)) {
      if (!columns) {
        if (!Array.isArray(row) || row.length === 0 || row.some((name) => String(name).includes('\0'))) {
          throw notThisFormat(format, 'no header');
        }
        columns = (row as unknown[]).map(String);
        continue;
      }
      plan ??= options.planFor(columns, Array.isArray(row) ? row : []);
      lines.push(`${JSON.stringify(row)}\n`);
      rowsTotal++;
      if (lines.length >= options.partRows) await flush();
    }
  } catch (error) {
    // The rest of the body is read and dropped, so that the request ends and its connection is free
    // again; left paused, it would hold the connection (and a server closing) until a timeout.
    source.unpipe(limited);
    source.resume();
    throw error;
  }
  if (!columns) throw notThisFormat(format, 'the file is empty');
  if (!plan) throw new ModelgateError('invalid_input', 'the file has a header but no rows');
  await flush();
  return { plan, parts, rowsTotal };
}
