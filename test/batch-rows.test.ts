// The rows of a batch file: the splitter must cut a file where csv-parse sees rows end, however the bytes
// arrive, and read their cells as csv-parse does.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text as readText } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import { openLocalArtifactStore } from '../src/artifacts/local.ts';
import { splitInput } from '../src/batch/input.ts';
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

  it('keeps multi-byte characters whole wherever a chunk ends', () => {
    const csv = 'id,name\n1,Zürich\n2,"東京, 日本"\n';
    for (const chunks of cuts(csv)) {
      assert.deepEqual(split('csv', chunks), ['id,name', '1,Zürich', '2,"東京, 日本"']);
    }
    const jsonl = '{"name":"Zürich"}\n{"name":"東京"}\n';
    for (const chunks of cuts(jsonl)) {
      assert.deepEqual(split('jsonl', chunks), ['{"name":"Zürich"}', '{"name":"東京"}']);
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

  it('splitInput reads a byte order mark split across chunks, and skips blank JSONL lines', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'modelgate-rows-'));
    try {
      const artifacts = await openLocalArtifactStore(dir);
      const text = Buffer.from('\ufeff{"a":1}\n  \n{"a":2}\n\t\n');
      const plans: string[][] = [];
      const parts: string[] = [];
      const { rowsTotal } = await splitInput(
        Readable.from([text.subarray(0, 1), text.subarray(1, 2), text.subarray(2)]),
        'jsonl',
        {
          artifacts,
          maxBytes: 1000,
          partRows: 10,
          planFor: (columns) => {
            plans.push(columns);
            return {
              inputFormat: 'jsonl',
              outputFormat: 'jsonl',
              columns,
              inputs: [{ name: 'x', features: [0] }],
              passthrough: [],
            };
          },
          onPart: async (part) => void parts.push(await readText(await artifacts.read(part.input))),
        },
      );
      assert.deepEqual(plans, [['a']]);
      assert.equal(rowsTotal, 2);
      assert.deepEqual(parts, ['{"a":1}\n{"a":2}\n']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
