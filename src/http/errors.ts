// Every error leaves the HTTP layer here, as RFC 9457 problem+json with a stable `code`. Routes of the
// Open Inference Protocol also carry the spec's `error` field.
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ModelgateError, isModelgateError, type ErrorCode } from '../errors.ts';
import { isConnectionLoss } from '../store/db.ts';

/** When a client should try again after the database was unreachable (Retry-After, in seconds). */
const DATABASE_RETRY_AFTER_SECONDS = 2;

/**
 * Fastify's own errors, and @fastify/multipart's, that a request can cause, mapped to ours (the
 * setup-time ones never reach a request). test/hostile-input.test.ts checks every 4xx code they know.
 */
const CODE_BY_FASTIFY_CODE: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad_request',
  FST_ERR_VALIDATION: 'bad_request',
  FST_ERR_BAD_URL: 'bad_request',
  FST_ERR_INVALID_URL: 'bad_request',
  FST_ERR_MAX_PARAM_LENGTH: 'uri_too_long',
  FST_ERR_NOT_FOUND: 'not_found',
  FST_ERR_HANDLER_TIMEOUT: 'timeout',
  FST_REQ_FILE_TOO_LARGE: 'payload_too_large',
  FST_PARTS_LIMIT: 'payload_too_large',
  FST_FILES_LIMIT: 'payload_too_large',
  FST_FIELDS_LIMIT: 'payload_too_large',
  FST_INVALID_MULTIPART_CONTENT_TYPE: 'unsupported_media_type',
  FST_PROTO_VIOLATION: 'bad_request',
  FST_INVALID_JSON_FIELD_ERROR: 'bad_request',
  FST_MP_PREMATURE_CLOSE: 'bad_request',
};

/** Any other error Fastify or a plugin marks as the client's (4xx), by its status. */
function codeForClientStatus(status: number): ErrorCode {
  if (status === 413) return 'payload_too_large';
  if (status === 414) return 'uri_too_long';
  if (status === 415) return 'unsupported_media_type';
  return 'bad_request';
}

export function toModelgateError(error: unknown): ModelgateError {
  if (isModelgateError(error)) return error;
  // Whatever route met it: the request may be sent again once the database is back.
  if (isConnectionLoss(error)) {
    return new ModelgateError('not_ready', 'the database cannot be reached; try again shortly', {
      cause: error,
      retryAfterSeconds: DATABASE_RETRY_AFTER_SECONDS,
    });
  }
  const { code, statusCode: status, message } = error as Partial<FastifyError>;
  const known = code === undefined ? undefined : CODE_BY_FASTIFY_CODE[code];
  if (known) return new ModelgateError(known, message ?? known, { cause: error });
  if (error instanceof SyntaxError && status === 400) {
    return new ModelgateError('invalid_json', `the body is not valid JSON: ${error.message}`, {
      cause: error,
    });
  }
  if (status !== undefined && status >= 400 && status < 500) {
    const mapped = codeForClientStatus(status);
    return new ModelgateError(mapped, message || mapped, { cause: error });
  }
  return new ModelgateError('internal', 'internal error', { cause: error });
}

/** The problem document of `problem`, as every answer of an error carries it. */
function problemBody(
  problem: ModelgateError,
  instance: string | undefined,
  requestId: string,
): Record<string, unknown> {
  return {
    // Details first, so they can never overwrite the standard fields.
    ...problem.details,
    type: `urn:modelgate:error:${problem.code}`,
    title: problem.code.replaceAll('_', ' '),
    status: problem.status,
    detail: problem.message,
    code: problem.code,
    instance,
    request_id: requestId,
  };
}

export function sendProblem(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const problem = toModelgateError(error);
  if (problem.code === 'not_ready') {
    // Expected while starting, draining or while the database is away: no stack for each request.
    request.log.warn({ code: problem.code, reason: problem.message }, 'request refused: not ready');
  } else if (problem.status >= 500 && problem.code !== 'timeout' && problem.code !== 'queue_full') {
    request.log.error({ err: error, code: problem.code }, 'request failed');
  }
  if (problem.retryAfterSeconds !== undefined) reply.header('retry-after', String(problem.retryAfterSeconds));
  const body = problemBody(problem, request.url, request.id);
  if (request.url.startsWith('/v2')) body.error = problem.message;
  return reply.status(problem.status).type('application/problem+json').send(body);
}

/** What Node's HTTP parser refuses before a request exists, by the parser's error code. */
const CLIENT_ERRORS: Record<string, [ErrorCode, string]> = {
  HPE_HEADER_OVERFLOW: ['headers_too_large', 'the request line and headers are too large'],
  ERR_HTTP_REQUEST_TIMEOUT: ['request_timeout', 'the request did not arrive in time'],
};

/**
 * Answers a request that Node's HTTP parser refused (Fastify's clientErrorHandler), as Node itself would
 * (one answer, then the connection closes), but with a problem document.
 */
export function sendClientError(error: Error & { code?: string }, socket: Socket): void {
  // A reset connection has nobody to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  if (socket.writable) {
    const [code, message] = CLIENT_ERRORS[error.code ?? ''] ?? [
      'bad_request',
      'the request is not valid HTTP',
    ];
    const problem = new ModelgateError(code, message);
    const body = JSON.stringify(problemBody(problem, undefined, randomUUID()));
    socket.write(
      `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status]}\r\nConnection: close\r\n` +
        `Content-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}
