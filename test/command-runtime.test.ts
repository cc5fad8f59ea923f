// The command runtime's runner against real Python programs (Debian's /usr/bin/python3): the iris example
// answers as the ONNX iris model does; the helper's doubler shows stray stdout skipped, stderr logged,
// program errors mapped; and small programs of this file's own fail in every way the runtime must
// survive: killed mid-request, hung past the deadline, never ready, an answer that is not valid, a line
// over the limit.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { buildIrisModel, readIrisCsv } from '../examples/build.ts';
import { isModelgateError } from '../src/errors.ts';
import { CommandRunner, type CommandSpec } from '../src/runtime/command.ts';
import { OnnxRuntime } from '../src/runtime/onnx.ts';
import { Runtimes } from '../src/runtime/runtime.ts';
import { tensorFromJson, type NamedTensors } from '../src/runtime/tensor.ts';

const PYTHON = '/usr/bin/python3';
const ROOT = new URL('..', import.meta.url).pathname;

/** A logger whose records the test reads. */
function recordingLogger() {
  const records: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) records.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), records };
}

const XY = {
  inputs: [{ name: 'x', datatype: 'FP32' as const, shape: [-1, 2] }],
  outputs: [{ name: 'y', datatype: 'FP32' as const, shape: [-1, 2] }],
};
const rowOf = (a: number, b: number): NamedTensors => ({ x: tensorFromJson('x', 'FP32', [1, 2], [a, b]) });
const rejectsWithCode = (promise: Promise<unknown>, code: string, message?: RegExp) =>
  assert.rejects(promise, (error: unknown) => {
    assert.ok(isModelgateError(error), String(error));
    assert.equal(error.code, code, error.message);
    if (message) assert.match(error.message, message);
    return true;
  });

/**
 * The answer once the program is back: a request sent while the killed copy is still exiting fails as
 * runtime_unavailable (what a client retries after a moment, and jobs do); any other failure fails the test.
 */
async function servedAgain(made: CommandRunner, inputs: NamedTensors): Promise<NamedTensors> {
  for (let tries = 1; ; tries++) {
    try {
      return await made.infer(inputs);
    } catch (error) {
      if (!isModelgateError(error) || error.code !== 'runtime_unavailable' || tries >= 20) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

let dir: string;
const runners: CommandRunner[] = [];

function runner(command: string[], options: Partial<CommandSpec> = {}, logger = pino({ level: 'silent' })) {
  const made = new CommandRunner(
    {
      command,
      env: {},
      processes: 1,
      inFlight: 4,
      setupTimeoutMs: 10_000,
      requestTimeoutMs: 10_000,
      signature: undefined,
      ...options,
    },
    async () => dir,
    logger,
  );
  runners.push(made);
  return made;
}

/** A raw-protocol Python program written to the test folder; `on_infer` gets (id, x rows) and answers. */
async function program(name: string, body: string): Promise<string[]> {
  const path = join(dir, `${name}.py`);
  await writeFile(
    path,
    `import base64, json, os, struct, sys, time
def send(message):
    sys.stdout.write(json.dumps(message) + "\\n"); sys.stdout.flush()
def rows(tensor):
    raw = base64.b64decode(tensor["data"]["b64"]); n = len(raw) // 4
    values = struct.unpack("<%df" % n, raw); width = tensor["shape"][1]
    return [list(values[i:i + width]) for i in range(0, n, width)]
def answer(request_id, y):
    flat = [v for row in y for v in row]
    send({"type": "result", "id": request_id, "outputs": {"y": {"datatype": "FP32", "shape": [len(y), 2], "data": flat}}})
${body}
`,
  );
  return [PYTHON, path];
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'modelgate-command-'));
});
after(async () => {
  await Promise.all(runners.map((made) => made.close()));
  await rm(dir, { recursive: true, force: true });
});

describe('the command runtime', () => {
  test('the iris example in Python answers as the ONNX iris model does, on all 150 rows', async () => {
    const iris = runner([PYTHON, join(ROOT, 'examples/iris-python/predict.py')]);
    await iris.load();
    assert.equal(iris.ready, true);
    assert.deepEqual(
      iris.reportedSignature?.outputs.map((spec) => spec.name),
      ['label', 'probabilities'],
    );
    const rows = readIrisCsv().features;
    const x = tensorFromJson('x', 'FP32', [rows.length, 4], rows.flat());
    const fromPython = await iris.infer({ x });

    const onnxDir = await mkdtemp(join(tmpdir(), 'modelgate-command-onnx-'));
    const onnx = new OnnxRuntime({ threads: 1, intraOpThreads: 1 });
    try {
      await writeFile(join(onnxDir, 'iris.onnx'), buildIrisModel());
      const fromOnnx = await onnx.infer('iris', join(onnxDir, 'iris.onnx'), {
        x: tensorFromJson('x', 'FP32', [rows.length, 4], rows.flat()),
      });
      assert.deepEqual(fromPython.label!.data, fromOnnx.label!.data);
      const python = fromPython.probabilities!.data as Float32Array;
      const reference = fromOnnx.probabilities!.data as Float32Array;
      assert.equal(python.length, reference.length);
      python.forEach((value, i) => assert.ok(Math.abs(value - reference[i]!) <= 1e-5, `element ${i}`));
    } finally {
      await onnx.close();
      await rm(onnxDir, { recursive: true, force: true });
    }
  });

  test("stray stdout is logged and skipped, stderr is logged; the program's errors map to their codes", async () => {
    const { logger, records } = recordingLogger();
    const doubler = runner([PYTHON, join(ROOT, 'test/python/programs/doubler.py')], {}, logger);
    assert.deepEqual((await doubler.infer(rowOf(99, 1))).y!.data, new Float32Array([198, 2]));
    assert.deepEqual((await doubler.infer(rowOf(1.5, -2))).y!.data, new Float32Array([3, -4]));
    await rejectsWithCode(doubler.infer(rowOf(-1, 0)), 'invalid_input', /must not be negative/);
    await rejectsWithCode(doubler.infer(rowOf(13, 0)), 'inference_failed', /unlucky 13/);
    assert.ok(
      records.some((record) => record.msg === 'model program' && /stray/.test(String(record.stderr))),
    );
    assert.deepEqual((await doubler.infer(rowOf(2, 3))).y!.data, new Float32Array([4, 6]), 'it carries on');
  });

  test('a declared signature the program contradicts fails the load', async () => {
    const wrong = { ...XY, outputs: [{ name: 'y', datatype: 'FP32' as const, shape: [-1, 3] }] };
    const doubler = runner([PYTHON, join(ROOT, 'test/python/programs/doubler.py')], { signature: wrong });
    await rejectsWithCode(doubler.load(), 'invalid_model', /differs from the one declared/);
    assert.equal(doubler.ready, false);
  });

  test('a version recorded with a runtime this process lacks is not_ready, naming it', () => {
    assert.throws(
      () => new Runtimes([]).get('command'),
      (error: unknown) =>
        isModelgateError(error) && error.code === 'not_ready' && /"command"/.test(error.message),
    );
  });

  test('a program killed mid-request fails that request as runtime_unavailable and is restarted', async () => {
    const command = await program(
      'slow',
      `send({"type": "ready", "signature": ${JSON.stringify(XY)}})
print(os.getpid(), file=sys.stderr, flush=True)
for line in sys.stdin:
    request = json.loads(line)
    x = rows(request["inputs"]["x"])
    if x[0][0] == 1:
        time.sleep(30)
    answer(request["id"], [[2 * v for v in row] for row in x])`,
    );
    const { logger, records } = recordingLogger();
    const slow = runner(command, {}, logger);
    await slow.load();
    let pid = 0;
    for (let tries = 0; pid === 0 && tries < 200; tries++) {
      pid = Number(records.find((record) => record.msg === 'model program')?.stderr ?? 0);
      if (pid === 0) await new Promise((resolve) => setTimeout(resolve, 25));
    }
    assert.ok(pid > 0, 'the program told its pid');
    const held = slow.infer(rowOf(1, 0));
    await new Promise((resolve) => setTimeout(resolve, 200));
    process.kill(pid, 'SIGKILL');
    await rejectsWithCode(held, 'runtime_unavailable', /killed by SIGKILL/);
    assert.deepEqual((await servedAgain(slow, rowOf(2, 3))).y!.data, new Float32Array([4, 6]));
  });

  test('a program that does not answer within requestTimeoutMs is killed and restarted', async () => {
    const command = await program(
      'hang',
      `send({"type": "ready", "signature": ${JSON.stringify(XY)}})
for line in sys.stdin:
    request = json.loads(line)
    x = rows(request["inputs"]["x"])
    if x[0][0] == 1:
        time.sleep(3600)
    answer(request["id"], x)`,
    );
    const hang = runner(command, { requestTimeoutMs: 500 });
    await rejectsWithCode(hang.infer(rowOf(1, 0)), 'runtime_unavailable');
    assert.deepEqual((await servedAgain(hang, rowOf(5, 6))).y!.data, new Float32Array([5, 6]));
  });

  test('a program that never becomes ready fails the load with the tail of its stderr, and is stopped', async () => {
    const command = await program(
      'never',
      `print("loading weights from /models/missing.bin", file=sys.stderr, flush=True)
time.sleep(3600)`,
    );
    const never = runner(command, { setupTimeoutMs: 500, signature: XY });
    await rejectsWithCode(never.load(), 'invalid_model', /did not write ready.*\n.*missing\.bin/s);
    assert.equal(never.ready, false);

    const crashing = runner(
      await program(
        'crash',
        `print("ImportError: no module named torch", file=sys.stderr, flush=True)\nsys.exit(3)`,
      ),
      { signature: XY },
    );
    await rejectsWithCode(crashing.load(), 'invalid_model', /exited with code 3.*no module named torch/s);
  });

  test('an answer that does not fit the signature, and a line over the limit, fail the request', async () => {
    const command = await program(
      'bad',
      `send({"type": "ready", "signature": ${JSON.stringify(XY)}})
for line in sys.stdin:
    request = json.loads(line)
    x = rows(request["inputs"]["x"])
    if x[0][0] == 1:
        send({"type": "result", "id": request["id"], "outputs": {"y": {"datatype": "INT64", "shape": [1, 2], "data": [1, 2]}}})
    elif x[0][0] == 2:
        sys.stdout.write("x" * (65 * 1024 * 1024)); sys.stdout.flush()
    else:
        answer(request["id"], x)`,
    );
    const bad = runner(command);
    await rejectsWithCode(bad.infer(rowOf(1, 0)), 'inference_failed', /INT64, not FP32/);
    await rejectsWithCode(bad.infer(rowOf(2, 0)), 'inference_failed', /over \d+ bytes/);
    assert.deepEqual((await servedAgain(bad, rowOf(3, 4))).y!.data, new Float32Array([3, 4]));
  });
});
