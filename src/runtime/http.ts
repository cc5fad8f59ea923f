// The http runtime: a model server the team already runs, in front of which modelgate puts its keys,
// batching, backpressure, jobs and batch runs. A version names the server's URL and its protocol: the
// Open Inference Protocol v2 (KServe, Triton, MLServer, another modelgate: signature from the model's
// metadata, readiness from its ready route, binary tensors when the server lists the extension) or plain
// JSON in KServe v1's shape (`{"instances": rows}` → `{"predictions": rows}`, FastAPI-style servers, with a
// declared signature). Calls go over a keep-alive pool holding at most `concurrency` requests in flight,
// each within `timeoutMs`; the server's failures become stable codes (docs/errors.md). The URL is chosen by
// a tenant's deploy key, so the addresses it may reach follow the operator's `upstreamAllowedNetworks`.
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { Pool, type Dispatcher } from 'undici';
import { z } from 'zod';
import { ModelgateError } from '../errors.ts';
import { isPlainObject } from '../json.ts';
import { RefusedTargetError, TargetPolicy } from '../network/targets.ts';
import {
  BINARY_CONTENT_TYPE,
  encodeBinaryInferBody,
  INFERENCE_HEADER_CONTENT_LENGTH,
  parseBinaryInferBody,
  parseInferenceHeaderLength,
} from './binary-tensors.ts';
import { checkedOutputs, parseSignature, type AnswerSource } from './outputs.ts';
import type { InspectedModel, ModelRunner, RunnableVersion, Runtime, RunnerHealth } from './runtime.ts';
import { hasFreeBatchDimension, type ModelSignature, type TensorSpec } from './signature.ts';
import { batchRows, inferShape, nestByShape, tensorToJson, type NamedTensors } from './tensor.ts';

const MAX_URL_LENGTH = 2048;
/** The largest answer read from an upstream; past it the call fails as an invalid answer. */
const MAX_ANSWER_BYTES = 256 * 1024 * 1024;
/** Characters of an upstream's error message quoted to the caller. */
const MAX_QUOTED_MESSAGE = 500;
/** Retry-After given when an upstream is down and did not say when to come back. */
const UPSTREAM_RETRY_AFTER_SECONDS = 1;
/** How long an idle keep-alive connection to an upstream is kept. */
const KEEP_ALIVE_MS = 30_000;
/** Deadline of a health check and of the calls a deploy makes. */
const CHECK_TIMEOUT_MS = 5000;

const OPEN_NETWORKS_HINT =
  'an operator opens internal networks with upstreamAllowedNetworks (MODELGATE_UPSTREAM_ALLOWED_NETWORKS)';

const headerName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** A version of the `http` runtime as deployed: the JSON body of POST /v1/models/{name}/versions. */
const definitionSchema = z
  .object({
    runtime: z.literal('http'),
    protocol: z.enum(['v2', 'v1']),
    /** v2: the server's base URL (…/v2/models/{model}/infer is called); v1: the URL predictions are POSTed to. */
    url: z.string().min(1).max(MAX_URL_LENGTH),
    /** v2: the model's name on the server. */
    model: z.string().min(1).max(256).optional(),
    /** v2: the model's version on the server; its newest when absent. */
    modelVersion: z.string().min(1).max(64).optional(),
    /** Required for v1; for v2 the server's metadata gives it (and must agree when both are given). */
    signature: z.unknown().optional(),
    /** v1: a URL on the same server that answers 2xx while it is healthy. */
    healthUrl: z.string().min(1).max(MAX_URL_LENGTH).optional(),
    /** Sent with every call, e.g. the server's own Authorization. */
    headers: z
      .record(z.string().regex(headerName, 'header names are HTTP tokens'), z.string().max(8192))
      .default({}),
    /** Requests in flight to the server at once (batches, when batching merges them). */
    concurrency: z.number().int().min(1).max(1024).default(4),
    /** Deadline of one call. */
    timeoutMs: z.number().int().min(10).max(3_600_000).default(30_000),
    /** How often the server's health is checked while the version is loaded. */
    healthIntervalMs: z.number().int().min(100).max(3_600_000).default(5000),
    /** v2: send inputs and ask for outputs as binary tensors; default: when the server lists the extension. */
    binaryTensors: z.boolean().optional(),
  })
  .strict()
  .superRefine((definition, context) => {
    if (definition.protocol === 'v2' && definition.model === undefined) {
      context.addIssue({
        code: 'custom',
        path: ['model'],
        message: "v2 needs the model's name on the server",
      });
    }
    if (definition.protocol === 'v1' && definition.signature === undefined) {
      context.addIssue({ code: 'custom', path: ['signature'], message: 'v1 needs a declared signature' });
    }
    if (definition.protocol === 'v2' && definition.healthUrl !== undefined) {
      context.addIssue({ code: 'custom', path: ['healthUrl'], message: 'v2 checks its ready route instead' });
    }
  });

type Definition = z.infer<typeof definitionSchema>;

/** What a version keeps: its definition with the signature and binary choice settled at deploy. */
interface HttpSettings extends Omit<Definition, 'signature' | 'binaryTensors'> {
  signature: ModelSignature;
  binaryTensors: boolean;
}

export interface HttpRuntimeOptions {
  /** Internal networks upstreams may be in (config `upstreamAllowedNetworks`). */
  allowedNetworks: readonly string[];
  logger: Logger;
}

const unavailable = (message: string, retryAfterSeconds = UPSTREAM_RETRY_AFTER_SECONDS, cause?: unknown) =>
  new ModelgateError('runtime_unavailable', message, { retryAfterSeconds, cause });

const invalidAnswer: AnswerSource = { what: "the upstream's answer", code: 'upstream_invalid_answer' };
const badAnswer = (message: string) =>
  new ModelgateError('upstream_invalid_answer', `the upstream's answer is not valid: ${message}`);

/** An upstream's answer, read whole. */
interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** The first string worth quoting from an error body: v2's `error`, FastAPI's `detail`, or its text. */
function quotedMessage(answer: Answer): string {
  const text = answer.body.toString('utf8');
  let message = text;
  try {
    const parsed: unknown = JSON.parse(text);
    if (isPlainObject(parsed)) {
      const field = parsed.error ?? parsed.detail ?? parsed.message;
      if (field !== undefined) message = typeof field === 'string' ? field : JSON.stringify(field);
    }
  } catch {
    // Not JSON: quote the text.
  }
  message = message.trim();
  return message.length > MAX_QUOTED_MESSAGE ? `${message.slice(0, MAX_QUOTED_MESSAGE)}…` : message;
}

function retryAfterOf(answer: Answer): number {
  const value = answer.headers['retry-after'];
  const seconds = typeof value === 'string' && /^\d{1,6}$/.test(value) ? Number(value) : undefined;
  return seconds ?? UPSTREAM_RETRY_AFTER_SECONDS;
}

/** A non-2xx answer as the caller's error: 4xx theirs (400), 503 a server down, other 5xx its failure. */
function failureOf(answer: Answer): ModelgateError {
  const { status } = answer;
  const message = quotedMessage(answer);
  const said = message ? `: ${message}` : '';
  const details = { upstream_status: status };
  if (status >= 400 && status < 500) {
    return new ModelgateError('upstream_rejected', `the upstream refused the request (${status})${said}`, {
      details,
    });
  }
  if (status === 503) return unavailable(`the upstream is unavailable (503)${said}`, retryAfterOf(answer));
  if (status >= 500) {
    return new ModelgateError('upstream_failed', `the upstream failed (${status})${said}`, { details });
  }
  return new ModelgateError(
    'upstream_invalid_answer',
    `the upstream answered ${status}${status >= 300 && status < 400 ? '; redirects are not followed' : ''}`,
    { details },
  );
}

/** A URL an upstream may be given as: absolute http(s), without credentials, to an allowed address. */
function checkUpstreamUrl(text: string, field: string, policy: TargetPolicy): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch (error) {
    throw new ModelgateError('invalid_model', `${field} is not an absolute URL`, { cause: error });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ModelgateError('invalid_model', `${field} must be http: or https:, not ${url.protocol}`);
  }
  if (url.username || url.password) {
    throw new ModelgateError('invalid_model', `${field} may not carry a username or password; use headers`);
  }
  const kind = policy.refusedHostKind(url);
  if (kind) {
    throw new ModelgateError(
      'bad_request',
      `${field}'s host ${url.hostname} is a ${kind} address, which model upstreams may not reach; ${OPEN_NETWORKS_HINT}`,
      { details: { url: text, setting: 'upstreamAllowedNetworks' } },
    );
  }
  return url;
}

/** The keep-alive connections to one server, each call within its deadline and read whole. */
class Upstream {
  private readonly pool: Pool;

  constructor(
    readonly origin: string,
    connections: number,
    private readonly headers: Record<string, string>,
    policy: TargetPolicy,
  ) {
    this.pool = new Pool(origin, {
      connections,
      keepAliveTimeout: KEEP_ALIVE_MS,
      connect: policy.lookup ? { lookup: policy.lookup } : {},
    });
  }

  async call(
    method: 'GET' | 'POST',
    path: string,
    timeoutMs: number,
    body?: { bytes: Buffer; headers: Record<string, string> },
  ): Promise<Answer> {
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), timeoutMs);
    try {
      const response = await this.pool.request({
        method,
        path,
        headers: { ...this.headers, ...body?.headers },
        body: body?.bytes,
        signal: deadline.signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      return { status: response.statusCode, headers: response.headers, body: await readWhole(response) };
    } catch (error) {
      throw this.callFailure(error, deadline.signal.aborted, timeoutMs);
    } finally {
      clearTimeout(timer);
    }
  }

  private callFailure(error: unknown, timedOut: boolean, timeoutMs: number): ModelgateError {
    if (error instanceof ModelgateError) return error;
    const code = (error as { code?: string }).code;
    if (timedOut || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      return new ModelgateError('upstream_timeout', `the upstream did not answer within ${timeoutMs} ms`, {
        cause: error,
      });
    }
    const refused = [error, (error as { cause?: unknown }).cause].find(
      (e) => e instanceof RefusedTargetError,
    );
    if (refused) {
      // The name resolves to an address the operator did not open: retrying will not help.
      return new ModelgateError('bad_request', `${(refused as Error).message}; ${OPEN_NETWORKS_HINT}`, {
        details: { url: this.origin, setting: 'upstreamAllowedNetworks' },
      });
    }
    const message = `${(error as Error).message}${code ? ` (${code})` : ''}`;
    return unavailable(`the upstream ${this.origin} cannot be reached: ${message}`, undefined, error);
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }
}

async function readWhole(response: Dispatcher.ResponseData): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of response.body) {
    length += (chunk as Buffer).length;
    if (length > MAX_ANSWER_BYTES) {
      response.body.destroy();
      throw badAnswer(`it is larger than ${MAX_ANSWER_BYTES} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, length);
}

function parseJson(answer: Answer): unknown {
  try {
    return JSON.parse(answer.body.toString('utf8'));
  } catch (error) {
    throw badAnswer(`it is not JSON (${(error as Error).message})`);
  }
}

/** How one protocol asks a server for predictions and reads its answers. */
interface Protocol {
  inferPath: string;
  /** A GET that answers 2xx while the server can serve the model; undefined when there is none. */
  healthPath: string | undefined;
  encode(inputs: NamedTensors): { bytes: Buffer; headers: Record<string, string> };
  decode(answer: Answer, rows: number | undefined): NamedTensors;
}

const pathOf = (url: URL) => `${url.pathname.replace(/\/+$/, '')}`;
const v2ModelPath = (base: URL, model: string, version: string | undefined) =>
  `${pathOf(base)}/v2/models/${encodeURIComponent(model)}${version === undefined ? '' : `/versions/${encodeURIComponent(version)}`}`;

/** The Open Inference Protocol v2, in JSON or with Triton's binary tensor extension. */
function v2Protocol(settings: HttpSettings, base: URL): Protocol {
  const modelPath = v2ModelPath(base, settings.model!, settings.modelVersion);
  const { outputs } = settings.signature;
  return {
    inferPath: `${modelPath}/infer`,
    healthPath: `${modelPath}/ready`,
    encode(inputs): { bytes: Buffer; headers: Record<string, string> } {
      const entries = Object.entries(inputs).map(([name, tensor]) => ({
        name,
        datatype: tensor.datatype,
        shape: tensor.shape,
        ...(settings.binaryTensors ? {} : { data: tensorToJson(tensor) }),
      }));
      if (!settings.binaryTensors) {
        return {
          bytes: Buffer.from(JSON.stringify({ inputs: entries })),
          headers: { 'content-type': 'application/json' },
        };
      }
      const header = {
        inputs: entries,
        outputs: outputs.map((output) => ({ name: output.name, parameters: { binary_data: true } })),
      };
      const encoded = encodeBinaryInferBody(
        header,
        Object.entries(inputs).map(([name, tensor]) => ({ name, tensor })),
        'inputs',
      );
      return {
        bytes: encoded.body,
        headers: {
          'content-type': BINARY_CONTENT_TYPE,
          [INFERENCE_HEADER_CONTENT_LENGTH]: String(encoded.headerLength),
        },
      };
    },
    decode(answer, rows) {
      let header: unknown;
      let binary = new Map<string, Buffer>();
      try {
        const headerLength = parseInferenceHeaderLength(answer.headers[INFERENCE_HEADER_CONTENT_LENGTH]);
        if (headerLength === undefined) header = parseJson(answer);
        else ({ header, tensors: binary } = parseBinaryInferBody(answer.body, headerLength, 'outputs'));
      } catch (error) {
        if (error instanceof ModelgateError && error.code === 'upstream_invalid_answer') throw error;
        throw badAnswer((error as Error).message);
      }
      if (!isPlainObject(header) || !Array.isArray(header.outputs)) throw badAnswer('it has no outputs list');
      const byName: Record<string, unknown> = {};
      for (const entry of header.outputs as unknown[]) {
        if (!isPlainObject(entry) || typeof entry.name !== 'string') continue;
        byName[entry.name] = { ...entry, data: binary.get(entry.name) ?? entry.data };
      }
      return checkedOutputs(byName, outputs, rows, invalidAnswer);
    },
  };
}

/** A row of a tensor as nested JSON. */
function rowsOf(name: string, inputs: NamedTensors): unknown[] {
  const tensor = inputs[name]!;
  return nestByShape(tensorToJson(tensor), tensor.shape) as unknown[];
}

/** KServe v1's JSON: `{"instances": rows}` → `{"predictions": rows}`, one object per row when there are several tensors. */
function v1Protocol(settings: HttpSettings, url: URL, health: URL | undefined): Protocol {
  const { inputs: inputSpecs, outputs: outputSpecs } = settings.signature;
  const single = (specs: readonly TensorSpec[]) => (specs.length === 1 ? specs[0] : undefined);
  return {
    inferPath: `${url.pathname}${url.search}`,
    healthPath: health ? `${health.pathname}${health.search}` : undefined,
    encode(inputs) {
      const only = single(inputSpecs);
      let instances: unknown[];
      if (only) instances = rowsOf(only.name, inputs);
      else {
        const columns = inputSpecs.map((spec) => [spec.name, rowsOf(spec.name, inputs)] as const);
        instances = columns[0]![1].map((_, row) =>
          Object.fromEntries(columns.map(([name, values]) => [name, values[row]])),
        );
      }
      return {
        bytes: Buffer.from(JSON.stringify({ instances })),
        headers: { 'content-type': 'application/json' },
      };
    },
    decode(answer, rows) {
      const parsed = parseJson(answer);
      const predictions = isPlainObject(parsed) ? parsed.predictions : undefined;
      if (!Array.isArray(predictions)) throw badAnswer('it has no predictions list');
      if (predictions.length !== rows) {
        throw badAnswer(`it has ${predictions.length} predictions for ${rows} instances`);
      }
      const only = single(outputSpecs);
      const outputs: Record<string, unknown> = {};
      for (const spec of outputSpecs) {
        const column = predictions.map((prediction, row) => {
          if (only) return prediction;
          if (!isPlainObject(prediction) || !Object.hasOwn(prediction, spec.name)) {
            throw badAnswer(`prediction ${row} has no "${spec.name}"`);
          }
          return prediction[spec.name];
        });
        outputs[spec.name] = { datatype: spec.datatype, shape: inferShape(column), data: column };
      }
      return checkedOutputs(outputs, outputSpecs, rows, invalidAnswer);
    },
  };
}

class HttpRunner implements ModelRunner {
  ready = false;
  readonly concurrency: number;
  private readonly upstream: Upstream;
  private readonly protocol: Protocol;
  private loading: Promise<void> | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  private checkedAt: Date | undefined;
  private lastError: string | undefined;
  private closed = false;
  /** Why its URL may not be reached under the policy now (an operator may have closed a network since). */
  private readonly refusal: string | undefined;

  constructor(
    private readonly settings: HttpSettings,
    policy: TargetPolicy,
    private readonly logger: Logger,
  ) {
    this.concurrency = settings.concurrency;
    const url = new URL(settings.url);
    const kind = policy.refusedHostKind(url);
    this.refusal = kind && policy.refusal(url.hostname, url.hostname, kind);
    const health = settings.healthUrl === undefined ? undefined : new URL(settings.healthUrl);
    this.upstream = new Upstream(url.origin, settings.concurrency, settings.headers, policy);
    this.protocol =
      settings.protocol === 'v2' ? v2Protocol(settings, url) : v1Protocol(settings, url, health);
  }

  health(): RunnerHealth {
    return {
      state: this.ready ? 'ready' : this.checkedAt ? 'unavailable' : 'not_loaded',
      upstream: this.settings.url,
      checked_at: this.checkedAt?.toISOString() ?? null,
      error: this.lastError ?? null,
    };
  }

  /** Checks the server is up (its health route, when it has one), then keeps checking while loaded. */
  load(): Promise<void> {
    // The first check starts the periodic ones, whatever it finds: a server that was down at load is not
    // asked again on every request, and `ready` follows it when it comes back.
    this.loading ??= this.check().finally(() => this.scheduleHealthCheck());
    return this.loading.then(() => {
      if (!this.ready) throw unavailable(`the upstream is not ready: ${this.lastError}`);
    });
  }

  private scheduleHealthCheck(): void {
    if (this.closed) return;
    this.healthTimer = setTimeout(() => {
      void this.check().finally(() => this.scheduleHealthCheck());
    }, this.settings.healthIntervalMs);
    this.healthTimer.unref();
  }

  private async check(): Promise<void> {
    const { healthPath } = this.protocol;
    let error: string | undefined;
    if (healthPath !== undefined) {
      try {
        const answer = await this.upstream.call(
          'GET',
          healthPath,
          Math.min(CHECK_TIMEOUT_MS, this.settings.timeoutMs),
        );
        if (answer.status < 200 || answer.status >= 300) error = failureOf(answer).message;
      } catch (failure) {
        error = (failure as Error).message;
      }
    }
    if (this.closed) return;
    if (error !== this.lastError) {
      if (error) this.logger.warn({ upstream: this.settings.url, error }, 'model upstream is not ready');
      else if (this.lastError)
        this.logger.info({ upstream: this.settings.url }, 'model upstream is ready again');
    }
    this.checkedAt = new Date();
    this.lastError = error;
    this.ready = error === undefined;
  }

  async infer(inputs: NamedTensors): Promise<NamedTensors> {
    if (this.refusal) {
      throw new ModelgateError('bad_request', `${this.refusal}; ${OPEN_NETWORKS_HINT}`, {
        details: { url: this.settings.url, setting: 'upstreamAllowedNetworks' },
      });
    }
    // Starts the health checks on first use; the call itself says whether the server answers.
    if (!this.loading) void this.load().catch(() => undefined);
    const rows = hasFreeBatchDimension(this.settings.signature)
      ? batchRows(Object.values(inputs)[0]!)
      : undefined;
    const answer = await this.upstream.call(
      'POST',
      this.protocol.inferPath,
      this.settings.timeoutMs,
      this.protocol.encode(inputs),
    );
    if (answer.status < 200 || answer.status >= 300) throw failureOf(answer);
    return this.protocol.decode(answer, rows);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.ready = false;
    clearTimeout(this.healthTimer);
    await this.upstream.close();
  }
}

export class HttpRuntime implements Runtime {
  readonly name = 'http';
  readonly platform = 'modelgate_http';
  private readonly policy: TargetPolicy;

  constructor(private readonly options: HttpRuntimeOptions) {
    this.policy = new TargetPolicy('model upstreams', options.allowedNetworks);
  }

  /**
   * Reads a deployment (its JSON definition), checks its URLs, and asks the server: a v2 server for the
   * model's metadata (the signature) and whether it speaks binary tensors, a v1 server's health URL.
   */
  async inspect(artifactPath: string): Promise<InspectedModel> {
    let value: unknown;
    try {
      value = JSON.parse(await readFile(artifactPath, 'utf8'));
    } catch (error) {
      throw new ModelgateError('invalid_model', 'the deployment is not JSON', { cause: error });
    }
    const parsed = definitionSchema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ModelgateError(
        'invalid_model',
        `the http deployment: ${issue?.path.join('.') || 'the definition'}: ${issue?.message}`,
        { details: { issues: parsed.error.issues.map(({ path, message }) => ({ path, message })) } },
      );
    }
    const definition = parsed.data;
    const url = checkUpstreamUrl(definition.url, 'url', this.policy);
    if (definition.healthUrl !== undefined) {
      const health = checkUpstreamUrl(definition.healthUrl, 'healthUrl', this.policy);
      if (health.origin !== url.origin) {
        throw new ModelgateError('invalid_model', 'healthUrl must be on the same server as url');
      }
    }
    const declared =
      definition.signature === undefined ? undefined : parseSignature(definition.signature, 'the signature');
    const upstream = new Upstream(url.origin, 1, definition.headers, this.policy);
    try {
      const settings =
        definition.protocol === 'v2'
          ? await this.inspectV2(definition, url, declared, upstream)
          : await this.inspectV1(definition, declared!, upstream);
      return { signature: settings.signature, settings: { ...settings } };
    } finally {
      await upstream.close();
    }
  }

  private async inspectV2(
    definition: Definition,
    url: URL,
    declared: ModelSignature | undefined,
    upstream: Upstream,
  ): Promise<HttpSettings> {
    const metadataPath = v2ModelPath(url, definition.model!, definition.modelVersion);
    const answer = await upstream.call('GET', metadataPath, CHECK_TIMEOUT_MS);
    if (answer.status === 404) {
      throw new ModelgateError(
        'invalid_model',
        `the upstream has no model "${definition.model}"${definition.modelVersion ? ` version ${definition.modelVersion}` : ''} (GET ${metadataPath} answered 404)`,
      );
    }
    if (answer.status < 200 || answer.status >= 300) throw failureOf(answer);
    const metadata = parseJson(answer);
    const reported = parseSignature(metadata, "the upstream's model metadata");
    if (declared && JSON.stringify(declared) !== JSON.stringify(reported)) {
      throw new ModelgateError(
        'invalid_model',
        "the declared signature differs from the upstream's metadata",
        {
          details: { declared, reported },
        },
      );
    }
    let binaryTensors = definition.binaryTensors;
    // The server's metadata lists the extensions it speaks; one that says nothing gets JSON.
    binaryTensors ??= await upstream.call('GET', `${pathOf(url)}/v2`, CHECK_TIMEOUT_MS).then(
      (server) => {
        const { extensions } = (server.status === 200 ? parseJson(server) : {}) as { extensions?: unknown };
        return Array.isArray(extensions) && extensions.includes('binary_tensor_data');
      },
      () => false,
    );
    return { ...definition, signature: reported, binaryTensors };
  }

  private async inspectV1(
    definition: Definition,
    signature: ModelSignature,
    upstream: Upstream,
  ): Promise<HttpSettings> {
    if (!hasFreeBatchDimension(signature)) {
      throw new ModelgateError(
        'invalid_model',
        'a v1 signature has rows: every input and output shape starts with -1 (one instance per row)',
      );
    }
    if (definition.healthUrl !== undefined) {
      const health = new URL(definition.healthUrl);
      const answer = await upstream.call('GET', `${health.pathname}${health.search}`, CHECK_TIMEOUT_MS);
      if (answer.status < 200 || answer.status >= 300) throw failureOf(answer);
    }
    return { ...definition, signature, binaryTensors: false };
  }

  open(version: RunnableVersion): ModelRunner {
    return new HttpRunner(
      // Settings this runtime's inspect() wrote at deploy.
      version.settings as unknown as HttpSettings,
      this.policy,
      this.options.logger.child({ version: version.key }),
    );
  }

  async close(): Promise<void> {}
}
