// The build (`npm run build` → dist/) that production runs: compiled JavaScript, no tsx. It must serve
// what the sources serve: a prediction, whose inference thread starts from onnx-thread.js (dist/ has no
// .ts file to fall back on), and a batch, on the migrations and example data the build copies; and a
// team's program, which imports the Python helper the build ships (dist/python/).
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { create as createTar } from 'tar';
import { generateKey } from '../src/auth/keys.ts';
import { ModelgateProcess, waitUntil } from './helpers/processes.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

describe('the build', () => {
  let dataDir: string;
  let server: ModelgateProcess;
  let url: string;
  const key = generateKey().secret;
  const call = (path: string, init: RequestInit = {}) =>
    fetch(`${url}${path}`, { ...init, headers: { authorization: `Bearer ${key}`, ...init.headers } });

  before(async () => {
    await promisify(execFile)('npm', ['run', 'build'], { cwd: ROOT });
    dataDir = await mkdtemp(join(tmpdir(), 'modelgate-build-'));
    const child = spawn(
      process.execPath,
      [join(ROOT, 'dist/src/cli/main.js'), 'serve', '--examples', '--port', '0', '--data-dir', dataDir],
      {
        cwd: dataDir,
        env: { ...process.env, MODELGATE_ADMIN_KEY: key, MODELGATE_INFERENCE_THREADS: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    server = new ModelgateProcess('gateway', 'build', child);
    url = (await server.waitForOutput(/"url":"(http:\/\/[^"]+)".*"msg":"modelgate listening"/))[1]!;
  });

  after(async () => {
    if (server?.running) {
      server.signal('SIGTERM');
      await server.waitForExit();
    }
    await rm(dataDir, { recursive: true, force: true });
  });

  it('serves a prediction and a batch', async () => {
    const predicted = await call('/v1/models/iris/predict', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ instances: [[5.1, 3.5, 1.4, 0.2]] }),
    });
    assert.equal(predicted.status, 200, await predicted.clone().text());
    assert.equal(((await predicted.json()) as { outputs: { label: number[] } }).outputs.label[0], 0);

    const submitted = await call('/v1/models/iris/batches', {
      method: 'POST',
      headers: { 'content-type': 'text/csv' },
      body: 'a,b,c,d\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n',
    });
    assert.equal(submitted.status, 202, await submitted.clone().text());
    const { id } = (await submitted.json()) as { id: string };
    const status = await waitUntil(
      `batch ${id} to finish`,
      async () => ((await (await call(`/v1/batches/${id}`)).json()) as { status: string }).status,
      (current) => current !== 'queued' && current !== 'running',
    );
    assert.equal(status, 'succeeded');
    const output = await (await call(`/v1/batches/${id}/output`)).text();
    assert.equal(output.trim().split('\n').length, 3);
  });

  it("serves a team's program that imports the shipped Python helper", async () => {
    const folder = join(dataDir, 'echo');
    await mkdir(folder);
    await writeFile(
      join(folder, 'echo.py'),
      [
        'from modelgate_runtime import serve',
        'serve(lambda inputs: {"y": inputs["x"]}, {',
        '    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],',
        '    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}]})',
        '',
      ].join('\n'),
    );
    await writeFile(join(folder, 'modelgate.json'), JSON.stringify({ command: ['python3', 'echo.py'] }));
    const archive = join(dataDir, 'echo.tar.gz');
    await createTar({ gzip: true, file: archive, cwd: folder }, ['echo.py', 'modelgate.json']);
    const deployed = await call('/v1/models/echo/versions', {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: await readFile(archive),
    });
    assert.equal(deployed.status, 201, await deployed.clone().text());
    const predicted = await call('/v1/models/echo/predict', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ instances: [[1.5, -2]] }),
    });
    assert.equal(predicted.status, 200, await predicted.clone().text());
    assert.deepEqual(((await predicted.json()) as { outputs: { y: number[][] } }).outputs.y, [[1.5, -2]]);
  });

  it('stops on SIGTERM with exit code 0', async () => {
    server.signal('SIGTERM');
    assert.deepEqual(await server.waitForExit(), { code: 0, signal: null });
  });
});
