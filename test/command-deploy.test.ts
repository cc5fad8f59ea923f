// Deploying a team's program over HTTP: an archive (.tar.gz) of examples/iris-python with its manifest
// becomes a `command` version whose signature the program reports, answers /predict, /v2 and jobs as the
// ONNX iris model does; archives that cannot serve (no manifest, a program that never becomes ready, an
// unsafe entry) are refused with nothing kept.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildIrisModel } from '../examples/build.ts';
import { generateKey } from '../src/auth/keys.ts';
import { assertProblem, deployModel, uploadRaw } from './helpers/api.ts';
import { archiveOf, IRIS_PROGRAM, PYTHON, type Files } from './helpers/examples.ts';
import { startTestPlatform, type TestPlatform } from './helpers/platform.ts';
import { BIN, ModelgateProcess, waitUntil } from './helpers/processes.ts';

const ROOT = new URL('..', import.meta.url).pathname;

/**
 * Why the scikit-learn test cannot run here, or false. CI installs Debian's python3-sklearn (.ci/run), so
 * there it always runs; a developer's machine without it skips, saying so.
 */
function sklearnMissing(): string | false {
  if (process.env.CI) return false;
  const probe = spawnSync(PYTHON, ['-c', 'import sklearn'], { encoding: 'utf8' });
  return probe.status === 0 ? false : 'scikit-learn is not installed (apt-get install python3-sklearn)';
}
const ROWS = [
  [5.1, 3.5, 1.4, 0.2],
  [6.7, 3.0, 5.2, 2.3],
  [5.9, 3.0, 4.2, 1.5],
];

let tp: TestPlatform;
let work: string;

const archive = (name: string, files: Files) => archiveOf(work, name, files);

const upload = (name: string, bytes: Uint8Array) => uploadRaw(tp, tp.adminKey, name, bytes);

let dataDir: string;

/** Processes running in a platform's unpacked deployments (this file's platform by default): the programs' copies. */
async function programProcesses(inDataDir = dataDir): Promise<number[]> {
  const deployments = join(inDataDir, 'deployments');
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cwd = await readlink(`/proc/${entry}/cwd`).catch(() => '');
    if (cwd.startsWith(deployments)) pids.push(Number(entry));
  }
  return pids;
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'modelgate-command-deploy-'));
  dataDir = join(work, 'data');
  tp = await startTestPlatform({ config: { dataDir } });
});
after(async () => {
  await tp.close();
  await rm(work, { recursive: true, force: true });
});

describe('deploying a program', () => {
  test('an archive of the Python iris example serves as the ONNX iris model does, over /predict, /v2 and jobs', async () => {
    const bytes = await archive('iris-python', {
      'predict.py': { copy: join(ROOT, 'examples/iris-python/predict.py') },
      'iris-weights.json': { copy: join(ROOT, 'examples/iris-python/iris-weights.json') },
      'modelgate.json': JSON.stringify({ command: ['/usr/bin/python3', 'predict.py'], processes: 2 }),
    });
    const deployed = await upload('iris-py', bytes);
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    const version = deployed.body.versions[0];
    assert.equal(version.runtime, 'command');
    assert.deepEqual(
      version.outputs.map((output: { name: string }) => output.name),
      ['label', 'probabilities'],
    );
    await deployModel(tp, tp.adminKey, 'iris-onnx', buildIrisModel());

    const predict = (model: string) =>
      tp.call('POST', `/v1/models/${model}/predict`, { key: tp.adminKey, json: { instances: ROWS } });
    const [fromPython, fromOnnx] = await Promise.all([predict('iris-py'), predict('iris-onnx')]);
    assert.equal(fromPython.status, 200, JSON.stringify(fromPython.body));
    assert.deepEqual(fromPython.body.outputs.label, fromOnnx.body.outputs.label);
    fromPython.body.outputs.probabilities.forEach((row: number[], r: number) =>
      row.forEach((p, c) => assert.ok(Math.abs(p - fromOnnx.body.outputs.probabilities[r][c]) <= 1e-5)),
    );

    const metadata = await tp.call('GET', '/v2/models/iris-py', { key: tp.adminKey });
    assert.equal(metadata.body.platform, 'modelgate_command');
    const job = await tp.call('POST', '/v1/models/iris-py/jobs', {
      key: tp.adminKey,
      json: { instances: ROWS },
      headers: { prefer: 'wait=30' },
    });
    assert.equal(job.body.status, 'succeeded', JSON.stringify(job.body));
    assert.deepEqual(job.body.result.outputs.label, fromOnnx.body.outputs.label);

    // Two copies serve it; deleting the model stops both.
    assert.equal((await programProcesses()).length, 2);
    assert.equal((await tp.call('DELETE', '/v1/models/iris-py', { key: tp.adminKey })).status, 204);
    await waitUntil(
      'the programs to stop',
      () => programProcesses(),
      (pids) => pids.length === 0,
      {
        timeoutMs: 20_000,
      },
    );
  });

  test('an archive that cannot serve is refused as invalid_model, and no model is made', async () => {
    const cases: [string, Record<string, string>, RegExp][] = [
      ['no-manifest', { 'predict.py': 'print("hi")\n' }, /no modelgate\.json/],
      ['bad-manifest', { 'modelgate.json': '{"command": []}' }, /modelgate\.json: command/],
      [
        'never-ready',
        {
          'predict.py':
            'import sys, time\nprint("loading /weights/missing.bin", file=sys.stderr, flush=True)\ntime.sleep(3600)\n',
          'modelgate.json': JSON.stringify({
            command: ['/usr/bin/python3', 'predict.py'],
            setupTimeoutMs: 500,
          }),
        },
        /did not write ready within 500 ms.*missing\.bin/s,
      ],
      [
        'crashes',
        {
          'predict.py':
            'import sys\nprint("ModuleNotFoundError: torch", file=sys.stderr, flush=True)\nsys.exit(1)\n',
          'modelgate.json': JSON.stringify({ command: ['/usr/bin/python3', 'predict.py'] }),
        },
        /exited with code 1.*ModuleNotFoundError: torch/s,
      ],
    ];
    for (const [name, files, message] of cases) {
      const answer = await upload(name, await archive(name, files));
      assertProblem(answer, 400, 'invalid_model');
      assert.match(answer.body.detail, message, name);
      assertProblem(await tp.call('GET', `/v1/models/${name}`, { key: tp.adminKey }), 404, 'model_not_found');
    }
  });

  test("a server that drains on SIGTERM stops its program's processes and exits 0", async () => {
    const serverData = join(work, 'drained');
    const key = generateKey().secret;
    const server = new ModelgateProcess(
      'gateway',
      'drain',
      spawn(process.execPath, [BIN, 'serve', '--port', '0', '--data-dir', serverData], {
        env: { ...process.env, MODELGATE_ADMIN_KEY: key, MODELGATE_INFERENCE_THREADS: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    try {
      const url = (await server.waitForOutput(/"url":"(http:\/\/[^"]+)".*"msg":"modelgate listening"/))[1]!;
      const bytes = await archive('iris-drain', {
        'predict.py': { copy: join(ROOT, 'examples/iris-python/predict.py') },
        'iris-weights.json': { copy: join(ROOT, 'examples/iris-python/iris-weights.json') },
        'modelgate.json': JSON.stringify({ command: ['/usr/bin/python3', 'predict.py'], processes: 2 }),
      });
      const deployed = await fetch(`${url}/v1/models/iris-py/versions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/octet-stream' },
        body: new Uint8Array(bytes),
      });
      assert.equal(deployed.status, 201, await deployed.text());
      const pids = await waitUntil(
        'two copies',
        () => programProcesses(serverData),
        (found) => found.length === 2,
      );
      server.signal('SIGTERM');
      assert.deepEqual(await server.waitForExit(), { code: 0, signal: null });
      for (const pid of pids)
        assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, `copy ${pid} still runs`);
    } finally {
      if (server.running) {
        server.signal('SIGKILL');
        await server.waitForExit();
      }
    }
  });

  test(
    'the scikit-learn example, trained by its train.py, answers as its pipeline does',
    { skip: sklearnMissing() },
    async () => {
      const folder = join(work, 'sklearn');
      await mkdir(folder, { recursive: true });
      const train = spawnSync(PYTHON, [join(ROOT, 'examples/sklearn/train.py'), join(folder, 'model.pkl')], {
        encoding: 'utf8',
      });
      assert.equal(train.status, 0, train.stderr);
      const bytes = await archive('sklearn', {
        'predict.py': { copy: join(ROOT, 'examples/sklearn/predict.py') },
        'model.pkl': { copy: join(folder, 'model.pkl') },
        'modelgate.json': JSON.stringify({ command: [PYTHON, 'predict.py'] }),
      });
      const deployed = await upload('wine', bytes);
      assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
      // The pipeline's own answers for five wines of the data set, computed by scikit-learn here.
      const expected = spawnSync(
        PYTHON,
        [
          '-c',
          [
            'import json, pickle, sys',
            'from sklearn.datasets import load_wine',
            'model = pickle.load(open(sys.argv[1], "rb"))["model"]',
            'x = load_wine().data[::40][:5]',
            'print(json.dumps({"x": x.tolist(), "label": model.predict(x).tolist(),',
            '                  "probabilities": model.predict_proba(x).tolist()}))',
          ].join('\n'),
          join(folder, 'model.pkl'),
        ],
        { encoding: 'utf8' },
      );
      assert.equal(expected.status, 0, expected.stderr);
      const wines = JSON.parse(expected.stdout) as {
        x: number[][];
        label: number[];
        probabilities: number[][];
      };
      const answer = await tp.call('POST', '/v1/models/wine/predict', {
        key: tp.adminKey,
        json: { instances: wines.x },
      });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.deepEqual(answer.body.outputs.label, wines.label);
      answer.body.outputs.probabilities.forEach((row: number[], r: number) =>
        row.forEach((p, c) => assert.ok(Math.abs(p - wines.probabilities[r]![c]!) <= 1e-12, `[${r}][${c}]`)),
      );
      assert.ok(new Set(wines.label).size > 1, 'the five wines are of more than one cultivar');
    },
  );

  test('a form field "manifest" gives the archive\'s modelgate.json, or goes over it', async () => {
    const form = (bytes: Uint8Array, manifest: string, filename = 'model.tar.gz') => {
      const body = new FormData();
      body.append('manifest', manifest);
      body.append('file', new Blob([new Uint8Array(bytes)]), filename);
      return body;
    };
    const post = (name: string, body: FormData) =>
      tp.call('POST', `/v1/models/${name}/versions`, { key: tp.adminKey, body });
    const processesOf = (answer: Awaited<ReturnType<typeof post>>) =>
      answer.body.versions[0].runtime_status.processes.length as number;

    const bare = await archive('no-manifest', IRIS_PROGRAM);
    const given = await post(
      'manifest-given',
      form(bare, JSON.stringify({ command: [PYTHON, 'predict.py'] })),
    );
    assert.equal(given.status, 201, JSON.stringify(given.body));
    assert.equal(processesOf(given), 1);

    const own = await archive('own-manifest', {
      ...IRIS_PROGRAM,
      'modelgate.json': JSON.stringify({ command: [PYTHON, 'predict.py'], processes: 3 }),
    });
    const over = await post('manifest-over', form(own, JSON.stringify({ processes: 2 })));
    assert.equal(over.status, 201, JSON.stringify(over.body));
    assert.equal(processesOf(over), 2);
    const predicted = await tp.call('POST', '/v1/models/manifest-over/predict', {
      key: tp.adminKey,
      json: { instances: ROWS },
    });
    assert.deepEqual(predicted.body.outputs.label, [0, 2, 1]);

    assertProblem(await post('manifest-bad', form(own, '{"processes": ')), 400, 'invalid_json');
    assertProblem(await post('manifest-bad', form(own, '[1]')), 400, 'bad_request');
    assertProblem(
      await post('manifest-bad', form(own, JSON.stringify({ processes: 0 }))),
      400,
      'invalid_model',
    );
    const onnx = form(buildIrisModel(), JSON.stringify({ command: ['x'] }), 'model.onnx');
    assertProblem(await post('manifest-bad', onnx), 400, 'bad_request');
    assertProblem(
      await tp.call('GET', '/v1/models/manifest-bad', { key: tp.adminKey }),
      404,
      'model_not_found',
    );
  });
});
