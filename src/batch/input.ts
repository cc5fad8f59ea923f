// A batch's input file, cut as it streams in into parts of whole rows, stored as they are (the workers read
// the cells): the header and the first row decide the plan; each part is handed on as soon as it is
// stored, so that memory holds one part at most whatever the size of the file, and work on the first parts
// starts while the rest arrives.
import type { Readable } from 'node:stream';
import { byteLimit } from '../artifacts/staging.ts';
import { storeContent, type ArtifactStore } from '../artifacts/store.ts';
import { ModelgateError } from '../errors.ts';
import { textFault } from '../text.ts';
import type { BatchFormat, BatchPlan } from './plan.ts';
import { csvCells, jsonObject, rowCells, RowSplitter } from './rows.ts';

/** One part of the input as stored: its artifact, and the number of its first row (from 1) and its rows. */
export interface InputPart {
  input: string;
  firstRow: number;
  rows: number;
}

/** A part ends at `partRows` rows, or before, once it holds this many bytes. */
export const PART_MAX_BYTES = 32 * 1024 * 1024;

const BYTE_ORDER_MARK = Buffer.from([0xef, 0xbb, 0xbf]);
const NEWLINE = Buffer.from('\n');
const QUOTE = 0x22;

/** A line of spaces and tabs only (JSONL skips them, as JSON.parse would not). */
const isBlank = (line: Buffer) => line.every((byte) => byte === 0x20 || byte === 0x09);

const notThisFormat = (format: BatchFormat, why: string) =>
  new ModelgateError('invalid_input', `the body is not ${format === 'csv' ? 'CSV' : 'JSONL'}: ${why}`);

/** The column names: the CSV header, or the keys of the first JSONL object; each stored with the plan. */
function columnsOf(format: BatchFormat, firstLine: Buffer): string[] {
  if (firstLine.includes(0)) throw notThisFormat(format, 'no header');
  let columns: string[];
  if (format === 'jsonl') {
    const record = jsonObject(firstLine);
    if (typeof record === 'string') throw notThisFormat(format, `line 1 is ${record}`);
    columns = Object.keys(record);
  } else {
    const header = csvCells(firstLine);
    if (typeof header === 'string') throw new ModelgateError('invalid_input', `the header is ${header}`);
    columns = header;
  }
  columns.forEach((name, index) => {
    const fault = textFault(name);
    if (fault) {
      throw new ModelgateError('invalid_input', `the name of column ${index + 1} ${fault}`, {
        details: { column: index + 1 },
      });
    }
  });
  return columns;
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
  const limited = source.pipe(byteLimit(options.maxBytes, 'the batch input'));
  source.on('error', (error) => limited.destroy(error));
  const splitter = new RowSplitter(format);
  let columns: string[] | undefined;
  let plan: BatchPlan | undefined;
  let parts = 0;
  let rowsTotal = 0;
  // The part being filled: its rows, each followed by a newline.
  let pending: Buffer[] = [];
  let pendingRows = 0;
  let pendingBytes = 0;

  /** Adds a row to the part; true once the part is full. */
  const take = (line: Buffer): boolean => {
    if (format === 'jsonl' && isBlank(line)) return false;
    if (!columns) {
      const row = line.subarray(0, 3).equals(BYTE_ORDER_MARK) ? line.subarray(3) : line;
      columns = columnsOf(format, row);
      // A CSV header is not a row; the first JSONL object is.
      if (format === 'csv') return false;
      line = row;
    }
    // A quote where CSV allows none (`5" screen`) would take the rows after it into this one; csv-parse
    // refuses it, and so is the file, as it was when csv-parse read every row here.
    const cells =
      plan && (format === 'jsonl' || !line.includes(QUOTE)) ? undefined : rowCells(format, columns, line);
    if (typeof cells === 'string') {
      throw new ModelgateError('invalid_input', `row ${rowsTotal + 1} is ${cells}`, {
        details: { row: rowsTotal + 1 },
      });
    }
    if (!plan) plan = options.planFor(columns, cells!);
    pending.push(line, NEWLINE);
    pendingRows++;
    pendingBytes += line.length + 1;
    rowsTotal++;
    return pendingRows >= options.partRows || pendingBytes >= PART_MAX_BYTES;
  };
  const flush = async () => {
    if (pendingRows === 0) return;
    const input = await storeContent(options.artifacts, Buffer.concat(pending, pendingBytes));
    const part = { input, firstRow: rowsTotal - pendingRows + 1, rows: pendingRows };
    pending = [];
    pendingRows = 0;
    pendingBytes = 0;
    await options.onPart(part, parts, plan!);
    parts++;
  };

  try {
    for await (const chunk of limited) {
      for (const row of splitter.push(chunk as Buffer)) if (take(row)) await flush();
    }
    for (const row of splitter.end()) if (take(row)) await flush();
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
