// Configuration, resolved once: command-line flags, then MODELGATE_* environment variables, then the
// config file (--config, YAML or JSON), then defaults. The result is validated, typed and frozen.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseS3Url } from '../artifacts/s3-url.ts';
import { keyFromSecret } from '../auth/keys.ts';
import { parseBatchInputUrl } from '../batch/source-url.ts';
import { parseSubnet } from '../network/targets.ts';

const MiB = 1024 * 1024;

/** Every setting, its environment variable and its default, documented in one place (README "Configuration"). */
export /**
 * A list setting: an array in a config file, comma-separated in the environment; each item checked by
 * `check`, which throws an Error saying what is wrong.
 */
function listSetting(check: (item: string) => unknown) {
  return z
    .union([
      z.array(z.string()),
      z.string().transform((text) =>
        text
          .split(',')
          .map((item) => item.trim())
          .filter((item) => item !== ''),
      ),
    ])
    .pipe(
      z.array(
        z.string().superRefine((item, context) => {
          try {
            check(item);
          } catch (error) {
            context.addIssue({ code: 'custom', message: (error as Error).message });
          }
        }),
      ),
    );
}

const configSchema = z
  .object({
    /** Address to listen on (MODELGATE_HOST). Default 127.0.0.1; use 0.0.0.0 in containers. */
    host: z.string().default('127.0.0.1'),
    /** Port to listen on (MODELGATE_PORT). Default 8080; 0 picks a free port. */
    port: z.coerce.number().int().min(0).max(65535).default(8080),
    /** Embedded data directory: PGlite database and local artifacts (MODELGATE_DATA_DIR). Default ./.modelgate */
    dataDir: z.string().default('./.modelgate'),
    /** Postgres server URL (MODELGATE_DATABASE_URL or DATABASE_URL). Default: unset, PGlite in dataDir. */
    databaseUrl: z.string().optional(),
    /** Postgres schema to use (MODELGATE_DATABASE_SCHEMA). Default: the server's search_path. */
    databaseSchema: z
      .string()
      .regex(/^[a-z_][a-z0-9_]*$/)
      .optional(),
    /**
     * How long a database connection may take to be made, and a statement to be answered, before the
     * database counts as unreachable (MODELGATE_DATABASE_TIMEOUT_MS): requests then answer 503 instead of
     * hanging on a server that stopped answering. Migrations have no deadline. Default 15 000.
     */
    databaseTimeoutMs: z.coerce.number().int().min(100).default(15_000),
    /** Artifact store folder (MODELGATE_ARTIFACTS_DIR). Default <dataDir>/artifacts. */
    artifactsDir: z.string().optional(),
    /**
     * S3-compatible artifact store instead of the folder, `s3://bucket/prefix` (MODELGATE_ARTIFACTS_URL).
     * Default: unset, the folder artifactsDir. Credentials come from the AWS SDK's chain (AWS_ACCESS_KEY_ID
     * and AWS_SECRET_ACCESS_KEY, profiles, instance roles); local copies are kept in <dataDir>/artifact-cache.
     */
    artifactsUrl: z
      .string()
      .superRefine((url, context) => {
        try {
          parseS3Url(url);
        } catch (error) {
          const problem = (error as Error).message;
          context.addIssue({ code: 'custom', message: `${problem} (unset, artifacts go to artifactsDir)` });
        }
      })
      .optional(),
    /** Endpoint of the S3-compatible service, for artifacts and batch inputs (MODELGATE_S3_ENDPOINT). Default: AWS S3. */
    s3Endpoint: z.url({ protocol: /^https?$/ }).optional(),
    /** Region of the S3 buckets (MODELGATE_S3_REGION). Default: the AWS SDK's (AWS_REGION). */
    s3Region: z.string().min(1).optional(),
    /** Address buckets as <endpoint>/<bucket>, as MinIO wants (MODELGATE_S3_FORCE_PATH_STYLE). Default false. */
    s3ForcePathStyle: z
      .union([z.boolean(), z.enum(['true', 'false']).transform((value) => value === 'true')])
      .default(false),
    /** First admin key of a fresh database (MODELGATE_ADMIN_KEY); generated and printed once if unset. */
    adminKey: z
      .string()
      .refine(
        (key) => keyFromSecret(key) !== undefined,
        'must start with "mg_" and be at least 32 printable characters',
      )
      .optional(),
    /**
     * Inference threads (MODELGATE_INFERENCE_THREADS). Default: one per core but one, which stays with the
     * HTTP event loop (on 2 cores, 1 thread served 5-23% more than 2 in bench/realtime.ts).
     */
    inferenceThreads: z.coerce
      .number()
      .int()
      .min(1)
      .max(256)
      .default(Math.max(1, availableParallelism() - 1)),
    /** ONNX Runtime intra-op threads per inference thread (MODELGATE_INTRA_OP_THREADS). Default 1. */
    intraOpThreads: z.coerce.number().int().min(1).max(256).default(1),
    /** Largest JSON request body (MODELGATE_BODY_LIMIT_BYTES). Default 10 MiB. */
    bodyLimitBytes: z.coerce
      .number()
      .int()
      .min(1024)
      .default(10 * MiB),
    /** Largest model upload (MODELGATE_UPLOAD_LIMIT_BYTES). Default 2 GiB. */
    uploadLimitBytes: z.coerce
      .number()
      .int()
      .min(1024)
      .default(2048 * MiB),
    /** Largest batch input file, CSV or JSONL (MODELGATE_BATCH_UPLOAD_LIMIT_BYTES). Default 20 GiB. */
    batchUploadLimitBytes: z.coerce
      .number()
      .int()
      .min(1024)
      .default(20 * 1024 * MiB),
    /**
     * Folders batch inputs may be read from by reference instead of uploaded (MODELGATE_BATCH_INPUT_URLS,
     * comma-separated): `s3://bucket/folder` (read with the S3 settings below) or `file:///absolute/folder`
     * on the gateway's machine. A reference is read only if it lies in one of them, for files with every
     * symlink resolved. Default: none, references are refused.
     */
    batchInputUrls: listSetting((url) => parseBatchInputUrl(url, 'folder')).default([]),
    /** Merge concurrent requests by default (MODELGATE_BATCHING). Default true. */
    batching: z
      .union([z.boolean(), z.enum(['true', 'false']).transform((value) => value === 'true')])
      .default(true),
    /** Default most rows per batch (MODELGATE_MAX_BATCH_SIZE). Default 64. */
    maxBatchSize: z.coerce.number().int().min(1).max(4096).default(64),
    /** Default longest wait for a batch to fill while a model is busy (MODELGATE_MAX_BATCH_DELAY_MS). Default 2. */
    maxBatchDelayMs: z.coerce.number().min(0).max(1000).default(2),
    /** Default most queued requests per model version (MODELGATE_MAX_QUEUE_SIZE). Default 1024. */
    maxQueueSize: z.coerce.number().int().min(1).default(1024),
    /** Default request deadline (MODELGATE_TIMEOUT_MS). Default 30 000. */
    timeoutMs: z.coerce.number().int().min(1).default(30_000),
    /** Run job workers in this process (MODELGATE_WORKERS; `serve --no-workers`). Default true. */
    workers: z
      .union([z.boolean(), z.enum(['true', 'false']).transform((value) => value === 'true')])
      .default(true),
    /** Jobs one worker process runs at once, fed to the batchers (MODELGATE_WORKER_CONCURRENCY). Default 64. */
    workerConcurrency: z.coerce.number().int().min(1).max(4096).default(64),
    /**
     * Batch parts one worker process runs at once (MODELGATE_BATCH_PARTS_PER_WORKER). Default 1: a part
     * is thousands of rows fed to the model in chunks, enough to keep the inference threads busy; more
     * would hold more rows in memory and leave fewer parts to other workers.
     */
    batchPartsPerWorker: z.coerce.number().int().min(1).max(256).default(1),
    /** Default attempts per job before it fails (MODELGATE_JOB_MAX_ATTEMPTS). Default 3. */
    jobMaxAttempts: z.coerce.number().int().min(1).max(100).default(3),
    /** Default deadline of one job attempt (MODELGATE_JOB_TIMEOUT_MS). Default 600 000 (10 min). */
    jobTimeoutMs: z.coerce.number().int().min(1).default(600_000),
    /** A claimed job's lease, renewed every third of it while it runs (MODELGATE_JOB_LEASE_MS). Default 30 000. */
    jobLeaseMs: z.coerce.number().int().min(100).default(30_000),
    /** Idle workers look for jobs this often without a notice; busy ones at least every 100 ms (MODELGATE_JOB_POLL_MS). Default 1000. */
    jobPollMs: z.coerce.number().int().min(10).default(1000),
    /** First retry delay, doubled per attempt with jitter, at most 5 min (MODELGATE_JOB_RETRY_BASE_MS). Default 1000. */
    jobRetryBaseMs: z.coerce.number().int().min(0).default(1000),
    /** Finished jobs and batches, with their results and files, are removed after this (MODELGATE_JOB_RETENTION_SECONDS). Default 7 days. */
    jobRetentionSeconds: z.coerce
      .number()
      .int()
      .min(60)
      .default(7 * 24 * 3600),
    /** Results larger than this go to the artifact store instead of the database (MODELGATE_INLINE_RESULT_BYTES). */
    inlineResultBytes: z.coerce
      .number()
      .int()
      .min(0)
      .default(256 * 1024),
    /** On SIGTERM, time in-flight jobs get to finish before they are handed back (MODELGATE_DRAIN_GRACE_MS). */
    drainGraceMs: z.coerce.number().int().min(0).default(30_000),
    /** Let webhooks reach loopback, private and link-local addresses (MODELGATE_WEBHOOK_ALLOW_PRIVATE_NETWORKS). */
    webhookAllowPrivateNetworks: z
      .union([z.boolean(), z.enum(['true', 'false']).transform((value) => value === 'true')])
      .default(false),
    /**
     * Internal networks that models of the `http` runtime may have their upstream server in
     * (MODELGATE_UPSTREAM_ALLOWED_NETWORKS, comma-separated subnets or addresses: `10.0.3.0/24,127.0.0.1`).
     * Public addresses are always allowed; loopback, private, link-local (cloud metadata) and other internal
     * ones only when listed, since a tenant's deploy key chooses the URL. Default: loopback
     * (127.0.0.0/8, ::1) with embedded storage (one machine, `npm start`), none with a databaseUrl.
     */
    upstreamAllowedNetworks: listSetting(parseSubnet).optional(),
    /** Deadline of one webhook delivery (MODELGATE_WEBHOOK_TIMEOUT_MS). Default 10 000. */
    webhookTimeoutMs: z.coerce.number().int().min(1).default(10_000),
    /** Delivery attempts per webhook, with backoff (MODELGATE_WEBHOOK_MAX_ATTEMPTS). Default 8. */
    webhookMaxAttempts: z.coerce.number().int().min(1).max(50).default(8),
    /** First webhook retry delay, doubled per attempt with jitter (MODELGATE_WEBHOOK_RETRY_BASE_MS). Default 5000. */
    webhookRetryBaseMs: z.coerce.number().int().min(0).default(5000),
    /** Most model versions kept loaded per process; least recently used ones are unloaded (MODELGATE_MAX_LOADED_MODELS). */
    maxLoadedModels: z.coerce.number().int().min(1).default(64),
    /** A worker-only process serves /metrics and /healthz on this port (MODELGATE_METRICS_PORT). Default: none. */
    metricsPort: z.coerce.number().int().min(0).max(65535).optional(),
    /** Log level (MODELGATE_LOG_LEVEL): fatal, error, warn, info, debug, trace, silent. Default info. */
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .strict();

export type Config = Readonly<
  z.infer<typeof configSchema> & { artifactsDir: string; upstreamAllowedNetworks: readonly string[] }
>;
export type ConfigInput = z.input<typeof configSchema>;

const toEnvName = (key: string) => `MODELGATE_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

function fromEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const values: Record<string, string> = {};
  for (const key of Object.keys(configSchema.shape)) {
    const value = env[toEnvName(key)];
    if (value !== undefined && value !== '') values[key] = value;
  }
  if (values.databaseUrl === undefined && env.DATABASE_URL) values.databaseUrl = env.DATABASE_URL;
  return values;
}

function fromFile(path: string | undefined): Record<string, unknown> {
  if (!path) return {};
  const parsed: unknown = parseYaml(readFileSync(path, 'utf8'));
  return (parsed ?? {}) as Record<string, unknown>;
}

export class ConfigError extends Error {}

export function resolveConfig(
  flags: ConfigInput & { config?: string } = {},
  env: NodeJS.ProcessEnv = process.env,
): Config {
  const { config: configFile, ...flagValues } = flags;
  const defined = Object.fromEntries(Object.entries(flagValues).filter(([, value]) => value !== undefined));
  const merged = { ...fromFile(configFile ?? env.MODELGATE_CONFIG), ...fromEnv(env), ...defined };
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const problems = result.error.issues.map(
      (issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`,
    );
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  if (result.data.artifactsDir !== undefined && result.data.artifactsUrl !== undefined) {
    throw new ConfigError(
      'invalid configuration: artifactsDir and artifactsUrl are both set; set one of them',
    );
  }
  const config = {
    ...result.data,
    artifactsDir: result.data.artifactsDir ?? join(result.data.dataDir, 'artifacts'),
    upstreamAllowedNetworks:
      result.data.upstreamAllowedNetworks ??
      (result.data.databaseUrl === undefined ? ['127.0.0.0/8', '::1/128'] : []),
  };
  return Object.freeze(config);
}
