// Every error code is documented in docs/errors.md with its HTTP status, and the doc lists no code that
// does not exist.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { ERROR_CODES } from '../src/errors.ts';

test('docs/errors.md documents exactly the error codes, with their statuses', async () => {
  const doc = await readFile(new URL('../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Map(
    [...doc.matchAll(/^\| `([a-z_]+)` +\| (\d{3}) +\|/gm)].map((match) => [match[1]!, Number(match[2])]),
  );
  assert.deepEqual(Object.fromEntries(documented), { ...ERROR_CODES });
});
