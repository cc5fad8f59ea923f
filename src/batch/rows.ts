// A batch file's rows, read the same way by the gateway (which only cuts the file into parts of whole
// rows) and by the workers (which read each row's cells): rows end at a newline outside double quotes, and
// a row's cells come from CSV or from a JSON object.
import { parse } from 'csv-parse/sync';
import { ModelgateError } from '../errors.ts';
import type { BatchFormat } from './plan.ts';

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;
const QUOTE = 0x22;

/** A row longer than this is refused: it is most likely a quote that never closes, swallowing the file. */
export const MAX_ROW_BYTES = 16 * 1024 * 1024;

const rowTooLong = () =>
  new ModelgateError(
    'invalid_input',
    `a row is longer than ${MAX_ROW_BYTES} bytes: is there a quote that never closes?`,
  );

/**
 * Splits a byte stream into rows, without their line ends (\n or \r\n); empty rows are dropped. In CSV a
 * newline inside a quoted field belongs to its row: quotes inside a quoted field are doubled (RFC 4180),
 * so whether a newline is inside a field is the parity of the quotes before it in the row. JSON strings
 * cannot hold a raw newline, so JSONL rows end at every newline.
 *
 * Written here rather than taken from csv-parse: the gateway needs only where rows end, not their cells,
 * and csv-parse building every row's cells was the gateway's whole cost (see bench:batch in the README).
 */
export class RowSplitter {
  /** The start of the row still open, from earlier chunks. */
  private open: Buffer[] = [];
  private openBytes = 0;
  private inQuotes = false;

  constructor(private readonly format: BatchFormat) {}

  /** The rows that `chunk` completes, in order. */
  push(chunk: Buffer): Buffer[] {
    const rows: Buffer[] = [];
    let start = 0;
    let position = 0;
    let quote = this.format === 'csv' ? chunk.indexOf(QUOTE) : -1;
    // -2: not looked for yet (-1: no newline after `position`).
    let newline = -2;
    for (;;) {
      if (this.inQuotes) {
        if (quote < 0) break;
        this.inQuotes = false;
        position = quote + 1;
        quote = chunk.indexOf(QUOTE, position);
        continue;
      }
      if (newline === -2 || (newline >= 0 && newline < position)) newline = chunk.indexOf(NEWLINE, position);
      if (quote >= 0 && (newline < 0 || quote < newline)) {
        this.inQuotes = true;
        position = quote + 1;
        quote = chunk.indexOf(QUOTE, position);
        continue;
      }
      if (newline < 0) break;
      this.close(rows, chunk.subarray(start, newline));
      start = position = newline + 1;
    }
    if (start < chunk.length) {
      this.open.push(chunk.subarray(start));
      this.openBytes += chunk.length - start;
      if (this.openBytes > MAX_ROW_BYTES) throw rowTooLong();
    }
    return rows;
  }

  /** The last row, when the stream does not end with a newline (or ends inside quotes). */
  end(): Buffer[] {
    const rows: Buffer[] = [];
    if (this.openBytes > 0) this.close(rows, Buffer.alloc(0));
    return rows;
  }

  private close(rows: Buffer[], tail: Buffer): void {
    let row = tail;
    if (this.open.length > 0) {
      if (this.openBytes + tail.length > MAX_ROW_BYTES) throw rowTooLong();
      row = Buffer.concat([...this.open, tail]);
      this.open = [];
      this.openBytes = 0;
    }
    const end = row.length > 0 && row[row.length - 1] === CARRIAGE_RETURN ? row.length - 1 : row.length;
    if (end > 0) rows.push(end === row.length ? row : row.subarray(0, end));
  }
}

/** A CSV row's cells: most rows hold no quote and are split at commas; the others go through csv-parse. */
export function csvCells(row: Buffer): string[] | string {
  const text = row.toString();
  if (!text.includes('"')) return text.split(',');
  try {
    const records = parse(text, { relax_column_count: true }) as string[][];
    if (records.length !== 1) return 'not one CSV row';
    return records[0]!;
  } catch (error) {
    return `not CSV: ${(error as Error).message}`;
  }
}

/** A JSONL row as an object, or why it is not one. */
export function jsonObject(row: Buffer): Record<string, unknown> | string {
  let value: unknown;
  try {
    value = JSON.parse(row.toString());
  } catch {
    return 'not a JSON line';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  return value as Record<string, unknown>;
}

/** A data row's cells in the order of `columns` (for JSONL, the keys of the first object), or why not. */
export function rowCells(format: BatchFormat, columns: readonly string[], row: Buffer): unknown[] | string {
  if (format === 'csv') return csvCells(row);
  const record = jsonObject(row);
  return typeof record === 'string' ? record : columns.map((name) => record[name] ?? null);
}
