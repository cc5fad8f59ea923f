// How long to wait before trying again: job retries, webhook deliveries, a batch chunk at a full model queue.

/** Longest wait unless the caller says otherwise. */
const MAX_RETRY_DELAY_MS = 5 * 60_000;

/** Exponential backoff with jitter: base × 2^(attempt-1), capped, then a random 50-100% of it. */
export function retryDelayMs(baseMs: number, attempt: number, capMs = MAX_RETRY_DELAY_MS): number {
  const full = Math.min(baseMs * 2 ** (attempt - 1), capMs);
  return Math.round(full * (0.5 + Math.random() / 2));
}
