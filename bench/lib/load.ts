// One benchmark cell: closed-loop load from autocannon (N connections, one request in flight on each) for a
// fixed time, with every 2xx latency kept so percentiles are exact to the microsecond (autocannon's own
// histogram records whole milliseconds, too coarse for a "within 1 ms" comparison).
import autocannon from 'autocannon';
import { percentile } from './stats.ts';

export interface LoadSpec {
  url: string;
  headers: Record<string, string>;
  body: string;
  connections: number;
  durationSeconds: number;
}

export interface LoadResult {
  /** 2xx responses per second over the measured time. */
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  responses2xx: number;
  non2xx: number;
  /** Connection errors and timeouts (autocannon counts timeouts as errors too). */
  errors: number;
  timeouts: number;
  /** Measured time as autocannon reports it. */
  durationSeconds: number;
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const latenciesMs: number[] = [];
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: spec.url,
        method: 'POST',
        headers: spec.headers,
        body: spec.body,
        connections: spec.connections,
        pipelining: 1,
        duration: spec.durationSeconds,
        timeout: 10,
      },
      (error: unknown, finished) => (error ? reject(error as Error) : resolve(finished)),
    );
    instance.on('response', (_client, statusCode, _bytes, responseTimeMs) => {
      if (statusCode >= 200 && statusCode < 300) latenciesMs.push(responseTimeMs);
    });
  });
  latenciesMs.sort((a, b) => a - b);
  const meanMs = latenciesMs.reduce((sum, value) => sum + value, 0) / latenciesMs.length;
  return {
    requestsPerSecond: result['2xx'] / result.duration,
    p50Ms: percentile(latenciesMs, 0.5),
    p99Ms: percentile(latenciesMs, 0.99),
    meanMs,
    responses2xx: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    durationSeconds: result.duration,
  };
}
