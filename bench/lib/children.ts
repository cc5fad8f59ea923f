// Server processes of a benchmark run: started, awaited until they listen, and stopped by pid. Every child
// still running is killed when the run ends, fails or is interrupted (SIGINT/SIGTERM), so none outlives it.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface ReadyLine {
  /** Base URL the server answers on, e.g. http://127.0.0.1:41234 */
  url: string;
  /** Whatever else the server announced (thread counts, settings). */
  info?: Record<string, unknown>;
}

export interface StartServerOptions {
  /** Name used in errors, e.g. "modelgate-batching". */
  label: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Recognises the line (stdout or stderr) that says the server listens, and reads its URL from it. */
  parseReadyLine(line: string): ReadyLine | undefined;
  /** Give up if the server has not announced itself by then. Default 120 000 ms. */
  startTimeoutMs?: number;
}

export interface ServerProcess extends ReadyLine {
  label: string;
  pid: number;
  /** The last lines the server wrote, for error messages. */
  outputTail(): string;
  stop(): Promise<void>;
}

const OUTPUT_TAIL_LINES = 40;
const STOP_GRACE_MS = 10_000;
const running = new Set<ChildProcess>();

const isRunning = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

export async function startServer(options: StartServerOptions): Promise<ServerProcess> {
  const child = spawn(options.command, options.args, {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) {
    await new Promise((resolve) => child.once('error', resolve));
    throw new Error(`${options.label}: could not start ${options.command}`);
  }
  const pid = child.pid;
  running.add(child);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      running.delete(child);
      resolve();
    }),
  );

  const tail: string[] = [];
  const outputTail = () => tail.join('\n');
  let announce: (ready: ReadyLine) => void = () => {};
  const announced = new Promise<ReadyLine>((resolve) => (announce = resolve));
  // Both pipes are read for the whole life of the child: a full pipe would block its writes.
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on('line', (line) => {
      tail.push(line);
      if (tail.length > OUTPUT_TAIL_LINES) tail.shift();
      const ready = options.parseReadyLine(line);
      if (ready) announce(ready);
    });
  }

  const stop = async () => {
    if (!isRunning(child)) return;
    process.kill(pid, 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, STOP_GRACE_MS)))]);
    clearTimeout(timer);
    if (isRunning(child)) {
      process.kill(pid, 'SIGKILL');
      await exited;
    }
  };

  const startTimeoutMs = options.startTimeoutMs ?? 120_000;
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    announced,
    exited.then(() => 'exited' as const),
    new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), startTimeoutMs))),
  ]);
  clearTimeout(timer);
  if (outcome === 'exited' || outcome === 'timeout') {
    await stop();
    const why =
      outcome === 'exited' ? `exited with code ${child.exitCode}` : `not ready in ${startTimeoutMs} ms`;
    throw new Error(`${options.label} (pid ${pid}) ${why}; its last output:\n${outputTail()}`);
  }
  return { ...outcome, label: options.label, pid, outputTail, stop };
}

/** Stops every server still running (each by its pid). */
export async function stopAllServers(): Promise<void> {
  await Promise.all(
    [...running].map(async (child) => {
      if (!isRunning(child) || child.pid === undefined) return;
      process.kill(child.pid, 'SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 2000));
      if (isRunning(child)) process.kill(child.pid, 'SIGKILL');
    }),
  );
}

let interrupted = false;

/** True once SIGINT/SIGTERM arrived: failures after that are the servers going away, not findings. */
export const wasInterrupted = () => interrupted;

/** Kills the children on interrupt and, as a last resort, when this process exits for any reason. */
export function installCleanup(): void {
  const interrupt = (signal: NodeJS.Signals) => {
    interrupted = true;
    process.stderr.write(`\n${signal}: stopping benchmark servers\n`);
    void stopAllServers().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  process.once('exit', () => {
    for (const child of running)
      if (isRunning(child) && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  });
}
