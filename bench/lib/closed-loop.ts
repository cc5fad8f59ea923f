// Closed-loop load driven from the benchmark process for what autocannon cannot send (a program's pipe,
// binary bodies, an in-process session.run): N clients, each with one request in flight, for a fixed time,
// every successful request's latency kept. Answers in load.ts's shape so both kinds of cell read alike.
import type { LoadResult } from './load.ts';
import { percentile } from './stats.ts';

export interface ClosedLoopSpec {
  clients: number;
  durationSeconds: number;
  /** One request, answered: true when it succeeded, false when it was answered with a failure. */
  send(): Promise<boolean>;
}

export async function runClosedLoop(spec: ClosedLoopSpec): Promise<LoadResult> {
  const latenciesMs: number[] = [];
  let failed = 0;
  let errors = 0;
  const startedAt = performance.now();
  const deadline = startedAt + spec.durationSeconds * 1000;
  const client = async () => {
    while (performance.now() < deadline) {
      const sentAt = performance.now();
      try {
        if (await spec.send()) latenciesMs.push(performance.now() - sentAt);
        else failed++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: spec.clients }, client));
  // Until the last answer: requests still in flight at the deadline are counted, and their time too.
  const durationSeconds = (performance.now() - startedAt) / 1000;
  latenciesMs.sort((a, b) => a - b);
  return {
    requestsPerSecond: latenciesMs.length / durationSeconds,
    p50Ms: percentile(latenciesMs, 0.5),
    p99Ms: percentile(latenciesMs, 0.99),
    meanMs: latenciesMs.reduce((sum, value) => sum + value, 0) / latenciesMs.length,
    responses2xx: latenciesMs.length,
    non2xx: failed,
    errors,
    timeouts: 0,
    durationSeconds,
  };
}
