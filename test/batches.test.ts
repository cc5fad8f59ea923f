// Batch runs over HTTP on an in-process platform (API + worker), on PGlite and, with TEST_DATABASE_URL, on
// Postgres: a CSV or JSONL file in, one output row per input row in input order (pass-through columns,
// then predictions equal to /predict's), row errors with their row numbers, progress, the refusals
// (format, size, columns, model, tenant, scope), cancel, list, and a part run twice storing the same output.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { text as readText } from 'node:stream/consumers';
import { parse } from 'csv-parse/sync';
import { storeContent } from '../src/artifacts/store.ts';
import { finishBatchIfDone } from '../src/batch/finish.ts';
import type { ModelgateError } from '../src/errors.ts';
import {
  completeBatchUpload,
  insertBatch,
  newBatchId,
  purgeFinishedBatches,
  queueBatchParts,
  selectDoneBatchIds,
} from '../src/store/batches.ts';
import { buildModel } from '../examples/onnx-writer.ts';
import { assertProblem, deployModel, sampleValue, waitForBatch } from './helpers/api.ts';
import { waitUntil } from './helpers/processes.ts';
import { testDatabaseUrl } from './helpers/databases.ts';
import {
  buildIdentityModel,
  buildSlowModel,
  buildSquareModel,
  removeDueArtifacts,
  startTestPlatform,
  type TestPlatform,
} from './helpers/platform.ts';

/** y = x and the row's mean: two outputs, one of width 4 and one of one value a row. */
const identityAndMeanModel = () =>
  buildModel({
    name: 'identity-mean',
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 4] }],
    outputs: [
      { name: 'y', type: 'float32', shape: ['batch', 4] },
      { name: 'mean', type: 'float32', shape: ['batch'] },
    ],
    nodes: [
      { opType: 'Identity', inputs: ['x'], outputs: ['y'] },
      {
        opType: 'ReduceMean',
        inputs: ['x'],
        outputs: ['mean'],
        attributes: { axes: { ints: [1] }, keepdims: { int: 0 } },
      },
    ],
  });

/** The address of empty content, which many objects share. */
const EMPTY_SHA256 = createHash('sha256').digest('hex');

/** z = x + y, on inputs of `width` values a row (none: one value a row, shape [batch]). */
const addModel = (width?: number) => {
  const shape = width === undefined ? ['batch'] : ['batch', width];
  return buildModel({
    name: 'add',
    inputs: [
      { name: 'x', type: 'float32', shape },
      { name: 'y', type: 'float32', shape },
    ],
    outputs: [{ name: 'z', type: 'float32', shape }],
    nodes: [{ opType: 'Add', inputs: ['x', 'y'], outputs: ['z'] }],
  });
};

/** `rows` rows of `id,a,b,c,d,note` with distinct values. */
function csvOf(rows: number): { text: string; values: number[][] } {
  const values = Array.from({ length: rows }, (_, r) => [r / 4, r % 7, -r, 0.5]);
  const lines = values.map((row, r) => `${r + 1},${row.join(',')},note ${r + 1}`);
  return { text: `id,a,b,c,d,note\n${lines.join('\n')}\n`, values };
}

const databases = ['pglite', ...(testDatabaseUrl() ? ['postgres'] : [])];

for (const database of databases) {
  describe(`batch runs on ${database}`, () => {
    let tp: TestPlatform;
    let key: string;
    let otherTenantKey: string;
    let readKey: string;

    before(async () => {
      tp = await startTestPlatform({
        postgres: database === 'postgres',
        // One inference thread: a model then runs two batches at a time (two in flight per thread), which
        // the full-queue test below counts on.
        config: {
          jobPollMs: 200,
          drainGraceMs: 1000,
          batchUploadLimitBytes: 8 * 1024 * 1024,
          inferenceThreads: 1,
        },
      });
      key = tp.adminKey;
      await deployModel(tp, key, 'means', identityAndMeanModel());
      await deployModel(tp, key, 'identity', buildIdentityModel(4));
      await deployModel(tp, key, 'slow', buildSlowModel());
      await deployModel(tp, key, 'square', buildSquareModel());
      await deployModel(tp, key, 'add2', addModel(2));
      await deployModel(tp, key, 'add', addModel());
      const client = tp.client();
      otherTenantKey = (await client.createTenant('other')).admin_key.key;
      readKey = (await client.createKey({ scopes: ['read'] })).key;
    });
    after(() => tp.close());

    const submit = (model: string, body: string, query = '', type = 'text/csv', as = key) =>
      tp.call('POST', `/v1/models/${model}/batches${query}`, {
        key: as,
        body,
        headers: { 'content-type': type },
      });
    /** A file of the batch as the bytes say it, whatever its format. */
    const fileText = async (id: string, which: 'output' | 'errors') => {
      const response = await fetch(`${tp.url}/v1/batches/${id}/${which}`, {
        headers: { authorization: `Bearer ${key}` },
      });
      assert.equal(response.status, 200);
      return { type: response.headers.get('content-type') ?? '', text: await response.text() };
    };
    const waitFinished = (id: string) => waitForBatch(tp, key, id);
    const metricsText = async () => (await tp.call('GET', '/metrics')).body as string;
    /** Submits a CSV to `identity` in parts of 10 rows: `first` at once, `rest` once sendTheRest() is called. */
    const uploadInTwo = (first: string, rest: string) => {
      let sendTheRest!: () => void;
      const theRest = new Promise<void>((resolve) => (sendTheRest = resolve));
      const encoder = new TextEncoder();
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(encoder.encode(first));
          await theRest;
          controller.enqueue(encoder.encode(rest));
          controller.close();
        },
      });
      const answer = fetch(`${tp.url}/v1/models/identity/batches?part_rows=10`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'text/csv' },
        body,
        duplex: 'half',
      } as RequestInit);
      return { answer, sendTheRest };
    };
    it('a CSV runs in parts; the output has every row in input order with /predict’s predictions', async () => {
      const { text, values } = csvOf(230);
      const submitted = await submit('means', text, '?features=a,b,c,d&part_rows=50');
      assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
      assert.match(submitted.body.id, /^bat_[a-z2-7]+$/);
      assert.equal(submitted.headers.get('location'), `/v1/batches/${submitted.body.id}`);
      assert.equal(submitted.body.rows_total, 230);
      assert.equal(submitted.body.parts_total, 5);

      const done = await waitFinished(submitted.body.id);
      assert.equal(done.status, 'succeeded');
      assert.deepEqual([done.rows_done, done.rows_failed, done.parts_done], [230, 0, 5]);
      assert.ok(done.rows_per_second > 0 && done.started_at && done.finished_at);
      assert.equal(done.eta_seconds, null);

      const output = await fileText(done.id, 'output');
      assert.match(output.type, /^text\/csv/);
      const [header, ...rows] = parse(output.text) as string[][];
      assert.deepEqual(header, ['id', 'note', 'y_0', 'y_1', 'y_2', 'y_3', 'mean']);
      const predicted = await tp.call('POST', '/v1/models/means/predict', {
        key,
        json: { instances: values },
      });
      assert.equal(rows!.length, 230);
      rows!.forEach((row, r) => {
        assert.deepEqual(row.slice(0, 2), [String(r + 1), `note ${r + 1}`]);
        assert.deepEqual(row.slice(2, 6).map(Number), predicted.body.outputs.y[r]);
        assert.equal(Number(row[6]), predicted.body.outputs.mean[r]);
      });
      assert.equal((await fileText(done.id, 'errors')).text, 'row,error\n');
    });

    it('rows that cannot be used go to the error file with their number; the rest still run', async () => {
      const text = 'id,a,b,c,d\n1,1,2,3,4\n2,1,,3,4\n3,1,x,3,4\n4,1,2,3\n5,5,6,7,8\n';
      const submitted = await submit('identity', text, '?features=a,b,c,d&passthrough=id');
      assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
      const done = await waitFinished(submitted.body.id);
      assert.equal(done.status, 'succeeded');
      assert.deepEqual([done.rows_done, done.rows_failed], [2, 3]);
      assert.equal((await fileText(done.id, 'output')).text, 'id,y_0,y_1,y_2,y_3\n1,1,2,3,4\n5,5,6,7,8\n');
      assert.deepEqual(parse((await fileText(done.id, 'errors')).text), [
        ['row', 'error'],
        ['2', 'column "b": missing value'],
        ['3', 'column "b": not a number: "x"'],
        ['4', 'expected 5 columns, got 4'],
      ]);
    });

    it('quoted cells keep their commas, quotes and newlines, across parts; CRLF and a BOM are read', async () => {
      const text =
        '\ufeffid,a,b,c,d,note\r\n' +
        '1,1,2,3,4,"two\r\nlines, one comma"\r\n' +
        '2,"5",6,7,8,"say ""hi"""\r\n' +
        '\r\n' +
        '3,1,2,"3,5",4,plain\r\n';
      const submitted = await submit('identity', text, '?features=a,b,c,d&part_rows=1');
      assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
      assert.deepEqual([submitted.body.rows_total, submitted.body.parts_total], [3, 3]);
      const done = await waitFinished(submitted.body.id);
      assert.deepEqual([done.status, done.rows_done, done.rows_failed], ['succeeded', 2, 1]);
      assert.deepEqual(parse((await fileText(done.id, 'output')).text), [
        ['id', 'note', 'y_0', 'y_1', 'y_2', 'y_3'],
        ['1', 'two\r\nlines, one comma', '1', '2', '3', '4'],
        ['2', 'say "hi"', '5', '6', '7', '8'],
      ]);
      assert.deepEqual(parse((await fileText(done.id, 'errors')).text), [
        ['row', 'error'],
        ['3', 'column "c": not a number: "3,5"'],
      ]);
    });

    it('a quote where CSV allows none refuses the file, naming the row; its queued parts are canceled', async () => {
      const { db } = tp.platform;
      const startedAt = new Date();
      // Read as CSV quotes pair, `5" screen` would take every row after it into row 2.
      const text = 'id,a,b,c,d\n1,1,2,3,4\n2,5" screen,6,7,8\n3,1,2,3,4\n4,1,2,3,4\n';
      const refused = await submit('identity', text, '?features=a,b,c,d&part_rows=1');
      assertProblem(refused, 400, 'invalid_input');
      assert.match(refused.body.detail, /^row 2 is not CSV: /);
      const batches = await db.query<{ canceled: boolean; statuses: string[] }>(
        `SELECT b.canceled_at IS NOT NULL AS canceled, array_agg(j.status) AS statuses FROM batches b
         JOIN jobs j ON j.batch_id = b.id WHERE b.created_at >= $1 GROUP BY b.id`,
        [startedAt],
      );
      assert.equal(batches.length, 1);
      assert.equal(batches[0]!.canceled, true);
      assert.ok(batches[0]!.statuses.every((status) => ['canceled', 'succeeded'].includes(status)));
    });

    it('a model with several inputs takes the columns named for each, or those named after the inputs', async () => {
      const mapped = await submit(
        'add2',
        'id,p,q,r,s\n1,1,2,10,20\n2,3,4,30,x\n',
        `?inputs=${encodeURIComponent('x:p,q;y:r,s')}`,
      );
      assert.equal(mapped.status, 202, JSON.stringify(mapped.body));
      const done = await waitFinished(mapped.body.id);
      assert.deepEqual([done.status, done.rows_done, done.rows_failed], ['succeeded', 1, 1]);
      assert.equal((await fileText(done.id, 'output')).text, 'id,z_0,z_1\n1,11,22\n');
      assert.equal(
        (await fileText(done.id, 'errors')).text,
        'row,error\n2,"column ""s"": not a number: ""x"""\n',
      );

      const named = await submit(
        'add',
        '{"y": 2, "note": "n", "x": 1}\n{"x": 5, "y": 6, "note": "m"}\n',
        '',
        'application/jsonl',
      );
      assert.equal(named.status, 202, JSON.stringify(named.body));
      const namedDone = await waitFinished(named.body.id);
      assert.equal(
        (await fileText(namedDone.id, 'output')).text,
        '{"note":"n","z":3}\n{"note":"m","z":11}\n',
      );

      const file = 'id,p,q\n1,2,3\n';
      for (const [query, code] of [
        ['', 'invalid_input'],
        ['?features=p,q', 'invalid_input'],
        [`?inputs=${encodeURIComponent('x:p;y:q;z:id')}`, 'invalid_input'],
        [`?inputs=${encodeURIComponent('x:p')}`, 'invalid_input'],
        [`?inputs=${encodeURIComponent('x:p;y:nope')}`, 'invalid_input'],
        [`?inputs=${encodeURIComponent('x:p,;y:q')}`, 'bad_request'],
        [`?inputs=x&features=p`, 'bad_request'],
      ] as const) {
        assertProblem(await submit('add', file, query), 400, code);
      }
    });

    it('JSONL in gives JSONL out by default, CSV out on request; a broken line is a row error', async () => {
      const text =
        '{"id": "a", "p": 1, "q": 2, "r": 3, "s": 4}\nnonsense\n{"id": "b", "p": 5, "q": 6, "r": 7, "s": 8}\n';
      const asJsonl = await submit('identity', text, '', 'application/jsonl');
      assert.equal(asJsonl.status, 202, JSON.stringify(asJsonl.body));
      const done = await waitFinished(asJsonl.body.id);
      assert.deepEqual([done.status, done.rows_done, done.rows_failed], ['succeeded', 2, 1]);
      const output = await fileText(done.id, 'output');
      assert.match(output.type, /^application\/jsonl/);
      assert.equal(
        output.text,
        '{"id":"a","y_0":1,"y_1":2,"y_2":3,"y_3":4}\n{"id":"b","y_0":5,"y_1":6,"y_2":7,"y_3":8}\n',
      );
      assert.equal((await fileText(done.id, 'errors')).text, '{"row":2,"error":"not a JSON line"}\n');

      const asCsv = await submit('identity', text, '?output=csv', 'application/x-ndjson');
      const csvDone = await waitFinished(asCsv.body.id);
      assert.equal((await fileText(csvDone.id, 'output')).text, 'id,y_0,y_1,y_2,y_3\na,1,2,3,4\nb,5,6,7,8\n');
    });

    it('refuses what cannot run before any work starts, with clear problems', async () => {
      assertProblem(
        await submit('identity', 'a,b,c,d\n1,2,3,4\n', '', 'text/plain'),
        415,
        'unsupported_media_type',
      );
      // JSON names an input in storage: {"input": "s3://…"} (test/batch-input-refs.test.ts).
      assertProblem(await submit('identity', '{"a": 1}', '', 'application/json'), 400, 'bad_request');
      assertProblem(await submit('identity', '"\u0000\u0001 not csv', ''), 400, 'invalid_input');
      assertProblem(await submit('identity', ''), 400, 'invalid_input');
      assertProblem(await submit('identity', 'a,b,c,d\n'), 400, 'invalid_input');
      assertProblem(await submit('identity', '[1, 2]\n', '', 'application/jsonl'), 400, 'invalid_input');
      const tooFew = await submit('identity', 'a,b,c\n1,2,3\n');
      assertProblem(tooFew, 400, 'invalid_input');
      assert.deepEqual(tooFew.body.features, ['a', 'b', 'c']);
      assertProblem(
        await submit('identity', 'a,b,c,d\n1,2,3,4\n', '?features=a,b,c,e'),
        400,
        'invalid_input',
      );
      assertProblem(await submit('identity', 'a,b,c,d\n1,2,3,4\n', '?output=xml'), 400, 'bad_request');
      assertProblem(await submit('nope', 'a,b,c,d\n1,2,3,4\n'), 404, 'model_not_found');
      const tooLarge = csvOf(400_000).text;
      assert.ok(tooLarge.length > 8 * 1024 * 1024);
      assertProblem(await submit('identity', tooLarge, '?features=a,b,c,d'), 413, 'payload_too_large');
      assertProblem(
        await submit('identity', 'a,b,c,d\n1,2,3,4\n', '', 'text/csv', readKey),
        403,
        'forbidden',
      );
    });

    it('parts run while the file is still arriving; a file refused part-way cancels what it queued', async () => {
      const { db } = tp.platform;
      const startedAt = new Date();
      // The first part's 10 rows, and a row of the next.
      const { answer, sendTheRest } = uploadInTwo(
        `a,b,c,d\n${'1,2,3,4\n'.repeat(10)}5,6,7,8\n`,
        '5,6,7,8\n'.repeat(4),
      );
      await waitUntil(
        'the first part to run while the file arrives',
        async () =>
          (
            await db.query<{ status: string }>(
              `SELECT j.status FROM jobs j JOIN batches b ON b.id = j.batch_id
               WHERE b.uploaded_at IS NULL AND b.created_at >= $1 AND j.batch_part = 0`,
              [startedAt],
            )
          )[0]?.status,
        (status) => status === 'succeeded',
        { timeoutMs: 15_000 },
      );
      sendTheRest();
      const response = await answer;
      const submitted = (await response.json()) as { id: string; rows_total: number; parts_total: number };
      assert.equal(response.status, 202, JSON.stringify(submitted));
      assert.deepEqual([submitted.rows_total, submitted.parts_total], [15, 2]);
      assert.equal((await waitFinished(submitted.id)).status, 'succeeded');
      const output = await fileText(submitted.id, 'output');
      assert.equal(output.text, `y_0,y_1,y_2,y_3\n${'1,2,3,4\n'.repeat(10)}${'5,6,7,8\n'.repeat(5)}`);

      const tooLarge = await submit('identity', csvOf(400_000).text, '?features=a,b,c,d&part_rows=1000');
      assertProblem(tooLarge, 413, 'payload_too_large');
      const [refused] = await db.query<{ id: string; canceled: boolean; unfinished: number; parts: number }>(
        `SELECT b.id, b.canceled_at IS NOT NULL AS canceled,
           (SELECT count(*)::int FROM jobs WHERE batch_id = b.id AND status IN ('queued', 'running')) AS unfinished,
           (SELECT count(*)::int FROM jobs WHERE batch_id = b.id) AS parts
         FROM batches b ORDER BY b.created_at DESC LIMIT 1`,
      );
      assert.ok(refused!.parts > 0, 'parts were queued before the limit was reached');
      assert.deepEqual([refused!.canceled, refused!.unfinished], [true, 0]);
      const shown = await tp.call('GET', `/v1/batches/${refused!.id}`, { key });
      assert.equal(shown.body.status, 'canceled');
    });

    it('a batch canceled while its file arrives queues no more parts; the upload is refused', async () => {
      const { db } = tp.platform;
      const startedAt = new Date();
      const { answer, sendTheRest } = uploadInTwo(
        `a,b,c,d\n${'1,2,3,4\n'.repeat(10)}5,6,7,8\n`,
        '5,6,7,8\n'.repeat(25),
      );
      const [queued] = await waitUntil(
        'the first part to be queued',
        () =>
          db.query<{ id: string }>(
            `SELECT b.id FROM batches b JOIN jobs j ON j.batch_id = b.id WHERE b.created_at >= $1`,
            [startedAt],
          ),
        (rows) => rows.length > 0,
        { timeoutMs: 15_000 },
      );
      const batchId = queued!.id;
      const canceled = await tp.call('POST', `/v1/batches/${batchId}/cancel`, { key });
      assert.equal(canceled.body.status, 'canceled');
      sendTheRest();
      const refused = await answer;
      assertProblem(
        { status: refused.status, headers: refused.headers, body: await refused.json() },
        409,
        'conflict',
      );
      const parts = await db.query<{ status: string }>(`SELECT status FROM jobs WHERE batch_id = $1`, [
        batchId,
      ]);
      assert.equal(parts.length, 1, 'the parts of the rest of the file were not queued');
      assert.ok(['canceled', 'succeeded'].includes(parts[0]!.status));
      const finished = await tp.call('GET', `/v1/batches/${batchId}`, { key });
      assert.equal(finished.body.status, 'canceled');
      assert.ok(finished.body.finished_at);
    });

    it('a part that fails for good fails the batch; the output keeps the rows of the parts that ran', async () => {
      await tp.client().updateModelSettings('square', { jobMaxAttempts: 1 });
      // Parts of 3 rows: the square model runs the first; the second (2 rows) fails in the runtime.
      const submitted = await submit('square', 'a,b,c\n1,0,0\n0,1,0\n0,0,1\n1,1,1\n2,2,2\n', '?part_rows=3');
      assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
      const done = await waitFinished(submitted.body.id);
      assert.equal(done.status, 'failed');
      assert.deepEqual([done.parts_done, done.rows_done], [1, 3]);
      assert.equal(done.error.code, 'inference_failed');
      assert.equal((await fileText(done.id, 'output')).text, 'y_0,y_1,y_2\n1,0,0\n0,1,0\n0,0,1\n');
    });

    it('an upload the client abandons part-way is canceled with the parts it queued', async () => {
      const { db } = tp.platform;
      const startedAt = new Date();
      const aborter = new AbortController();
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          // A first part and the start of the next, and nothing more: the client goes away instead.
          controller.enqueue(new TextEncoder().encode(`a,b,c,d\n${'1,2,3,4\n'.repeat(11)}`));
          await new Promise((resolve) => aborter.signal.addEventListener('abort', resolve));
        },
      });
      const answer = fetch(`${tp.url}/v1/models/identity/batches?part_rows=10`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'text/csv' },
        body,
        duplex: 'half',
        signal: aborter.signal,
      } as RequestInit).catch((error: unknown) => error);
      const uploading = () =>
        db.query<{ id: string; canceled: boolean }>(
          `SELECT id, canceled_at IS NOT NULL AS canceled FROM batches
           WHERE uploaded_at IS NULL AND created_at >= $1`,
          [startedAt],
        );
      const [batch] = await waitUntil('the first part to be queued', uploading, (rows) => rows.length > 0, {
        timeoutMs: 15_000,
      });
      aborter.abort();
      assert.ok((await answer) instanceof Error);
      await waitUntil(
        `batch ${batch!.id} to be canceled after the client left`,
        async () =>
          (
            await db.query<{ canceled: boolean }>(
              `SELECT canceled_at IS NOT NULL AS canceled FROM batches WHERE id = $1`,
              [batch!.id],
            )
          )[0]!.canceled,
        (canceled) => canceled,
        { timeoutMs: 15_000 },
      );
      const shown = await tp.call('GET', `/v1/batches/${batch!.id}`, { key });
      assert.equal(shown.body.status, 'canceled');
    });

    it("another tenant's batch is 404 everywhere; read keys read", async () => {
      const submitted = await submit('identity', 'a,b,c,d\n1,2,3,4\n');
      await waitFinished(submitted.body.id);
      for (const path of ['', '/output', '/errors']) {
        assertProblem(
          await tp.call('GET', `/v1/batches/${submitted.body.id}${path}`, { key: otherTenantKey }),
          404,
          'batch_not_found',
        );
        assert.equal(
          (await tp.call('GET', `/v1/batches/${submitted.body.id}${path}`, { key: readKey })).status,
          200,
        );
      }
      assertProblem(
        await tp.call('POST', `/v1/batches/${submitted.body.id}/cancel`, { key: otherTenantKey }),
        404,
        'batch_not_found',
      );
      const theirs = await tp.call('GET', '/v1/batches', { key: otherTenantKey });
      assert.deepEqual(theirs.body.batches, []);
      const jobs = await tp.call('GET', '/v1/jobs?limit=1000', { key });
      assert.ok(jobs.body.jobs.every((job: { id: string }) => !job.id.includes(submitted.body.id)));
    });

    it('a part waits for room in a full model queue; a chunk past the job timeout fails its part', async () => {
      // 1,000 rows of the slow model, one part: 4 chunks of 256 rows in flight, where the model runs two
      // chunks at a time (two in flight on its one inference thread) and queues 1 more: the fourth finds
      // the queue full.
      const header = Array.from({ length: 1024 }, (_, i) => `c${i}`).join(',');
      const rows = Array.from({ length: 1000 }, (_, r) =>
        Array.from({ length: 1024 }, () => r % 3).join(','),
      );
      const file = `${header}\n${rows.join('\n')}\n`;
      const deployWith = async (name: string, json: unknown) => {
        await deployModel(tp, key, name, buildSlowModel());
        const patched = await tp.call('PATCH', `/v1/models/${name}`, { key, json: { settings: json } });
        assert.equal(patched.status, 200, JSON.stringify(patched.body));
      };
      await deployWith('slow-queue', { maxQueueSize: 1, maxBatchSize: 256, jobMaxAttempts: 1 });
      const queued = await submit('slow-queue', file, '?part_rows=1000');
      assert.equal(queued.status, 202, JSON.stringify(queued.body));
      // Nothing but this part calls slow-queue: what its series show is the part's doing.
      const labels = { model: 'slow-queue', version: '1' };
      await waitUntil(
        'the queue of slow-queue to hold its one request while the part runs',
        async () => sampleValue(await metricsText(), 'modelgate_queue_depth', labels),
        (depth) => depth === 1,
      );
      const done = await waitFinished(queued.body.id);
      assert.deepEqual(
        [done.status, done.rows_done, done.rows_failed],
        ['succeeded', 1000, 0],
        JSON.stringify(done),
      );
      const metrics = await metricsText();
      // A chunk was refused for the full queue at least once, and yet every chunk ran, once, in the part's
      // one attempt: it waited for room rather than failing the part.
      const refused = sampleValue(metrics, 'modelgate_inference_requests_total', {
        ...labels,
        outcome: 'queue_full',
      });
      assert.ok(refused !== undefined && refused >= 1, `queue_full refusals: ${refused}`);
      assert.equal(
        sampleValue(metrics, 'modelgate_inference_requests_total', { ...labels, outcome: 'ok' }),
        4,
      );
      assert.equal(
        sampleValue(metrics, 'modelgate_job_attempts_total', { model: 'slow-queue', outcome: 'succeeded' }),
        1,
      );
      const predictions = Array.from({ length: 1000 }, (_, r) => `${r % 3}\n`).join('');
      assert.equal((await fileText(done.id, 'output')).text, `y\n${predictions}`);

      await deployWith('slow-late', { jobTimeoutMs: 100, jobMaxAttempts: 1 });
      const late = await submit('slow-late', file, '?part_rows=1000');
      const failed = await waitFinished(late.body.id);
      assert.equal(failed.status, 'failed');
      assert.equal(failed.error.code, 'timeout');
    });

    it('cancel stops the parts not yet run; the output of an unfinished batch is 409', async () => {
      // 4 parts of 400 rows, run in order: each takes the slow model about 1.7 s. Every fourth value of row
      // r is r, so its prediction is r / 4 (exactly, in FP32) and the output shows which rows it holds.
      const header = Array.from({ length: 1024 }, (_, i) => `c${i}`).join(',');
      const rows = Array.from({ length: 1600 }, (_, r) =>
        Array.from({ length: 1024 }, (_, k) => (k % 4 === 0 ? r : 0)).join(','),
      );
      const submitted = await submit('slow', `${header}\n${rows.join('\n')}\n`, '?part_rows=400');
      assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
      const batchId: string = submitted.body.id;
      const { db } = tp.platform;
      // Once the worker has started on the first part, the parts it has not claimed yet are held back (due
      // in an hour, as after a long backoff): which parts ran and which did not is settled before the cancel,
      // whatever the machine's speed.
      const held = await waitUntil(
        'the first part to start',
        () =>
          db.query<{ part: number }>(
            `UPDATE jobs SET run_after = now() + interval '1 hour'
             WHERE batch_id = $1 AND status = 'queued'
               AND EXISTS (SELECT 1 FROM jobs WHERE batch_id = $1 AND batch_part = 0 AND started_at IS NOT NULL)
             RETURNING batch_part AS part`,
            [batchId],
          ),
        (rows) => rows.length > 0,
      );
      // Parts are claimed in order: those held back are the last ones, and at least the first one ran.
      const ran = 4 - held.length;
      assert.ok(ran >= 1);
      assert.deepEqual(
        held.map((row) => row.part).sort((x, y) => x - y),
        [0, 1, 2, 3].slice(ran),
      );
      const partsOf = () =>
        db.query<{ part: number; status: string; attempts: number; started: boolean }>(
          `SELECT batch_part AS part, status, attempts, started_at IS NOT NULL AS started
           FROM jobs WHERE batch_id = $1 ORDER BY batch_part`,
          [batchId],
        );
      await waitUntil('the parts not held back to finish', partsOf, (parts) =>
        parts.every((part) => part.status !== 'running'),
      );
      assertProblem(
        await tp.call('GET', `/v1/batches/${batchId}/output`, { key }),
        409,
        'batch_not_finished',
      );

      const canceled = await tp.call('POST', `/v1/batches/${batchId}/cancel`, { key });
      assert.equal(canceled.status, 200, JSON.stringify(canceled.body));
      assert.deepEqual(
        [canceled.body.status, canceled.body.parts_done, canceled.body.rows_done, canceled.body.parts_total],
        ['canceled', ran, ran * 400, 4],
      );
      // Due again: were they still queued, the worker would claim them (the oldest due) before the part of
      // the next batch, which runs only after them (one part at a time).
      await db.query(`UPDATE jobs SET run_after = now() WHERE batch_id = $1`, [batchId]);
      const next = await submit('identity', 'a,b,c,d\n1,2,3,4\n');
      assert.equal((await waitFinished(next.body.id)).status, 'succeeded');
      assert.deepEqual(await partsOf(), [
        ...[0, 1, 2, 3]
          .slice(0, ran)
          .map((part) => ({ part, status: 'succeeded', attempts: 1, started: true })),
        ...[0, 1, 2, 3].slice(ran).map((part) => ({ part, status: 'canceled', attempts: 0, started: false })),
      ]);

      // The cancel joined what the finished parts gave: their rows, in order, and no others.
      const shown = await tp.call('GET', `/v1/batches/${batchId}`, { key });
      assert.deepEqual(
        [shown.body.status, shown.body.parts_done, shown.body.rows_done, shown.body.rows_failed],
        ['canceled', ran, ran * 400, 0],
      );
      assert.ok(shown.body.finished_at);
      const predictions = Array.from({ length: ran * 400 }, (_, r) => `${r / 4}\n`).join('');
      assert.equal((await fileText(batchId, 'output')).text, `y\n${predictions}`);
    });

    it('lists newest first, page by page', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push((await submit('identity', 'a,b,c,d\n1,2,3,4\n')).body.id);
      const first = await tp.call('GET', '/v1/batches?limit=2', { key });
      assert.deepEqual(
        first.body.batches.map((batch: { id: string }) => batch.id),
        [ids[2], ids[1]],
      );
      const second = await tp.call('GET', `/v1/batches?limit=2&cursor=${first.body.next_cursor}`, { key });
      assert.equal(second.body.batches[0].id, ids[0]);
      assertProblem(await tp.call('GET', '/v1/batches?limit=0', { key }), 400, 'bad_request');
    });

    it('a part that runs twice stores the same output object, and the output has its rows once', async () => {
      // 3 parts of 400 rows, one at a time: each takes the slow model about 1.7 s.
      const header = Array.from({ length: 1024 }, (_, i) => `c${i}`).join(',');
      const rows = Array.from({ length: 1200 }, (_, r) =>
        Array.from({ length: 1024 }, () => r % 10).join(','),
      );
      const submitted = await submit('slow', `${header}\n${rows.join('\n')}\n`, '?part_rows=400');
      const { db } = tp.platform;
      const partZero = async () =>
        (
          await db.query<{ status: string; attempts: number; result: { output: string } | null }>(
            `SELECT status, attempts, result FROM jobs WHERE batch_id = $1 AND batch_part = 0`,
            [submitted.body.id],
          )
        )[0]!;
      const first = await waitUntil('part 0 to succeed', partZero, (part) => part.status === 'succeeded');
      // As if the worker that ran it had died before recording it, while the next part runs: it runs again.
      await db.query(
        `UPDATE jobs SET status = 'queued', result = NULL, finished_at = NULL WHERE batch_id = $1 AND batch_part = 0`,
        [submitted.body.id],
      );
      const done = await waitFinished(submitted.body.id);
      assert.equal(done.status, 'succeeded');
      const second = await partZero();
      assert.equal(second.attempts, 2);
      assert.equal(second.result!.output, first.result!.output);
      const output = (await fileText(done.id, 'output')).text.trim().split('\n');
      assert.equal(output.length, 1201);
      assert.equal(new Set(output).size, 11, 'the header and one line for each of the 10 values');
    });

    it('a finished batch has its output and errors in one object each; the parts’ objects go after a grace period', async () => {
      const { text } = csvOf(30);
      const submitted = await submit('identity', `${text}31,1,x,3,4,bad\n`, '?features=a,b,c,d&part_rows=10');
      const done = await waitFinished(submitted.body.id);
      assert.deepEqual(
        [done.status, done.rows_done, done.rows_failed, done.parts_total],
        ['succeeded', 30, 1, 4],
      );
      const { db, artifacts } = tp.platform;
      const [batch] = await db.query<{ output: string; errors: string }>(
        `SELECT output_sha256 AS output, errors_sha256 AS errors FROM batches WHERE id = $1`,
        [done.id],
      );
      assert.equal(
        await readText(await artifacts.read(batch!.output)),
        (await fileText(done.id, 'output')).text,
      );
      assert.equal(
        await readText(await artifacts.read(batch!.errors)),
        'row,error\n31,"column ""b"": not a number: ""x"""\n',
      );
      const parts = await db.query<{ input: string; output: string; errors: string | null }>(
        `SELECT input->'batchPart'->>'input' AS input, result->>'output' AS output, result->>'errors' AS errors
         FROM jobs WHERE batch_id = $1`,
        [done.id],
      );
      assert.equal(parts.length, 4);
      // The parts' objects stay for the grace period (another batch may have just stored the same), then go.
      // A part without row errors stores none. Empty content is one object that many share (the errors file
      // of a JSONL batch without any): it stays while anything uses it.
      const partObjects = parts
        .flatMap((part) => [part.input, part.output, part.errors])
        .filter((sha256): sha256 is string => sha256 !== null && sha256 !== EMPTY_SHA256);
      for (const sha256 of partObjects) await readText(await artifacts.read(sha256));
      const scheduled = await db.query<{ sha256: string }>(
        `SELECT sha256 FROM artifact_removals WHERE sha256 = ANY($1) AND due_at > now() + interval '50 minutes'`,
        [partObjects],
      );
      assert.deepEqual(new Set(scheduled.map((row) => row.sha256)), new Set(partObjects));
      await removeDueArtifacts(tp.platform, partObjects);
      for (const sha256 of partObjects) {
        await assert.rejects(
          artifacts.read(sha256),
          (error: unknown) => (error as ModelgateError).code === 'not_found',
        );
      }
    });

    it('a batch done but not finished is finished from its parts; finished batches go after the retention', async () => {
      const { db, artifacts } = tp.platform;
      // Two parts that ran, as a worker that died before finishing the batch left them.
      const plan = {
        inputFormat: 'csv',
        outputFormat: 'csv',
        columns: ['id', 'a'],
        inputs: [{ name: 'x', features: [1] }],
        passthrough: [0],
      };
      const [tenant] = await db.query<{ id: string }>(`SELECT id FROM tenants WHERE name = 'default'`);
      const batch = {
        id: newBatchId(),
        tenantId: tenant!.id,
        modelName: 'identity',
        modelVersion: 1,
        plan,
        maxAttempts: 1,
        timeoutMs: 1000,
      };
      await insertBatch(db, batch);
      const parts = [];
      for (const [index, rows] of [
        ['1,1\n', '1,10\n'],
        ['2,2\n', ''],
      ].entries()) {
        const input = await storeContent(artifacts, rows[0]!);
        const partInput = { batchPart: { input, firstRow: index + 1, rows: 1, batchId: batch.id, plan } };
        const result = {
          output: await storeContent(artifacts, rows[1]!),
          errors: await storeContent(artifacts, index === 1 ? '2,no\n' : ''),
          rows: 1 - index,
          failed: index,
          predictionColumns: index === 0 ? ['y'] : [],
        };
        parts.push(input, result.output, result.errors);
        // In one transaction: this process's worker must not see the part queued and run it.
        await db.transaction(async (tx) => {
          await queueBatchParts(tx, batch, index, [JSON.stringify(partInput)]);
          await tx.query(
            `UPDATE jobs SET status = 'succeeded', result = $2, finished_at = now() WHERE batch_id = $1 AND batch_part = $3`,
            [batch.id, JSON.stringify(result), index],
          );
        });
      }
      assert.deepEqual(await selectDoneBatchIds(db), []);
      await completeBatchUpload(db, batch.id, 2, 2);
      assert.deepEqual(await selectDoneBatchIds(db), [batch.id]);
      const deps = { db, artifacts };
      const [once, twice] = await Promise.all([
        finishBatchIfDone(deps, batch.id),
        finishBatchIfDone(deps, batch.id),
      ]);
      assert.deepEqual([once, twice].sort(), [false, true]);
      assert.deepEqual(await selectDoneBatchIds(db), []);
      assert.equal((await fileText(batch.id, 'output')).text, 'id,y\n1,10\n');
      assert.equal((await fileText(batch.id, 'errors')).text, 'row,error\n2,no\n');
      const [files] = await db.query<{ output: string; errors: string }>(
        `SELECT output_sha256 AS output, errors_sha256 AS errors FROM batches WHERE id = $1`,
        [batch.id],
      );
      const partObjects = parts.filter(
        (sha256) => sha256 !== files!.output && sha256 !== files!.errors && sha256 !== EMPTY_SHA256,
      );
      await removeDueArtifacts(tp.platform, partObjects);
      for (const sha256 of partObjects) {
        await assert.rejects(
          artifacts.read(sha256),
          (error: unknown) => (error as ModelgateError).code === 'not_found',
        );
      }

      await purgeFinishedBatches(db, 3600);
      assert.equal((await tp.call('GET', `/v1/batches/${batch.id}`, { key })).status, 200);
      await db.query(`UPDATE batches SET finished_at = now() - interval '2 hours' WHERE id = $1`, [batch.id]);
      await purgeFinishedBatches(db, 3600);
      assertProblem(await tp.call('GET', `/v1/batches/${batch.id}`, { key }), 404, 'batch_not_found');
      assert.deepEqual(await db.query(`SELECT id FROM jobs WHERE batch_id = $1`, [batch.id]), []);
      // Its files stay for the grace period, then go.
      await readText(await artifacts.read(files!.output));
      await removeDueArtifacts(tp.platform, [files!.output, files!.errors]);
      await assert.rejects(artifacts.read(files!.output));
      await assert.rejects(artifacts.read(files!.errors));
    });
  });
}
