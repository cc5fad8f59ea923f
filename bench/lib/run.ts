// The frame of a benchmark's main program (bench:realtime, bench:runtimes, bench:queue): its command line
// read strictly, its children stopped on interrupt, a scratch directory of its own, the machine it ran on,
// and the results written as JSON next to the report it prints.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { installCleanup, wasInterrupted } from './children.ts';
import { REPO_ROOT } from './servers.ts';
import { round } from './stats.ts';

export interface BenchmarkRun {
  startedAt: Date;
  loadAverageAtStart: number[];
  /** Scratch directory of this run, bench/tmp/<name>-<pid>: created empty, removed when the run ends. */
  runDir: string;
}

export interface Benchmark<Options> {
  /** Names the scratch directory, e.g. "realtime". */
  name: string;
  usage: string;
  /** The options, or undefined for --help; throws on a bad command line. */
  parseOptions(argv: string[], env: NodeJS.ProcessEnv): Options | undefined;
  run(options: Options, run: BenchmarkRun): Promise<void>;
}

/**
 * Runs a benchmark as its main program: usage on --help, the error and usage with exit code 2 on a bad
 * command line. After an interrupt the cleanup handler exits with 130 once the children are down, so
 * failures from then on are the children going away, not findings.
 */
export async function runBenchmark<Options>(benchmark: Benchmark<Options>): Promise<void> {
  let options: Options | undefined;
  try {
    options = benchmark.parseOptions(process.argv.slice(2), process.env);
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n\n${benchmark.usage}`);
    process.exitCode = 2;
    return;
  }
  if (!options) {
    process.stdout.write(benchmark.usage);
    return;
  }
  installCleanup();

  const startedAt = new Date();
  const loadAverageAtStart = loadavg();
  const runDir = join(REPO_ROOT, 'bench/tmp', `${benchmark.name}-${process.pid}`);
  rmSync(runDir, { recursive: true, force: true });
  mkdirSync(runDir, { recursive: true });
  try {
    await benchmark.run(options, { startedAt, loadAverageAtStart, runDir });
  } catch (error) {
    if (!wasInterrupted()) throw error;
  } finally {
    rmSync(runDir, { recursive: true, force: true });
  }
}

/**
 * The machine of a run, with the versions it ran (`versions`, kept in their order) and the load average
 * at its start and now: the machine is shared, and a high load average means other work competed for the
 * cores.
 */
export function describeMachine(run: BenchmarkRun, versions: Record<string, unknown>) {
  const cpuList = cpus();
  return {
    cpus: cpuList.length,
    cpuModel: cpuList[0]?.model ?? 'unknown',
    availableParallelism: availableParallelism(),
    totalMemoryGiB: round(totalmem() / 2 ** 30, 1),
    platform: `${process.platform} ${process.arch}`,
    node: process.version,
    ...versions,
    loadAverageAtStart: run.loadAverageAtStart.map((value) => round(value, 2)),
    loadAverageAtEnd: loadavg().map((value) => round(value, 2)),
  };
}

/**
 * Writes the results JSON, then prints the report and where the results went (`wrote` adds to that line);
 * `failure`, when some measurement failed, is printed last and makes the exit code 1.
 */
export function writeResults(
  outPath: string,
  results: unknown,
  report: string,
  { wrote = '', failure }: { wrote?: string; failure?: string } = {},
): void {
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(report);
  process.stdout.write(`\nwrote ${relative(process.cwd(), outPath)}${wrote}\n`);
  if (failure) {
    process.stdout.write(`\n${failure}\n`);
    process.exitCode = 1;
  }
}
