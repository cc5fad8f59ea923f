// The Python side of the `command` runtime, in Python's own unittest suite (test/python/): the one-file
// helper python/modelgate_runtime.py over its protocol (docs/runtimes.md), and the Python examples. Run
// with Debian's /usr/bin/python3, which is where Debian's python3-sklearn lives.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

const PYTHON = '/usr/bin/python3';
const ROOT = new URL('..', import.meta.url).pathname;

test('the Python unittest suite passes (helper protocol, iris and scikit-learn examples)', () => {
  const run = spawnSync(PYTHON, ['-m', 'unittest', 'discover', '-s', 'test/python', '-v'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 300_000,
  });
  assert.equal(run.error, undefined, String(run.error));
  assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`);
  // unittest reports on stderr; what it skipped (scikit-learn missing outside CI) is said here too.
  const skipped = run.stderr.split('\n').filter((line) => / skipped /.test(line));
  if (skipped.length > 0) process.stderr.write(`python: ${skipped.join('\n')}\n`);
});
