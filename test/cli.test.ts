// The `modelgate` command, run as a real subprocess: API commands against a running platform, exit
// codes, and `serve` itself started, called and stopped with SIGTERM.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generateKey } from '../src/auth/keys.ts';
import { deployModel } from './helpers/api.ts';
import { buildIdentityModel, startTestPlatform, type TestPlatform } from './helpers/platform.ts';
import { runCli } from './helpers/examples.ts';

const BIN = new URL('../bin/modelgate.js', import.meta.url).pathname;

/** A port nothing listens on: bound once by us, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('API commands', () => {
  let platform: TestPlatform;
  let workDir: string;
  let api: string[];

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'modelgate-cli-'));
    platform = await startTestPlatform({ config: { batchInputUrls: [`file://${workDir}/`] } });
    api = ['--url', platform.url, '--key', platform.adminKey];
  });
  after(async () => {
    await platform.close();
    await rm(workDir, { recursive: true, force: true });
  });

  test('--help lists the commands and exits 0', async () => {
    const result = await runCli(['--help']);
    assert.equal(result.code, 0);
    for (const command of [
      'serve',
      'worker',
      'deploy',
      'keys',
      'tenants',
      'models',
      'predict',
      'jobs',
      'batch',
    ]) {
      assert.match(result.stdout, new RegExp(`\\b${command}\\b`));
    }
  });

  test('keys create shows the key once; list shows only prefixes; revoke stops it', async () => {
    const created = await runCli([
      'keys',
      'create',
      '--scopes',
      'predict,read',
      '--name',
      'ci',
      '--json',
      ...api,
    ]);
    assert.equal(created.code, 0, created.stderr);
    const key = JSON.parse(created.stdout) as { id: string; key: string; prefix: string };
    assert.match(key.key, /^mg_/);

    const listed = await runCli(['keys', 'list', '--json', ...api]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.ok(!listed.stdout.includes(key.key), 'the key itself is never listed');
    assert.ok(listed.stdout.includes(key.prefix));

    const beforeRevoke = await platform.call('GET', '/v1/models', { key: key.key });
    assert.equal(beforeRevoke.status, 200);
    const revoked = await runCli(['keys', 'revoke', key.id, ...api]);
    assert.equal(revoked.code, 0, revoked.stderr);
    const afterRevoke = await platform.call('GET', '/v1/models', { key: key.key });
    assert.equal(afterRevoke.body.code, 'key_revoked');
  });

  test('deploy, models list and predict', async () => {
    const file = join(workDir, 'identity.onnx');
    await writeFile(file, buildIdentityModel(3));
    const deployed = await runCli(['deploy', file, '--name', 'echo', '--max-batch-size', '8', ...api]);
    assert.equal(deployed.code, 0, deployed.stderr);
    assert.match(deployed.stdout, /deployed echo version 1/);
    assert.match(deployed.stdout, /input {2}x FP32 \[-1, 3\]/);

    const model = await platform.client().getModel('echo');
    assert.equal(model.settings.maxBatchSize, 8);

    const listed = await runCli(['models', 'list', '--json', ...api]);
    assert.deepEqual(
      (JSON.parse(listed.stdout) as { name: string }[]).map((m) => m.name),
      ['echo'],
    );

    const predicted = await runCli([
      'predict',
      'echo',
      '--data',
      '{"instances": [[1, 2, 3]]}',
      '--json',
      ...api,
    ]);
    assert.equal(predicted.code, 0, predicted.stderr);
    assert.deepEqual(JSON.parse(predicted.stdout).outputs, { y: [[1, 2, 3]] });
  });

  test('batch submit --wait follows the run and downloads its output and errors; get, list, download', async () => {
    await deployModel(platform, platform.adminKey, 'batch-echo', buildIdentityModel(2));
    const file = join(workDir, 'rows.csv');
    await writeFile(file, 'id,a,b\n1,1,2\n2,x,4\n3,5,6\n');
    const submitted = await runCli(
      [
        'batch',
        'submit',
        file,
        '--model',
        'batch-echo',
        '--features',
        'a,b',
        '--part-rows',
        '2',
        '--wait',
        '--json',
        ...api,
      ],
      { cwd: workDir },
    );
    assert.equal(submitted.code, 0, submitted.stderr);
    const done = JSON.parse(submitted.stdout) as {
      id: string;
      status: string;
      files: Record<string, string>;
    };
    assert.equal(done.status, 'succeeded');
    assert.deepEqual(done.files, { output: 'rows.out.csv', errors: 'rows.errors.csv' });
    assert.equal(await readFile(join(workDir, 'rows.out.csv'), 'utf8'), 'id,y_0,y_1\n1,1,2\n3,5,6\n');
    assert.equal(
      await readFile(join(workDir, 'rows.errors.csv'), 'utf8'),
      'row,error\n2,"column ""a"": not a number: ""x"""\n',
    );

    const got = await runCli(['batch', 'get', done.id, ...api]);
    assert.equal(got.code, 0, got.stderr);
    assert.match(got.stdout, /succeeded {2}batch-echo v1 {2}rows 2\/3 {2}failed 1 {2}parts 2\/2/);
    const listed = await runCli(['batch', 'list', '--json', ...api]);
    assert.ok(
      (JSON.parse(listed.stdout) as { batches: { id: string }[] }).batches.some((b) => b.id === done.id),
    );
    const downloaded = await runCli(['batch', 'download', done.id, ...api]);
    assert.equal(downloaded.stdout, 'id,y_0,y_1\n1,1,2\n3,5,6\n');

    // A file that is there and would do as CSV: only its name leaves the format unknown (a usage error, 2).
    const unnamed = join(workDir, 'rows.txt');
    await writeFile(unnamed, 'id,a,b\n1,1,2\n');
    const unnamedArgs = ['batch', 'submit', unnamed, '--model', 'batch-echo', '--features', 'a,b', ...api];
    const unknownFormat = await runCli(unnamedArgs);
    assert.equal(unknownFormat.code, 2, unknownFormat.stderr);
    assert.equal(unknownFormat.stdout, '');
    assert.match(unknownFormat.stderr, /cannot tell the format of .*rows\.txt.*--format csv\|jsonl/);
    // A local file that is not there is bad usage too, said as such (not a stack trace).
    const absent = await runCli([
      'batch',
      'submit',
      join(workDir, 'absent.csv'),
      '--model',
      'batch-echo',
      ...api,
    ]);
    assert.deepEqual([absent.code, absent.stdout], [2, '']);
    assert.match(absent.stderr, /^error: no such file: .*absent\.csv\n$/);
    // The same command, told the format, is accepted: the 2 came from the format, not the file or the rest.
    const toldFormat = await runCli([...unnamedArgs, '--format', 'csv', '--json']);
    assert.equal(toldFormat.code, 0, toldFormat.stderr);
    assert.equal((JSON.parse(toldFormat.stdout) as { rows_total: number }).rows_total, 1);
    const missing = await runCli(['batch', 'get', 'bat_nope', ...api]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /batch_not_found/);
  });

  test('batch submit of a file:// URL has the server read the file instead of uploading it', async () => {
    await deployModel(platform, platform.adminKey, 'batch-ref-echo', buildIdentityModel(2));
    await writeFile(join(workDir, 'server-side.csv'), 'id,a,b\n1,1,2\n2,3,4\n');
    const reference = `file://${workDir}/server-side.csv`;
    const args = ['batch', 'submit', reference, '--model', 'batch-ref-echo', '--features', 'a,b'];
    const submitted = await runCli([...args, '--wait', '--json', ...api], { cwd: workDir });
    assert.equal(submitted.code, 0, submitted.stderr);
    const done = JSON.parse(submitted.stdout) as { status: string; files: Record<string, string> };
    assert.equal(done.status, 'succeeded');
    assert.deepEqual(done.files, { output: 'server-side.out.csv' });
    assert.equal(await readFile(join(workDir, 'server-side.out.csv'), 'utf8'), 'id,y_0,y_1\n1,1,2\n2,3,4\n');

    const missing = await runCli([
      'batch',
      'submit',
      `file://${workDir}/nope.csv`,
      '--model',
      'batch-ref-echo',
      ...api,
    ]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /batch_input_not_found/);
  });

  test('tenants create prints the new tenant admin key', async () => {
    const result = await runCli(['tenants', 'create', 'acme', '--json', ...api]);
    assert.equal(result.code, 0, result.stderr);
    const tenant = JSON.parse(result.stdout) as { name: string; admin_key: { key: string } };
    assert.equal(tenant.name, 'acme');
    assert.equal((await platform.call('GET', '/v1/models', { key: tenant.admin_key.key })).status, 200);
  });

  test('exit codes: 2 for bad usage, 1 when the API refuses, 3 when the server is unreachable', async () => {
    const badScope = await runCli(['keys', 'create', '--scopes', 'root', ...api]);
    assert.equal(badScope.code, 2);
    assert.match(badScope.stderr, /scopes are a comma-separated list/);

    const unknownCommand = await runCli(['frobnicate']);
    assert.equal(unknownCommand.code, 2);

    const wrongKey = await runCli(['models', 'list', '--url', platform.url, '--key', generateKey().secret]);
    assert.equal(wrongKey.code, 1);
    assert.match(wrongKey.stderr, /unauthenticated/);

    const missingFile = await runCli(['deploy', join(workDir, 'nope.onnx'), '--name', 'x', ...api]);
    assert.equal(missingFile.code, 2);

    const unreachable = await runCli([
      'models',
      'list',
      '--url',
      `http://127.0.0.1:${await closedPort()}`,
      ...api.slice(2),
    ]);
    assert.match(unreachable.stderr, /cannot reach the modelgate server/);
    assert.equal(unreachable.code, 3);
  });
});

describe('modelgate serve', () => {
  test('a start that fails half-way (port taken) releases what it opened and exits non-zero', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const dataDir = await mkdtemp(join(tmpdir(), 'modelgate-serve-'));
    try {
      const { port } = blocker.address() as AddressInfo;
      const result = await runCli([
        'serve',
        '--port',
        String(port),
        '--data-dir',
        dataDir,
        '--log-level',
        'silent',
      ]);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /EADDRINUSE/);
    } finally {
      blocker.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test('a malformed MODELGATE_ADMIN_KEY is a configuration error: exit 2, no stack trace', async () => {
    const result = await runCli(['serve', '--port', '0'], { env: { MODELGATE_ADMIN_KEY: 'letmein' } });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /adminKey: must start with "mg_"/);
  });

  test('starts with the example models, answers, and stops on SIGTERM with exit 0', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'modelgate-serve-'));
    const adminKey = generateKey().secret;
    const child = spawn(
      process.execPath,
      [BIN, 'serve', '--examples', '--port', '0', '--data-dir', dataDir, '--log-level', 'warn'],
      { env: { ...process.env, MODELGATE_ADMIN_KEY: adminKey }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      let stderr = '';
      const url = await new Promise<string>((resolve, reject) => {
        child.stderr.on('data', (chunk: Buffer) => {
          stderr += chunk;
          const match = /modelgate is running at (http:\/\/\S+)/.exec(stderr);
          if (match) resolve(match[1]!);
        });
        child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
      });
      assert.ok(!stderr.includes(adminKey), 'a key given by the operator is not printed');

      const response = await fetch(`${url}/v1/models/iris/predict`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ instances: [[5.1, 3.5, 1.4, 0.2]] }),
      });
      assert.equal(response.status, 200);
      const body = (await response.json()) as { outputs: { label: number[] } };
      assert.deepEqual(body.outputs.label, [0]);

      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('modelgate worker', () => {
  test('runs without the API, serves /metrics and /healthz on --metrics-port, and stops on SIGTERM', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'modelgate-worker-'));
    const child = spawn(
      process.execPath,
      [BIN, 'worker', '--metrics-port', '0', '--data-dir', dataDir, '--log-level', 'warn'],
      { env: process.env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      let stderr = '';
      const metricsUrl = await new Promise<string>((resolve, reject) => {
        child.stderr.on('data', (chunk: Buffer) => {
          stderr += chunk;
          const match =
            /modelgate worker wrk_\S+ is running \(pid \d+\); metrics at (http:\/\/\S+)\/metrics/.exec(
              stderr,
            );
          if (match) resolve(match[1]!);
        });
        child.on('exit', (code) => reject(new Error(`worker exited with ${code}: ${stderr}`)));
      });
      const metrics = await fetch(`${metricsUrl}/metrics`);
      assert.equal(metrics.status, 200);
      const text = await metrics.text();
      assert.match(text, /^modelgate_jobs_in_flight 0$/m);
      assert.match(text, /modelgate_job_attempts_total/);
      assert.equal((await fetch(`${metricsUrl}/healthz`)).status, 200);
      assert.equal((await fetch(`${metricsUrl}/v1/models`)).status, 404, 'no API on a worker');

      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
