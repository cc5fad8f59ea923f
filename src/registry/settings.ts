// Per-model serving settings: what an operator may set on a model, and the defaults they override.
import { z } from 'zod';
import type { BatchingSettings } from '../serving/batcher.ts';

/** The settings a model may carry (PATCH /v1/models/{name}, `modelgate deploy` flags); all optional. */
export const modelSettingsSchema = z
  .object({
    batching: z.boolean(),
    maxBatchSize: z.number().int().min(1).max(4096),
    maxBatchDelayMs: z.number().min(0).max(1000),
    maxQueueSize: z.number().int().min(1).max(1_000_000),
    timeoutMs: z.number().int().min(1).max(3_600_000),
    /** Async jobs of this model: deadline of one attempt, and attempts before a job fails. */
    jobTimeoutMs: z.number().int().min(1).max(86_400_000),
    jobMaxAttempts: z.number().int().min(1).max(100),
  })
  .partial()
  .strict();

export type ModelSettings = z.infer<typeof modelSettingsSchema>;

export type ServingDefaults = Omit<BatchingSettings, 'maxConcurrentBatches'>;

/** The settings a version serves with: the model's own over the process defaults; no batching without a batch dimension. */
export function resolveSettings(
  defaults: ServingDefaults,
  stored: Record<string, unknown>,
  hasBatchDimension: boolean,
  maxConcurrentBatches: number,
): BatchingSettings {
  const own = modelSettingsSchema.safeParse(stored);
  const merged = { ...defaults, ...(own.success ? own.data : {}), maxConcurrentBatches };
  return { ...merged, batching: merged.batching && hasBatchDimension };
}

/** The attempts and per-attempt deadline of a model's async jobs: the model's own over the defaults. */
export function jobSettings(
  stored: Record<string, unknown>,
  defaults: { jobMaxAttempts: number; jobTimeoutMs: number },
): { maxAttempts: number; timeoutMs: number } {
  const own = modelSettingsSchema.safeParse(stored);
  const settings = own.success ? own.data : {};
  return {
    maxAttempts: settings.jobMaxAttempts ?? defaults.jobMaxAttempts,
    timeoutMs: settings.jobTimeoutMs ?? defaults.jobTimeoutMs,
  };
}
