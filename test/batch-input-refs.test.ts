// Batch input named by a URL instead of uploaded, over HTTP on an in-process platform (on each database
// driver) that reads from a real S3-compatible server (s3rver on 127.0.0.1) and from a temporary folder: a
// reference runs to the same output as an upload of the same file; references outside the allowed folders
// (by prefix, by `..`, by symlink), missing objects and files, and malformed requests are refused before
// any work starts.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../src/artifacts/s3.ts';
import { assertProblem, deployModel, waitForBatch } from './helpers/api.ts';
import { testDatabases } from './helpers/databases.ts';
import { waitUntil } from './helpers/processes.ts';
import { buildIdentityModel, startTestPlatform, type TestPlatform } from './helpers/platform.ts';
import { startTestS3Server, type TestS3Server } from './helpers/s3.ts';

/** `rows` rows of `id,a,b,c,d` with distinct values; the ids are not numbers, so a-d feed the model. */
function csvOf(rows: number): string {
  const lines = Array.from({ length: rows }, (_, r) => `r${r + 1},${r / 4},${r % 7},${-r},0.5`);
  return `id,a,b,c,d\n${lines.join('\n')}\n`;
}
const CSV = csvOf(25);
const JSONL = '{"id": "a", "p": 1, "q": 2, "r": 3, "s": 4}\n{"id": "b", "p": 5, "q": 6, "r": 7, "s": 8}\n';

/**
 * Waits until no descriptor of this process (where the platform runs) is open on `path`; fails after 5 s.
 * A file left open is closed by the garbage collector soon enough to pass this, with a warning the suite
 * looks for at the end.
 */
async function waitClosed(path: string): Promise<void> {
  await waitUntil(
    `${path} to be closed`,
    async () => {
      const descriptors = await readdir('/proc/self/fd');
      return Promise.all(descriptors.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
    },
    (targets) => !targets.includes(path),
    { timeoutMs: 5000, intervalMs: 20 },
  );
}

for (const { name: driver } of testDatabases()) {
  describe(`batch input by reference (${driver})`, () => {
    let s3: TestS3Server;
    let s3Client: S3Client;
    /** The allowed folder on this machine, and one beside it that is not allowed. */
    let root: string;
    let inDir: string;
    let outsideDir: string;
    let tp: TestPlatform;
    let key: string;
    const postgres = driver === 'postgres';
    const savedEnv = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };

    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.message);
    const putObject = (objectKey: string, body: string) =>
      s3Client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: objectKey, Body: body }));

    before(async () => {
      process.on('warning', onWarning);
      s3 = await startTestS3Server();
      s3Client = createS3Client({
        endpoint: s3.endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: s3.credentials,
      });
      await putObject('incoming/rows.csv', CSV);
      await putObject('incoming/rows.data', JSONL);
      await putObject('incoming-other/rows.csv', CSV);
      await putObject('private/secret.csv', CSV);

      root = await mkdtemp(join(tmpdir(), 'modelgate-batch-refs-'));
      inDir = join(root, 'in');
      outsideDir = join(root, 'outside');
      await mkdir(inDir);
      await mkdir(outsideDir);
      await mkdir(join(inDir, 'folder.csv'));
      await writeFile(join(inDir, 'rows.csv'), CSV);
      await writeFile(join(inDir, 'rows.txt'), CSV);
      await writeFile(join(outsideDir, 'secret.csv'), CSV);
      await symlink(join(inDir, 'rows.csv'), join(inDir, 'alias.csv'));
      await symlink(join(outsideDir, 'secret.csv'), join(inDir, 'escape.csv'));
      await symlink(outsideDir, join(inDir, 'linked'));

      // The server's S3 credentials come from the AWS SDK's own chain, as an operator would set them.
      process.env.AWS_ACCESS_KEY_ID = s3.credentials.accessKeyId;
      process.env.AWS_SECRET_ACCESS_KEY = s3.credentials.secretAccessKey;
      tp = await startTestPlatform({
        postgres,
        config: {
          jobPollMs: 200,
          batchInputUrls: [`s3://${s3.bucket}/incoming/`, `file://${inDir}/`],
          s3Endpoint: s3.endpoint,
          s3Region: 'us-east-1',
          s3ForcePathStyle: true,
        },
      });
      key = tp.adminKey;
      await deployModel(tp, key, 'identity', buildIdentityModel(4));
    });

    after(async () => {
      await tp?.close();
      s3Client?.destroy();
      await s3?.close();
      await rm(root, { recursive: true, force: true });
      for (const [name, value] of [
        ['AWS_ACCESS_KEY_ID', savedEnv.id],
        ['AWS_SECRET_ACCESS_KEY', savedEnv.secret],
      ] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
      // Closed handles leave the list in the close phase of the event loop, which a timer waits past.
      await new Promise((resolve) => setTimeout(resolve, 0));
      process.off('warning', onWarning);
      const sockets = process.getActiveResourcesInfo().filter((resource) => resource.startsWith('TCP'));
      assert.deepEqual(sockets, [], 'no socket may outlive the tests');
      const leftOpen = warnings.filter((message) => /on garbage collection/.test(message));
      assert.deepEqual(
        leftOpen,
        [],
        'every file opened was closed by the server, not by the garbage collector',
      );
    });

    const submitReference = (body: unknown, query = '', on: TestPlatform = tp) =>
      on.call('POST', `/v1/models/identity/batches${query}`, { key: on.adminKey, json: body });
    const submitRaw = (body: string, contentType = 'application/json') =>
      tp.call('POST', '/v1/models/identity/batches', {
        key,
        body,
        headers: { 'content-type': contentType },
      });
    const upload = (text: string, query = '') =>
      tp.call('POST', `/v1/models/identity/batches${query}`, {
        key,
        body: text,
        headers: { 'content-type': 'text/csv' },
      });
    const waitFinished = (id: string) => waitForBatch(tp, key, id);
    const outputOf = async (id: string) => {
      const response = await tp.call('GET', `/v1/batches/${id}/output`, { key });
      assert.equal(response.status, 200);
      return response.body as string;
    };
    /** Submits, waits, and returns the output of a run that must succeed with `rows` rows. */
    const runToOutput = async (submitted: Awaited<ReturnType<TestPlatform['call']>>, rows: number) => {
      assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
      assert.equal(submitted.body.rows_total, rows);
      const done = await waitFinished(submitted.body.id);
      assert.deepEqual([done.status, done.rows_done, done.rows_failed], ['succeeded', rows, 0]);
      return outputOf(done.id);
    };

    it('an object in an allowed bucket folder runs to the output an upload of the same file gets', async () => {
      const uploaded = await runToOutput(await upload(CSV, '?part_rows=10&passthrough=id'), 25);
      const before = s3.requestsFor('incoming/rows.csv').length;
      const submitted = await submitReference(
        { input: `s3://${s3.bucket}/incoming/rows.csv` },
        '?part_rows=10&passthrough=id',
      );
      assert.equal(submitted.body.parts_total, 3);
      assert.equal(submitted.headers.get('location'), `/v1/batches/${submitted.body.id}`);
      const output = await runToOutput(submitted, 25);
      assert.equal(output, uploaded);
      assert.equal(output.split('\n')[0], 'id,y_0,y_1,y_2,y_3');
      assert.equal(output.split('\n')[2], 'r2,0.25,1,-1,0.5');
      const reads = s3.requestsFor('incoming/rows.csv').slice(before);
      assert.deepEqual(
        reads.map(({ method }) => method),
        ['GET'],
        'read with one GetObject',
      );
    });

    it('the client submits a reference; "format" is for a name that does not say it', async () => {
      const input = `s3://${s3.bucket}/incoming/rows.data`;
      assertProblem(await submitReference({ input }), 400, 'bad_request');
      const submitted = await tp
        .client()
        .submitBatchReference('identity', { input, format: 'jsonl' }, { output: 'csv' });
      assert.equal(submitted.rows_total, 2);
      const done = await waitFinished(submitted.id);
      assert.equal(done.status, 'succeeded');
      assert.equal(await outputOf(done.id), 'id,y_0,y_1,y_2,y_3\na,1,2,3,4\nb,5,6,7,8\n');
    });

    it('a file in an allowed folder runs, also through a symlink that stays inside it', async () => {
      const uploaded = await runToOutput(await upload(CSV), 25);
      assert.equal(
        await runToOutput(await submitReference({ input: `file://${inDir}/rows.csv` }), 25),
        uploaded,
      );
      assert.equal(
        await runToOutput(await submitReference({ input: `file://${inDir}/alias.csv` }), 25),
        uploaded,
      );
      const asCsv = await submitReference({ input: `file://${inDir}/rows.txt`, format: 'csv' });
      assert.equal(await runToOutput(asCsv, 25), uploaded);
    });

    it('refuses what it may not or cannot read, and malformed requests, before any work starts', async () => {
      const listed = async () => (await tp.call('GET', '/v1/batches', { key })).body.batches.length as number;
      const batchesBefore = await listed();
      const refused = async (input: string, status: number, code: string) => {
        const response = await submitReference({ input });
        assertProblem(response, status, code);
        assert.equal(response.body.input, input, 'the problem names the input');
      };

      // Outside the allowed folders: another folder, a sibling whose name starts alike, another bucket.
      await refused(`s3://${s3.bucket}/private/secret.csv`, 403, 'batch_input_not_allowed');
      await refused(`s3://${s3.bucket}/incoming-other/rows.csv`, 403, 'batch_input_not_allowed');
      await refused('s3://other-bucket/incoming/rows.csv', 403, 'batch_input_not_allowed');
      await refused(`s3://${s3.bucket}/incoming/../private/secret.csv`, 400, 'bad_request');
      await refused(`file://${inDir}/../outside/secret.csv`, 403, 'batch_input_not_allowed');
      await refused(`file://${inDir}/%2e%2e/outside/secret.csv`, 403, 'batch_input_not_allowed');
      await refused(`file://${inDir}/escape.csv`, 403, 'batch_input_not_allowed');
      await refused(`file://${inDir}/linked/secret.csv`, 403, 'batch_input_not_allowed');
      // A missing object or file in an allowed folder is 404; outside them, nothing is told about it.
      await refused(`s3://${s3.bucket}/incoming/missing.csv`, 404, 'batch_input_not_found');
      await refused(`file://${inDir}/missing.csv`, 404, 'batch_input_not_found');
      await refused(`file://${outsideDir}/missing.csv`, 403, 'batch_input_not_allowed');
      // Not a URL this server reads, not a file, no format.
      await refused('https://example.com/rows.csv', 400, 'bad_request');
      await refused('s3://Not_A_Bucket/rows.csv', 400, 'bad_request');
      await refused(`s3://${s3.bucket}`, 400, 'bad_request');
      await refused(`file://server${inDir}/rows.csv`, 400, 'bad_request');
      await refused(`file://${inDir}/folder.csv`, 400, 'bad_request');
      await refused(`file://${inDir}/rows.txt`, 400, 'bad_request');

      // The JSON body itself.
      assertProblem(await submitRaw('a,b,c,d\n1,2,3,4\n', 'text/plain'), 415, 'unsupported_media_type');
      assertProblem(await submitRaw('{"input": '), 400, 'invalid_json');
      assertProblem(await submitRaw(''), 400, 'invalid_json');
      const input = `s3://${s3.bucket}/incoming/rows.csv`;
      assertProblem(await submitReference({ input, extra: 1 }), 400, 'bad_request');
      assertProblem(await submitReference({ input, format: 'xml' }), 400, 'bad_request');
      assertProblem(await submitReference({ format: 'csv' }), 400, 'bad_request');
      assertProblem(await submitReference([input]), 400, 'bad_request');
      assertProblem(
        await submitReference({ input: `${input}?${'x'.repeat(20_000)}` }),
        413,
        'payload_too_large',
      );
      // Query options and the model are checked as for uploads, before the object is opened.
      assertProblem(await submitReference({ input }, '?output=xml'), 400, 'bad_request');
      const readsBefore = s3.requestsFor('incoming/rows.csv').length;
      const unknownModel = await tp.call('POST', '/v1/models/nope/batches', { key, json: { input } });
      assertProblem(unknownModel, 404, 'model_not_found');
      assert.equal(s3.requestsFor('incoming/rows.csv').length, readsBefore, 'the object was not opened');
      const file = join(inDir, 'rows.csv');
      const unknownModelFile = await tp.call('POST', '/v1/models/nope/batches', {
        key,
        json: { input: `file://${file}` },
      });
      assertProblem(unknownModelFile, 404, 'model_not_found');
      await waitClosed(file);

      assert.equal(await listed(), batchesBefore, 'no batch was created');
    });

    it('with no batchInputUrls, every reference is refused and uploads still run', async () => {
      const closed = await startTestPlatform({
        postgres,
        config: { s3Endpoint: s3.endpoint, s3Region: 'us-east-1', s3ForcePathStyle: true },
      });
      try {
        await deployModel(closed, closed.adminKey, 'identity', buildIdentityModel(4));
        for (const input of [`s3://${s3.bucket}/incoming/rows.csv`, `file://${inDir}/rows.csv`]) {
          assertProblem(await submitReference({ input }, '', closed), 403, 'batch_input_not_allowed');
        }
        const uploaded = await closed.call('POST', '/v1/models/identity/batches', {
          key: closed.adminKey,
          body: CSV,
          headers: { 'content-type': 'text/csv' },
        });
        assert.equal(uploaded.status, 202, JSON.stringify(uploaded.body));
      } finally {
        await closed.close();
      }
    });
  });
}
