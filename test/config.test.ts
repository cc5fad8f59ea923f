// Configuration resolves flags over MODELGATE_* environment over the config file over defaults, and
// refuses invalid values with a message naming the setting.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseS3Url } from '../src/artifacts/s3-url.ts';
import { parseBatchInputUrl } from '../src/batch/source-url.ts';
import { ConfigError, resolveConfig } from '../src/config/config.ts';

let dir: string;
let file: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'modelgate-config-'));
  file = join(dir, 'modelgate.yaml');
  await writeFile(file, 'port: 7000\nmaxBatchSize: 16\nmaxBatchDelayMs: 5\nlogLevel: warn\n');
});
after(() => rm(dir, { recursive: true, force: true }));

test('defaults when nothing is given', () => {
  const config = resolveConfig({}, {});
  assert.equal(config.port, 8080);
  assert.equal(config.host, '127.0.0.1');
  assert.equal(config.dataDir, './.modelgate');
  assert.equal(config.artifactsDir, join('./.modelgate', 'artifacts'));
  assert.equal(config.databaseUrl, undefined);
  assert.equal(config.batching, true);
  assert.equal(config.maxBatchSize, 64);
  assert.ok(Object.isFrozen(config));
});

test('flags win over env, env over file, file over defaults', () => {
  const env = { MODELGATE_PORT: '7100', MODELGATE_MAX_BATCH_SIZE: '32', MODELGATE_BATCHING: 'false' };
  const config = resolveConfig({ config: file, port: 7200 }, env);
  assert.equal(config.port, 7200, 'flag');
  assert.equal(config.maxBatchSize, 32, 'env');
  assert.equal(config.batching, false, 'env boolean');
  assert.equal(config.maxBatchDelayMs, 5, 'file');
  assert.equal(config.logLevel, 'warn', 'file');
  assert.equal(config.timeoutMs, 30_000, 'default');
});

test('DATABASE_URL is read when MODELGATE_DATABASE_URL is unset', () => {
  assert.equal(resolveConfig({}, { DATABASE_URL: 'postgres://a/b' }).databaseUrl, 'postgres://a/b');
  const both = { DATABASE_URL: 'postgres://a/b', MODELGATE_DATABASE_URL: 'postgres://c/d' };
  assert.equal(resolveConfig({}, both).databaseUrl, 'postgres://c/d');
});

test('invalid values and unknown file keys are refused, naming the setting', () => {
  assert.throws(
    () => resolveConfig({}, { MODELGATE_PORT: 'eighty' }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /port/);
      return true;
    },
  );
  assert.throws(() => resolveConfig({ maxBatchSize: 0 }, {}), /maxBatchSize/);
  assert.throws(() => resolveConfig({ logLevel: 'loud' as never }, {}), /logLevel/);
});

test('a config file with an unknown key is refused', async () => {
  const bad = join(dir, 'bad.yaml');
  await writeFile(bad, 'prot: 7000\n');
  assert.throws(() => resolveConfig({ config: bad }, {}), /prot/);
});

test('the artifact store is the local folder unless artifactsUrl names an S3 bucket', () => {
  const local = resolveConfig({}, {});
  assert.equal(local.artifactsUrl, undefined);
  assert.equal(local.s3ForcePathStyle, false);

  const env = {
    MODELGATE_ARTIFACTS_URL: 's3://models-bucket/modelgate/prod',
    MODELGATE_S3_ENDPOINT: 'http://127.0.0.1:9000',
    MODELGATE_S3_REGION: 'auto',
    MODELGATE_S3_FORCE_PATH_STYLE: 'true',
  };
  const s3 = resolveConfig({}, env);
  assert.equal(s3.artifactsUrl, 's3://models-bucket/modelgate/prod');
  assert.equal(s3.s3Endpoint, 'http://127.0.0.1:9000');
  assert.equal(s3.s3Region, 'auto');
  assert.equal(s3.s3ForcePathStyle, true);
});

test('an artifactsUrl that is not s3://bucket/prefix is refused, naming the setting', () => {
  for (const url of [
    '/var/lib/modelgate',
    'file:///var/lib/modelgate',
    'https://models-bucket.s3.amazonaws.com/prefix',
    's3://',
    's3:///prefix',
    's3://Models/prefix',
    's3://models-bucket/prefix?versionId=1',
  ]) {
    assert.throws(
      () => resolveConfig({}, { MODELGATE_ARTIFACTS_URL: url }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError, url);
        assert.match(error.message, /artifactsUrl: /, url);
        assert.ok(error.message.includes(`"${url}"`), error.message);
        return true;
      },
    );
  }
  assert.throws(() => resolveConfig({ s3Endpoint: 'minio:9000' }, {}), /s3Endpoint/);
  assert.throws(() => resolveConfig({ s3Endpoint: 'ftp://minio:9000' }, {}), /s3Endpoint/);
  assert.throws(() => resolveConfig({}, { MODELGATE_S3_FORCE_PATH_STYLE: 'yes' }), /s3ForcePathStyle/);
});

test('artifactsDir and artifactsUrl together are refused', () => {
  const env = { MODELGATE_ARTIFACTS_DIR: '/srv/artifacts', MODELGATE_ARTIFACTS_URL: 's3://models-bucket' };
  assert.throws(() => resolveConfig({}, env), /artifactsDir and artifactsUrl/);
});

test('an s3:// URL is read as bucket and key prefix', () => {
  assert.deepEqual(parseS3Url('s3://models-bucket'), { bucket: 'models-bucket', prefix: '' });
  assert.deepEqual(parseS3Url('s3://models-bucket/'), { bucket: 'models-bucket', prefix: '' });
  assert.deepEqual(parseS3Url('s3://models.v2_bucket/a/b/'), { bucket: 'models.v2_bucket', prefix: 'a/b' });
});

test('batchInputUrls: none by default, comma-separated in the environment, a list in the file', async () => {
  assert.deepEqual(resolveConfig({}, {}).batchInputUrls, []);
  const env = { MODELGATE_BATCH_INPUT_URLS: ' s3://data-bucket/incoming/ , file:///srv/batch-in/,' };
  assert.deepEqual(resolveConfig({}, env).batchInputUrls, [
    's3://data-bucket/incoming/',
    'file:///srv/batch-in/',
  ]);
  const listed = join(dir, 'batch-inputs.yaml');
  await writeFile(listed, 'batchInputUrls:\n  - s3://data-bucket\n  - file:///srv/batch-in\n');
  assert.deepEqual(resolveConfig({ config: listed }, {}).batchInputUrls, [
    's3://data-bucket',
    'file:///srv/batch-in',
  ]);
});

test('batchInputUrls that are not s3:// or file:// folders are refused, naming the setting', () => {
  for (const url of [
    '/srv/batch-in',
    'https://data-bucket.s3.amazonaws.com/incoming',
    's3://Data_Bucket/incoming',
    's3://data-bucket/incoming/../private',
    'file://server/srv/batch-in',
    'file:///srv/a%2Fb',
  ]) {
    assert.throws(
      () => resolveConfig({}, { MODELGATE_BATCH_INPUT_URLS: `s3://data-bucket/ok,${url}` }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError, url);
        assert.match(error.message, /batchInputUrls\.1: /, url);
        return true;
      },
    );
  }
});

test('a batch input URL is read as bucket and key, or as an absolute path with its dot segments resolved', () => {
  assert.deepEqual(parseBatchInputUrl('s3://data-bucket/incoming/rows.csv'), {
    scheme: 's3',
    bucket: 'data-bucket',
    key: 'incoming/rows.csv',
  });
  assert.deepEqual(parseBatchInputUrl('s3://data-bucket/', 'folder'), {
    scheme: 's3',
    bucket: 'data-bucket',
    key: '',
  });
  assert.throws(() => parseBatchInputUrl('s3://data-bucket/'), /names no object/);
  assert.throws(() => parseBatchInputUrl('s3://data-bucket/a/./b.csv'), /"\." or "\.\." segment/);
  assert.deepEqual(parseBatchInputUrl('file:///srv/batch-in/../etc/rows%20a.csv'), {
    scheme: 'file',
    path: '/srv/etc/rows a.csv',
  });
  assert.deepEqual(parseBatchInputUrl('file:///srv/batch-in/', 'folder'), {
    scheme: 'file',
    path: '/srv/batch-in',
  });
  assert.throws(() => parseBatchInputUrl('ftp://host/rows.csv'), /neither s3:\/\/bucket\/key nor file:/);
});

test('upstreamAllowedNetworks: loopback with embedded storage, none with a database URL; subnets checked', () => {
  assert.deepEqual(resolveConfig({}, {}).upstreamAllowedNetworks, ['127.0.0.0/8', '::1/128']);
  assert.deepEqual(resolveConfig({}, { DATABASE_URL: 'postgres://a/b' }).upstreamAllowedNetworks, []);
  const env = {
    DATABASE_URL: 'postgres://a/b',
    MODELGATE_UPSTREAM_ALLOWED_NETWORKS: '10.0.3.0/24, 127.0.0.1,fd00::/8',
  };
  assert.deepEqual(resolveConfig({}, env).upstreamAllowedNetworks, ['10.0.3.0/24', '127.0.0.1', 'fd00::/8']);
  assert.deepEqual(resolveConfig({ upstreamAllowedNetworks: [] }, {}).upstreamAllowedNetworks, []);
  for (const bad of ['10.0.0.0/33', 'example.com', '10.0.0.0/8/1', '::1/129']) {
    assert.throws(
      () => resolveConfig({}, { MODELGATE_UPSTREAM_ALLOWED_NETWORKS: bad }),
      (error: unknown) => error instanceof ConfigError && /upstreamAllowedNetworks/.test(error.message),
      bad,
    );
  }
});
