// What tests of the runtimes share: the iris example's signature and its Python program's files, folders
// and archives of a program, the iris example behind its hand-written Python HTTP server, and the CLI run
// as a user runs it.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { create } from 'tar';

export const PYTHON = '/usr/bin/python3';
const ROOT = new URL('../..', import.meta.url).pathname;
export const IRIS_PYTHON_DIR = join(ROOT, 'examples/iris-python');
const BIN = join(ROOT, 'bin/modelgate.js');

/** The iris example's inputs and outputs, whatever runs it. */
export const IRIS_SIGNATURE = {
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
  outputs: [
    { name: 'label', datatype: 'INT64', shape: [-1] },
    { name: 'probabilities', datatype: 'FP32', shape: [-1, 3] },
  ],
};

/** File contents: text, or a file to copy. */
export type Files = Record<string, string | { copy: string }>;

/** The iris program of examples/iris-python without its manifest. */
export const IRIS_PROGRAM: Files = {
  'predict.py': { copy: join(IRIS_PYTHON_DIR, 'predict.py') },
  'iris-weights.json': { copy: join(IRIS_PYTHON_DIR, 'iris-weights.json') },
};

/** A folder at `path` holding `files`. */
export async function writeFolder(path: string, files: Files): Promise<string> {
  await mkdir(path, { recursive: true });
  for (const [file, content] of Object.entries(files)) {
    if (typeof content === 'string') await writeFile(join(path, file), content);
    else await copyFile(content.copy, join(path, file));
  }
  return path;
}

/** The bytes of a .tar.gz of a folder `name` in `work` holding `files`. */
export async function archiveOf(work: string, name: string, files: Files): Promise<Uint8Array> {
  const folder = await writeFolder(join(work, name), files);
  const path = join(work, `${name}.tar.gz`);
  await create({ gzip: true, file: path, cwd: folder }, Object.keys(files));
  return new Uint8Array(await readFile(path));
}

/** examples/iris-python/http_server.py on a free port of 127.0.0.1: a KServe v1 server of the iris model. */
export async function startIrisHttpServer(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(
    PYTHON,
    [join(IRIS_PYTHON_DIR, 'http_server.py'), '--host', '127.0.0.1', '--port', '0'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
  const port = await new Promise<number>((resolve, reject) => {
    let stdout = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk;
      const line = stdout.split('\n')[0]!;
      if (stdout.includes('\n')) resolve((JSON.parse(line) as { port: number }).port);
    });
    child.on('exit', (code) => reject(new Error(`http_server.py exited with ${code}: ${stderr}`)));
  });
  return { url: `http://127.0.0.1:${port}`, child };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs bin/modelgate.js with `args` (no MODELGATE_URL or MODELGATE_KEY of the caller's), to its end. */
export function runCli(
  args: string[],
  { env = {}, cwd }: { env?: Record<string, string>; cwd?: string } = {},
) {
  return new Promise<CliResult>((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd,
      env: { ...process.env, MODELGATE_URL: '', MODELGATE_KEY: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
