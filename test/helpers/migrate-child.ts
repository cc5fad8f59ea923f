// Child process of test/migrate-concurrency.test.ts: connects to one Postgres schema, prints `ready`, waits
// for its stdin to close (the parent's start signal), migrates, and prints the applied migrations as JSON.
// Usage: node --import tsx test/helpers/migrate-child.ts <database url> <schema>
import { once } from 'node:events';
import { migrate } from '../../src/store/migrate.ts';
import { openPostgres } from '../../src/store/postgres.ts';
import { TEST_DATABASE_TIMEOUT_MS } from './databases.ts';

const [url, schema] = process.argv.slice(2);
if (url === undefined || schema === undefined) {
  process.stderr.write('usage: migrate-child.ts <database url> <schema>\n');
  process.exit(2);
}

const db = await openPostgres(url, { schema, timeoutMs: TEST_DATABASE_TIMEOUT_MS });
try {
  process.stdout.write('ready\n');
  process.stdin.resume();
  await once(process.stdin, 'end');
  const applied = await migrate(db);
  process.stdout.write(`${JSON.stringify(applied)}\n`);
} finally {
  await db.close();
}
