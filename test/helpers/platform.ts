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

/** An FP32 model y = x (Identity) with input `x` [batch, width]: cheap, and shows batching exactly. */
export function buildIdentityModel(width = 3): Uint8Array {
  return buildModel({
    name: 'identity',
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', width] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['batch', width] }],
    nodes: [{ opType: 'Identity', inputs: ['x'], outputs: ['y'] }],
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
