// Queue benchmark peer: one graphile-worker process (a runner with `--concurrency` jobs at once, woken by
// its LISTEN/NOTIFY on new jobs), whose task reads the job's input and is done; graphile-worker deletes a
// job when it completes. Every other option is graphile-worker's default (pool of 10, no local queue, no
// batched completion, 2 s fallback poll).
// Usage: node --import tsx bench/queue/peers/graphile-worker.ts --database-url URL --schema S --task T
//          [--concurrency 64]
// Prints one JSON line `{"event":"ready",…}` on stdout once it works; stops gracefully on SIGTERM.
import { parseArgs } from 'node:util';
import { Logger, run } from 'graphile-worker';

const { values } = parseArgs({
  options: {
    'database-url': { type: 'string' },
    schema: { type: 'string' },
    task: { type: 'string' },
    concurrency: { type: 'string', default: '64' },
  },
  strict: true,
});
const connectionString = values['database-url'];
const { schema, task } = values;
if (!connectionString || !schema || !task) {
  process.stderr.write('--database-url, --schema and --task are required\n');
  process.exit(2);
}
const concurrency = Number(values.concurrency);

// Warnings and errors only, like the other systems of the benchmark.
const logger = new Logger(() => (level, message) => {
  if (level === 'error' || level === 'warning')
    process.stderr.write(`graphile-worker ${level}: ${message}\n`);
});
const runner = await run({
  connectionString,
  schema,
  concurrency,
  noHandleSignals: true,
  logger,
  parsedCronItems: [],
  taskList: {
    // The trivial work: look at the input (one row), nothing to store.
    [task]: async (payload) => {
      const { instances } = payload as { instances: number[][] };
      if (!Array.isArray(instances)) throw new Error('no instances');
    },
  },
});

let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  runner.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
process.stdout.write(`${JSON.stringify({ event: 'ready', pid: process.pid, concurrency })}\n`);
