// examples/iris-python/predict.py, spoken to over the command runtime's protocol (docs/runtimes.md), answers
// all 150 iris rows like iris.onnx in ONNX Runtime, and its weights file is what the current build trains.

import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { InferenceSession, Tensor } from 'onnxruntime-node';

import { buildIrisModel, readIrisCsv } from '../examples/build.ts';
import { extractIrisWeights } from '../examples/export-iris-weights.ts';

const PYTHON = '/usr/bin/python3';
const PREDICT_SCRIPT = fileURLToPath(new URL('../examples/iris-python/predict.py', import.meta.url));
const WEIGHTS_PATH = fileURLToPath(new URL('../examples/iris-python/iris-weights.json', import.meta.url));
const TOLERANCE = 1e-5;

interface WireTensor {
  datatype: string;
  shape: number[];
  data: number[] | { b64: string };
}

type Message =
  | { type: 'ready'; signature?: unknown }
  | { type: 'result'; id: string; outputs: Record<string, WireTensor> }
  | { type: 'error'; id: string; message: string };

/** The program as a subprocess: protocol messages from stdout in order, stderr kept for failure messages. */
class ProtocolProcess {
  readonly child: ChildProcessWithoutNullStreams;
  private readonly messages: Message[] = [];
  private waiting: ((message: Message) => void) | undefined;
  stderr = '';

  constructor(command: string, args: string[]) {
    this.child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const message = JSON.parse(line) as Message;
      if (this.waiting) {
        const resolve = this.waiting;
        this.waiting = undefined;
        resolve(message);
      } else {
        this.messages.push(message);
      }
    });
  }

  next(): Promise<Message> {
    const queued = this.messages.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve) => (this.waiting = resolve));
  }

  send(message: unknown): void {
    this.child.stdin.write(`${JSON.stringify(message)}\n`);
  }

  /** Closes stdin, as modelgate does to stop the program, and resolves with the exit code. */
  stop(): Promise<number | null> {
    return new Promise((resolve) => {
      this.child.once('exit', (code) => resolve(code));
      this.child.stdin.end();
    });
  }
}

function decodeData(tensor: WireTensor): number[] {
  if (Array.isArray(tensor.data)) return tensor.data;
  const bytes = Buffer.from(tensor.data.b64, 'base64');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (tensor.datatype === 'FP32')
    return Array.from({ length: bytes.length / 4 }, (_, i) => view.getFloat32(i * 4, true));
  if (tensor.datatype === 'INT64') {
    return Array.from({ length: bytes.length / 8 }, (_, i) => Number(view.getBigInt64(i * 8, true)));
  }
  throw new Error(`unexpected datatype ${tensor.datatype}`);
}

function float32Base64(values: number[]): string {
  return Buffer.from(Float32Array.from(values).buffer).toString('base64');
}

describe('examples/iris-python', () => {
  const { features } = readIrisCsv();
  let onnxBytes: Uint8Array;
  let expectedLabels: number[];
  let expectedProbabilities: Float32Array;
  let program: ProtocolProcess;

  before(async () => {
    onnxBytes = buildIrisModel();
    const session = await InferenceSession.create(onnxBytes);
    const x = new Tensor('float32', Float32Array.from(features.flat()), [features.length, 4]);
    const { label, probabilities } = await session.run({ x });
    expectedLabels = Array.from(label!.data as BigInt64Array, Number);
    expectedProbabilities = probabilities!.data as Float32Array;
    await session.release();
    program = new ProtocolProcess(PYTHON, [PREDICT_SCRIPT]);
  });

  after(() => {
    program.child.kill();
  });

  test('iris-weights.json holds the parameters of the iris.onnx that examples/build.ts builds', async () => {
    const committed: unknown = JSON.parse(await readFile(WEIGHTS_PATH, 'utf8'));
    assert.deepEqual(
      committed,
      JSON.parse(JSON.stringify(extractIrisWeights(onnxBytes))),
      'rerun `npx tsx examples/export-iris-weights.ts` after changing how build.ts trains iris',
    );
  });

  test('declares the signature of iris.onnx when ready', async () => {
    const ready = await program.next();
    assert.deepEqual(ready, {
      type: 'ready',
      protocol: 1,
      signature: {
        inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
        outputs: [
          { name: 'label', datatype: 'INT64', shape: [-1] },
          { name: 'probabilities', datatype: 'FP32', shape: [-1, 3] },
        ],
      },
    });
  });

  test('answers all 150 rows like ONNX Runtime, in b64 and JSON requests in flight together', async () => {
    // Two requests at once: the first 100 rows as b64, the other 50 as a flat JSON array.
    const parts = [
      { id: 'b64-rows', start: 0, rows: features.slice(0, 100) },
      { id: 'json-rows', start: 100, rows: features.slice(100) },
    ].map((part) => ({
      ...part,
      data: part.id === 'b64-rows' ? { b64: float32Base64(part.rows.flat()) } : part.rows.flat(),
    }));
    for (const { id, rows, data } of parts) {
      program.send({ type: 'infer', id, inputs: { x: { datatype: 'FP32', shape: [rows.length, 4], data } } });
    }
    const answers = new Map<string, Message>();
    for (let i = 0; i < parts.length; i++) {
      const message = await program.next();
      assert.equal(message.type, 'result', `${JSON.stringify(message)}\nstderr: ${program.stderr}`);
      answers.set((message as { id: string }).id, message);
    }
    for (const { id, start, rows } of parts) {
      const { outputs } = answers.get(id) as Extract<Message, { type: 'result' }>;
      assert.deepEqual(outputs.label!.shape, [rows.length]);
      assert.deepEqual(outputs.probabilities!.shape, [rows.length, 3]);
      assert.deepEqual(decodeData(outputs.label!), expectedLabels.slice(start, start + rows.length));
      decodeData(outputs.probabilities!).forEach((p, i) => {
        const expected = expectedProbabilities[start * 3 + i]!;
        assert.ok(
          Math.abs(p - expected) <= TOLERANCE,
          `row ${start + Math.floor(i / 3)}: ${p} vs ${expected}`,
        );
      });
    }
  });

  test('exits 0 when stdin closes', async () => {
    assert.equal(await program.stop(), 0, program.stderr);
  });
});
