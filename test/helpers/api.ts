// Assertions and shortcuts for tests that talk to a test platform over HTTP: problem documents, and
// model uploads as a raw body or a multipart form.
import assert from 'node:assert/strict';
import type { TestPlatform } from './platform.ts';
import { waitUntil } from './processes.ts';

type Response = Awaited<ReturnType<TestPlatform['call']>>;

/**
 * Asserts an error answer: this status, a problem+json document with type, title, status, detail and this
 * code, and an `x-request-id` header that the document repeats.
 */
export function assertProblem(response: Response, status: number, code: string): void {
  const context = `${response.status} ${JSON.stringify(response.body)}`;
  assert.equal(response.status, status, context);
  assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json\b/, context);
  const body = response.body as Record<string, unknown>;
  assert.equal(body.code, code, context);
  assert.equal(body.status, status, context);
  assert.equal(body.type, `urn:modelgate:error:${code}`, context);
  assert.ok(typeof body.title === 'string' && body.title !== '', `title: ${context}`);
  assert.ok(typeof body.detail === 'string' && body.detail !== '', `detail: ${context}`);
  const requestId = response.headers.get('x-request-id');
  assert.ok(requestId, `x-request-id header: ${context}`);
  assert.equal(body.request_id, requestId, context);
}

/** Uploads `bytes` as a new version of `name` in the raw-body form (application/octet-stream). */
export function uploadRaw(tp: TestPlatform, key: string, name: string, bytes: Uint8Array): Promise<Response> {
  return tp.call('POST', `/v1/models/${encodeURIComponent(name)}/versions`, {
    key,
    body: new Uint8Array(bytes),
    headers: { 'content-type': 'application/octet-stream' },
  });
}

/** Uploads `bytes` as a new version of `name` in a multipart form (fetch sets the boundary). */
export function uploadMultipart(
  tp: TestPlatform,
  key: string,
  name: string,
  bytes: Uint8Array,
): Promise<Response> {
  const form = new FormData();
  form.append('description', 'uploaded by a test');
  form.append('file', new Blob([new Uint8Array(bytes)], { type: 'application/octet-stream' }), 'model.onnx');
  return tp.call('POST', `/v1/models/${encodeURIComponent(name)}/versions`, { key, body: form });
}

/** Uploads a model that must be accepted; returns the version number it became. */
export async function deployModel(tp: TestPlatform, key: string, name: string, bytes: Uint8Array) {
  const response = await uploadRaw(tp, key, name, bytes);
  assert.equal(response.status, 201, JSON.stringify(response.body));
  return response.body.deployed_version as number;
}

/** The batch once it is no longer queued or running (within 30 s), as GET /v1/batches/{id} gives it. */
export async function waitForBatch(tp: TestPlatform, key: string, id: string) {
  const batch = await waitUntil(
    `batch ${id} to finish`,
    () => tp.call('GET', `/v1/batches/${id}`, { key }),
    (response) => response.status !== 200 || !['queued', 'running'].includes(response.body.status),
  );
  assert.equal(batch.status, 200, JSON.stringify(batch.body));
  return batch.body;
}

/** The value of one Prometheus sample whose labels include `labels`, or undefined. */
export function sampleValue(
  metrics: string,
  name: string,
  labels: Record<string, string>,
): number | undefined {
  for (const line of metrics.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const pairs = new Map([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => pairs.get(key) === value)) return Number(match[3]);
  }
  return undefined;
}
