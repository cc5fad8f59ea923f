// Runtimes benchmark: modelgate serving what is not an ONNX file in its own process, side by side in one
// run with what a team runs without it, every server its own child process on 127.0.0.1.
//   command: the iris model as a Python program (examples/iris-python) — (a) spoken to directly over its
//            pipe, (b) behind a hand-written http.server wrapper, (c) deployed to modelgate's command runtime.
//   http:    a one-request-at-a-time v2 model server (wide-mlp) called directly, and through modelgate's
//            http runtime, which batches in front of it.
//   large:   a convolutional model on a 1.2 MB image — (i) onnxruntime-node in this process, and modelgate's
//            /v2 infer with (ii) Triton's binary tensors and (iii) JSON.
// Prints a table and the targets, and writes bench/results/runtimes.json. Run: npm run bench:runtimes -- --help
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseNumber, UsageError } from './lib/args.ts';
import { describeMachine, runBenchmark, writeResults, type BenchmarkRun } from './lib/run.ts';
import { commandPart } from './lib/runtimes-command.ts';
import { httpPart } from './lib/runtimes-http.ts';
import { largePart } from './lib/runtimes-large.ts';
import { log, PYTHON, type Part, type RunContext } from './lib/runtimes-measure.ts';
import {
  checkTargets,
  formatTable,
  medianCells,
  PART_IDS,
  type Cell,
  type PartId,
} from './lib/runtimes-report.ts';
import { modelgateConfigFor, OWNED_MODELGATE_ENV, REPO_ROOT } from './lib/servers.ts';
import { describeSource, readPackageVersion } from './lib/source.ts';
import { formatTargets, NOISY_OTHER_CPU_CORES } from './lib/verdict.ts';

const USAGE = `Usage: npm run bench:runtimes -- [options]

  --parts <list>      ${PART_IDS.join(',')} (default: all)
                        command  the iris model as a Python program: (a) over its pipe, (b) behind a
                                 hand-written http.server, (c) in modelgate's command runtime; 1 and 64 clients
                        http     a one-at-a-time v2 upstream (wide-mlp) direct, and behind modelgate's http
                                 runtime, with ORT's defaults and with 1 ORT thread; 1 and 64 clients
                        large    a conv model on a [1,3,320,320] image: (i) in-process session.run, (0) a bare
                                 node:http server moving the same bytes without a model, modelgate
                                 /v2 infer with (ii) binary tensors and (iii) JSON; 1 and 4 clients
  --duration <s>      measured seconds per cell (default 5)
  --warmup <s>        warm-up seconds per setup, at its most clients (default 2)
  --rounds <n>        measure every setup this many times, each in fresh processes; the table and the
                      targets use each cell's median round (default 3)
  --noisy-retries <n> measure a cell again up to n times while other work on the machine used more than
                      ${NOISY_OTHER_CPU_CORES} cores during it; the quietest attempt is kept (default 0: on a machine
                      that is busy all along, retries only double the run; the rounds are the remedy)
  --out <file>        results JSON (default bench/results/runtimes.json)
  --help

modelgate runs as bench:realtime runs it (serve --examples, embedded storage, defaults) with the MODELGATE_*
variables of this environment, except ${OWNED_MODELGATE_ENV.join(', ')}.
`;

interface Options {
  parts: PartId[];
  durationSeconds: number;
  warmupSeconds: number;
  rounds: number;
  noisyRetries: number;
  outPath: string;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      parts: { type: 'string', default: PART_IDS.join(',') },
      duration: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '2' },
      rounds: { type: 'string', default: '3' },
      'noisy-retries': { type: 'string', default: '0' },
      out: { type: 'string', default: join(REPO_ROOT, 'bench/results/runtimes.json') },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) return undefined;
  const parts = values.parts.split(',').map((part) => part.trim());
  const unknown = parts.filter((part) => !PART_IDS.includes(part as PartId));
  if (unknown.length > 0)
    throw new UsageError(`--parts: unknown ${unknown.join(', ')}; use ${PART_IDS.join(',')}`);
  return {
    // Always in the same order, whatever the order given.
    parts: PART_IDS.filter((part) => parts.includes(part)),
    durationSeconds: parseNumber(values.duration, '--duration', { integer: false, min: 0.5 }),
    warmupSeconds: parseNumber(values.warmup, '--warmup', { integer: false, min: 0 }),
    rounds: parseNumber(values.rounds, '--rounds'),
    noisyRetries: parseNumber(values['noisy-retries'], '--noisy-retries', { min: 0 }),
    outPath: resolve(values.out),
  };
}

const PARTS: Record<PartId, Part> = { command: commandPart, http: httpPart, large: largePart };

async function runRuntimes(options: Options, run: BenchmarkRun): Promise<void> {
  const context: RunContext = {
    options,
    runDir: run.runDir,
    // A fresh key per run; each modelgate server starts on an empty database and takes it as admin key.
    adminKey: `mg_${randomBytes(20).toString('hex')}`,
    setups: {},
    notes: [],
    modelgateStarts: 0,
  };
  const roundCells: Cell[] = [];
  for (let round = 1; round <= options.rounds; round++) {
    if (options.rounds > 1) log(`round ${round} of ${options.rounds}`);
    for (const part of options.parts) roundCells.push(...(await PARTS[part].run(context)));
  }
  const cells = medianCells(roundCells);
  const targets = checkTargets(cells);
  const results = {
    date: run.startedAt.toISOString(),
    source: describeSource(),
    machine: describeMachine(run, {
      python: readPythonVersion(),
      onnxruntimeNode: readPackageVersion('onnxruntime-node'),
      autocannon: readPackageVersion('autocannon'),
      undici: readPackageVersion('undici'),
    }),
    settings: {
      parts: options.parts,
      durationSecondsPerCell: options.durationSeconds,
      warmupSecondsPerSetup: options.warmupSeconds,
      rounds: options.rounds,
      noisyRetries: options.noisyRetries,
      noisyOtherCpuCores: NOISY_OTHER_CPU_CORES,
      perCell: 'the median round of req/s (fresh processes per round), with every round listed',
      clients: Object.fromEntries(options.parts.map((part) => [part, PARTS[part].clients])),
      loadGenerators: {
        http: 'autocannon (bench/lib/load.ts), closed loop, one request in flight per connection',
        pipe: 'a closed loop in the benchmark process writing infer lines to the program (bench/lib/protocol-program.ts)',
        large: 'a closed loop of undici Pool requests (bench/lib/closed-loop.ts); bodies built once',
      },
      latency: 'per successful answer, from send to the whole answer read, nearest-rank percentiles',
      modelgate: modelgateConfigFor('modelgate-batching', context.adminKey),
      partSettings: Object.fromEntries(options.parts.map((part) => [part, PARTS[part].settings])),
    },
    setups: context.setups,
    notes: context.notes,
    cells,
    targets,
  };
  const report =
    `\n${formatTable(cells)}\n\nTargets:\n${formatTargets(targets)}\n` +
    context.notes.map((note) => `note: ${note}\n`).join('');
  writeResults(options.outPath, results, report, {
    failure: cells.some((cell) => !cell.ok)
      ? 'Some cells had failed requests: their numbers are not comparable.'
      : undefined,
  });
}

function readPythonVersion(): string {
  try {
    return `${PYTHON}: ${execFileSync(PYTHON, ['--version'], { encoding: 'utf8' }).trim()}`;
  } catch {
    return `${PYTHON}: not found`;
  }
}

await runBenchmark({ name: 'runtimes', usage: USAGE, parseOptions, run: runRuntimes });
