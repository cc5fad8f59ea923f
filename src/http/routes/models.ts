// /v1/models: upload versions (raw body or multipart), list, inspect, change settings, delete.
import { Readable } from 'node:stream';
import type { MultipartFields } from '@fastify/multipart';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ModelgateError, isModelgateError } from '../../errors.ts';
import { parseModelSettings, type ModelWithVersions } from '../../registry/registry.ts';
import type { RunnerHealth } from '../../runtime/runtime.ts';
import type { ModelVersionRecord } from '../../store/models.ts';
import { principalOf, type HttpDeps } from '../context.ts';
import { parseVersion } from '../validation.ts';

type NameParams = { Params: { name: string } };
type VersionParams = { Params: { name: string; version: string } };

/** How this process's runner of a version is doing: its processes, or its upstream. */
type HealthOf = (version: ModelVersionRecord) => RunnerHealth;

export function serializeVersion(version: ModelVersionRecord, healthOf: HealthOf) {
  return {
    version: version.version,
    status: version.status,
    runtime: version.runtime,
    runtime_status: healthOf(version),
    sha256: version.artifactSha256,
    size_bytes: version.sizeBytes,
    created_at: version.createdAt,
    inputs: version.signature.inputs,
    outputs: version.signature.outputs,
  };
}

export function serializeModel({ model, versions }: ModelWithVersions, healthOf: HealthOf) {
  const latest = versions.at(-1);
  return {
    name: model.name,
    created_at: model.createdAt,
    settings: model.settings,
    latest_version: latest?.version ?? null,
    inputs: latest?.signature.inputs ?? [],
    outputs: latest?.signature.outputs ?? [],
    versions: versions.map((version) => serializeVersion(version, healthOf)),
  };
}

/**
 * What busboy says of a form it cannot read (no boundary, a body cut short), or the connection says when
 * it breaks mid-form, is the client's error. The plugin's own errors (its limits) are mapped where every
 * error is.
 */
function malformedForm(error: unknown): unknown {
  const code = (error as { code?: unknown }).code;
  if (isModelgateError(error) || (typeof code === 'string' && code.startsWith('FST_'))) return error;
  return new ModelgateError('bad_request', `the multipart form cannot be read: ${(error as Error).message}`, {
    cause: error,
  });
}

/** The file part's bytes, its failures told as the client's where the form is at fault. */
async function* formFileBytes(file: Readable): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of file) yield chunk as Buffer;
  } catch (error) {
    throw malformedForm(error);
  }
}

/** A deployment given as JSON (`{"runtime": "http", …}`) rather than as a file. */
function isJsonBody(request: FastifyRequest): boolean {
  const type = request.headers['content-type'];
  return typeof type === 'string' && /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(type);
}

/** The form field "manifest" (a program's modelgate.json as JSON text), when the form has one before its file. */
function manifestField(fields: MultipartFields): Record<string, unknown> | undefined {
  const field = fields.manifest;
  if (field === undefined) return undefined;
  const value = Array.isArray(field) || field.type !== 'field' ? undefined : field.value;
  if (typeof value !== 'string') {
    throw new ModelgateError('bad_request', 'the form field "manifest" is given once, as JSON text');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (error) {
    throw new ModelgateError(
      'invalid_json',
      `the form field "manifest" is not JSON: ${(error as Error).message}`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ModelgateError('bad_request', 'the form field "manifest" must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}

/**
 * The uploaded file as a stream: the raw body, or the first file part of a multipart form (with the
 * form's "manifest" field, sent before the file).
 */
async function uploadedFile(
  request: FastifyRequest,
): Promise<{ file: Readable; manifest?: Record<string, unknown> }> {
  if (request.isMultipart()) {
    const part = await request.file().catch((error: unknown) => {
      throw malformedForm(error);
    });
    if (!part) throw new ModelgateError('bad_request', 'the multipart form has no file part');
    return {
      file: Readable.from(formFileBytes(part.file), { objectMode: false }),
      manifest: manifestField(part.fields),
    };
  }
  if (request.body === undefined) throw new ModelgateError('bad_request', 'send the model file as the body');
  // Other content types (JSON, text) have been parsed already; only the raw-body parser hands on a stream.
  if (!(request.body instanceof Readable)) {
    throw new ModelgateError(
      'unsupported_media_type',
      'send the model file as application/octet-stream or as multipart/form-data, or a deployment as JSON',
    );
  }
  return { file: request.body };
}

export function registerModelRoutes(app: FastifyInstance, { registry, predictor }: HttpDeps): void {
  const healthOf: HealthOf = (version) => predictor.healthOf(version);
  const deployUpload = (tenantId: string, name: string, upload: Awaited<ReturnType<typeof uploadedFile>>) =>
    registry.deploy(tenantId, name, upload.file, upload.manifest);
  app.post<NameParams>(
    '/v1/models/:name/versions',
    { config: { scope: 'deploy' } },
    async (request, reply) => {
      const { tenantId } = principalOf(request);
      let version: ModelVersionRecord;
      try {
        ({ version } = isJsonBody(request)
          ? await registry.deployDefinition(tenantId, request.params.name, request.body)
          : await deployUpload(tenantId, request.params.name, await uploadedFile(request)));
      } catch (error) {
        // A refusal before the whole body arrived (too large, bad name) leaves the client sending: close the
        // connection after the answer, as Fastify does at its body limit, rather than keep it busy (and
        // make a shutdown wait for it).
        if (!request.raw.complete) reply.header('connection', 'close');
        throw error;
      }
      const deployed = await registry.get(tenantId, request.params.name);
      return reply
        .status(201)
        .header(
          'location',
          `/v1/models/${encodeURIComponent(request.params.name)}/versions/${version.version}`,
        )
        .send({ ...serializeModel(deployed, healthOf), deployed_version: version.version });
    },
  );

  app.get('/v1/models', { config: { scope: 'read' } }, async (request) => ({
    models: (await registry.list(principalOf(request).tenantId)).map((entry) =>
      serializeModel(entry, healthOf),
    ),
  }));

  app.get<NameParams>('/v1/models/:name', { config: { scope: 'read' } }, async (request) =>
    serializeModel(await registry.get(principalOf(request).tenantId, request.params.name), healthOf),
  );

  app.patch<NameParams>('/v1/models/:name', { config: { scope: 'deploy' } }, async (request) => {
    const settings = parseModelSettings((request.body as { settings?: unknown } | undefined)?.settings);
    return serializeModel(
      await registry.updateSettings(principalOf(request).tenantId, request.params.name, settings),
      healthOf,
    );
  });

  app.delete<NameParams>('/v1/models/:name', { config: { scope: 'deploy' } }, async (request, reply) => {
    await registry.remove(principalOf(request).tenantId, request.params.name);
    return reply.status(204).send();
  });

  app.get<VersionParams>(
    '/v1/models/:name/versions/:version',
    { config: { scope: 'read' } },
    async (request) => {
      const { name, version } = request.params;
      const number = parseVersion(name, version);
      const { versions } = await registry.get(principalOf(request).tenantId, name);
      const found = versions.find((v) => v.version === number);
      if (!found) {
        throw new ModelgateError('version_not_found', `model "${name}" has no version ${version}`, {
          details: { model: name, version: number },
        });
      }
      return serializeVersion(found, healthOf);
    },
  );

  app.delete<VersionParams>(
    '/v1/models/:name/versions/:version',
    { config: { scope: 'deploy' } },
    async (request, reply) => {
      const { name, version } = request.params;
      await registry.remove(principalOf(request).tenantId, name, parseVersion(name, version));
      return reply.status(204).send();
    },
  );
}
