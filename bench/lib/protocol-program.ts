// A program that speaks the command runtime's protocol (docs/runtimes.md: JSON Lines over stdin and
// stdout), run and spoken to by the benchmark itself, with no modelgate in between: started with the
// environment modelgate gives its programs, awaited until it writes `ready`, then sent `infer` lines whose
// answers are matched by id. Stopped as modelgate stops it (stdin closed), and killed by pid if this
// process exits first.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface ProgramAnswer {
  type: 'result' | 'error';
  id: string;
  outputs?: Record<string, { datatype: string; shape: number[]; data: unknown }>;
  code?: string;
  message?: string;
}

export interface ProtocolProgram {
  pid: number;
  /** What the program's ready message said. */
  ready: Record<string, unknown>;
  /** Sends one infer request (`inputsJson`: the request's `inputs` object as JSON text) and awaits its answer. */
  infer(inputsJson: string): Promise<ProgramAnswer>;
  stderrTail(): string;
  stop(): Promise<void>;
}

export interface ProgramOptions {
  command: string;
  args: string[];
  cwd: string;
  /** The folder holding python/modelgate_runtime.py, put on PYTHONPATH as modelgate does. */
  pythonHelperDir: string;
  startTimeoutMs?: number;
}

const STDERR_TAIL_LINES = 20;
const EXIT_GRACE_MS = 5000;

/** The environment modelgate gives a program (src/runtime/command.ts programEnv): a minimal one. */
function programEnv(pythonHelperDir: string): NodeJS.ProcessEnv {
  const inherited = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR'];
  return {
    ...Object.fromEntries(
      inherited.flatMap((name) => (process.env[name] ? [[name, process.env[name]]] : [])),
    ),
    PYTHONUNBUFFERED: '1',
    PYTHONPATH: pythonHelperDir,
  };
}

export async function startProtocolProgram(options: ProgramOptions): Promise<ProtocolProgram> {
  const child = spawn(options.command, options.args, {
    cwd: options.cwd,
    env: programEnv(options.pythonHelperDir),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${options.command}`);
  const killOnExit = () => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const stderr: string[] = [];
  createInterface({ input: child.stderr }).on('line', (line) => {
    stderr.push(line);
    if (stderr.length > STDERR_TAIL_LINES) stderr.shift();
  });
  const stderrTail = () => stderr.join('\n');

  const waiting = new Map<string, (answer: ProgramAnswer) => void>();
  let announce: (ready: Record<string, unknown>) => void = () => {};
  const announced = new Promise<Record<string, unknown>>((resolve) => (announce = resolve));
  createInterface({ input: child.stdout }).on('line', (line) => {
    const message = JSON.parse(line) as Record<string, unknown>;
    if (message.type === 'ready') return announce(message);
    const resolve = waiting.get(message.id as string);
    if (!resolve) throw new Error(`answer to no request: ${line.slice(0, 200)}`);
    waiting.delete(message.id as string);
    resolve(message as unknown as ProgramAnswer);
  });
  // A program that dies leaves nothing to wait for: fail what it held.
  void exited.then(() => {
    for (const [id, resolve] of waiting) resolve({ type: 'error', id, message: 'the program exited' });
    waiting.clear();
  });

  const startTimeoutMs = options.startTimeoutMs ?? 60_000;
  let timer: NodeJS.Timeout | undefined;
  const ready = await Promise.race([
    announced,
    exited.then(() => undefined),
    new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), startTimeoutMs))),
  ]);
  clearTimeout(timer);

  let nextId = 0;
  const program: ProtocolProgram = {
    pid,
    ready: ready ?? {},
    stderrTail,
    infer(inputsJson) {
      const id = `r${nextId++}`;
      return new Promise((resolve) => {
        waiting.set(id, resolve);
        child.stdin.write(`{"type":"infer","id":"${id}","inputs":${inputsJson}}\n`);
      });
    },
    async stop() {
      process.removeListener('exit', killOnExit);
      if (child.exitCode !== null || child.signalCode !== null) return;
      // As modelgate stops a program: close its stdin, then SIGTERM, then SIGKILL.
      child.stdin.end();
      for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
        let graceTimer: NodeJS.Timeout | undefined;
        const gone = await Promise.race([
          exited.then(() => true),
          new Promise<false>((resolve) => (graceTimer = setTimeout(() => resolve(false), EXIT_GRACE_MS))),
        ]);
        clearTimeout(graceTimer);
        if (gone) return;
        child.kill(signal);
      }
      await exited;
    },
  };
  if (!ready) {
    await program.stop();
    throw new Error(
      `${options.command} ${options.args.join(' ')} did not write ready; its stderr:\n${stderrTail()}`,
    );
  }
  return program;
}

/** The python/ folder of this checkout, where modelgate_runtime.py lives. */
export const pythonHelperDirOf = (repoRoot: string) => join(repoRoot, 'python');
