// The one error type of modelgate: a stable machine code, an HTTP status and a human message.
// Every code is listed here and documented in docs/errors.md (test/errors-doc.test.ts checks both agree).

export const ERROR_CODES = {
  bad_request: 400,
  invalid_json: 400,
  invalid_input: 400,
  invalid_model: 400,
  upstream_rejected: 400,
  unsupported_media_type: 415,
  uri_too_long: 414,
  headers_too_large: 431,
  request_timeout: 408,
  unauthenticated: 401,
  key_revoked: 401,
  key_expired: 401,
  forbidden: 403,
  batch_input_not_allowed: 403,
  not_found: 404,
  model_not_found: 404,
  version_not_found: 404,
  job_not_found: 404,
  batch_not_found: 404,
  batch_input_not_found: 404,
  conflict: 409,
  batch_not_finished: 409,
  payload_too_large: 413,
  idempotency_key_reused: 422,
  queue_full: 503,
  not_ready: 503,
  lease_expired: 503,
  runtime_unavailable: 503,
  timeout: 504,
  upstream_timeout: 504,
  upstream_failed: 502,
  upstream_invalid_answer: 502,
  inference_failed: 500,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The fields every problem document has: details may not use their names (they would be lost). */
type ProblemField = 'type' | 'title' | 'status' | 'detail' | 'code' | 'instance' | 'request_id' | 'error';

/** Extra fields of a problem document, e.g. the offending input's name. */
export type ProblemDetails = Record<string, unknown> & { [field in ProblemField]?: never };

export class ModelgateError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra fields for the problem document (e.g. the offending input name). */
  readonly details: ProblemDetails | undefined;
  /** Seconds a client should wait before retrying (sent as `Retry-After`). */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; details?: ProblemDetails; retryAfterSeconds?: number } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'ModelgateError';
    this.code = code;
    this.status = ERROR_CODES[code];
    this.details = options.details;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export function isModelgateError(error: unknown): error is ModelgateError {
  return error instanceof ModelgateError;
}
