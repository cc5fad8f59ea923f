// The artifact store conformance suite: staging, commit, read, localPath, remove and their failures, run
// identically on the local folder and on a real S3-compatible server (s3rver, started here on 127.0.0.1);
// then what only the S3 store does: multipart uploads, no second upload of stored content, one download
// per cached copy, verified downloads, and a whole platform serving a model and running a batch from the
// bucket.
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { openLocalArtifactStore } from '../src/artifacts/local.ts';
import { openS3ArtifactStore } from '../src/artifacts/s3.ts';
import { storeContent, type ArtifactStore } from '../src/artifacts/store.ts';
import { isModelgateError } from '../src/errors.ts';
import { deployModel, waitForBatch } from './helpers/api.ts';
import { takeDueArtifactRemovals } from '../src/store/artifacts.ts';
import { buildIdentityModel, startTestPlatform } from './helpers/platform.ts';
import { startTestS3Server, type TestS3Server } from './helpers/s3.ts';

const MiB = 1024 * 1024;
/** The S3 store's default part size: objects above it go up as multipart uploads. */
const PART_SIZE_BYTES = 8 * MiB;
/** Above two part sizes: three parts, the last one short. */
const LARGE_BYTES = 21 * MiB;

interface OpenedStore {
  store: ArtifactStore;
  /** Digests of the artifacts the backend holds. */
  storedDigests(): Promise<string[]>;
  /** Files in the store's local staging folder: none once every stage has been committed or discarded. */
  stagingFiles(): Promise<string[]>;
}

interface Backend {
  name: string;
  /** A store of its own (a fresh folder, or a fresh prefix and cache folder) for one test. */
  open(): Promise<OpenedStore>;
}

const sha256Of = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const readAll = async (stream: Readable) => Buffer.concat((await stream.toArray()) as Buffer[]);
/** A stream of `bytes` in chunks of `chunkBytes`, as an upload arrives. */
const streamOf = (bytes: Buffer, chunkBytes = 64 * 1024) =>
  Readable.from(
    Array.from({ length: Math.ceil(bytes.length / chunkBytes) }, (_, i) =>
      bytes.subarray(i * chunkBytes, (i + 1) * chunkBytes),
    ),
  );

function modelgateError(code: string) {
  return (error: unknown) => {
    assert.ok(isModelgateError(error), `expected a ModelgateError, got ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  };
}

const temporaryDirs: string[] = [];
const openedStores: ArtifactStore[] = [];
let s3: TestS3Server;
let s3Client: S3Client;

async function temporaryDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'modelgate-artifacts-'));
  temporaryDirs.push(dir);
  return dir;
}

/** A store on the S3 server under `prefix`, with a cache folder of its own unless given one. */
async function openS3Store(prefix = `suite/${randomUUID()}`, cacheDirOrNew?: string) {
  const cacheDir = cacheDirOrNew ?? (await temporaryDir());
  const store = await openS3ArtifactStore({
    url: `s3://${s3.bucket}/${prefix}`,
    cacheDir,
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: s3.credentials,
  });
  openedStores.push(store);
  return { store, prefix, cacheDir };
}

const backends: Backend[] = [
  {
    name: 'local folder',
    async open() {
      const root = await temporaryDir();
      const store = await openLocalArtifactStore(root);
      openedStores.push(store);
      return {
        store,
        storedDigests: () => readdir(join(root, 'sha256')),
        stagingFiles: () => readdir(join(root, 'tmp')),
      };
    },
  },
  {
    name: 'S3 (s3rver)',
    async open() {
      const { store, prefix, cacheDir } = await openS3Store();
      return {
        store,
        async storedDigests() {
          const keys = await s3.listKeys(`${prefix}/`);
          for (const key of keys) assert.match(key, new RegExp(`^${prefix}/sha256/[0-9a-f]{64}$`));
          return keys.map((key) => key.slice(`${prefix}/sha256/`.length));
        },
        stagingFiles: () => readdir(join(cacheDir, 'tmp')),
      };
    },
  },
];

before(async () => {
  s3 = await startTestS3Server();
  s3Client = new S3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: s3.credentials,
  });
});

after(async () => {
  await Promise.all(openedStores.map((store) => store.close()));
  s3Client?.destroy();
  await s3?.close();
  await Promise.all(temporaryDirs.map((dir) => rm(dir, { recursive: true, force: true })));
  // Closed handles leave the list in the close phase of the event loop, which a timer waits past.
  await new Promise((resolve) => setTimeout(resolve, 0));
  const sockets = process.getActiveResourcesInfo().filter((resource) => resource.startsWith('TCP'));
  assert.deepEqual(sockets, [], 'no socket or server may outlive the tests');
});

for (const backend of backends) {
  describe(`artifact store on ${backend.name}`, () => {
    test('stage then commit: read and localPath give the same bytes, addressed by their SHA-256', async () => {
      const { store, storedDigests, stagingFiles } = await backend.open();
      const content = randomBytes(300 * 1024);
      const staged = await store.stage(streamOf(content), content.length);
      assert.equal(staged.sha256, sha256Of(content));
      assert.equal(staged.sizeBytes, content.length);
      assert.deepEqual(
        await readFile(staged.path),
        content,
        'the staged file can be inspected before commit',
      );
      assert.deepEqual(await storedDigests(), [], 'nothing is visible before commit');

      await staged.commit();
      assert.deepEqual(await storedDigests(), [staged.sha256]);
      assert.deepEqual(await stagingFiles(), []);
      assert.deepEqual(await readAll(await store.read(staged.sha256)), content);
      assert.deepEqual(await readFile(await store.localPath(staged.sha256)), content);
    });

    test('empty content is stored and read back', async () => {
      const { store } = await backend.open();
      const sha256 = await storeContent(store, Buffer.alloc(0));
      assert.equal(sha256, sha256Of(Buffer.alloc(0)));
      assert.equal((await readAll(await store.read(sha256))).length, 0);
      assert.equal((await readFile(await store.localPath(sha256))).length, 0);
    });

    test('equal content is stored once, and committing again is harmless', async () => {
      const { store, storedDigests, stagingFiles } = await backend.open();
      const content = randomBytes(10_000);
      const first = await store.stage(streamOf(content), content.length);
      const second = await store.stage(streamOf(content, 1000), content.length);
      assert.equal(first.sha256, second.sha256);
      await first.commit();
      await second.commit();
      await first.commit();
      assert.deepEqual(await storedDigests(), [first.sha256]);
      assert.deepEqual(await stagingFiles(), []);
      assert.deepEqual(await readAll(await store.read(first.sha256)), content);
    });

    test('beyond maxBytes the stage fails with payload_too_large and leaves nothing', async () => {
      const { store, storedDigests, stagingFiles } = await backend.open();
      const content = randomBytes(100_000);
      await assert.rejects(store.stage(streamOf(content, 4096), 50_000), modelgateError('payload_too_large'));
      assert.deepEqual(await stagingFiles(), []);
      assert.deepEqual(await storedDigests(), []);
      const exact = await store.stage(streamOf(content), content.length);
      assert.equal(exact.sizeBytes, content.length, 'exactly maxBytes is allowed');
      await exact.discard();
    });

    test('a source that fails part-way fails the stage with its error and leaves nothing', async () => {
      const { store, stagingFiles } = await backend.open();
      async function* failing() {
        yield randomBytes(64 * 1024);
        throw new Error('client went away');
      }
      await assert.rejects(store.stage(Readable.from(failing()), MiB), /client went away/);
      assert.deepEqual(await stagingFiles(), []);
    });

    test('discard leaves nothing, and the content stays unknown', async () => {
      const { store, storedDigests, stagingFiles } = await backend.open();
      const staged = await store.stage(streamOf(randomBytes(5000)), 5000);
      await staged.discard();
      assert.deepEqual(await stagingFiles(), []);
      assert.deepEqual(await storedDigests(), []);
      await assert.rejects(store.read(staged.sha256), modelgateError('not_found'));
    });

    test('read and localPath of a missing artifact fail with not_found', async () => {
      const { store } = await backend.open();
      const missing = sha256Of(randomBytes(16));
      await assert.rejects(store.read(missing), modelgateError('not_found'));
      await assert.rejects(store.localPath(missing), modelgateError('not_found'));
    });

    test('a malformed digest is refused before it names a file or key', async () => {
      const { store } = await backend.open();
      for (const digest of ['../../etc/passwd', 'ABC', sha256Of(Buffer.from('x')).toUpperCase()]) {
        await assert.rejects(store.read(digest), /not a sha256 digest/);
        await assert.rejects(store.localPath(digest), /not a sha256 digest/);
        await assert.rejects(store.remove(digest), /not a sha256 digest/);
      }
    });

    test('remove deletes the artifact and its local copy; removing it again is harmless', async () => {
      const { store, storedDigests } = await backend.open();
      const content = randomBytes(2000);
      const sha256 = await storeContent(store, content);
      const kept = await storeContent(store, randomBytes(2000));
      const path = await store.localPath(sha256);
      await store.remove(sha256);
      assert.deepEqual(await storedDigests(), [kept]);
      await assert.rejects(store.read(sha256), modelgateError('not_found'));
      await assert.rejects(store.localPath(sha256), modelgateError('not_found'));
      await assert.rejects(readFile(path), { code: 'ENOENT' }, 'no local copy is left');
      await store.remove(sha256);
    });

    test(`a large object (${LARGE_BYTES / MiB} MiB) goes in and comes out whole`, async () => {
      const { store, storedDigests, stagingFiles } = await backend.open();
      const content = randomBytes(LARGE_BYTES);
      const staged = await store.stage(streamOf(content, MiB), content.length);
      await staged.commit();
      assert.deepEqual(await storedDigests(), [sha256Of(content)]);
      assert.deepEqual(await stagingFiles(), []);
      assert.equal(sha256Of(await readAll(await store.read(staged.sha256))), staged.sha256);
      assert.equal(sha256Of(await readFile(await store.localPath(staged.sha256))), staged.sha256);
    });

    test('concurrent stages of different content are each stored whole', async () => {
      const { store, storedDigests, stagingFiles } = await backend.open();
      const contents = Array.from({ length: 8 }, (_, i) => randomBytes(50_000 + i * 7919));
      const digests = await Promise.all(
        contents.map(async (content) => {
          const staged = await store.stage(streamOf(content, 4096), content.length);
          await staged.commit();
          return staged.sha256;
        }),
      );
      assert.deepEqual(digests, contents.map(sha256Of));
      assert.deepEqual((await storedDigests()).sort(), [...digests].sort());
      assert.deepEqual(await stagingFiles(), []);
      const readBack = await Promise.all(digests.map(async (sha256) => readAll(await store.read(sha256))));
      assert.deepEqual(readBack, contents);
    });
  });
}

describe('artifact store on S3: what only it does', () => {
  const countOf = (requests: { method: string; url: string }[], method: string, query: RegExp) =>
    requests.filter((request) => request.method === method && query.test(request.url)).length;

  test('objects above the part size go up as a multipart upload, smaller ones in one PutObject', async () => {
    const { store, prefix } = await openS3Store();
    const large = randomBytes(LARGE_BYTES);
    const small = randomBytes(PART_SIZE_BYTES - 1);
    const largeSha256 = await storeContent(store, large);
    const smallSha256 = await storeContent(store, small);

    const largeRequests = s3.requestsFor(`${prefix}/sha256/${largeSha256}`);
    assert.equal(countOf(largeRequests, 'POST', /\?uploads\b/), 1, 'CreateMultipartUpload');
    assert.equal(countOf(largeRequests, 'PUT', /[?&]partNumber=/), Math.ceil(LARGE_BYTES / PART_SIZE_BYTES));
    assert.equal(countOf(largeRequests, 'POST', /[?&]uploadId=/), 1, 'CompleteMultipartUpload');
    assert.equal(countOf(largeRequests, 'PUT', /x-id=PutObject/), 0);

    const smallRequests = s3.requestsFor(`${prefix}/sha256/${smallSha256}`);
    assert.equal(countOf(smallRequests, 'PUT', /x-id=PutObject/), 1);
    assert.equal(countOf(smallRequests, 'POST', /\?uploads\b/), 0);
    // s3rver gives a multipart object the MD5 of its whole content as ETag, where AWS S3 would give
    // "<md5 of the parts' md5s>-3": its ETag cannot show the parts, its request log does.
  });

  test('content already in the bucket is not uploaded again', async () => {
    const { store, prefix } = await openS3Store();
    const content = randomBytes(4096);
    const sha256 = await storeContent(store, content);
    await storeContent(store, content);
    const requests = s3.requestsFor(`${prefix}/sha256/${sha256}`);
    assert.equal(countOf(requests, 'HEAD', /.*/), 2, 'each commit asks whether the object exists');
    assert.equal(countOf(requests, 'PUT', /.*/), 1, 'one upload');
  });

  test('localPath downloads once, shared by concurrent callers, and reuses the cached copy', async () => {
    const { store, prefix, cacheDir } = await openS3Store();
    const content = randomBytes(MiB);
    const sha256 = await storeContent(store, content);
    const paths = await Promise.all([
      store.localPath(sha256),
      store.localPath(sha256),
      store.localPath(sha256),
    ]);
    assert.deepEqual(new Set(paths), new Set([join(cacheDir, 'sha256', sha256)]));
    assert.deepEqual(await store.localPath(sha256), paths[0]);
    assert.deepEqual(await readFile(paths[0]!), content);
    assert.equal(countOf(s3.requestsFor(`${prefix}/sha256/${sha256}`), 'GET', /.*/), 1, 'one download');

    // Another process (a fresh store on the same cache folder) finds the copy too.
    const { store: again } = await openS3Store(prefix, cacheDir);
    assert.equal(await again.localPath(sha256), paths[0]);
    assert.equal(countOf(s3.requestsFor(`${prefix}/sha256/${sha256}`), 'GET', /.*/), 1);
  });

  test('a downloaded object whose content does not match its name is refused and not cached', async () => {
    const { store, prefix, cacheDir } = await openS3Store();
    const claimed = sha256Of(Buffer.from('what the name says'));
    await s3Client.send(
      new PutObjectCommand({ Bucket: s3.bucket, Key: `${prefix}/sha256/${claimed}`, Body: 'something else' }),
    );
    await assert.rejects(store.localPath(claimed), modelgateError('internal'));
    assert.deepEqual(await readdir(join(cacheDir, 'sha256')), []);
    assert.deepEqual(await readdir(join(cacheDir, 'tmp')), []);
  });

  test('a bucket root works as well as a prefix', async () => {
    const { store } = await openS3Store('');
    const sha256 = await storeContent(store, 'at the root');
    assert.equal(countOf(s3.requestsFor(`sha256/${sha256}`), 'PUT', /x-id=PutObject/), 1);
    assert.equal((await readAll(await store.read(sha256))).toString(), 'at the root');
    await store.remove(sha256);
  });

  test('a platform configured with artifactsUrl serves a model and runs a batch from the bucket', async () => {
    // Credentials through the AWS SDK's own chain, as an operator would set them.
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID = s3.credentials.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = s3.credentials.secretAccessKey;
    const prefix = `platform/${randomUUID()}`;
    const tp = await startTestPlatform({
      config: {
        artifactsUrl: `s3://${s3.bucket}/${prefix}`,
        s3Endpoint: s3.endpoint,
        s3Region: 'us-east-1',
        s3ForcePathStyle: true,
      },
    });
    try {
      const model = buildIdentityModel(3);
      await deployModel(tp, tp.adminKey, 'identity', model);
      const sha256 = sha256Of(Buffer.from(model));
      assert.deepEqual(await s3.listKeys(`${prefix}/`), [`${prefix}/sha256/${sha256}`]);
      const response = await tp.call('POST', '/v1/models/identity/predict', {
        key: tp.adminKey,
        json: { instances: [[1, 2, 3]] },
      });
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assert.deepEqual(response.body.outputs.y, [[1, 2, 3]]);

      // A batch of 3 parts: each part's rows, output and errors go through the bucket; once joined and the
      // parts' objects removed, the bucket holds the model, the batch's output and its errors.
      const rows = Array.from({ length: 25 }, (_, r) => `${r},${r},${r * 2},${r * 3}`);
      const submitted = await tp.call('POST', '/v1/models/identity/batches?part_rows=10&features=a,b,c', {
        key: tp.adminKey,
        body: `id,a,b,c\n${rows.join('\n')}\n`,
        headers: { 'content-type': 'text/csv' },
      });
      assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
      const done = await waitForBatch(tp, tp.adminKey, submitted.body.id);
      assert.deepEqual([done.status, done.rows_done, done.parts_total], ['succeeded', 25, 3]);
      const output = await fetch(`${tp.url}/v1/batches/${done.id}/output`, {
        headers: { authorization: `Bearer ${tp.adminKey}` },
      });
      // The identity model: the pass-through id, then a, b and c again.
      assert.equal(await output.text(), `id,y_0,y_1,y_2\n${rows.join('\n')}\n`);
      const [files] = await tp.platform.db.query<{ output: string; errors: string }>(
        `SELECT output_sha256 AS output, errors_sha256 AS errors FROM batches WHERE id = $1`,
        [done.id],
      );
      // Once the parts' objects are due for removal, as housekeeping would take them after the grace period.
      const { db, artifacts } = tp.platform;
      await db.query(`UPDATE artifact_removals SET due_at = now()`);
      for (const hash of await takeDueArtifactRemovals(db)) await artifacts.remove(hash);
      assert.deepEqual(
        (await s3.listKeys(`${prefix}/`)).sort(),
        [sha256, files!.output, files!.errors].map((hash) => `${prefix}/sha256/${hash}`).sort(),
      );
    } finally {
      await tp.close();
      for (const [name, value] of [
        ['AWS_ACCESS_KEY_ID', saved.id],
        ['AWS_SECRET_ACCESS_KEY', saved.secret],
      ] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });
});
