// `modelgate deploy` of a program's folder (packed with its modelgate.json and the flags over it), of a
// program's archive, and of a running model server (--runtime http), through the real CLI as a subprocess
// against a real platform; and the usage errors of each form, with their exit code and message.
//
// Each CLI run costs a second or two of CPU (it loads the whole platform's modules), so independent runs go
// side by side: the usage errors and the http tests run concurrently.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { create } from 'tar';
import { buildIrisModel } from '../examples/build.ts';
import { assertProblem, deployModel } from './helpers/api.ts';
import { buildIdentityModel, startTestPlatform, type TestPlatform } from './helpers/platform.ts';
import {
  IRIS_PROGRAM,
  IRIS_PYTHON_DIR,
  IRIS_SIGNATURE,
  PYTHON,
  runCli,
  startIrisHttpServer,
  writeFolder,
  type Files,
} from './helpers/examples.ts';

/** Rows of examples/data/iris.csv, one of each species: labels 0, 2, 1. */
const ROWS = [
  [5.1, 3.5, 1.4, 0.2],
  [6.7, 3.0, 5.2, 2.3],
  [5.9, 3.0, 4.2, 1.5],
];

interface DeployAnswer {
  name: string;
  deployed_version: number;
  settings: Record<string, unknown>;
  versions: { version: number; runtime: string; sha256: string }[];
  outputs: { name: string }[];
}

let tp: TestPlatform;
let work: string;
let dataDir: string;
let api: string[];
let irisOnnx: { label: number[]; probabilities: number[][] };

/** `modelgate deploy ARGS --json` against the platform, `-- COMMAND` last; it must succeed. */
async function deployWithCli(args: string[], command: string[] = [], tmp?: string): Promise<DeployAnswer> {
  const literal = command.length > 0 ? ['--', ...command] : [];
  const result = await runCli(['deploy', ...args, '--json', ...api, ...literal], {
    env: { TMPDIR: tmp ?? tmpdir() },
  });
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as DeployAnswer;
}

const deployedVersion = (answer: DeployAnswer) =>
  answer.versions.find((version) => version.version === answer.deployed_version)!;

/** A deploy that must fail as bad usage: exit 2, nothing on stdout, `message` on stderr, no model made. */
async function assertUsageError(args: string[], message: RegExp) {
  const name = args[args.indexOf('--name') + 1]!;
  const result = await runCli(['deploy', ...args, ...api]);
  assert.deepEqual([result.code, result.stdout], [2, ''], result.stderr);
  assert.match(result.stderr, message);
  assert.doesNotMatch(result.stderr, /^\s+at .*:\d+:\d+\)?$/m, 'no stack trace');
  assertProblem(await tp.call('GET', `/v1/models/${name}`, { key: tp.adminKey }), 404, 'model_not_found');
}

/** A folder in the work dir holding `files` (name → text, or a file to copy). */
const folder = (name: string, files: Files) => writeFolder(join(work, name), files);

/** Every file under `path` with its content: to show that a deploy left a folder as it was. */
async function snapshot(path: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const entry of await readdir(path, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = join(entry.parentPath, entry.name);
    files[file] = await readFile(file, 'utf8');
  }
  return files;
}

interface ProgramProcess {
  argv: string[];
  env: Record<string, string>;
}

/** The processes running in the unpacked deployment `sha256`: a command version's copies of its program. */
async function programsOf(sha256: string): Promise<ProgramProcess[]> {
  const deployment = join(dataDir, 'deployments', sha256);
  const found: ProgramProcess[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cwd = await readlink(`/proc/${entry}/cwd`).catch(() => '');
    if (!cwd.startsWith(deployment)) continue;
    const [cmdline, environ] = await Promise.all([
      readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => ''),
      readFile(`/proc/${entry}/environ`, 'utf8').catch(() => ''),
    ]);
    const pairs = environ.split('\0').filter(Boolean);
    found.push({
      argv: cmdline.split('\0').filter(Boolean),
      env: Object.fromEntries(
        pairs.map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
      ),
    });
  }
  return found;
}

/** The outputs of `model` for ROWS. */
async function predictRows(model: string) {
  const answer = await tp.call('POST', `/v1/models/${model}/predict`, {
    key: tp.adminKey,
    json: { instances: ROWS },
  });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body.outputs as { label: number[]; probabilities: number[][] };
}

/** Asserts the iris answers of `model` are the ONNX iris model's: the same labels, probabilities within 1e-5. */
async function assertAnswersAsIris(model: string) {
  const outputs = await predictRows(model);
  assert.deepEqual(outputs.label, [0, 2, 1]);
  assert.deepEqual(outputs.label, irisOnnx.label);
  outputs.probabilities.forEach((row, r) =>
    row.forEach((p, c) =>
      assert.ok(Math.abs(p - irisOnnx.probabilities[r]![c]!) <= 1e-5, `${model} probabilities[${r}][${c}]`),
    ),
  );
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'modelgate-cli-deploy-'));
  dataDir = join(work, 'data');
  tp = await startTestPlatform({ config: { dataDir } });
  api = ['--url', tp.url, '--key', tp.adminKey];
  await deployModel(tp, tp.adminKey, 'iris-onnx', buildIrisModel());
  irisOnnx = await predictRows('iris-onnx');
});
after(async () => {
  await tp.close();
  await rm(work, { recursive: true, force: true });
});

/** An HTTP server on 127.0.0.1 answering with `answer` and recording every request it got. */
async function recordingServer(answer: (request: IncomingMessage, body: string) => [number, unknown]) {
  const received: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[] = [];
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk));
    request.on('end', () => {
      received.push({ method: request.method!, url: request.url!, headers: request.headers, body });
      const [status, json] = answer(request, body);
      response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(json));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

// The three groups run side by side too: their models, folders and processes are their own.
describe('modelgate deploy', { concurrency: true }, () => {
  describe('deploying a program’s folder or archive', { concurrency: true }, () => {
    test('examples/iris-python with a command after --: packed, served as the ONNX iris, the folder untouched', async () => {
      const before = await snapshot(IRIS_PYTHON_DIR);
      const cliTmp = join(work, 'cli-tmp');
      await mkdir(cliTmp);
      // The folder's own modelgate.json says `python3 predict.py` and 2 processes: the flags win.
      const deployed = await deployWithCli(
        [
          IRIS_PYTHON_DIR,
          '--name',
          'iris-folder',
          '--processes',
          '1',
          '--env',
          'IRIS_FLAG=1',
          '--max-batch-size',
          '4',
        ],
        [PYTHON, 'predict.py'],
        cliTmp,
      );
      const version = deployedVersion(deployed);
      assert.equal(version.runtime, 'command');
      assert.deepEqual(
        deployed.outputs.map((o) => o.name),
        ['label', 'probabilities'],
      );
      assert.equal(deployed.settings.maxBatchSize, 4, 'a serving flag applies to a folder too');
      await assertAnswersAsIris('iris-folder');

      const programs = await programsOf(version.sha256);
      assert.equal(programs.length, 1, "--processes 1 over the folder's 2");
      assert.deepEqual(programs[0]!.argv, [PYTHON, 'predict.py'], "the command after --, not the folder's");
      assert.equal(programs[0]!.env.IRIS_FLAG, '1');

      assert.deepEqual(await snapshot(IRIS_PYTHON_DIR), before, 'the folder is as it was');
      const left = (await readdir(cliTmp)).filter((entry) => entry.startsWith('modelgate-'));
      assert.deepEqual(left, [], 'the temporary archive is removed');
    });

    test('a folder whose modelgate.json says everything', async () => {
      const path = await folder('manifest-only', {
        ...IRIS_PROGRAM,
        'modelgate.json': JSON.stringify({
          command: [PYTHON, 'predict.py'],
          processes: 2,
          env: { SOURCE: 'manifest' },
        }),
      });
      const deployed = await deployWithCli([path, '--name', 'iris-manifest']);
      const version = deployedVersion(deployed);
      assert.equal(version.runtime, 'command');
      assert.deepEqual((await predictRows('iris-manifest')).label, [0, 2, 1]);
      const programs = await programsOf(version.sha256);
      assert.equal(programs.length, 2);
      for (const program of programs) {
        assert.deepEqual(program.argv, [PYTHON, 'predict.py']);
        assert.equal(program.env.SOURCE, 'manifest');
      }
    });

    test("flags over a folder's modelgate.json: --processes replaces its value, --env adds to its env", async () => {
      const manifest = JSON.stringify({
        command: [PYTHON, 'predict.py'],
        processes: 2,
        env: { SOURCE: 'manifest', KEPT: 'yes' },
      });
      const path = await folder('overridden', { ...IRIS_PROGRAM, 'modelgate.json': manifest });
      const flags = ['--processes', '1', '--env', 'SOURCE=flag', '--env', 'ADDED=x=y'];
      const deployed = await deployWithCli([path, '--name', 'iris-overridden', ...flags]);
      assert.deepEqual((await predictRows('iris-overridden')).label, [0, 2, 1]);
      const programs = await programsOf(deployedVersion(deployed).sha256);
      assert.equal(programs.length, 1);
      const { env } = programs[0]!;
      assert.deepEqual([env.SOURCE, env.KEPT, env.ADDED], ['flag', 'yes', 'x=y']);
      assert.equal(
        await readFile(join(path, 'modelgate.json'), 'utf8'),
        manifest,
        "the folder's manifest is kept",
      );
    });

    test('an archive deploys with --runtime command as it is', async () => {
      const path = await folder('archived', {
        ...IRIS_PROGRAM,
        'modelgate.json': JSON.stringify({ command: [PYTHON, 'predict.py'] }),
      });
      const archive = join(work, 'archived.tar.gz');
      await create({ gzip: true, file: archive, cwd: path }, [
        'predict.py',
        'iris-weights.json',
        'modelgate.json',
      ]);
      const deployed = await deployWithCli([archive, '--name', 'iris-archive', '--runtime', 'command']);
      assert.equal(deployedVersion(deployed).runtime, 'command');
      assert.deepEqual((await predictRows('iris-archive')).label, [0, 2, 1]);
    });
  });

  describe(
    'usage errors: exit 2, a message saying what to do, nothing deployed',
    { concurrency: true },
    () => {
      test('a folder with neither a modelgate.json nor a command after --; one whose modelgate.json is not JSON', async () => {
        const bare = await folder('no-manifest', IRIS_PROGRAM);
        const badJson = await folder('bad-json', {
          ...IRIS_PROGRAM,
          'modelgate.json': '{"command": ["python3",',
        });
        await Promise.all([
          assertUsageError(
            [bare, '--name', 'no-manifest'],
            /^error: .*no-manifest has no modelgate\.json: say how to run its program after --, e\.g\. modelgate deploy .*no-manifest --name no-manifest -- python3 predict\.py\n$/,
          ),
          assertUsageError(
            [badJson, '--name', 'bad-json'],
            /^error: .*bad-json\/modelgate\.json is not JSON: /,
          ),
        ]);
      });

      test('program flags or a command with a file; --runtime command with a file that is not an archive', async () => {
        const archive = join(work, 'flags.tar.gz');
        const path = await folder('flags', {
          'modelgate.json': JSON.stringify({ command: [PYTHON, 'predict.py'] }),
        });
        await create({ gzip: true, file: archive, cwd: path }, ['modelgate.json']);
        const onnx = join(work, 'identity.onnx');
        await writeFile(onnx, buildIdentityModel(2));
        await Promise.all([
          assertUsageError(
            [archive, '--name', 'flags', '--processes', '2', '--env', 'A=1', '--', PYTHON, 'predict.py'],
            /^error: --processes, --env, a command after --: only for a folder, which modelgate packs with its modelgate\.json; .*flags\.tar\.gz is a file: set them in the archive's modelgate\.json, or deploy its folder\n$/,
          ),
          assertUsageError(
            [onnx, '--name', 'not-archive', '--runtime', 'command'],
            /^error: --runtime command takes a program's folder or a \.tar\.gz\/\.zip archive of one; .*identity\.onnx is neither\n$/,
          ),
        ]);
      });

      test('a path that is not there; no path at all', async () => {
        await Promise.all([
          assertUsageError(
            [join(work, 'absent'), '--name', 'absent', '--', PYTHON, 'predict.py'],
            /^error: no such file or folder: .*absent\n$/,
          ),
          assertUsageError(
            ['--name', 'nothing'],
            /^error: say what to deploy: .*--runtime http --upstream-url <url>\n$/,
          ),
        ]);
      });

      test('http flags without --runtime http; a path or program flags with it; no --upstream-url', async () => {
        const http = ['--runtime', 'http', '--protocol', 'v2'];
        await Promise.all([
          assertUsageError(
            [IRIS_PYTHON_DIR, '--name', 'mixed', '--upstream-url', 'http://127.0.0.1:1'],
            /^error: --upstream-url describe a running model server: add --runtime http\n$/,
          ),
          assertUsageError(
            [IRIS_PYTHON_DIR, '--name', 'http-path', ...http, '--upstream-url', 'http://127.0.0.1:1'],
            /^error: --runtime http deploys a running model server, nothing to upload: leave out .*iris-python\n$/,
          ),
          assertUsageError(
            ['--name', 'http-processes', ...http, '--upstream-url', 'http://127.0.0.1:1', '--processes', '2'],
            /^error: --processes set a program's manifest, not an http model server's\n$/,
          ),
          assertUsageError(
            ['--name', 'http-no-url', ...http],
            /^error: --runtime http needs --upstream-url <url>/,
          ),
        ]);
      });
    },
  );

  describe('deploying a running model server (--runtime http)', { concurrency: true }, () => {
    test('the CLI sends its definition as JSON with only the fields given, then the serving settings', async () => {
      // A stand-in for the modelgate API, to see exactly what the CLI sends.
      const model = { settings: {}, inputs: [], outputs: [], latest_version: 1 };
      const standIn = await recordingServer((request) => {
        const name = decodeURIComponent(request.url!.split('/')[3]!);
        const versions = [{ version: 1, runtime: 'http' }];
        return request.method === 'POST'
          ? [201, { ...model, name, versions, deployed_version: 1 }]
          : [200, { ...model, name, versions, settings: { timeoutMs: 900 } }];
      });
      try {
        const signature = join(work, 'iris-signature.json');
        await writeFile(signature, JSON.stringify(IRIS_SIGNATURE));
        const standInApi = ['--runtime', 'http', '--url', standIn.url, '--key', 'mg_test'];
        const [v2, v1] = await Promise.all([
          runCli([
            'deploy',
            '--name',
            'everything',
            ...standInApi,
            '--upstream-url',
            'http://10.0.0.7:8000',
            '--protocol',
            'v2',
            '--upstream-model',
            'iris',
            '--upstream-version',
            '3',
            '--signature',
            signature,
            '--concurrency',
            '8',
            '--upstream-timeout-ms',
            '2500',
            '--upstream-header',
            'Authorization=Bearer upstream-secret',
            '--upstream-header',
            'X-Tenant=a=b',
            '--timeout-ms',
            '900',
          ]),
          runCli([
            'deploy',
            '--name',
            'least',
            ...standInApi,
            '--upstream-url',
            'http://10.0.0.7:8080/predict',
            '--protocol',
            'v1',
          ]),
        ]);
        assert.equal(v2.code, 0, v2.stderr);
        assert.match(v2.stdout, /^deployed everything version 1 \(http\)$/m);
        assert.equal(v1.code, 0, v1.stderr);
        const sent = (method: string, url: string) => {
          const request = standIn.received.find((r) => r.method === method && r.url === url);
          assert.ok(request, `${method} ${url} was sent`);
          return request;
        };
        const everything = sent('POST', '/v1/models/everything/versions');
        assert.equal(everything.headers['content-type'], 'application/json');
        assert.equal(everything.headers.authorization, 'Bearer mg_test');
        assert.deepEqual(JSON.parse(everything.body), {
          runtime: 'http',
          protocol: 'v2',
          url: 'http://10.0.0.7:8000',
          model: 'iris',
          modelVersion: '3',
          signature: IRIS_SIGNATURE,
          concurrency: 8,
          timeoutMs: 2500,
          headers: { Authorization: 'Bearer upstream-secret', 'X-Tenant': 'a=b' },
        });
        assert.deepEqual(JSON.parse(sent('PATCH', '/v1/models/everything').body), {
          settings: { timeoutMs: 900 },
        });
        assert.deepEqual(JSON.parse(sent('POST', '/v1/models/least/versions').body), {
          runtime: 'http',
          protocol: 'v1',
          url: 'http://10.0.0.7:8080/predict',
        });
        assert.equal(standIn.received.length, 3, 'no settings given for "least", so no PATCH');
      } finally {
        await standIn.close();
      }
    });

    // Needs the http runtime (src/runtime/http.ts) in the platform.
    test('a KServe v1 server (examples/iris-python/http_server.py) serves as the ONNX iris does', async () => {
      const upstream = await startIrisHttpServer();
      try {
        const signature = join(work, 'iris-v1-signature.json');
        await writeFile(signature, JSON.stringify(IRIS_SIGNATURE));
        const deployed = await deployWithCli([
          '--name',
          'iris-v1',
          '--runtime',
          'http',
          '--protocol',
          'v1',
          '--upstream-url',
          `${upstream.url}/v1/models/iris:predict`,
          '--health-url',
          `${upstream.url}/healthz`,
          '--signature',
          signature,
          '--concurrency',
          '2',
          '--upstream-timeout-ms',
          '5000',
          '--max-batch-size',
          '8',
        ]);
        assert.equal(deployedVersion(deployed).runtime, 'http');
        assert.equal(deployed.settings.maxBatchSize, 8, 'a serving flag applies to an http version too');
        await assertAnswersAsIris('iris-v1');
      } finally {
        if (upstream.child.exitCode === null) {
          const exited = new Promise((resolve) => upstream.child.once('exit', resolve));
          upstream.child.kill('SIGTERM');
          await exited;
        }
      }
    });

    // Needs the http runtime (src/runtime/http.ts) in the platform.
    test('an Open Inference Protocol v2 server: the model and version named are the ones called', async () => {
      const model = {
        name: 'doubler',
        versions: ['3'],
        platform: 'test',
        inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 2] }],
        outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 2] }],
      };
      const base = '/v2/models/doubler/versions/3';
      const upstream = await recordingServer((request, body) => {
        if (request.url === '/v2') return [200, { name: 'test', version: '1', extensions: [] }];
        if (request.method === 'GET' && request.url === base) return [200, model];
        if (request.method === 'GET' && request.url === `${base}/ready`) return [200, {}];
        if (request.method === 'POST' && request.url === `${base}/infer`) {
          const [input] = (JSON.parse(body) as { inputs: { shape: number[]; data: number[] }[] }).inputs;
          const data = input!.data.map((value) => value * 2);
          return [
            200,
            { model_name: 'doubler', outputs: [{ name: 'y', datatype: 'FP32', shape: input!.shape, data }] },
          ];
        }
        return [404, { error: `no route ${request.method} ${request.url}` }];
      });
      try {
        const deployed = await deployWithCli([
          '--name',
          'doubled',
          '--runtime',
          'http',
          '--protocol',
          'v2',
          '--upstream-url',
          upstream.url,
          '--upstream-model',
          'doubler',
          '--upstream-version',
          '3',
        ]);
        assert.equal(deployedVersion(deployed).runtime, 'http');
        const answer = await tp.call('POST', '/v1/models/doubled/predict', {
          key: tp.adminKey,
          json: { instances: [[1, 2.5]] },
        });
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        assert.deepEqual(answer.body.outputs, { y: [[2, 5]] });
        assert.ok(upstream.received.some((r) => r.method === 'POST' && r.url === `${base}/infer`));
      } finally {
        await upstream.close();
      }
    });
  });
});
