// Configuration resolves flags over MODELGATE_* environment over the config file over defaults, and
// refuses invalid values with a message naming the setting.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
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
