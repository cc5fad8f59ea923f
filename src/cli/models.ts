// `modelgate deploy`, `modelgate models list|get|delete` and `modelgate predict`.
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { create as createTar } from 'tar';
import { isArchiveFile } from '../artifacts/unpack.ts';
import type { HttpModelDefinition, ModelgateClient, ModelInfo } from '../client/client.ts';
import { isPlainObject } from '../json.ts';
import { clientFor, output, table, UsageError, withApiOptions, type ApiOptions } from './shared.ts';

function parsePositiveNumber(value: string): number {
  const number = Number(value);
  if (!Number.isFinite(number) || number < 0)
    throw new InvalidArgumentError('expected a non-negative number');
  return number;
}

function parseCount(value: string): number {
  const number = Number(value);
  if (!Number.isSafeInteger(number) || number < 1)
    throw new InvalidArgumentError('expected a whole number ≥ 1');
  return number;
}

/** `--env KEY=VALUE`, repeatable: each one adds a variable. */
function parseKeyValue(value: string, previous: Record<string, string> | undefined): Record<string, string> {
  const equals = value.indexOf('=');
  if (equals < 1) throw new InvalidArgumentError('expected KEY=VALUE');
  return { ...previous, [value.slice(0, equals)]: value.slice(equals + 1) };
}

/** `fields` without the ones left undefined (flags not given). */
function definedFields<T extends object>(fields: T): Partial<T> {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as Partial<T>;
}

/** The manifest at the root of a program's folder or archive (docs/runtimes.md); the server checks it. */
const MANIFEST_FILE = 'modelgate.json';

interface DeployOptions extends ApiOptions {
  name: string;
  runtime?: 'command' | 'http';
  processes?: number;
  inFlight?: number;
  setupTimeoutMs?: number;
  requestTimeoutMs?: number;
  env?: Record<string, string>;
  /** A JSON file: a folder's manifest `signature`, or an http upstream's. */
  signature?: string;
  upstreamUrl?: string;
  protocol?: HttpModelDefinition['protocol'];
  upstreamModel?: string;
  upstreamVersion?: string;
  healthUrl?: string;
  concurrency?: number;
  upstreamTimeoutMs?: number;
  upstreamHeader?: Record<string, string>;
  batching?: boolean;
  maxBatchSize?: number;
  maxBatchDelayMs?: number;
  maxQueueSize?: number;
  timeoutMs?: number;
}

/** The flags that write a folder's manifest, by option key (`--signature` also serves --runtime http). */
const MANIFEST_FLAGS = {
  processes: '--processes',
  inFlight: '--in-flight',
  setupTimeoutMs: '--setup-timeout-ms',
  requestTimeoutMs: '--request-timeout-ms',
  env: '--env',
} as const;

/** The flags that describe a model server for --runtime http, by option key. */
const HTTP_FLAGS = {
  upstreamUrl: '--upstream-url',
  protocol: '--protocol',
  upstreamModel: '--upstream-model',
  upstreamVersion: '--upstream-version',
  healthUrl: '--health-url',
  concurrency: '--concurrency',
  upstreamTimeoutMs: '--upstream-timeout-ms',
  upstreamHeader: '--upstream-header',
} as const;

/** Those of `flags` given on the command line. */
function givenFlags(options: DeployOptions, flags: Partial<Record<keyof DeployOptions, string>>): string[] {
  return Object.entries(flags)
    .filter(([key]) => options[key as keyof DeployOptions] !== undefined)
    .map(([, flag]) => flag!);
}

type DeployedModel = ModelInfo & { deployed_version: number };

/** The JSON in `file`; a usage error when it cannot be read or is not JSON. */
async function readJsonFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new UsageError(`${file} is not JSON: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * The manifest a folder is deployed with: its own modelgate.json, if it has one, with the flags' fields
 * over it (`--env` adds to its env, variable by variable; a command after `--` replaces its command).
 */
async function folderManifest(
  folder: string,
  command: string[],
  options: DeployOptions,
): Promise<Record<string, unknown>> {
  const file = join(folder, MANIFEST_FILE);
  const exists = await stat(file).then(
    () => true,
    () => false,
  );
  const own = exists ? await readJsonFile(file) : {};
  if (!isPlainObject(own)) throw new UsageError(`${file} must hold a JSON object`);
  if (!exists && command.length === 0) {
    throw new UsageError(
      `${folder} has no ${MANIFEST_FILE}: say how to run its program after --, e.g. ` +
        `modelgate deploy ${folder} --name ${options.name} -- python3 predict.py`,
    );
  }
  return {
    ...own,
    ...definedFields({
      command: command.length > 0 ? command : undefined,
      processes: options.processes,
      inFlight: options.inFlight,
      setupTimeoutMs: options.setupTimeoutMs,
      requestTimeoutMs: options.requestTimeoutMs,
      env: options.env && { ...(isPlainObject(own.env) ? own.env : {}), ...options.env },
      signature: options.signature === undefined ? undefined : await readJsonFile(options.signature),
    }),
  };
}

/**
 * Packs `folder` into `scratch`/model.tar.gz: everything in it as it is, except that the modelgate.json at
 * its root is `manifest` (added from a tar of its own in `scratch`), so the folder itself is never written.
 */
async function packFolder(
  folder: string,
  manifest: Record<string, unknown>,
  scratch: string,
): Promise<string> {
  const manifestDir = join(scratch, 'manifest');
  await mkdir(manifestDir);
  await writeFile(join(manifestDir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  const manifestTar = join(scratch, 'manifest.tar');
  await createTar({ file: manifestTar, cwd: manifestDir, portable: true }, [MANIFEST_FILE]);
  const archive = join(scratch, 'model.tar.gz');
  try {
    // node-tar reads an entry starting with @ as an archive to copy in: the folder's own such names go as ./@…
    const entries = (await readdir(folder))
      .filter((entry) => entry !== MANIFEST_FILE)
      .map((entry) => (entry.startsWith('@') ? `./${entry}` : entry));
    await createTar({ gzip: true, file: archive, cwd: folder, portable: true }, [
      ...entries,
      `@${manifestTar}`,
    ]);
  } catch (error) {
    throw new UsageError(`cannot pack ${folder}: ${(error as Error).message}`, { cause: error });
  }
  return archive;
}

/** Packs `folder` with `manifest` into a temporary .tar.gz, uploads it as a version of `name`, removes it. */
async function deployFolder(
  client: ModelgateClient,
  name: string,
  folder: string,
  manifest: Record<string, unknown>,
): Promise<DeployedModel> {
  const scratch = await mkdtemp(join(tmpdir(), 'modelgate-deploy-'));
  try {
    const archive = await packFolder(folder, manifest, scratch);
    return await client.deploy(name, Readable.toWeb(createReadStream(archive)) as ReadableStream<Uint8Array>);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The definition of an http version from its flags: URL and protocol required, the rest as given. */
async function httpDefinition(options: DeployOptions): Promise<HttpModelDefinition> {
  if (options.upstreamUrl === undefined || options.protocol === undefined) {
    throw new UsageError('--runtime http needs --upstream-url <url> (the model server) and --protocol v2|v1');
  }
  const signature =
    options.signature === undefined
      ? undefined
      : ((await readJsonFile(options.signature)) as HttpModelDefinition['signature']);
  return {
    runtime: 'http',
    protocol: options.protocol,
    url: options.upstreamUrl,
    ...definedFields({
      model: options.upstreamModel,
      modelVersion: options.upstreamVersion,
      signature,
      healthUrl: options.healthUrl,
      concurrency: options.concurrency,
      timeoutMs: options.upstreamTimeoutMs,
      headers: options.upstreamHeader,
    }),
  };
}

/**
 * Deploys the form the arguments name: a running model server (--runtime http, no path), a folder (packed
 * with its manifest), or a file (an ONNX model or an archive, uploaded as it is; the server tells which).
 */
async function deploy(path: string | undefined, command: string[], options: DeployOptions) {
  const client = clientFor(options);
  const manifestFlags = givenFlags(options, MANIFEST_FLAGS);
  if (options.runtime === 'http') {
    if (path !== undefined) {
      throw new UsageError(
        `--runtime http deploys a running model server, nothing to upload: leave out ${path}`,
      );
    }
    if (manifestFlags.length > 0) {
      throw new UsageError(
        `${manifestFlags.join(', ')} set a program's manifest, not an http model server's`,
      );
    }
    return client.deployDefinition(options.name, await httpDefinition(options));
  }
  const httpFlags = givenFlags(options, HTTP_FLAGS);
  if (httpFlags.length > 0) {
    throw new UsageError(`${httpFlags.join(', ')} describe a running model server: add --runtime http`);
  }
  if (path === undefined) {
    throw new UsageError(
      "say what to deploy: a model file, a program's folder or archive, or --runtime http --upstream-url <url>",
    );
  }
  const info = await stat(path).catch((error: unknown) => {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new UsageError(
      missing ? `no such file or folder: ${path}` : `cannot read ${path}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  });
  if (info.isDirectory())
    return deployFolder(client, options.name, path, await folderManifest(path, command, options));

  const folderOnly = [
    ...manifestFlags,
    ...(options.signature === undefined ? [] : ['--signature']),
    ...(command.length > 0 ? ['a command after --'] : []),
  ];
  if (folderOnly.length > 0) {
    throw new UsageError(
      `${folderOnly.join(', ')}: only for a folder, which modelgate packs with its ${MANIFEST_FILE}; ` +
        `${path} is a file: set them in the archive's ${MANIFEST_FILE}, or deploy its folder`,
    );
  }
  if (options.runtime === 'command' && !(await isArchiveFile(path))) {
    throw new UsageError(
      `--runtime command takes a program's folder or a .tar.gz/.zip archive of one; ${path} is neither`,
    );
  }
  return client.deploy(options.name, Readable.toWeb(createReadStream(path)) as ReadableStream<Uint8Array>);
}

const DEPLOY_FORMS = `
Forms:
  modelgate deploy model.onnx --name iris
  modelgate deploy program.tar.gz --name iris        an archive of a program with its modelgate.json
  modelgate deploy ./my-model/ --name iris -- python3 predict.py
      a folder, packed as a .tar.gz whose modelgate.json is the folder's own (if any) with the program
      flags over it; the folder itself is left as it is. Without a command after --, the folder's
      modelgate.json must say it.
  modelgate deploy --name iris --runtime http --upstream-url http://10.0.0.7:8000 --protocol v2 \\
      --upstream-model iris
      a model server already running, which modelgate calls; nothing is uploaded.

The program flags and a command after -- are for a folder only: for an archive, set them in its
modelgate.json. The serving flags apply to every form.`;

export function registerModelCommands(program: Command): void {
  withApiOptions(
    program
      .command('deploy')
      .description(
        "deploy a new version: a model file, a program's folder or archive, or a running model server",
      )
      .argument('[path]', "an ONNX file, a program's .tar.gz/.zip archive, or a program's folder")
      .argument('[command...]', "after --: the folder's program and its arguments (its manifest's command)")
      .usage('[options] [path] [-- command...]'),
  )
    .requiredOption('--name <name>', 'model name')
    .addOption(
      new Option(
        '--runtime <runtime>',
        'command for a folder or archive; http for a model server (default: from <path>)',
      ).choices(['command', 'http']),
    )
    .optionsGroup("Program (a folder's manifest, over its own modelgate.json):")
    .option('--processes <n>', 'copies of the program serving the version (server default 1)', parseCount)
    .option(
      '--in-flight <n>',
      'requests sent to a copy before it has answered (server default 4)',
      parseCount,
    )
    .option(
      '--setup-timeout-ms <ms>',
      'longest a copy may take to write ready (server default 60000)',
      parseCount,
    )
    .option(
      '--request-timeout-ms <ms>',
      'longest a copy may take to answer before it is restarted (server default 60000)',
      parseCount,
    )
    .option('--env <KEY=VALUE>', 'an environment variable of the program (repeatable)', parseKeyValue)
    .option('--signature <file.json>', 'its {inputs, outputs} (also --runtime http, where v1 needs it)')
    .optionsGroup('Model server (--runtime http):')
    .option('--upstream-url <url>', 'v2: its base URL; v1: the URL predictions are POSTed to')
    .addOption(
      new Option('--protocol <protocol>', 'Open Inference Protocol v2, or KServe v1 JSON').choices([
        'v2',
        'v1',
      ]),
    )
    .option('--upstream-model <name>', "v2: the model's name on it (required)")
    .option('--upstream-version <version>', "v2: the model's version on it (default: its newest)")
    .option('--health-url <url>', 'v1: a URL of it answering 2xx while it is up (v2: its ready route)')
    .option('--concurrency <n>', 'requests in flight to it at once (server default 4)', parseCount)
    .option(
      '--upstream-timeout-ms <ms>',
      'longest one call to it may take (server default 30000)',
      parseCount,
    )
    .option(
      '--upstream-header <NAME=VALUE>',
      'a header sent with every call to it, e.g. its own Authorization (repeatable)',
      parseKeyValue,
    )
    .optionsGroup('Serving (every form):')
    .option('--no-batching', 'serve each request alone')
    .option('--max-batch-size <rows>', 'most rows per batch', parsePositiveNumber)
    .option('--max-batch-delay-ms <ms>', 'longest wait for a batch to fill', parsePositiveNumber)
    .option('--max-queue-size <requests>', 'queued requests before 503', parsePositiveNumber)
    .option('--timeout-ms <ms>', 'request deadline', parsePositiveNumber)
    .addHelpText('after', DEPLOY_FORMS)
    .action(async (path: string | undefined, command: string[], options: DeployOptions) => {
      let model = await deploy(path, command, options);
      const settings = definedFields({
        batching: options.batching === false ? false : undefined,
        maxBatchSize: options.maxBatchSize,
        maxBatchDelayMs: options.maxBatchDelayMs,
        maxQueueSize: options.maxQueueSize,
        timeoutMs: options.timeoutMs,
      });
      if (Object.keys(settings).length > 0) {
        model = {
          ...(await clientFor(options).updateModelSettings(options.name, settings)),
          deployed_version: model.deployed_version,
        };
      }
      const runtime = model.versions.find((v) => v.version === model.deployed_version)?.runtime;
      output(options, model, () => [
        `deployed ${model.name} version ${model.deployed_version}${runtime ? ` (${runtime})` : ''}`,
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
