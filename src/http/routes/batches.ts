// Batch runs: POST /v1/models/{name}/batches (a CSV or JSONL body, streamed, or a JSON body naming an object
// or file already in storage; 202 once every part is queued), GET /v1/batches/{id} (status, progress, rate,
// ETA), GET /v1/batches (cursor), GET /v1/batches/{id}/output and /errors (streamed),
// POST /v1/batches/{id}/cancel.
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { batchView } from '../../batch/view.ts';
import { BATCH_FORMATS, parseInputMap, type BatchFormat } from '../../batch/plan.ts';
import { ModelgateError } from '../../errors.ts';
import type { BatchSources } from '../../batch/source.ts';
import type { BatchRecord } from '../../store/batches.ts';
import { principalOf, type HttpDeps } from '../context.ts';
import { parseWith } from '../validation.ts';

/** Content types of batch input files, and what each is read as. */
export const BATCH_CONTENT_TYPES: Record<string, BatchFormat> = {
  'text/csv': 'csv',
  'application/jsonl': 'jsonl',
  'application/x-ndjson': 'jsonl',
  'application/x-jsonlines': 'jsonl',
};
const CONTENT_TYPE_BY_FORMAT: Record<BatchFormat, string> = {
  csv: 'text/csv; charset=utf-8',
  jsonl: 'application/jsonl; charset=utf-8',
};

const columnList = z
  .string()
  .transform((text) => text.split(',').map((name) => name.trim()))
  .refine((names) => names.every((name) => name !== ''), 'a comma-separated list of column names');

const submitQuery = z
  .object({
    version: z.coerce.number().int().min(1).optional(),
    features: columnList.optional(),
    // `x:a,b;mask:m`: the columns of each model input.
    inputs: z
      .string()
      .transform((text, context) => {
        try {
          return parseInputMap(text);
        } catch (error) {
          context.addIssue({ code: 'custom', message: (error as Error).message });
          return z.NEVER;
        }
      })
      .optional(),
    passthrough: z
      .string()
      .transform((text) => (text === '' ? [] : text.split(',').map((name) => name.trim())))
      .optional(),
    output: z.enum(BATCH_FORMATS).optional(),
    part_rows: z.coerce.number().int().min(1).max(1_000_000).optional(),
  })
  .strict();
/** The body of a submit by reference: where the input is, and its format when its name does not say. */
const referenceBody = z
  .object({
    input: z.string().min(1).max(4096),
    format: z.enum(BATCH_FORMATS).optional(),
  })
  .strict();
/** A reference is a URL and a word: JSON bodies of the submit route are held to this. */
const REFERENCE_BODY_LIMIT_BYTES = 16 * 1024;
const listQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    cursor: z.string().max(100).optional(),
  })
  .strict();

type IdParams = { Params: { id: string } };

/**
 * The batch input as a stream of CSV or JSONL, and which of the two it is: the request body itself, or the
 * object or file in storage that a JSON body names (opened here, so the stream is the caller's to close).
 */
async function batchInput(
  request: FastifyRequest,
  sources: BatchSources,
): Promise<{ format: BatchFormat; source: Readable; fromStorage: boolean }> {
  const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'application/json') {
    const reference = parseWith(referenceBody, request.body);
    return { ...(await sources.open(reference.input, reference.format)), fromStorage: true };
  }
  const format = BATCH_CONTENT_TYPES[type];
  if (!format || !(request.body instanceof Readable)) {
    throw new ModelgateError(
      'unsupported_media_type',
      `send the batch input as ${Object.keys(BATCH_CONTENT_TYPES).join(' or ')}, or name it in ` +
        'application/json: {"input": "s3://bucket/key"}',
      { details: { content_type: type } },
    );
  }
  return { format, source: request.body, fromStorage: false };
}

export function registerBatchRoutes(app: FastifyInstance, deps: HttpDeps): void {
  // In a context of its own: CSV and JSONL bodies reach only the submit route, as a stream. JSON (a
  // reference to the input in storage) is parsed as on every route.
  void app.register(async (scope) => {
    for (const type of Object.keys(BATCH_CONTENT_TYPES)) {
      scope.addContentTypeParser(type, (_request, payload, done) => done(null, payload));
    }
    registerSubmitRoute(scope, deps);
  });
  registerBatchRunRoutes(app, deps);
}

/** POST /v1/models/{name}/batches: the file is read row by row as it arrives, never whole. */
function registerSubmitRoute(app: FastifyInstance, { batches, batchSources }: HttpDeps): void {
  app.post<{ Params: { name: string } }>(
    '/v1/models/:name/batches',
    // The limit holds for JSON only: CSV and JSONL bodies go to their parsers as streams.
    { config: { scope: 'predict' }, bodyLimit: REFERENCE_BODY_LIMIT_BYTES },
    async (request, reply) => {
      const query = parseWith(submitQuery, request.query, 'query');
      // Before an object in storage is opened (a GetObject) for a model that is not there.
      batches.checkModel(principalOf(request).tenantId, request.params.name, query.version);
      const input = await batchInput(request, batchSources);
      let batch: BatchRecord;
      try {
        batch = await batches.submit({
          tenantId: principalOf(request).tenantId,
          modelName: request.params.name,
          version: query.version,
          format: input.format,
          source: input.source,
          options: {
            features: query.features,
            inputs: query.inputs,
            passthrough: query.passthrough,
            outputFormat: query.output,
            partRows: query.part_rows,
          },
        });
      } finally {
        // An object or file refused part-way (or not read at all: an unknown model) is not read to its end.
        if (input.fromStorage) input.source.destroy();
      }
      return reply.status(202).header('location', `/v1/batches/${batch.id}`).send(batchView(batch));
    },
  );
}

/** The batch runs once submitted: read, list, output and errors, cancel. */
function registerBatchRunRoutes(app: FastifyInstance, { batches }: HttpDeps): void {
  app.get<IdParams>('/v1/batches/:id', { config: { scope: ['read', 'predict'] } }, async (request) =>
    batchView(await batches.get(principalOf(request).tenantId, request.params.id)),
  );

  app.get('/v1/batches', { config: { scope: ['read', 'predict'] } }, async (request) => {
    const query = parseWith(listQuery, request.query, 'query');
    const page = await batches.list(principalOf(request).tenantId, query.cursor, query.limit);
    const last = page.at(-1);
    return {
      batches: page.map((batch) => batchView(batch)),
      next_cursor: page.length === query.limit && last ? last.id : null,
    };
  });

  for (const which of ['output', 'errors'] as const) {
    app.get<IdParams>(
      `/v1/batches/:id/${which}`,
      { config: { scope: ['read', 'predict'] } },
      async (request, reply) => {
        const file = await batches.file(principalOf(request).tenantId, request.params.id, which);
        return reply.header('content-type', CONTENT_TYPE_BY_FORMAT[file.format]).send(file.body);
      },
    );
  }

  app.post<IdParams>('/v1/batches/:id/cancel', { config: { scope: 'predict' } }, async (request) =>
    batchView(await batches.cancel(principalOf(request).tenantId, request.params.id)),
  );
}
