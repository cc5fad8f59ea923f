// `modelgate jobs submit|get|list|cancel`: async jobs through the API; --wait follows a job to its end.
import { type Command, InvalidArgumentError } from 'commander';
import type { JobInfo } from '../client/client.ts';
import { FINISHED, clientFor, output, table, withApiOptions, type ApiOptions } from './shared.ts';

/** Longest single long poll the server allows; longer waits poll again. */
const POLL_SECONDS = 60;

function parseSeconds(value: string): number {
  const number = Number(value);
  if (!Number.isFinite(number) || number < 0) throw new InvalidArgumentError('expected seconds ≥ 0');
  return number;
}

function parseJson(value: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(value);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed))
      return parsed as Record<string, unknown>;
  } catch {
    // Reported below.
  }
  throw new InvalidArgumentError(
    '--data must be a JSON object, e.g. \'{"instances": [[5.1, 3.5, 1.4, 0.2]]}\'',
  );
}

/** Long-polls until the job finishes or `seconds` pass. */
async function waitFor(options: ApiOptions, id: string, seconds: number) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const remaining = Math.max(0, (deadline - Date.now()) / 1000);
    const job = await clientFor(options).getJob(id, Math.min(POLL_SECONDS, remaining));
    if (FINISHED.has(job.status) || remaining <= POLL_SECONDS) return job;
  }
}

function describe(job: JobInfo & { result?: unknown }): string[] {
  const lines = [
    `${job.id}  ${job.status}  ${job.model} v${job.version}  attempts ${job.attempts}/${job.max_attempts}`,
  ];
  if (job.error) lines.push(`error: ${job.error.code}: ${job.error.message}`);
  if (job.result !== undefined && job.result !== null) lines.push(JSON.stringify(job.result));
  return lines;
}

/** Exit code 1 when a followed job did not succeed, so scripts can rely on it. */
function exitFor(job: JobInfo): void {
  if (FINISHED.has(job.status) && job.status !== 'succeeded') process.exitCode = 1;
}

export function registerJobCommands(program: Command): void {
  const jobs = program.command('jobs').description('async jobs: submit, get, list, cancel');

  withApiOptions(jobs.command('submit').description('queue a prediction as a job').argument('<model>'))
    .requiredOption(
      '--data <json>',
      'request body as for predict, e.g. \'{"instances": [[5.1, 3.5, 1.4, 0.2]]}\'',
      parseJson,
    )
    .option('--version <n>', 'model version (default: the newest now)', Number)
    .option('--priority <n>', 'higher runs first among your jobs (default 0)', Number)
    .option('--webhook-url <url>', 'POSTed a signed notice when the job finishes')
    .option('--idempotency-key <key>', 'resubmitting with the same key and body returns the same job')
    .option('--wait [seconds]', 'wait for the result (default 60 s)', parseSeconds)
    .action(
      async (
        model: string,
        options: ApiOptions & {
          data: Record<string, unknown>;
          version?: number;
          priority?: number;
          webhookUrl?: string;
          idempotencyKey?: string;
          wait?: number | true;
        },
      ) => {
        const body = {
          ...(options.data as { instances: unknown[] }),
          ...(options.version === undefined ? {} : { version: options.version }),
          ...(options.priority === undefined ? {} : { priority: options.priority }),
          ...(options.webhookUrl === undefined ? {} : { webhook_url: options.webhookUrl }),
        };
        const seconds = options.wait === true ? POLL_SECONDS : options.wait;
        let job = await clientFor(options).submitJob(model, body, {
          idempotencyKey: options.idempotencyKey,
          waitSeconds: seconds === undefined ? undefined : Math.min(seconds, POLL_SECONDS),
        });
        if (seconds !== undefined) {
          if (!FINISHED.has(job.status) && seconds > POLL_SECONDS) {
            job = await waitFor(options, job.id, seconds - POLL_SECONDS);
          }
          exitFor(job);
        }
        output(options, job, () => describe(job));
      },
    );

  withApiOptions(jobs.command('get').description('show a job and its result').argument('<id>'))
    .option('--wait [seconds]', 'wait for it to finish (default 60 s)', parseSeconds)
    .action(async (id: string, options: ApiOptions & { wait?: number | true }) => {
      const job =
        options.wait === undefined
          ? await clientFor(options).getJob(id)
          : await waitFor(options, id, options.wait === true ? POLL_SECONDS : options.wait);
      if (options.wait !== undefined) exitFor(job);
      output(options, job, () => describe(job));
    });

  withApiOptions(jobs.command('list').description('list your jobs, newest first'))
    .option('--model <name>', 'only this model')
    .option('--status <status>', 'queued, running, succeeded, failed or canceled')
    .option('--limit <n>', 'jobs per page (default 100)', Number)
    .option('--cursor <cursor>', 'the next_cursor of the previous page')
    .action(
      async (options: ApiOptions & { model?: string; status?: string; limit?: number; cursor?: string }) => {
        const page = await clientFor(options).listJobs({
          model: options.model,
          status: options.status,
          limit: options.limit,
          cursor: options.cursor,
        });
        output(options, page, () => [
          ...table([
            ['ID', 'MODEL', 'VERSION', 'STATUS', 'ATTEMPTS', 'QUEUED'],
            ...page.jobs.map((job) => [
              job.id,
              job.model,
              String(job.version),
              job.status,
              String(job.attempts),
              job.queued_at,
            ]),
          ]),
          ...(page.next_cursor ? [`more: --cursor ${page.next_cursor}`] : []),
        ]);
      },
    );

  withApiOptions(
    jobs.command('cancel').description('cancel a queued or running job').argument('<id>'),
  ).action(async (id: string, options: ApiOptions) => {
    const job = await clientFor(options).cancelJob(id);
    output(options, job, () => describe(job));
  });
}
