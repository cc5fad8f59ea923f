// The rows of a batch file: the splitter must cut a file where csv-parse sees rows end, however the bytes
// arrive, and read their cells as csv-parse does.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'csv-parse/sync';
import { createRng } from '../examples/build.ts';
import { csvCells, MAX_ROW_BYTES, rowCells, RowSplitter } from '../src/batch/rows.ts';
import type { BatchFormat } from '../src/batch/plan.ts';
import { ModelgateError } from '../src/errors.ts';

function split(format: BatchFormat, chunks: Buffer[]): string[] {
  const splitter = new RowSplitter(format);
  const rows = chunks.flatMap((chunk) => splitter.push(chunk));
  return [...rows, ...splitter.end()].map((row) => row.toString());
}

/** Every way of cutting `text` in two, and byte by byte. */
function cuts(text: string): Buffer[][] {
  const bytes = Buffer.from(text);
  const ways = [[bytes], [...bytes].map((byte) => Buffer.from([byte]))];
  for (let at = 1; at < bytes.length; at++) ways.push([bytes.subarray(0, at), bytes.subarray(at)]);
  return ways;
}

/** A CSV of awkward cells: quoted commas, doubled quotes, newlines (\n and \r\n) inside quotes, empty cells. */
function awkwardCsv(rows: number, seed: number): string {
  const rng = createRng(seed);
  const cells = [
    '1.5',
    '',
    'plain',
    '"a,b"',
    '"say ""hi"""',
    '"two\nlines"',
    '"crlf\r\ninside"',
    '""',
    '-3e-7',
  ];
  const lines = ['id,x,note'];
  for (let r = 0; r < rows; r++) {
    const pick = () => cells[Math.floor(rng() * cells.length)];
    lines.push(`${r},${pick()},${pick()}`);
  }
  const lineEnd = rng() < 0.5 ? '\n' : '\r\n';
  return `${lines.join(lineEnd)}${lineEnd}`;
}

describe('batch rows', () => {
  it('cuts CSV where csv-parse sees rows end, however the bytes arrive', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const text = awkwardCsv(12, seed);
      const expected = parse(text) as string[][];
      for (const chunks of cuts(text)) {
        const rows = split('csv', chunks);
        assert.deepEqual(
          rows.map((row) => csvCells(Buffer.from(row))),
          expected,
          `seed ${seed}, ${chunks.length} chunks`,
        );
      }
    }
  });

  it('drops empty rows and line ends; keeps a last row without a newline', () => {
    assert.deepEqual(split('csv', [Buffer.from('a,b\r\n\r\n\n1,2\n\n3,4')]), ['a,b', '1,2', '3,4']);
    assert.deepEqual(split('csv', [Buffer.from('')]), []);
  });

  it('a quote that never closes holds the rest of the file in one row, which then reads as an error', () => {
    const rows = split('csv', [Buffer.from('a,b\n1,"2\n3,4\n')]);
    assert.deepEqual(rows, ['a,b', '1,"2\n3,4\n']);
    const cells = csvCells(Buffer.from(rows[1]!));
    assert.equal(typeof cells, 'string');
    assert.match(cells as string, /^not CSV: /);
  });

  it('refuses a row longer than the limit, whether it arrives in one chunk or many', () => {
    const long = Buffer.alloc(MAX_ROW_BYTES + 1, 'x'.charCodeAt(0));
    for (const chunks of [[long], [long.subarray(0, 1000), long.subarray(1000)]]) {
      const splitter = new RowSplitter('csv');
      assert.throws(
        () => {
          for (const chunk of chunks) splitter.push(chunk);
          splitter.push(Buffer.from('\n'));
        },
        (error: unknown) => error instanceof ModelgateError && error.code === 'invalid_input',
      );
    }
  });

  it('cuts JSONL at every newline: quotes inside JSON strings do not pair', () => {
    const text = '{"a":"say \\"hi"}\n{"a":"\\""}\r\n\n{"a":1}';
    for (const chunks of cuts(text)) {
      assert.deepEqual(split('jsonl', chunks), ['{"a":"say \\"hi"}', '{"a":"\\""}', '{"a":1}']);
    }
  });

  it('reads JSONL cells by column name, and says why a line is not a row', () => {
    const columns = ['a', 'b'];
    assert.deepEqual(rowCells('jsonl', columns, Buffer.from('{"b":2,"a":1,"c":3}')), [1, 2]);
    assert.deepEqual(rowCells('jsonl', columns, Buffer.from('{"a":1}')), [1, null]);
    assert.equal(rowCells('jsonl', columns, Buffer.from('{"a":')), 'not a JSON line');
    assert.equal(rowCells('jsonl', columns, Buffer.from('[1,2]')), 'not a JSON object');
    assert.deepEqual(rowCells('csv', columns, Buffer.from('1,"2,5"')), ['1', '2,5']);
  });
});
