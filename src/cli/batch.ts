// `modelgate batch submit|get|list|cancel|download`: batch runs through the API. `submit` uploads a local
// file, or names one the server reads (s3://bucket/key, file:///path); `--wait` follows the run with a
// progress bar (rows, rate, ETA) and downloads its output (and its errors, if any).
import { createReadStream, createWriteStream } from 'node:fs';
import { basename, extname } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SingleBar } from 'cli-progress';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { batchFormatOfName } from '../batch/source-url.ts';
import { parseInputMap } from '../batch/plan.ts';
import type { BatchInfo, BatchRunOptions, ModelgateClient } from '../client/client.ts';
import {
  FINISHED,
  clientFor,
  output,
  requireFile,
  table,
  UsageError,
  withApiOptions,
  type ApiOptions,
} from './shared.ts';

const CONTENT_TYPES = { csv: 'text/csv', jsonl: 'application/jsonl' } as const;
type Format = keyof typeof CONTENT_TYPES;
/** How often `--wait` reads the batch's progress. */
const PROGRESS_INTERVAL_MS = 1000;

const columnList = (value: string) => value.split(',').map((name) => name.trim());
const inputMap = (value: string) => {
  try {
    return parseInputMap(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
};

function positiveInteger(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new InvalidArgumentError('expected a whole number ≥ 1');
  return number;
}

/** A URL (`s3://…`, `file://…`) names input the server reads; anything else is a local file to upload. */
const isReference = (input: string) => /^[a-z][a-z0-9+.-]*:\/\//i.test(input);

/** The file's format from --format, else from its extension (.csv; .jsonl, .ndjson). */
function formatOf(file: string, given: Format | undefined): Format {
  const format = given ?? batchFormatOfName(file);
  if (format) return format;
  throw new UsageError(`cannot tell the format of ${file} from its name: use --format csv|jsonl`);
}

/** Uploads the local file, or sends the reference for the server to read; the format, if known here. */
async function submitInput(
  client: ModelgateClient,
  input: string,
  options: { model: string; format?: Format },
  run: BatchRunOptions,
): Promise<{ submitted: BatchInfo; format: Format | undefined }> {
  if (isReference(input)) {
    // The server tells the format from the name itself, and says so when it cannot.
    const submitted = await client.submitBatchReference(
      options.model,
      { input, format: options.format },
      run,
    );
    return { submitted, format: options.format ?? batchFormatOfName(input) };
  }
  const format = formatOf(input, options.format);
  await requireFile(input);
  const submitted = await client.submitBatch(options.model, createReadStream(input), {
    ...run,
    contentType: CONTENT_TYPES[format],
  });
  return { submitted, format };
}

function describe(batch: BatchInfo): string[] {
  const lines = [
    `${batch.id}  ${batch.status}  ${batch.model} v${batch.version}  rows ${batch.rows_done}/${batch.rows_total}` +
      `  failed ${batch.rows_failed}  parts ${batch.parts_done}/${batch.parts_total}`,
  ];
  if (batch.rows_per_second !== null) {
    lines.push(
      `${batch.rows_per_second} rows/s` +
        (batch.eta_seconds === null ? '' : `, about ${batch.eta_seconds} s to go`),
    );
  }
  if (batch.error) lines.push(`error: ${batch.error.code}: ${batch.error.message}`);
  return lines;
}

/** Writes the batch's output (or errors) to `path`, or to stdout without one. */
async function download(client: ModelgateClient, id: string, which: 'output' | 'errors', path?: string) {
  const response = await client.batchFile(id, which);
  const body = Readable.fromWeb(response.body! as never);
  if (path) await pipeline(body, createWriteStream(path));
  else await pipeline(body, process.stdout, { end: false });
}

/** Reads the batch until it has finished, drawing its progress on stderr when that is a terminal. */
async function follow(client: ModelgateClient, first: BatchInfo): Promise<BatchInfo> {
  const bar = process.stderr.isTTY
    ? new SingleBar({
        format: 'rows {bar} {value}/{total}  {rate} rows/s  ETA {eta_seconds}  failed {rows_failed}',
        hideCursor: true,
      })
    : undefined;
  bar?.start(first.rows_total, 0, { rate: '-', eta_seconds: '-', rows_failed: 0 });
  let batch = first;
  while (!FINISHED.has(batch.status)) {
    await new Promise((resolve) => setTimeout(resolve, PROGRESS_INTERVAL_MS));
    batch = await client.getBatch(batch.id);
    bar?.update(batch.rows_done + batch.rows_failed, {
      rate: batch.rows_per_second ?? '-',
      eta_seconds: batch.eta_seconds === null ? '-' : `${batch.eta_seconds} s`,
      rows_failed: batch.rows_failed,
    });
  }
  bar?.stop();
  return batch;
}

export function registerBatchCommands(program: Command): void {
  const batch = program
    .command('batch')
    .description('batch runs of CSV or JSONL files: submit, get, list, cancel, download');

  withApiOptions(
    batch
      .command('submit')
      .description('run a CSV or JSONL file through a model')
      .argument(
        '<file>',
        'a local .csv, .jsonl or .ndjson file, or s3://bucket/key or file:///path read by the server',
      ),
  )
    .requiredOption('--model <name>', 'the model')
    .option('--version <n>', 'model version (default: the newest now)', positiveInteger)
    .addOption(
      new Option('--format <format>', 'the input format (default: from the file name)').choices([
        'csv',
        'jsonl',
      ]),
    )
    .option(
      '--features <columns>',
      'columns that feed the model, in order (default: the numeric ones)',
      columnList,
    )
    .option(
      '--inputs <map>',
      'the columns of each model input, `x:a,b;mask:m` (default: the columns named after the inputs)',
      inputMap,
    )
    .option('--passthrough <columns>', 'columns copied to the output (default: all the others)', columnList)
    .addOption(
      new Option('--output-format <format>', 'csv or jsonl (default: as the input)').choices([
        'csv',
        'jsonl',
      ]),
    )
    .option('--part-rows <n>', 'rows per part (default 10000)', positiveInteger)
    .option('--wait', 'follow the run and download its output when it has finished')
    .option('--out <path>', 'with --wait: where the output goes (default: <file>.out.<format>)')
    .action(
      async (
        file: string,
        options: ApiOptions & {
          model: string;
          version?: number;
          format?: Format;
          features?: string[];
          inputs?: Record<string, string[]>;
          passthrough?: string[];
          outputFormat?: Format;
          partRows?: number;
          wait?: boolean;
          out?: string;
        },
      ) => {
        const client = clientFor(options);
        const { submitted, format } = await submitInput(client, file, options, {
          version: options.version,
          features: options.features,
          inputs: options.inputs,
          passthrough: options.passthrough,
          output: options.outputFormat,
          partRows: options.partRows,
        });
        if (!options.wait) return output(options, submitted, () => describe(submitted));
        const done = await follow(client, submitted);
        // The format is known here: the server takes no reference whose format it cannot tell.
        const outFormat = options.outputFormat ?? format ?? 'csv';
        const stem = basename(file, extname(file));
        const outPath = options.out ?? `${stem}.out.${outFormat}`;
        const written: Record<string, string> = {};
        if (done.status !== 'canceled') {
          await download(client, done.id, 'output', outPath);
          written.output = outPath;
          if (done.rows_failed > 0) {
            written.errors = `${stem}.errors.${outFormat}`;
            await download(client, done.id, 'errors', written.errors);
          }
        }
        if (done.status !== 'succeeded') process.exitCode = 1;
        output(options, { ...done, files: written }, () => [
          ...describe(done),
          ...Object.entries(written).map(([which, path]) => `${which}: ${path}`),
        ]);
      },
    );

  withApiOptions(
    batch.command('get').description('show a batch run and its progress').argument('<id>'),
  ).action(async (id: string, options: ApiOptions) => {
    const found = await clientFor(options).getBatch(id);
    output(options, found, () => describe(found));
  });

  withApiOptions(batch.command('list').description('list your batch runs, newest first'))
    .option('--limit <n>', 'batches per page (default 100)', positiveInteger)
    .option('--cursor <cursor>', 'the next_cursor of the previous page')
    .action(async (options: ApiOptions & { limit?: number; cursor?: string }) => {
      const page = await clientFor(options).listBatches({ limit: options.limit, cursor: options.cursor });
      output(options, page, () => [
        ...table([
          ['ID', 'STATUS', 'MODEL', 'ROWS', 'FAILED', 'CREATED'],
          ...page.batches.map((item) => [
            item.id,
            item.status,
            `${item.model} v${item.version}`,
            `${item.rows_done}/${item.rows_total}`,
            String(item.rows_failed),
            item.created_at,
          ]),
        ]),
        ...(page.next_cursor ? [`next page: --cursor ${page.next_cursor}`] : []),
      ]);
    });

  withApiOptions(
    batch.command('cancel').description('cancel the parts not yet finished').argument('<id>'),
  ).action(async (id: string, options: ApiOptions) => {
    const canceled = await clientFor(options).cancelBatch(id);
    output(options, canceled, () => describe(canceled));
  });

  withApiOptions(batch.command('download').description("write a finished batch's output").argument('<id>'))
    .option('--errors', 'the row errors instead of the output')
    .option('--out <path>', 'file to write (default: stdout)')
    .action(async (id: string, options: ApiOptions & { errors?: boolean; out?: string }) => {
      await download(clientFor(options), id, options.errors ? 'errors' : 'output', options.out);
    });
}
