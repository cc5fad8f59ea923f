// Paired latency comparison of two modelgate checkouts: this one and --base (e.g. a `git worktree` of an
// earlier commit). Both run at once on the benchmark database, each in its own schema (`serve
// --no-workers` and --workers worker processes), and single jobs (POST with Prefer: wait) alternate
// between them, in alternating order, so that both see the same moments of a machine whose speed drifts.
// Differences of a few percent that separate runs of bench:queue cannot show come out here. Prints p50
// and p90 of each and the share of pairs each answered first. Run: npm run bench:queue-ab -- --help
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseNumber, UsageError } from './lib/args.ts';
import { installCleanup } from './lib/children.ts';
import { percentile } from './lib/stats.ts';
import { REPO_ROOT } from './lib/servers.ts';
import { benchDatabaseUrl, createSchema, dropSchema, newSchemaName } from './queue/database.ts';
import { startModelgate } from './queue/modelgate.ts';
import type { RunningSystem, WorkloadId } from './queue/system.ts';
import { buildJobWorkload } from './queue/workloads.ts';

const USAGE = `Usage: npm run bench:queue-ab -- --base <checkout> [options]

  --base <dir>        the other checkout, with its dependencies installed or linked
                      (git worktree add /tmp/base <commit> && ln -s "$PWD/node_modules" /tmp/base/)
  --pairs <n>         pairs of jobs measured (default 600)
  --workers <n>       worker processes of each (default 1)
  --workload <id>     trivial or wide-mlp (default trivial)
  --help`;

const WARMUP_PAIRS = 100;
/** Longest random pause before a pair, so that pairs do not fall into step with the workers' timers. */
const PAUSE_MAX_MS = 10;

async function timeOne(system: RunningSystem, workload: WorkloadId): Promise<number> {
  const startedMs = performance.now();
  await system.runOne(workload);
  return performance.now() - startedMs;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      base: { type: 'string' },
      pairs: { type: 'string', default: '600' },
      workers: { type: 'string', default: '1' },
      workload: { type: 'string', default: 'trivial' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const base = values.base === undefined ? undefined : resolve(values.base);
  if (!base || !existsSync(join(base, 'bin/modelgate.js'))) {
    console.error(`--base must name a modelgate checkout\n\n${USAGE}`);
    return 2;
  }
  if (values.workload !== 'trivial' && values.workload !== 'wide-mlp') {
    console.error(`--workload must be trivial or wide-mlp, got "${values.workload}"`);
    return 2;
  }
  const workloadId: WorkloadId = values.workload;
  let pairs: number;
  let workers: number;
  try {
    pairs = parseNumber(values.pairs, '--pairs', { max: 100_000 });
    workers = parseNumber(values.workers, '--workers', { max: 16 });
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`${error.message}\n\n${USAGE}`);
    return 2;
  }

  installCleanup();
  const url = benchDatabaseUrl(process.env);
  const runDir = join(REPO_ROOT, 'bench', 'tmp', `queue-ab-${process.pid}`);
  mkdirSync(runDir, { recursive: true });
  const workload = buildJobWorkload(workloadId);
  const checkouts = { this: REPO_ROOT, base };
  const systems: Partial<Record<keyof typeof checkouts, RunningSystem>> = {};
  const schemas: string[] = [];
  try {
    for (const [name, root] of Object.entries(checkouts) as [keyof typeof checkouts, string][]) {
      const schema = newSchemaName(`ab_${name}`);
      await createSchema(url, schema);
      schemas.push(schema);
      systems[name] = await startModelgate({
        runDir: join(runDir, name),
        adminKey: `mg_${randomBytes(20).toString('hex')}`,
        workloads: [workload],
        postgres: { url, schema, workers },
        root,
      });
    }
    const ours = systems.this!;
    const theirs = systems.base!;
    const times = { this: [] as number[], base: [] as number[] };
    let thisFirst = 0;
    for (let i = 0; i < WARMUP_PAIRS + pairs; i++) {
      await new Promise((resolve) => setTimeout(resolve, Math.random() * PAUSE_MAX_MS));
      const order = i % 2 === 0 ? (['this', 'base'] as const) : (['base', 'this'] as const);
      const pair = { this: 0, base: 0 };
      for (const name of order) pair[name] = await timeOne(name === 'this' ? ours : theirs, workloadId);
      if (i < WARMUP_PAIRS) continue;
      times.this.push(pair.this);
      times.base.push(pair.base);
      if (pair.this < pair.base) thisFirst++;
    }
    console.log(`${pairs} pairs of ${workloadId} jobs, ${workers} worker process(es) each:`);
    for (const [name, root] of Object.entries(checkouts) as [keyof typeof checkouts, string][]) {
      const sorted = [...times[name]].sort((a, b) => a - b);
      console.log(
        `  ${name.padEnd(4)} ${root}: p50 ${percentile(sorted, 0.5).toFixed(2)} ms, p90 ${percentile(sorted, 0.9).toFixed(2)} ms`,
      );
    }
    console.log(`  this checkout answered first in ${thisFirst} of ${pairs} pairs`);
    return 0;
  } finally {
    for (const system of Object.values(systems)) await system.stop();
    for (const schema of schemas) await dropSchema(url, schema);
    rmSync(runDir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
