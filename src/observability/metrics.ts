// Prometheus metrics of one process, on a registry of its own (so tests can run several apps at once).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type Metrics = ReturnType<typeof createMetrics>;

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'modelgate_process_' });
  // `runtime`: what runs the version (onnx, command, http), so one dashboard can compare them.
  const modelLabels = ['model', 'version', 'runtime'] as const;
  return {
    registry,
    httpRequests: new Counter({
      name: 'modelgate_http_requests_total',
      help: 'HTTP requests answered, by route, method and status code.',
      labelNames: ['route', 'method', 'status'] as const,
      registers: [registry],
    }),
    httpRequestDuration: new Histogram({
      name: 'modelgate_http_request_duration_seconds',
      help: 'Time from request received to response sent, by route.',
      labelNames: ['route', 'method'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    inferenceRequests: new Counter({
      name: 'modelgate_inference_requests_total',
      help: 'Inference requests by model, version, runtime and outcome (ok or an error code).',
      labelNames: [...modelLabels, 'outcome'] as const,
      registers: [registry],
    }),
    inferenceRequestDuration: new Histogram({
      name: 'modelgate_inference_request_duration_seconds',
      help: 'Time an inference request spent queued, batched and run, by model, version and runtime.',
      labelNames: modelLabels,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    inferenceDuration: new Histogram({
      name: 'modelgate_inference_duration_seconds',
      help: 'Time the runtime took to run one batch, by model, version and runtime.',
      labelNames: modelLabels,
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers: [registry],
    }),
    batchSize: new Histogram({
      name: 'modelgate_batch_size',
      help: 'Requests merged into one runtime call, by model, version and runtime.',
      labelNames: modelLabels,
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers: [registry],
    }),
    jobsInFlight: new Gauge({
      name: 'modelgate_jobs_in_flight',
      help: 'Jobs this process is running now.',
      registers: [registry],
    }),
    jobAttempts: new Counter({
      name: 'modelgate_job_attempts_total',
      help: 'Job attempts this process ran, by model and outcome (succeeded, retried, failed, lost).',
      labelNames: ['model', 'outcome'] as const,
      registers: [registry],
    }),
    jobAttemptDuration: new Histogram({
      name: 'modelgate_job_attempt_duration_seconds',
      help: 'Time from claiming a job to recording its outcome, by model.',
      labelNames: ['model'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'modelgate_queue_depth',
      help: 'Requests waiting for a batch slot, by model, version and runtime.',
      labelNames: modelLabels,
      registers: [registry],
    }),
  };
}
