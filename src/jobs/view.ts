// A job as the API and webhooks show it (snake_case, like the rest of the API).
import type { JobRecord } from '../store/jobs.ts';

/** The job; `result` is included when given (reading it may need the artifact store). */
export function jobView(job: JobRecord, result?: { value: unknown }) {
  return {
    id: job.id,
    model: job.modelName,
    version: job.modelVersion,
    status: job.status,
    priority: job.priority,
    attempts: job.attempts,
    max_attempts: job.maxAttempts,
    queued_at: job.queuedAt,
    started_at: job.startedAt,
    finished_at: job.finishedAt,
    ...(result ? { result: result.value } : {}),
    error: job.error,
    webhook: job.webhookUrl
      ? { url: job.webhookUrl, status: job.webhookStatus, attempts: job.webhookAttempts }
      : null,
    links: { self: `/v1/jobs/${job.id}`, cancel: `/v1/jobs/${job.id}/cancel` },
  };
}
