// `modelgate deploy`, `modelgate models list|get|delete` and `modelgate predict`.
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { type Command, InvalidArgumentError } from 'commander';
import {
  clientFor,
  output,
  requireFile,
  table,
  UsageError,
  withApiOptions,
  type ApiOptions,
} from './shared.ts';

function parsePositiveNumber(value: string): number {
  const number = Number(value);
  if (!Number.isFinite(number) || number < 0)
    throw new InvalidArgumentError('expected a non-negative number');
  return number;
}

interface DeployOptions extends ApiOptions {
  name: string;
  batching?: boolean;
  maxBatchSize?: number;
  maxBatchDelayMs?: number;
  maxQueueSize?: number;
  timeoutMs?: number;
}

export function registerModelCommands(program: Command): void {
  withApiOptions(
    program.command('deploy').description('upload a model file as a new version').argument('<file>'),
  )
    .requiredOption('--name <name>', 'model name')
    .option('--no-batching', 'serve each request alone')
    .option('--max-batch-size <rows>', 'most rows per batch', parsePositiveNumber)
    .option('--max-batch-delay-ms <ms>', 'longest wait for a batch to fill', parsePositiveNumber)
    .option('--max-queue-size <requests>', 'queued requests before 503', parsePositiveNumber)
    .option('--timeout-ms <ms>', 'request deadline', parsePositiveNumber)
    .action(async (file: string, options: DeployOptions) => {
      await requireFile(file);
      const client = clientFor(options);
      const body = Readable.toWeb(createReadStream(file)) as ReadableStream<Uint8Array>;
      let model = await client.deploy(options.name, body);
      const settings = Object.fromEntries(
        Object.entries({
          batching: options.batching === false ? false : undefined,
          maxBatchSize: options.maxBatchSize,
          maxBatchDelayMs: options.maxBatchDelayMs,
          maxQueueSize: options.maxQueueSize,
          timeoutMs: options.timeoutMs,
        }).filter(([, value]) => value !== undefined),
      );
      if (Object.keys(settings).length > 0) {
        model = {
          ...(await client.updateModelSettings(options.name, settings)),
          deployed_version: model.deployed_version,
        };
      }
      output(options, model, () => [
        `deployed ${model.name} version ${model.deployed_version}`,
        ...model.inputs.map((t) => `  input  ${t.name} ${t.datatype} [${t.shape.join(', ')}]`),
        ...model.outputs.map((t) => `  output ${t.name} ${t.datatype} [${t.shape.join(', ')}]`),
      ]);
    });

  const models = program.command('models').description('deployed models');
  withApiOptions(models.command('list').description('list models')).action(async (options: ApiOptions) => {
    const { models: list } = await clientFor(options).listModels();
    output(options, list, () =>
      table([
        ['NAME', 'LATEST', 'VERSIONS', 'INPUTS'],
        ...list.map((m) => [
          m.name,
          String(m.latest_version ?? '-'),
          String(m.versions.length),
          m.inputs.map((t) => `${t.name}:${t.datatype}[${t.shape.join(',')}]`).join(' '),
        ]),
      ]),
    );
  });
  withApiOptions(models.command('get').description('show a model').argument('<name>')).action(
    async (name: string, options: ApiOptions) => {
      const model = await clientFor(options).getModel(name);
      output(options, model, () => [JSON.stringify(model, null, 2)]);
    },
  );
  withApiOptions(models.command('delete').description('delete a model or one version').argument('<name>'))
    .option('--version <n>', 'only this version', parsePositiveNumber)
    .action(async (name: string, options: ApiOptions & { version?: number }) => {
      await clientFor(options).deleteModel(name, options.version);
      output(options, { deleted: name, version: options.version ?? null }, () => [
        `deleted ${name}${options.version === undefined ? '' : ` version ${options.version}`}`,
      ]);
    });

  withApiOptions(program.command('predict').description('run a prediction').argument('<name>'))
    .requiredOption('--data <json>', 'request body, e.g. \'{"instances": [[5.1, 3.5, 1.4, 0.2]]}\'')
    .option('--version <n>', 'model version', parsePositiveNumber)
    .action(async (name: string, options: ApiOptions & { data: string; version?: number }) => {
      let body;
      try {
        body = JSON.parse(options.data) as Parameters<ReturnType<typeof clientFor>['predict']>[1];
      } catch {
        throw new UsageError('--data is not valid JSON');
      }
      const result = await clientFor(options).predict(name, body, options.version);
      output(options, result, () => [JSON.stringify(result)]);
    });
}
