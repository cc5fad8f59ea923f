// The runtimes benchmark's command part: the iris model as a Python program (examples/iris-python,
// speaking docs/runtimes.md through python/modelgate_runtime.py), (a) spoken to directly over its pipe by
// this process, (b) behind the hand-written http.server wrapper next to it (http_server.py), and (c)
// deployed as an archive to modelgate's command runtime; one row per request, 1 and 64 clients.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { create as createTar } from 'tar';
import { runClosedLoop } from './closed-loop.ts';
import { pythonHelperDirOf, startProtocolProgram } from './protocol-program.ts';
import { SETUPS, type Cell } from './runtimes-report.ts';
import {
  autocannonLoad,
  callSetup,
  checkAnswer,
  deployedVersionOf,
  deployVersion,
  expectStatus,
  float32Base64,
  jsonOf,
  largestDifference,
  log,
  measureSetup,
  modelgateServing,
  PYTHON,
  startModelgate,
  wireValues,
  type Part,
  type RunCell,
  type RunContext,
} from './runtimes-measure.ts';
import { HOST, REPO_ROOT, startPeer } from './servers.ts';
import { buildWorkload, type Workload } from './workload.ts';

const IRIS_PYTHON_DIR = join(REPO_ROOT, 'examples/iris-python');
const CLIENTS = [1, 64];

/**
 * The manifest (c) is deployed with: two copies for two cores, each sent one batch at a time (the helper
 * answers one request at a time, serve's default threads=1), so while both are busy every waiting request
 * joins the next batch. At 64 clients, inFlight 1 and 2 served the same within this shared machine's noise
 * (11.2k against 10.4k req/s summed over four alternating 3 s runs, 2026-12-04; batches of ~15 and ~12
 * rows); one process instead of two served no more either.
 */
const COMMAND_MANIFEST = { command: [PYTHON, 'predict.py'], processes: 2, inFlight: 1 };

interface IrisAnswer {
  label: number;
  probabilities: number[];
}

const irisDifference = (a: IrisAnswer, b: IrisAnswer) =>
  a.label === b.label ? largestDifference(a.probabilities, b.probabilities) : Infinity;

/** A .tar.gz of the Python iris example with the benchmark's manifest, as a team would upload it. */
async function buildIrisArchive(context: RunContext): Promise<Uint8Array> {
  const folder = join(context.runDir, 'iris-python-archive');
  mkdirSync(folder, { recursive: true });
  for (const file of ['predict.py', 'iris-weights.json'])
    copyFileSync(join(IRIS_PYTHON_DIR, file), join(folder, file));
  writeFileSync(join(folder, 'modelgate.json'), JSON.stringify(COMMAND_MANIFEST));
  const path = join(context.runDir, 'iris-python.tar.gz');
  await createTar({ gzip: true, file: path, cwd: folder }, [
    'predict.py',
    'iris-weights.json',
    'modelgate.json',
  ]);
  return new Uint8Array(readFileSync(path));
}

/** Built once per run (training iris takes a second or two), the same bytes every round. */
let cachedWorkload: Workload | undefined;

async function runCommandPart(context: RunContext): Promise<Cell[]> {
  const { options } = context;
  const workload = (cachedWorkload ??= buildWorkload('iris'));
  const body = workload.body;
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${context.adminKey}` };
  const cells: Cell[] = [];

  // (a) The program over its pipe, with the request line modelgate would write for one row (b64 inputs).
  log(`starting ${SETUPS.pipe.label}`);
  const program = await startProtocolProgram({
    command: PYTHON,
    args: ['predict.py'],
    cwd: IRIS_PYTHON_DIR,
    pythonHelperDir: pythonHelperDirOf(REPO_ROOT),
  });
  let reference: IrisAnswer;
  try {
    const inputsJson = JSON.stringify({
      x: { datatype: 'FP32', shape: [1, 4], data: { b64: float32Base64(workload.row) } },
    });
    const first = await program.infer(inputsJson);
    if (first.type !== 'result') throw new Error(`predict.py answered ${JSON.stringify(first)}`);
    reference = {
      label: wireValues(first.outputs?.label)[0]!,
      probabilities: wireValues(first.outputs?.probabilities),
    };
    checkAnswer(context, 'pipe', 0, { ready: program.ready });
    const run: RunCell = (clients, durationSeconds) =>
      runClosedLoop({
        clients,
        durationSeconds,
        send: async () => (await program.infer(inputsJson)).type === 'result',
      });
    cells.push(
      ...(await measureSetup('pipe', { processes: { program: program.pid } }, run, options, CLIENTS)),
    );
  } finally {
    await program.stop();
  }

  // (b) The hand-written http.server wrapper, loaded by autocannon like every HTTP server here.
  log(`starting ${SETUPS['python-http'].label}`);
  const httpServer = join(IRIS_PYTHON_DIR, 'http_server.py');
  const wrapper = await startPeer('python-http', PYTHON, [httpServer, '--host', HOST, '--port', '0']);
  try {
    const url = `${wrapper.url}/v1/models/iris:predict`;
    const answer = await callSetup('python-http', url, { body, headers });
    const prediction = (jsonOf(answer).predictions as IrisAnswer[])[0]!;
    checkAnswer(context, 'python-http', irisDifference(prediction, reference), { announced: wrapper.info });
    const serving = { processes: { 'http.server': wrapper.pid } };
    const load = autocannonLoad(url, headers, body);
    cells.push(...(await measureSetup('python-http', serving, load, options, CLIENTS)));
  } finally {
    await wrapper.stop();
  }

  // (c) modelgate's command runtime, the program deployed as an archive.
  log(`starting ${SETUPS['modelgate-command'].label}`);
  const modelgate = await startModelgate(context, 'command');
  try {
    const deployed = await deployVersion(context, modelgate, 'iris-py', await buildIrisArchive(context));
    expectStatus(deployed, 201, 'deploying iris-py');
    const url = `${modelgate.url}/v1/models/iris-py/predict`;
    const answer = await callSetup('modelgate-command', url, { body, headers });
    const outputs = jsonOf(answer).outputs as { label: number[]; probabilities: number[][] };
    const prediction = { label: outputs.label[0]!, probabilities: outputs.probabilities[0]! };
    checkAnswer(context, 'modelgate-command', irisDifference(prediction, reference), {
      manifest: COMMAND_MANIFEST,
      deployedVersion: deployedVersionOf(deployed),
    });
    const serving = modelgateServing(modelgate, 'iris-py');
    const load = autocannonLoad(url, headers, body);
    cells.push(...(await measureSetup('modelgate-command', serving, load, options, CLIENTS)));
  } finally {
    await modelgate.stop();
  }
  return cells;
}

export const commandPart: Part = {
  clients: CLIENTS,
  settings: { manifest: COMMAND_MANIFEST, python: PYTHON },
  run: runCommandPart,
};
