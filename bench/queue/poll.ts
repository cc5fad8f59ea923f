// Waiting for a peer's job to finish by reading its row, since neither pg-boss nor graphile-worker tells a
// producer that a job completed: one query, then a short pause, until the row says so.
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Pause between two reads of a job's row: the latency measured is late by up to this plus one query. */
export const RESULT_POLL_MS = 1;
const RESULT_TIMEOUT_MS = 10_000;

export async function pollUntil<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  const deadline = performance.now() + RESULT_TIMEOUT_MS;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (performance.now() > deadline) throw new Error(`not finished after ${RESULT_TIMEOUT_MS} ms`);
    await delay(RESULT_POLL_MS);
  }
}
