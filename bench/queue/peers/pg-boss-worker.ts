// Queue benchmark peer: one pg-boss worker process, working the benchmark's queue its natural way: one
// work() call fetching `--batch-size` jobs per poll every `--polling-interval-seconds`, with a handler that
// returns each job's input. pg-boss completes the batch itself once the handler returns.
// Usage: node --import tsx bench/queue/peers/pg-boss-worker.ts --database-url URL --schema S --queue Q
//          [--batch-size 64] [--polling-interval-seconds 0.5]
// Prints one JSON line `{"event":"ready",…}` on stdout once it works; stops gracefully on SIGTERM.
import { parseArgs } from 'node:util';
import PgBoss from 'pg-boss';

const { values } = parseArgs({
  options: {
    'database-url': { type: 'string' },
    schema: { type: 'string' },
    queue: { type: 'string' },
    'batch-size': { type: 'string', default: '64' },
    'polling-interval-seconds': { type: 'string', default: '0.5' },
  },
  strict: true,
});
const connectionString = values['database-url'];
const { schema, queue } = values;
if (!connectionString || !schema || !queue) {
  process.stderr.write('--database-url, --schema and --queue are required\n');
  process.exit(2);
}
const batchSize = Number(values['batch-size']);
const pollingIntervalSeconds = Number(values['polling-interval-seconds']);

// Everything else is pg-boss's default (pool of 10, maintenance and cron monitoring on); the URL carries
// the benchmark's application_name.
const boss = new PgBoss({ connectionString, schema });
boss.on('error', (error: Error) => process.stderr.write(`pg-boss error: ${error.message}\n`));
await boss.start();
const workerId = await boss.work<{ instances: number[][] }>(
  queue,
  { batchSize, pollingIntervalSeconds },
  async (jobs) => jobs.map((job) => job.data.instances),
);

let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  boss.stop({ graceful: true, wait: true, timeout: 5000 }).then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
process.stdout.write(
  `${JSON.stringify({ event: 'ready', pid: process.pid, workerId, batchSize, pollingIntervalSeconds })}\n`,
);
