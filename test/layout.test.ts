// The shape of the tree: no import cycles in src/, core code never imports the HTTP layer, the store (the
// bottom layer) imports no feature; and npm in this repository runs no install script and warns of nothing.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const ROOT = new URL('..', import.meta.url).pathname;
const SRC = join(ROOT, 'src');

interface Import {
  target: string;
  typeOnly: boolean;
}

/** Every .ts file under src/ with the src/ files it imports (relative specifiers), keyed by path from src/. */
async function importGraph(): Promise<Map<string, Import[]>> {
  const graph = new Map<string, Import[]>();
  for (const entry of await readdir(SRC, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
    const file = join(entry.parentPath, entry.name);
    const text = await readFile(file, 'utf8');
    const imports: Import[] = [];
    for (const match of text.matchAll(/^(import|export)(\s+type)?\s[^;]*?from\s+'(\.[^']+)'/gms)) {
      imports.push({
        target: relative(SRC, resolve(dirname(file), match[3]!)),
        typeOnly: match[2] !== undefined,
      });
    }
    for (const match of text.matchAll(/import\('(\.[^']+)'\)/g)) {
      imports.push({ target: relative(SRC, resolve(dirname(file), match[1]!)), typeOnly: false });
    }
    graph.set(relative(SRC, file), imports);
  }
  return graph;
}

test('src/ has no import cycles, type imports included', async () => {
  const graph = await importGraph();
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (file: string, path: string[]) => {
    if (state.get(file) === 'done') return;
    if (state.get(file) === 'open') {
      cycles.push([...path.slice(path.indexOf(file)), file].join(' → '));
      return;
    }
    state.set(file, 'open');
    for (const { target } of graph.get(file) ?? []) {
      if (graph.has(target)) visit(target, [...path, file]);
    }
    state.set(file, 'done');
  };
  for (const file of graph.keys()) visit(file, []);
  assert.deepEqual(cycles, []);
});

test('only the HTTP layer and the assembly import http/; the store imports no feature', async () => {
  const graph = await importGraph();
  const offences: string[] = [];
  for (const [file, imports] of graph) {
    for (const { target, typeOnly } of imports) {
      if (target.startsWith('http/') && !file.startsWith('http/') && file !== 'platform.ts') {
        offences.push(`${file} imports ${target}`);
      }
      // The store may know the shapes of what it stores (a model signature) but no behaviour above it.
      const storeMayImport =
        target.startsWith('store/') ||
        target === 'errors.ts' ||
        target === 'text.ts' ||
        (typeOnly && target.startsWith('runtime/'));
      if (file.startsWith('store/') && !storeMayImport) offences.push(`${file} imports ${target}`);
    }
  }
  assert.deepEqual(offences, []);
});

test('npm in this repository knows every project setting and runs no install script', async () => {
  const { stdout, stderr } = await promisify(execFile)('npm', ['config', 'get', 'ignore-scripts'], {
    cwd: ROOT,
    env: { ...process.env, npm_config_ignore_scripts: undefined },
  });
  assert.equal(stdout.trim(), 'true');
  assert.equal(stderr, '', 'npm warns of nothing');
});
