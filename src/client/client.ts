// A typed client for the modelgate HTTP API (used by the CLI; usable from any TypeScript program).

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  [field: string]: unknown;
}

/** An error answer of the API, carrying its problem document. */
export class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(`${problem.detail} (${problem.code}, HTTP ${problem.status})`);
    this.name = 'ApiError';
  }
}

export interface ClientOptions {
  /** Base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  /** API key sent as `Authorization: Bearer`. */
  key?: string;
}

export interface KeyInfo {
  id: string;
  tenant_id: string;
  name: string;
  prefix: string;
  scopes: string[];
  expires_at: string | null;
  revoked_at: string | null;
  created_at: string;
}

export interface TensorSpecInfo {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ModelInfo {
  name: string;
  created_at: string;
  settings: Record<string, unknown>;
  latest_version: number | null;
  inputs: TensorSpecInfo[];
  outputs: TensorSpecInfo[];
  versions: {
    version: number;
    status: string;
    /** How the version runs: `onnx`, `command` (a team's program), `http` (a model server modelgate calls). */
    runtime: string;
    sha256: string;
    size_bytes: number;
    created_at: string;
  }[];
}

/**
 * A version that is a model server the team already runs, which modelgate calls: nothing is uploaded, the
 * server is described. Fields left out take the server's defaults; the server checks the whole definition.
 */
export interface HttpModelDefinition {
  runtime: 'http';
  /** What the server speaks: the Open Inference Protocol v2, or KServe v1's JSON (`{"instances": rows}`). */
  protocol: 'v2' | 'v1';
  /** v2: the server's base URL (…/v2/models/{model}/infer is called); v1: the URL predictions are POSTed to. */
  url: string;
  /** v2 (required): the model's name on the server. */
  model?: string;
  /** v2: the model's version on the server; its newest when absent. */
  modelVersion?: string;
  /** The tensors it takes and returns: required for v1; a v2 server's metadata gives it (and must agree). */
  signature?: { inputs: TensorSpecInfo[]; outputs: TensorSpecInfo[] };
  /** v1: a URL on the same server that answers 2xx while it is healthy (v2 uses its ready route). */
  healthUrl?: string;
  /** Sent with every call, e.g. the server's own Authorization. */
  headers?: Record<string, string>;
  /** Requests in flight to the server at once. Default 4. */
  concurrency?: number;
  /** Deadline of one call. Default 30 000. */
  timeoutMs?: number;
  /** How often the server's health is checked while the version is loaded. Default 5000. */
  healthIntervalMs?: number;
  /** v2: binary tensors; default: when the server lists the extension. */
  binaryTensors?: boolean;
}

/** A version described rather than uploaded (POST /v1/models/{name}/versions as JSON). */
export type ModelDefinition = HttpModelDefinition;

export interface TenantInfo {
  id: string;
  name: string;
  operator: boolean;
  created_at: string;
}

export interface JobOptions {
  version?: number;
  priority?: number;
  webhook_url?: string;
}

export interface JobInfo {
  id: string;
  model: string;
  version: number;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';
  priority: number;
  attempts: number;
  max_attempts: number;
  queued_at: string;
  started_at: string | null;
  finished_at: string | null;
  error: { code: string; message: string } | null;
  webhook: { url: string; status: string | null; attempts: unknown[] } | null;
  links: { self: string; cancel: string };
}

/** `path` with the given parameters as its query string; undefined ones are left out. */
function withQuery(path: string, params: Record<string, string | number | undefined>): string {
  const query = new URLSearchParams(
    Object.entries(params)
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => [key, String(value)]),
  ).toString();
  return query ? `${path}?${query}` : path;
}

/** Characters of an answer that is not JSON (a proxy's error page) quoted in the error. */
const QUOTED_TEXT = 200;

/** The JSON of an answer's text, or undefined when it is not JSON. */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * The ApiError of an error answer, from its problem document; an answer without one (a proxy's 502 page)
 * keeps its status and the start of its text.
 */
function apiError(response: Response, text: string): ApiError {
  const parsed = parseJson(text);
  const problem = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Partial<Problem>;
  const quoted = text.trim().slice(0, QUOTED_TEXT);
  return new ApiError({
    type: 'about:blank',
    title: response.statusText,
    detail: quoted ? `${response.statusText}: ${quoted}` : response.statusText || `HTTP ${response.status}`,
    code: 'unknown',
    ...problem,
    status: response.status,
  });
}

export interface BatchInfo {
  id: string;
  model: string;
  version: number;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';
  rows_total: number;
  rows_done: number;
  rows_failed: number;
  parts_total: number;
  parts_done: number;
  rows_per_second: number | null;
  eta_seconds: number | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  error: { code: string; message: string } | null;
  links: { self: string; output: string; errors: string; cancel: string };
}

/** How a batch runs, whichever way its input is given. */
export interface BatchRunOptions {
  version?: number;
  /** The columns of a model's only input. */
  features?: string[];
  /** The columns of each model input, by input name. */
  inputs?: Record<string, string[]>;
  passthrough?: string[];
  output?: 'csv' | 'jsonl';
  partRows?: number;
}

export interface BatchOptions extends BatchRunOptions {
  /** `text/csv` or `application/jsonl`. */
  contentType: string;
}

/** A batch input already in storage, read by the server. */
export interface BatchInputReference {
  /** `s3://bucket/key` or `file:///absolute/path`, in a folder the server allows (config batchInputUrls). */
  input: string;
  /** Default: from the name's extension (.csv, .jsonl, .ndjson). */
  format?: 'csv' | 'jsonl';
}

/** The submit path of a batch run of `model`, with its options in the query string. */
function batchSubmitPath(model: string, options: BatchRunOptions): string {
  return withQuery(`/v1/models/${encodeURIComponent(model)}/batches`, {
    version: options.version,
    features: options.features?.join(','),
    inputs:
      options.inputs &&
      Object.entries(options.inputs)
        .map(([name, columns]) => `${name}:${columns.join(',')}`)
        .join(';'),
    passthrough: options.passthrough?.join(','),
    output: options.output,
    part_rows: options.partRows,
  });
}

export class ModelgateClient {
  private readonly baseUrl: string;

  constructor(private readonly options: ClientOptions) {
    this.baseUrl = options.url.replace(/\/+$/, '');
  }

  /** `extra` with the API key as `Authorization: Bearer`. */
  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.options.key ? { ...extra, authorization: `Bearer ${this.options.key}` } : { ...extra };
  }

  async request<T>(
    method: string,
    path: string,
    init: { json?: unknown; body?: BodyInit; contentType?: string; headers?: Record<string, string> } = {},
  ) {
    const headers = this.headers(init.headers);
    let body = init.body;
    if (init.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(init.json);
    } else if (init.contentType) {
      headers['content-type'] = init.contentType;
    }
    const response = await fetch(this.baseUrl + path, {
      method,
      headers,
      body,
      duplex: 'half',
    } as RequestInit);
    const text = await response.text();
    if (!response.ok) throw apiError(response, text);
    if (!text) return undefined as T;
    const parsed = parseJson(text);
    // A 2xx that is not JSON did not come from modelgate (a captive portal, a misrouted proxy).
    if (parsed === undefined) throw apiError(response, text);
    return parsed as T;
  }

  /** A GET whose answer is a file: the response, its body not yet read. */
  async download(path: string): Promise<Response> {
    const response = await fetch(this.baseUrl + path, { headers: this.headers() });
    if (!response.ok) throw apiError(response, await response.text());
    return response;
  }

  createTenant(name: string) {
    return this.request<TenantInfo & { admin_key: KeyInfo & { key: string } }>('POST', '/v1/tenants', {
      json: { name },
    });
  }

  listTenants() {
    return this.request<{ tenants: TenantInfo[] }>('GET', '/v1/tenants');
  }

  createKey(options: { name?: string; scopes: string[]; expires_in_seconds?: number; expires_at?: string }) {
    return this.request<KeyInfo & { key: string }>('POST', '/v1/keys', { json: options });
  }

  listKeys() {
    return this.request<{ keys: KeyInfo[] }>('GET', '/v1/keys');
  }

  revokeKey(id: string) {
    return this.request<KeyInfo>('DELETE', `/v1/keys/${encodeURIComponent(id)}`);
  }

  deploy(name: string, model: Uint8Array | ReadableStream<Uint8Array>) {
    return this.request<ModelInfo & { deployed_version: number }>(
      'POST',
      `/v1/models/${encodeURIComponent(name)}/versions`,
      { body: model as BodyInit, contentType: 'application/octet-stream' },
    );
  }

  /** Deploys a version described by `definition` (a running model server) rather than uploaded. */
  deployDefinition(name: string, definition: ModelDefinition) {
    return this.request<ModelInfo & { deployed_version: number }>(
      'POST',
      `/v1/models/${encodeURIComponent(name)}/versions`,
      { json: definition },
    );
  }

  updateModelSettings(name: string, settings: Record<string, unknown>) {
    return this.request<ModelInfo>('PATCH', `/v1/models/${encodeURIComponent(name)}`, { json: { settings } });
  }

  listModels() {
    return this.request<{ models: ModelInfo[] }>('GET', '/v1/models');
  }

  getModel(name: string) {
    return this.request<ModelInfo>('GET', `/v1/models/${encodeURIComponent(name)}`);
  }

  deleteModel(name: string, version?: number) {
    const path = `/v1/models/${encodeURIComponent(name)}${version === undefined ? '' : `/versions/${version}`}`;
    return this.request<void>('DELETE', path);
  }

  /** Plain-JSON prediction: `{inputs: {name: nested array}}` or `{instances: rows}`. */
  predict(
    name: string,
    body: { inputs: Record<string, unknown> } | { instances: unknown[] },
    version?: number,
  ) {
    const path = `/v1/models/${encodeURIComponent(name)}${version === undefined ? '' : `/versions/${version}`}/predict`;
    return this.request<{ model: string; version: number; outputs: Record<string, unknown> }>('POST', path, {
      json: body,
    });
  }

  /**
   * Queues a job; the same `idempotencyKey` and body return the same job. `waitSeconds` (at most 60)
   * holds the answer until the job has finished (Prefer: wait), so that a short job comes back with its
   * result in one request.
   */
  submitJob(
    name: string,
    body: ({ inputs: Record<string, unknown> } | { instances: unknown[] }) & JobOptions,
    options: { idempotencyKey?: string; waitSeconds?: number } = {},
  ) {
    const headers: Record<string, string> = {};
    if (options.idempotencyKey !== undefined) headers['idempotency-key'] = options.idempotencyKey;
    if (options.waitSeconds !== undefined) headers.prefer = `wait=${options.waitSeconds}`;
    return this.request<JobInfo & { result?: unknown }>(
      'POST',
      `/v1/models/${encodeURIComponent(name)}/jobs`,
      { json: body, headers },
    );
  }

  /** The job with its result; `waitSeconds` long-polls (at most 60) until it has finished. */
  getJob(id: string, waitSeconds?: number) {
    const query = waitSeconds === undefined ? '' : `?wait=${waitSeconds}`;
    return this.request<JobInfo & { result: unknown }>('GET', `/v1/jobs/${encodeURIComponent(id)}${query}`);
  }

  listJobs(filter: { model?: string; status?: string; limit?: number; cursor?: string } = {}) {
    return this.request<{ jobs: JobInfo[]; next_cursor: string | null }>(
      'GET',
      withQuery('/v1/jobs', filter),
    );
  }

  cancelJob(id: string) {
    return this.request<JobInfo>('POST', `/v1/jobs/${encodeURIComponent(id)}/cancel`);
  }

  /** Submits a CSV or JSONL file (a stream: never read whole) as a batch run of `model`. */
  submitBatch(model: string, file: AsyncIterable<Uint8Array>, options: BatchOptions) {
    return this.request<BatchInfo>('POST', batchSubmitPath(model, options), {
      body: file as unknown as BodyInit,
      contentType: options.contentType,
    });
  }

  /** Submits a batch run of `model` on an object or file already in storage, which the server reads. */
  submitBatchReference(model: string, reference: BatchInputReference, options: BatchRunOptions = {}) {
    return this.request<BatchInfo>('POST', batchSubmitPath(model, options), { json: reference });
  }

  getBatch(id: string) {
    return this.request<BatchInfo>('GET', `/v1/batches/${encodeURIComponent(id)}`);
  }

  listBatches(page: { limit?: number; cursor?: string } = {}) {
    return this.request<{ batches: BatchInfo[]; next_cursor: string | null }>(
      'GET',
      withQuery('/v1/batches', page),
    );
  }

  cancelBatch(id: string) {
    return this.request<BatchInfo>('POST', `/v1/batches/${encodeURIComponent(id)}/cancel`);
  }

  /** The batch's output file (or its errors file), as a response to stream from. */
  batchFile(id: string, which: 'output' | 'errors') {
    return this.download(`/v1/batches/${encodeURIComponent(id)}/${which}`);
  }
}
