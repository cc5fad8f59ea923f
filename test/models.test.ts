// The model registry over real HTTP: uploads (raw body and multipart) become numbered versions whose
// signature is read from the model, refused uploads leave nothing behind, settings, deletion and the
// artifacts it frees, and concurrent uploads. The happy path runs on PGlite and on Postgres.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildModel } from '../examples/onnx-writer.ts';
import { assertProblem, deployModel, uploadMultipart, uploadRaw } from './helpers/api.ts';
import { testDatabaseUrl } from './helpers/databases.ts';
import {
  buildIdentityModel,
  buildTwoInputModel,
  removeDueArtifacts,
  startTestPlatform,
  type TestPlatform,
} from './helpers/platform.ts';

/** Small enough that a padded model exceeds it, large enough for every other model of this file. */
const UPLOAD_LIMIT_BYTES = 4096;

/** y = -x, FP32 [batch, width]: same signature as the identity model, different answers. */
function buildNegateModel(width = 3): Uint8Array {
  return buildModel({
    name: 'negate',
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', width] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['batch', width] }],
    nodes: [{ opType: 'Neg', inputs: ['x'], outputs: ['y'] }],
  });
}

/** A valid identity model padded with a doc string to more than `bytes`. */
function buildPaddedModel(bytes: number): Uint8Array {
  return buildModel({
    name: 'padded',
    docString: 'p'.repeat(bytes),
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 3] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['batch', 3] }],
    nodes: [{ opType: 'Identity', inputs: ['x'], outputs: ['y'] }],
  });
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const versionsOf = (body: { versions: { version: number }[] }) => body.versions.map((v) => v.version);

/** Predicts one row through `path` and returns the answer's version and output. */
async function predictRow(tp: TestPlatform, key: string, path: string, row: number[]) {
  const response = await tp.call('POST', path, { key, json: { instances: [row] } });
  assert.equal(response.status, 200, `${path}: ${JSON.stringify(response.body)}`);
  return { version: response.body.version as number, y: response.body.outputs.y[0] as number[] };
}

/**
 * Upload by raw body and by multipart, versions 1, 2, 3, the signature, the newest version serving unless
 * one is named, five concurrent uploads, merged settings, and deletion: run on each database driver.
 */
async function exerciseRegistry(tp: TestPlatform, key: string, name: string): Promise<void> {
  const identity = buildIdentityModel(3);
  const negate = buildNegateModel(3);

  const first = await uploadRaw(tp, key, name, identity);
  assert.equal(first.status, 201, JSON.stringify(first.body));
  assert.equal(first.body.deployed_version, 1);
  assert.equal(first.headers.get('location'), `/v1/models/${name}/versions/1`);
  assert.deepEqual(first.body.inputs, [{ name: 'x', datatype: 'FP32', shape: [-1, 3] }]);
  assert.deepEqual(first.body.outputs, [{ name: 'y', datatype: 'FP32', shape: [-1, 3] }]);
  const second = await uploadMultipart(tp, key, name, negate);
  assert.equal(second.status, 201, JSON.stringify(second.body));
  assert.equal(second.body.deployed_version, 2);

  const model = await tp.call('GET', `/v1/models/${name}`, { key });
  assert.equal(model.status, 200);
  assert.equal(model.body.latest_version, 2);
  assert.deepEqual(versionsOf(model.body), [1, 2]);
  assert.deepEqual(
    model.body.versions.map((v: { sha256: string; size_bytes: number }) => [v.sha256, v.size_bytes]),
    [
      [sha256(identity), identity.length],
      [sha256(negate), negate.length],
    ],
  );
  const listed = await tp.call('GET', '/v1/models', { key });
  assert.deepEqual(
    listed.body.models.find((m: { name: string }) => m.name === name),
    model.body,
  );
  const v2 = await tp.call('GET', `/v2/models/${name}`, { key });
  assert.equal(v2.status, 200);
  assert.equal(v2.body.name, name);
  assert.deepEqual(v2.body.inputs, [{ name: 'x', datatype: 'FP32', shape: [-1, 3] }]);
  assert.deepEqual(v2.body.outputs, [{ name: 'y', datatype: 'FP32', shape: [-1, 3] }]);

  // The newest version (negate) serves; a request that names version 1 still reaches the identity.
  assert.deepEqual(await predictRow(tp, key, `/v1/models/${name}/predict`, [1, -2, 3]), {
    version: 2,
    y: [-1, 2, -3],
  });
  assert.deepEqual(await predictRow(tp, key, `/v1/models/${name}/versions/1/predict`, [1, -2, 3]), {
    version: 1,
    y: [1, -2, 3],
  });
  const inferV1 = await tp.call('POST', `/v2/models/${name}/versions/1/infer`, {
    key,
    json: { inputs: [{ name: 'x', shape: [1, 3], datatype: 'FP32', data: [1, -2, 3] }] },
  });
  assert.equal(inferV1.body.model_version, '1');
  assert.deepEqual(inferV1.body.outputs[0].data, [1, -2, 3]);

  // Five at once: each gets a number of its own, 3 to 7, and the version holds that upload's bytes.
  const uploads = [1, 2, 3, 4, 5].map((width) => buildIdentityModel(width));
  const answers = await Promise.all(uploads.map((bytes) => uploadRaw(tp, key, name, bytes)));
  for (const answer of answers) assert.equal(answer.status, 201, JSON.stringify(answer.body));
  const numbers = answers.map((answer) => answer.body.deployed_version as number);
  assert.deepEqual([...numbers].sort(), [3, 4, 5, 6, 7]);
  const afterConcurrent = await tp.call('GET', `/v1/models/${name}`, { key });
  assert.deepEqual(versionsOf(afterConcurrent.body), [1, 2, 3, 4, 5, 6, 7]);
  uploads.forEach((bytes, i) => {
    const stored = afterConcurrent.body.versions.find((v: { version: number }) => v.version === numbers[i]);
    assert.equal(stored.sha256, sha256(bytes), `version ${numbers[i]} holds upload ${i}`);
  });

  // PATCH sets the settings it names and keeps the others.
  const patched = await tp.call('PATCH', `/v1/models/${name}`, {
    key,
    json: { settings: { maxBatchSize: 8, batching: false } },
  });
  assert.equal(patched.status, 200, JSON.stringify(patched.body));
  const repatched = await tp.call('PATCH', `/v1/models/${name}`, {
    key,
    json: { settings: { timeoutMs: 500 } },
  });
  assert.deepEqual(repatched.body.settings, { maxBatchSize: 8, batching: false, timeoutMs: 500 });

  const deleted = await tp.call('DELETE', `/v1/models/${name}/versions/7`, { key });
  assert.equal(deleted.status, 204);
  assert.deepEqual(
    versionsOf((await tp.call('GET', `/v1/models/${name}`, { key })).body),
    [1, 2, 3, 4, 5, 6],
  );
  assert.equal((await tp.call('DELETE', `/v1/models/${name}`, { key })).status, 204);
  assertProblem(await tp.call('GET', `/v1/models/${name}`, { key }), 404, 'model_not_found');
  assertProblem(
    await tp.call('POST', `/v1/models/${name}/predict`, { key, json: { instances: [[1, 2, 3]] } }),
    404,
    'model_not_found',
  );
}

describe('model registry (PGlite)', () => {
  let tp: TestPlatform;
  let key: string;
  let dataDir: string;
  const blobsDir = () => join(dataDir, 'artifacts', 'sha256');
  const stagingDir = () => join(dataDir, 'artifacts', 'tmp');
  const storedArtifacts = async () => (await readdir(blobsDir())).sort();

  /** Asserts that `attempt` changed nothing: the artifacts, the staging folder, the model's versions. */
  async function assertNothingStored(
    name: string,
    expectedVersions: number[] | undefined,
    attempt: () => Promise<void>,
  ) {
    const artifactsBefore = await storedArtifacts();
    await attempt();
    assert.deepEqual(await storedArtifacts(), artifactsBefore, 'no artifact was added');
    assert.deepEqual(await readdir(stagingDir()), [], 'no staged file was left behind');
    const model = await tp.call('GET', `/v1/models/${encodeURIComponent(name)}`, { key });
    if (expectedVersions === undefined) {
      assertProblem(model, 404, 'model_not_found');
      const listed = await tp.call('GET', '/v1/models', { key });
      assert.ok(!listed.body.models.some((m: { name: string }) => m.name === name), `${name} is not listed`);
    } else {
      assert.deepEqual(versionsOf(model.body), expectedVersions);
    }
  }

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'modelgate-models-test-'));
    tp = await startTestPlatform({ config: { dataDir, uploadLimitBytes: UPLOAD_LIMIT_BYTES } });
    key = tp.adminKey;
  });

  after(async () => {
    await tp?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  test('the happy path', async () => {
    await exerciseRegistry(tp, key, 'happy');
  });

  test('a model keeps its artifact in the content-addressed store, once per content', async () => {
    const bytes = buildIdentityModel(11);
    await deployModel(tp, key, 'stored-once', bytes);
    await deployModel(tp, key, 'stored-once', bytes);
    const model = await tp.call('GET', '/v1/models/stored-once', { key });
    assert.deepEqual(versionsOf(model.body), [1, 2]);
    const digests = model.body.versions.map((v: { sha256: string }) => v.sha256);
    assert.deepEqual(digests, [sha256(bytes), sha256(bytes)]);
    assert.deepEqual(await readFile(join(blobsDir(), sha256(bytes))), Buffer.from(bytes));
    assert.deepEqual(await readdir(stagingDir()), []);
  });

  test('inputs and outputs of several names and datatypes are read from the model', async () => {
    const uploaded = await uploadMultipart(tp, key, 'pair', buildTwoInputModel());
    assert.equal(uploaded.status, 201, JSON.stringify(uploaded.body));
    const inputs = [
      { name: 'a', datatype: 'FP32', shape: [-1, 2] },
      { name: 'b', datatype: 'INT64', shape: [-1, 2] },
    ];
    const outputs = [
      { name: 'a_out', datatype: 'FP32', shape: [-1, 2] },
      { name: 'b_out', datatype: 'INT64', shape: [-1, 2] },
    ];
    const v1 = await tp.call('GET', '/v1/models/pair', { key });
    assert.deepEqual([v1.body.inputs, v1.body.outputs], [inputs, outputs]);
    const version = await tp.call('GET', '/v1/models/pair/versions/1', { key });
    assert.deepEqual([version.body.version, version.body.inputs, version.body.outputs], [1, inputs, outputs]);
    const v2 = await tp.call('GET', '/v2/models/pair', { key });
    assert.deepEqual(v2.body, {
      name: 'pair',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs,
      outputs,
    });
  });

  test('a file that is not a loadable model is 400 invalid_model and nothing is stored', async () => {
    await deployModel(tp, key, 'keep', buildIdentityModel(3));
    const valid = buildIdentityModel(4);
    const notModels: [string, Uint8Array][] = [
      ['random bytes', randomBytes(2048)],
      ['a text file', new TextEncoder().encode('name,width\nidentity,3\n')],
      ['a truncated model', valid.subarray(0, Math.floor(valid.length / 2))],
    ];
    for (const [what, bytes] of notModels) {
      for (const [name, versions] of [
        ['keep', [1]],
        ['never-stored', undefined],
      ] as const) {
        for (const upload of [uploadRaw, uploadMultipart]) {
          await assertNothingStored(name, versions && [...versions], async () => {
            const response = await upload(tp, key, name, bytes);
            assert.equal(
              response.status,
              400,
              `${what} via ${upload.name}: ${JSON.stringify(response.body)}`,
            );
            assertProblem(response, 400, 'invalid_model');
          });
        }
      }
    }
  });

  test('an empty upload is 400 and nothing is stored', async () => {
    await deployModel(tp, key, 'keep-empty', buildIdentityModel(3));
    for (const upload of [uploadRaw, uploadMultipart]) {
      await assertNothingStored('keep-empty', [1], async () => {
        assertProblem(await upload(tp, key, 'keep-empty', new Uint8Array(0)), 400, 'bad_request');
      });
    }
    await assertNothingStored('keep-empty', [1], async () => {
      const noBody = await tp.call('POST', '/v1/models/keep-empty/versions', { key });
      assertProblem(noBody, 400, 'bad_request');
      const form = new FormData();
      form.append('note', 'a form without a file');
      const noFile = await tp.call('POST', '/v1/models/keep-empty/versions', { key, body: form });
      assertProblem(noFile, 400, 'bad_request');
    });
  });

  test('an upload over uploadLimitBytes is 413 payload_too_large and nothing is stored', async () => {
    const oversized = buildPaddedModel(4 * UPLOAD_LIMIT_BYTES);
    // Far over the limit too: the server must answer without reading megabytes it will throw away.
    const huge = buildPaddedModel(8 * 1024 * 1024);
    for (const bytes of [oversized, huge]) {
      for (const upload of [uploadRaw, uploadMultipart]) {
        await assertNothingStored('too-big', undefined, async () => {
          const response = await upload(tp, key, 'too-big', bytes);
          assertProblem(response, 413, 'payload_too_large');
          // The rest of a raw body is not read: the connection closes rather than stay busy with it.
          if (bytes === huge && upload === uploadRaw)
            assert.equal(response.headers.get('connection'), 'close');
        });
      }
    }
    // The limit is the only reason: the same model unpadded is accepted.
    assert.equal((await uploadMultipart(tp, key, 'too-big', buildPaddedModel(16))).status, 201);
  });

  test('a body that is neither a file (octet-stream or multipart) nor a JSON deployment is 415; JSON without a runtime is 400', async () => {
    await assertNothingStored('wrong-type', undefined, async () => {
      const text = await tp.call('POST', '/v1/models/wrong-type/versions', {
        key,
        body: 'not a model',
        headers: { 'content-type': 'text/plain' },
      });
      assertProblem(text, 415, 'unsupported_media_type');
      const json = await tp.call('POST', '/v1/models/wrong-type/versions', { key, json: { model: 'x' } });
      assertProblem(json, 400, 'bad_request');
      assert.match(String((json.body as { detail?: unknown }).detail), /names its runtime, one of "http"/);
      for (const runtime of ['onnx', 'command', 'file']) {
        const named = await tp.call('POST', '/v1/models/wrong-type/versions', { key, json: { runtime } });
        assertProblem(named, 400, 'bad_request');
      }
      const other = await tp.call('POST', '/v1/models/wrong-type/versions', {
        key,
        body: new Uint8Array(buildIdentityModel(3)),
        headers: { 'content-type': 'application/x-onnx' },
      });
      assertProblem(other, 415, 'unsupported_media_type');
    });
  });

  test('a bad model name is 400 and nothing is stored', async () => {
    const bytes = buildIdentityModel(3);
    for (const name of ['has space', '-leading-dash', '.hidden', '_under', 'slash/in/name', 'ünïcode']) {
      for (const upload of [uploadRaw, uploadMultipart]) {
        await assertNothingStored(name, undefined, async () => {
          assertProblem(await upload(tp, key, name, bytes), 400, 'bad_request');
        });
      }
    }
    assert.equal((await uploadRaw(tp, key, 'A1._-z', bytes)).status, 201, 'every allowed kind of character');
  });

  test('a model name of up to 128 characters is usable; a longer one is a 400 problem', async () => {
    const longest = 'n'.repeat(128);
    assert.equal((await uploadRaw(tp, key, longest, buildIdentityModel(3))).status, 201);
    assert.equal((await tp.call('GET', `/v1/models/${longest}`, { key })).status, 200);
    assertProblem(await uploadRaw(tp, key, 'n'.repeat(129), buildIdentityModel(3)), 400, 'bad_request');
  });

  test('PATCH sets valid settings and refuses invalid ones without changing anything', async () => {
    await deployModel(tp, key, 'tuned', buildIdentityModel(3));
    const patched = await tp.call('PATCH', '/v1/models/tuned', {
      key,
      json: { settings: { maxBatchSize: 8, maxBatchDelayMs: 0.5, batching: false } },
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    const expected = { maxBatchSize: 8, maxBatchDelayMs: 0.5, batching: false };
    assert.deepEqual(patched.body.settings, expected);
    assert.deepEqual((await tp.call('GET', '/v1/models/tuned', { key })).body.settings, expected);

    for (const json of [
      { settings: { maxBatchSize: 0 } },
      { settings: { maxBatchSize: 2.5 } },
      { settings: { maxQueueSize: -1 } },
      { settings: { timeoutMs: 0 } },
      { settings: { batching: 'yes' } },
      { settings: { unknownSetting: 1 } },
      { settings: 'fast' },
      { maxBatchSize: 8 },
      {},
    ]) {
      const response = await tp.call('PATCH', '/v1/models/tuned', { key, json });
      assertProblem(response, 400, 'bad_request');
    }
    assert.deepEqual((await tp.call('GET', '/v1/models/tuned', { key })).body.settings, expected);

    const merged = await tp.call('PATCH', '/v1/models/tuned', {
      key,
      json: { settings: { maxBatchSize: 4 } },
    });
    assert.deepEqual(merged.body.settings, { ...expected, maxBatchSize: 4 });
    assertProblem(
      await tp.call('PATCH', '/v1/models/untuned', { key, json: { settings: { maxBatchSize: 4 } } }),
      404,
      'model_not_found',
    );
  });

  test('deleting a version removes it, and its artifact once unused for the grace period; the others serve', async () => {
    const identity = buildIdentityModel(5);
    const negate = buildNegateModel(5);
    await deployModel(tp, key, 'trimmed', identity);
    await deployModel(tp, key, 'trimmed', negate);
    await deployModel(tp, key, 'trimmed', identity);
    const row = [1, -2, 3, -4, 5];

    assert.equal((await tp.call('DELETE', '/v1/models/trimmed/versions/2', { key })).status, 204);
    assert.deepEqual(versionsOf((await tp.call('GET', '/v1/models/trimmed', { key })).body), [1, 3]);
    assertProblem(await tp.call('GET', '/v1/models/trimmed/versions/2', { key }), 404, 'version_not_found');
    assertProblem(
      await tp.call('POST', '/v1/models/trimmed/versions/2/predict', { key, json: { instances: [row] } }),
      404,
      'version_not_found',
    );
    // Kept through the grace period: a deploy of the same bytes may be between storing them and its insert.
    assert.ok(
      (await storedArtifacts()).includes(sha256(negate)),
      'the unused artifact waits for its removal',
    );
    await removeDueArtifacts(tp.platform, [sha256(negate)]);
    assert.ok(!(await storedArtifacts()).includes(sha256(negate)), 'the unused artifact is removed');
    assert.deepEqual(await predictRow(tp, key, '/v1/models/trimmed/versions/1/predict', row), {
      version: 1,
      y: row,
    });

    // Version 3 shares its artifact with version 1: removing it keeps the file; the newest left serves.
    assert.equal((await tp.call('DELETE', '/v1/models/trimmed/versions/3', { key })).status, 204);
    await removeDueArtifacts(tp.platform, [sha256(identity)]);
    assert.ok((await storedArtifacts()).includes(sha256(identity)), 'a shared artifact stays');
    assert.deepEqual(await predictRow(tp, key, '/v1/models/trimmed/predict', row), { version: 1, y: row });
    assertProblem(
      await tp.call('DELETE', '/v1/models/trimmed/versions/3', { key }),
      404,
      'version_not_found',
    );
  });

  test('deleting a model removes it everywhere and its artifacts once no other model uses them', async () => {
    const own = buildNegateModel(6);
    const shared = buildIdentityModel(6);
    await deployModel(tp, key, 'doomed', own);
    await deployModel(tp, key, 'doomed', shared);
    await deployModel(tp, key, 'survivor', shared);

    assert.equal((await tp.call('DELETE', '/v1/models/doomed', { key })).status, 204);
    assertProblem(await tp.call('GET', '/v1/models/doomed', { key }), 404, 'model_not_found');
    assertProblem(await tp.call('GET', '/v1/models/doomed/versions/1', { key }), 404, 'model_not_found');
    assertProblem(await tp.call('GET', '/v2/models/doomed', { key }), 404, 'model_not_found');
    const body = { instances: [[1, 2, 3, 4, 5, 6]] };
    assertProblem(
      await tp.call('POST', '/v1/models/doomed/predict', { key, json: body }),
      404,
      'model_not_found',
    );
    const listed = await tp.call('GET', '/v1/models', { key });
    assert.ok(!listed.body.models.some((m: { name: string }) => m.name === 'doomed'));
    assertProblem(await tp.call('DELETE', '/v1/models/doomed', { key }), 404, 'model_not_found');

    await removeDueArtifacts(tp.platform, [sha256(own), sha256(shared)]);
    const stored = await storedArtifacts();
    assert.ok(!stored.includes(sha256(own)), 'the artifact only the deleted model used is removed');
    assert.ok(stored.includes(sha256(shared)), 'the artifact another model uses stays');
    assert.deepEqual(await predictRow(tp, key, '/v1/models/survivor/predict', [1, 2, 3, 4, 5, 6]), {
      version: 1,
      y: [1, 2, 3, 4, 5, 6],
    });

    assert.equal((await tp.call('DELETE', '/v1/models/survivor', { key })).status, 204);
    await removeDueArtifacts(tp.platform, [sha256(shared)]);
    assert.ok(!(await storedArtifacts()).includes(sha256(shared)), 'removed with its last user');
  });

  test('a deploy of the same bytes while a deleted model waits for removal keeps its artifact', async () => {
    const bytes = buildNegateModel(7);
    await deployModel(tp, key, 'replaced', bytes);
    assert.equal((await tp.call('DELETE', '/v1/models/replaced', { key })).status, 204);
    // The delete found the bytes unused; another deploy of them (it may have stored them already) records
    // its version before the grace period ends.
    assert.ok((await storedArtifacts()).includes(sha256(bytes)), 'not removed at once');
    await deployModel(tp, key, 'replacement', bytes);
    await removeDueArtifacts(tp.platform, [sha256(bytes)]);
    assert.ok((await storedArtifacts()).includes(sha256(bytes)), 'the new version keeps its file');
    assert.deepEqual(await predictRow(tp, key, '/v1/models/replacement/predict', [1, 2, 3, 4, 5, 6, 7]), {
      version: 1,
      y: [-1, -2, -3, -4, -5, -6, -7],
    });
  });

  test('an unknown or non-numeric version is 404 version_not_found on every route', async () => {
    await deployModel(tp, key, 'versioned', buildIdentityModel(3));
    const body = { instances: [[1, 2, 3]] };
    const inferBody = { inputs: [{ name: 'x', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }] };
    for (const version of ['2', '999999', '0', 'abc', '1.0', '-1', '1e2']) {
      const routes: [string, string, unknown?][] = [
        ['GET', `/v1/models/versioned/versions/${version}`],
        ['DELETE', `/v1/models/versioned/versions/${version}`],
        ['POST', `/v1/models/versioned/versions/${version}/predict`, body],
        ['GET', `/v2/models/versioned/versions/${version}`],
        ['POST', `/v2/models/versioned/versions/${version}/infer`, inferBody],
      ];
      for (const [method, path, json] of routes) {
        const response = await tp.call(method, path, { key, json });
        assert.equal(response.status, 404, `${method} ${path}: ${JSON.stringify(response.body)}`);
        assertProblem(response, 404, 'version_not_found');
      }
    }
    assert.deepEqual(versionsOf((await tp.call('GET', '/v1/models/versioned', { key })).body), [1]);
  });

  test('five concurrent uploads to a new model become versions 1 to 5, once each', async () => {
    const uploads = [2, 3, 4, 5, 6].map((width) => buildNegateModel(width));
    const answers = await Promise.all(
      uploads.map((bytes, i) => (i % 2 === 0 ? uploadRaw : uploadMultipart)(tp, key, 'racing', bytes)),
    );
    for (const answer of answers) assert.equal(answer.status, 201, JSON.stringify(answer.body));
    const numbers = answers.map((answer) => answer.body.deployed_version as number);
    assert.deepEqual([...numbers].sort(), [1, 2, 3, 4, 5]);
    const model = await tp.call('GET', '/v1/models/racing', { key });
    assert.deepEqual(versionsOf(model.body), [1, 2, 3, 4, 5]);
    uploads.forEach((bytes, i) => {
      const version = model.body.versions.find((v: { version: number }) => v.version === numbers[i]);
      assert.equal(version.sha256, sha256(bytes), `version ${numbers[i]} holds upload ${i}`);
    });
    const listed = await tp.call('GET', '/v1/models', { key });
    assert.equal(listed.body.models.filter((m: { name: string }) => m.name === 'racing').length, 1);
  });
});

describe('model registry (Postgres)', () => {
  // Throws in CI when unset: there this half must run.
  const url = testDatabaseUrl();
  let tp: TestPlatform | undefined;

  before(async () => {
    if (url) tp = await startTestPlatform({ postgres: true });
  });

  after(async () => {
    await tp?.close();
  });

  test('the happy path', async (t) => {
    if (!tp) {
      t.skip(
        'TEST_DATABASE_URL is unset; run with TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test',
      );
      return;
    }
    await exerciseRegistry(tp, tp.adminKey, 'happy');
  });
});
