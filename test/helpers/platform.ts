// Starts a real modelgate platform for a test file: real HTTP on an ephemeral port of 127.0.0.1, an
// embedded database in a fresh temporary directory (or a fresh schema on TEST_DATABASE_URL), and a known
// admin key. Also builds the small ONNX models tests deploy.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { buildModel } from '../../examples/onnx-writer.ts';
import { generateKey } from '../../src/auth/keys.ts';
import { ModelgateClient } from '../../src/client/client.ts';
import { resolveConfig, type ConfigInput } from '../../src/config/config.ts';
import { startPlatform, type Platform } from '../../src/platform.ts';
import { takeDueArtifactRemovals } from '../../src/store/artifacts.ts';
import { createTestSchema, dropTestSchema, testDatabaseUrl } from './databases.ts';

export interface TestPlatform {
  url: string;
  adminKey: string;
  platform: Platform;
  /** A client with `key` (default: the admin key). */
  client(key?: string): ModelgateClient;
  /** fetch() against the platform with an optional key; returns status, headers and parsed JSON body. */
  call(
    method: string,
    path: string,
    options?: { key?: string; json?: unknown; body?: BodyInit; headers?: Record<string, string> },
  ): Promise<{ status: number; headers: Headers; body: any }>; // eslint-disable-line @typescript-eslint/no-explicit-any
  close(): Promise<void>;
}

export interface TestPlatformOptions {
  /** Configuration over the test defaults (port 0, silent logs, 2 inference threads). */
  config?: Partial<ConfigInput>;
  /** Run on a fresh schema of the Postgres server at TEST_DATABASE_URL instead of embedded PGlite. */
  postgres?: boolean;
}

export async function startTestPlatform(options: TestPlatformOptions = {}): Promise<TestPlatform> {
  const dataDir = await mkdtemp(join(tmpdir(), 'modelgate-test-'));
  const adminKey = generateKey().secret;
  const url = options.postgres ? testDatabaseUrl() : undefined;
  if (options.postgres && !url) throw new Error('TEST_DATABASE_URL is required for a Postgres test platform');
  const schema = url ? await createTestSchema(url, 'platform') : undefined;
  const config = resolveConfig(
    {
      port: 0,
      dataDir,
      logLevel: 'silent',
      inferenceThreads: 2,
      adminKey,
      databaseUrl: url,
      databaseSchema: schema,
      ...options.config,
    },
    {},
  );
  const platform = await startPlatform(config, { logger: pino({ level: 'silent' }) });
  const baseUrl = platform.url!;
  return {
    url: baseUrl,
    adminKey,
    platform,
    client: (key = adminKey) => new ModelgateClient({ url: baseUrl, key }),
    async call(method, path, { key, json, body, headers = {} } = {}) {
      const allHeaders: Record<string, string> = { ...headers };
      if (key) allHeaders.authorization = `Bearer ${key}`;
      if (json !== undefined) allHeaders['content-type'] = 'application/json';
      const response = await fetch(baseUrl + path, {
        method,
        headers: allHeaders,
        body: json !== undefined ? JSON.stringify(json) : body,
      });
      const text = await response.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        // Not JSON (e.g. /metrics): keep the text.
      }
      return { status: response.status, headers: response.headers, body: parsed };
    },
    async close() {
      await platform.close();
      if (url && schema) await dropTestSchema(url, schema);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Makes the removals of `hashes` due, and removes every due artifact, as a worker's housekeeping does. */
export async function removeDueArtifacts({ db, artifacts }: Platform, hashes: string[]): Promise<void> {
  await db.query(`UPDATE artifact_removals SET due_at = now() - interval '1 second' WHERE sha256 = ANY($1)`, [
    hashes,
  ]);
  for (const sha256 of await takeDueArtifactRemovals(db)) await artifacts.remove(sha256);
}

/** An FP32 model y = x (Identity) with input `x` [batch, width]: cheap, and shows batching exactly. */
export function buildIdentityModel(width = 3): Uint8Array {
  return buildModel({
    name: 'identity',
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', width] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['batch', width] }],
    nodes: [{ opType: 'Identity', inputs: ['x'], outputs: ['y'] }],
  });
}

/** y = x · x: a valid product only for a batch of exactly 3 rows; any other batch fails at run time. */
export function buildSquareModel(): Uint8Array {
  return buildModel({
    name: 'square',
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 3] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['batch', 3] }],
    nodes: [{ opType: 'MatMul', inputs: ['x', 'x'], outputs: ['y'] }],
  });
}

/** A model with two inputs, FP32 `a` [batch, 2] and INT64 `b` [batch, 2], echoing both. */
export function buildTwoInputModel(): Uint8Array {
  return buildModel({
    name: 'two-inputs',
    inputs: [
      { name: 'a', type: 'float32', shape: ['batch', 2] },
      { name: 'b', type: 'int64', shape: ['batch', 2] },
    ],
    outputs: [
      { name: 'a_out', type: 'float32', shape: ['batch', 2] },
      { name: 'b_out', type: 'int64', shape: ['batch', 2] },
    ],
    nodes: [
      { opType: 'Identity', inputs: ['a'], outputs: ['a_out'] },
      { opType: 'Identity', inputs: ['b'], outputs: ['b_out'] },
    ],
  });
}

const WIDTH = 1024;
/** MatMul layers of the slow model: 300 × [400, 1024] · [1024, 1024] took ~1.7 s on one ORT thread here. */
const SLOW_LAYERS = 300;
/** Rows of a slow job: its body is ~1 MB of JSON, far below the 10 MiB limit. */
const SLOW_ROWS = 400;

/**
 * A model slow enough that a job is still running when its worker is killed or drained: y =
 * ReduceMean(x · W · W · … · W) with W = 1/1024 everywhere, so each layer maps a row to its mean and
 * y[r] = [mean(x[r])], computed exactly in FP32 for the inputs slowInput() makes.
 */
export function buildSlowModel(): Uint8Array {
  const nodes = [];
  let previous = 'x';
  for (let layer = 1; layer <= SLOW_LAYERS; layer++) {
    nodes.push({ opType: 'MatMul', inputs: [previous, 'W'], outputs: [`h${layer}`] });
    previous = `h${layer}`;
  }
  nodes.push({
    opType: 'ReduceMean',
    inputs: [previous],
    outputs: ['y'],
    attributes: { axes: { ints: [1] }, keepdims: { int: 1 } },
  });
  return buildModel({
    name: 'slow',
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', WIDTH] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['batch', 1] }],
    nodes,
    initializers: [
      { name: 'W', dims: [WIDTH, WIDTH], values: new Float32Array(WIDTH * WIDTH).fill(1 / WIDTH) },
    ],
  });
}

/** Rows whose every fourth value is `seed + r` and the rest 0 (short JSON): row r's mean is (seed + r) / 4. */
export function slowInput(seed: number, rows = SLOW_ROWS): number[][] {
  return Array.from({ length: rows }, (_, r) =>
    Array.from({ length: WIDTH }, (_, k) => (k % 4 === 0 ? seed + r : 0)),
  );
}

export function slowResult(seed: number, rows = SLOW_ROWS) {
  return {
    model: 'slow',
    version: 1,
    outputs: { y: Array.from({ length: rows }, (_, r) => [(seed + r) / 4]) },
  };
}
