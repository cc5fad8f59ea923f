// Every error leaves the HTTP layer here, as RFC 9457 problem+json with a stable `code`. Routes of the
// Open Inference Protocol also carry the spec's `error` field.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ModelgateError, isModelgateError } from '../errors.ts';

/** Fastify's own errors (parsing, limits) mapped to ours. */
const CODE_BY_FASTIFY_CODE: Record<string, ModelgateError['code']> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad_request',
  FST_ERR_VALIDATION: 'bad_request',
  FST_ERR_BAD_URL: 'bad_request',
  FST_REQ_FILE_TOO_LARGE: 'payload_too_large',
  FST_INVALID_MULTIPART_CONTENT_TYPE: 'unsupported_media_type',
};

export function toModelgateError(error: unknown): ModelgateError {
  if (isModelgateError(error)) return error;
  const fastifyError = error as Partial<FastifyError>;
  const mapped = fastifyError.code ? CODE_BY_FASTIFY_CODE[fastifyError.code] : undefined;
  if (mapped) return new ModelgateError(mapped, fastifyError.message ?? mapped, { cause: error });
  if (error instanceof SyntaxError && fastifyError.statusCode === 400) {
    return new ModelgateError('invalid_json', `the body is not valid JSON: ${error.message}`, {
      cause: error,
    });
  }
  if (fastifyError.statusCode === 413)
    return new ModelgateError('payload_too_large', 'the body is too large');
  return new ModelgateError('internal', 'internal error', { cause: error });
}

export function sendProblem(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const problem = toModelgateError(error);
  if (problem.status >= 500 && problem.code !== 'timeout' && problem.code !== 'queue_full') {
    request.log.error({ err: error, code: problem.code }, 'request failed');
  }
  if (problem.retryAfterSeconds !== undefined) reply.header('retry-after', String(problem.retryAfterSeconds));
  const body: Record<string, unknown> = {
    // Details first, so they can never overwrite the standard fields.
    ...problem.details,
    type: `urn:modelgate:error:${problem.code}`,
    title: problem.code.replaceAll('_', ' '),
    status: problem.status,
    detail: problem.message,
    code: problem.code,
    instance: request.url,
    request_id: request.id,
  };
  if (request.url.startsWith('/v2')) body.error = problem.message;
  return reply.status(problem.status).type('application/problem+json').send(body);
}
