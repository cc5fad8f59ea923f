// The command runtime: a team's own program as long-lived subprocesses speaking JSON Lines over stdin and
// stdout (docs/runtimes.md). A version runs `processes` copies, each with up to `inFlight` requests sent
// ahead, each supervised (supervisor.ts): a process that exits, or does not answer a request within
// `requestTimeoutMs`, is killed and started again after a backoff, and what it held fails as
// `runtime_unavailable` (retryable). What a program writes to stderr, and any stray stdout line, goes to
// the log with the model version's key.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { z } from 'zod';
import { unpackArchive, type UnpackLimits } from '../artifacts/unpack.ts';
import { ModelgateError } from '../errors.ts';
import { retryDelayMs } from '../jobs/backoff.ts';
import { inferLine, LineSplitter, outputsOf, parseProgramLine, signatureOf } from './command-protocol.ts';
import type { InspectedModel, ModelRunner, RunnableVersion, Runtime, RunnerHealth } from './runtime.ts';
import { hasFreeBatchDimension, type ModelSignature } from './signature.ts';
import { leastQueued, Supervisor, type ChildEvents } from './supervisor.ts';
import { batchRows, type NamedTensors } from './tensor.ts';

export interface CommandSpec {
  /** The program and its arguments, e.g. ["python3", "predict.py"]. */
  command: string[];
  /** Environment variables over a minimal one (PATH, HOME, LANG). */
  env: Record<string, string>;
  /** Copies of the program serving the version. */
  processes: number;
  /** Requests sent to one copy before it has answered the earlier ones. */
  inFlight: number;
  /** How long a copy may take to write `ready`. */
  setupTimeoutMs: number;
  /** How long a copy may take to answer one request before it counts as hung and is restarted. */
  requestTimeoutMs: number;
  /** The signature declared by the deployment; the program's own, if it reports one, must equal it. */
  signature: ModelSignature | undefined;
}

/** Lines of a program's stderr kept to explain a failed start. */
const STDERR_TAIL_LINES = 20;
/** A process that stopped is started again after this, doubled per failure in a row, up to the cap. */
const RESTART_BASE_MS = 200;
const RESTART_MAX_MS = 10_000;
/** How long a program may take to exit after its stdin closes, and then after SIGTERM. */
const EXIT_GRACE_MS = 5000;

type Answer = { outputs: unknown } | { error: ModelgateError };

const unavailable = (message: string) => new ModelgateError('runtime_unavailable', message);

/** The environment a program gets: a minimal one (nothing of modelgate's own, such as its keys) and its own. */
function programEnv(own: Record<string, string>): NodeJS.ProcessEnv {
  const inherited = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR'];
  return {
    ...Object.fromEntries(
      inherited.flatMap((name) => (process.env[name] ? [[name, process.env[name]]] : [])),
    ),
    PYTHONUNBUFFERED: '1',
    PYTHONPATH: PYTHON_HELPER_DIR,
    ...own,
  };
}

/** The one-file Python helper shipped in the package (`import modelgate_runtime`), on every program's PYTHONPATH. */
const PYTHON_HELPER_DIR = fileURLToPath(new URL('../../python/', import.meta.url));

/** One copy of the program: started, told requests, its answers and its end reported to its supervisor. */
class ProgramCopy {
  readonly started: Promise<ModelSignature | undefined>;
  private readonly child: ChildProcess;
  private readonly stderrTail: string[] = [];
  private readonly deadlines = new Map<number, NodeJS.Timeout>();
  private becameReady = false;
  private asked = false;
  /** It broke the protocol and is being killed: nothing more is read from it or sent to it. */
  private broken = false;

  constructor(
    private readonly spec: CommandSpec,
    cwd: string,
    private readonly events: ChildEvents<Answer>,
    private readonly logger: Logger,
  ) {
    const [program, ...args] = spec.command;
    this.child = spawn(program!, args, {
      cwd,
      env: programEnv(spec.env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let announceReady!: (signature: ModelSignature | undefined) => void;
    let failStart!: (error: Error) => void;
    this.started = new Promise((resolve, reject) => {
      announceReady = resolve;
      failStart = reject;
    });
    this.started.catch(() => undefined);
    const setupTimer = setTimeout(() => {
      failStart(this.startFailure(`did not write ready within ${spec.setupTimeoutMs} ms`));
      this.child.kill('SIGKILL');
    }, spec.setupTimeoutMs);

    const lines = new LineSplitter();
    this.child.stdout!.on('data', (chunk: Buffer) => {
      if (this.broken) return;
      let complete: string[];
      try {
        complete = lines.push(chunk);
      } catch (error) {
        this.broken = true;
        this.events.failed(error as Error);
        this.child.kill('SIGKILL');
        return;
      }
      for (const line of complete) this.onLine(line, announceReady, failStart, setupTimer);
    });
    const stderr = new LineSplitter();
    this.child.stderr!.on('data', (chunk: Buffer) => {
      let complete: string[];
      try {
        complete = stderr.push(chunk);
      } catch {
        return; // A log line past the limit is dropped, not a reason to stop.
      }
      for (const line of complete) {
        this.stderrTail.push(line);
        if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
        this.logger.info({ stderr: line }, 'model program');
      }
    });
    // A write after the program exited (EPIPE) is reported by its exit, not as a crash of modelgate.
    this.child.stdin!.on('error', () => {});
    this.child.on('error', (error) => {
      clearTimeout(setupTimer);
      failStart(this.startFailure(`could not be started: ${error.message}`));
    });
    this.child.on('exit', (code, signal) => {
      clearTimeout(setupTimer);
      for (const timer of this.deadlines.values()) clearTimeout(timer);
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      failStart(this.startFailure(how));
      this.events.exited(unavailable(`the model's program ${how}; it is being restarted`));
    });
  }

  private onLine(
    line: string,
    announceReady: (signature: ModelSignature | undefined) => void,
    failStart: (error: Error) => void,
    setupTimer: NodeJS.Timeout,
  ): void {
    let message;
    try {
      message = parseProgramLine(line);
    } catch (error) {
      clearTimeout(setupTimer);
      failStart(error as Error);
      this.child.kill('SIGKILL');
      return;
    }
    if (!message)
      return void this.logger.warn({ stdout: line.slice(0, 1000) }, 'model program wrote a stray line');
    if (message.type === 'ready') {
      if (this.becameReady) return;
      this.becameReady = true;
      clearTimeout(setupTimer);
      announceReady(message.signature);
      this.events.started();
      return;
    }
    const id = Number(message.id);
    const timer = this.deadlines.get(id);
    if (timer === undefined)
      return void this.logger.warn({ id: message.id }, 'model program answered an unknown id');
    clearTimeout(timer);
    this.deadlines.delete(id);
    if (message.type === 'result') return this.events.answer(id, { outputs: message.outputs });
    const code = message.code === 'invalid_input' ? 'invalid_input' : 'inference_failed';
    this.events.answer(id, { error: new ModelgateError(code, message.message) });
  }

  private startFailure(how: string): ModelgateError {
    const tail = this.stderrTail.join('\n');
    return new ModelgateError(
      'invalid_model',
      `the program ${how}${tail ? `; its stderr ended with:\n${tail}` : ''}`,
      {
        details: { stderr_tail: tail },
      },
    );
  }

  /**
   * Sends a request once the program is ready (nothing goes before ready); a hang past the deadline, counted
   * from the write (setup has its own), kills it.
   */
  send(id: number, inputs: NamedTensors): void {
    let line: string;
    try {
      line = inferLine(String(id), inputs);
    } catch (error) {
      return this.events.answer(id, { error: error as ModelgateError });
    }
    void this.started.then(
      () => {
        if (this.broken) {
          return this.events.answer(id, { error: unavailable("the model's program is being restarted") });
        }
        this.deadlines.set(
          id,
          setTimeout(() => {
            this.logger.warn({ id }, 'model program did not answer in time; restarting it');
            this.broken = true;
            this.child.kill('SIGKILL');
          }, this.spec.requestTimeoutMs),
        );
        this.child.stdin!.write(line);
      },
      () => undefined,
    );
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Closes its stdin, the protocol's way to ask it to end; SIGTERM if it does not. */
  end(): void {
    if (this.asked) return;
    this.asked = true;
    this.child.stdin!.end();
    setTimeout(() => this.child.kill('SIGTERM'), EXIT_GRACE_MS).unref();
  }

  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }
}

/** A model version served by copies of its program. */
export class CommandRunner implements ModelRunner {
  ready = false;
  readonly concurrency: number;
  private copies: Supervisor<NamedTensors, Answer>[] | undefined;
  /** What each copy is doing, for health(). */
  private statuses: CopyStatus[] = [];
  private loading: Promise<void> | undefined;
  private signature: ModelSignature | undefined;

  constructor(
    private readonly spec: CommandSpec,
    /** The unpacked deployment, the programs' working directory (made ready on first need). */
    private readonly workingDir: () => Promise<string>,
    private readonly logger: Logger,
  ) {
    this.concurrency = spec.processes * spec.inFlight;
    this.signature = spec.signature;
  }

  /** The signature the program reported (or the deployment declared), once loaded. */
  get reportedSignature(): ModelSignature | undefined {
    return this.signature;
  }

  /** Starts every copy and waits for each to be ready; a copy that never is fails the load (and stops all). */
  load(): Promise<void> {
    this.loading ??= this.start().catch(async (error: unknown) => {
      this.loading = undefined;
      await this.close();
      throw error;
    });
    return this.loading;
  }

  private async start(): Promise<void> {
    const cwd = await this.workingDir();
    const firstStarts: Promise<ModelSignature | undefined>[] = [];
    this.statuses = [];
    this.copies = Array.from({ length: this.spec.processes }, (_, index) => {
      let first = true;
      const status: CopyStatus = { pid: null, state: 'starting', restarts: 0 };
      this.statuses.push(status);
      return new Supervisor<NamedTensors, Answer>(
        (events) => {
          const exited = (error: Error) => {
            Object.assign(status, { pid: null, state: 'restarting' });
            events.exited(error);
          };
          const logger = this.logger.child({ copy: index });
          const copy = new ProgramCopy(this.spec, cwd, { ...events, exited }, logger);
          if (first) firstStarts.push(copy.started);
          else status.restarts++;
          first = false;
          void copy.started.then(
            () => Object.assign(status, { pid: copy.pid ?? null, state: 'ready' }),
            () => undefined,
          );
          return copy;
        },
        {
          restartDelayMs: (failures) => retryDelayMs(RESTART_BASE_MS, failures, RESTART_MAX_MS),
          closedError: () => unavailable("the model's program was stopped before it started again"),
        },
      );
    });
    const signatures = await Promise.all(firstStarts);
    const reported = signatures.find((signature) => signature !== undefined);
    if (this.spec.signature && reported && JSON.stringify(reported) !== JSON.stringify(this.spec.signature)) {
      throw new ModelgateError(
        'invalid_model',
        'the signature the program reports differs from the one declared',
        {
          details: { declared: this.spec.signature, reported },
        },
      );
    }
    this.signature = this.spec.signature ?? reported;
    if (!this.signature) {
      throw new ModelgateError('invalid_model', 'neither the deployment nor the program gives a signature');
    }
    this.ready = true;
  }

  health(): RunnerHealth {
    const processes = this.statuses.map((status) => ({ ...status }));
    if (!this.copies) return { state: this.loading ? 'loading' : 'not_loaded', processes };
    const serving = this.ready && processes.some((process) => process.state === 'ready');
    return { state: this.ready ? (serving ? 'ready' : 'unavailable') : 'loading', processes };
  }

  async infer(inputs: NamedTensors): Promise<NamedTensors> {
    await this.load();
    const answer = await leastQueued(this.copies!).request(inputs);
    if ('error' in answer) throw answer.error;
    const signature = this.signature!;
    const rows = hasFreeBatchDimension(signature) ? batchRows(Object.values(inputs)[0]!) : undefined;
    return outputsOf(answer.outputs, signature.outputs, rows);
  }

  async close(): Promise<void> {
    this.ready = false;
    const copies = this.copies ?? [];
    this.copies = undefined;
    this.statuses = [];
    this.loading = undefined;
    await Promise.all(copies.map((copy) => copy.close(2 * EXIT_GRACE_MS)));
  }
}

/** One copy of a version's program as health() shows it. */
interface CopyStatus {
  pid: number | null;
  state: 'starting' | 'ready' | 'restarting';
  /** Times it was started again after it exited or hung. */
  restarts: number;
}

/** A deployment's manifest: `modelgate.json` at the root of its archive. */
const manifestSchema = z
  .object({
    command: z.array(z.string().min(1)).min(1),
    env: z.record(z.string(), z.string()).default({}),
    processes: z.number().int().min(1).max(64).default(1),
    inFlight: z.number().int().min(1).max(1024).default(4),
    setupTimeoutMs: z.number().int().min(100).default(60_000),
    requestTimeoutMs: z.number().int().min(100).default(60_000),
    signature: z.unknown().optional(),
  })
  .strict();

const MANIFEST_FILE = 'modelgate.json';

export interface CommandRuntimeOptions {
  /** Where deployments are unpacked, once per process, by content address. */
  unpackDir: string;
  /** What one deployment may unpack to. */
  limits: UnpackLimits;
  logger: Logger;
}

/** The `command` runtime: deployments are archives of a program, its weights and its manifest. */
export class CommandRuntime implements Runtime {
  readonly name = 'command';
  readonly platform = 'modelgate_command';

  constructor(private readonly options: CommandRuntimeOptions) {}

  /**
   * Unpacks the archive, reads its manifest (with the upload's `manifest` fields over it), and starts the
   * program once: it must become ready (its signature, declared or reported, is the version's), or the
   * deploy fails with its stderr's tail.
   */
  async inspect(artifactPath: string, manifest?: Record<string, unknown>): Promise<InspectedModel> {
    await mkdir(this.options.unpackDir, { recursive: true });
    const scratch = await mkdtemp(join(this.options.unpackDir, 'inspect-'));
    try {
      const tree = join(scratch, 'tree');
      await unpackArchive(artifactPath, tree, this.options.limits);
      const spec = specOf({ ...(await readManifest(tree, manifest !== undefined)), ...manifest });
      const runner = new CommandRunner({ ...spec, processes: 1 }, async () => tree, this.options.logger);
      try {
        await runner.load();
      } finally {
        await runner.close();
      }
      const signature = runner.reportedSignature!;
      return { signature, settings: { ...spec, signature } };
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }

  open(version: RunnableVersion): ModelRunner {
    const spec = specOf(version.settings);
    const target = join(this.options.unpackDir, version.artifactSha256);
    return new CommandRunner(
      spec,
      async () => {
        const unpacked = await stat(target).then(
          () => true,
          () => false,
        );
        if (!unpacked) await unpackArchive(await version.artifactPath(), target, this.options.limits);
        return target;
      },
      this.options.logger.child({ version: version.key }),
    );
  }

  async close(): Promise<void> {}
}

/** The manifest of an unpacked deployment as written; `optional` when the upload gives one (else it must be there). */
async function readManifest(tree: string, optional: boolean): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(join(tree, MANIFEST_FILE), 'utf8');
  } catch {
    if (optional) return {};
    throw new ModelgateError(
      'invalid_model',
      `the archive has no ${MANIFEST_FILE} at its root saying how to run the program (or send it as the ` +
        'form field "manifest")',
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ModelgateError('invalid_model', `${MANIFEST_FILE} is not JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ModelgateError('invalid_model', `${MANIFEST_FILE} must hold a JSON object`);
  }
  return value as Record<string, unknown>;
}

function specOf(value: unknown): CommandSpec {
  const parsed = manifestSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ModelgateError(
      'invalid_model',
      `${MANIFEST_FILE}: ${issue?.path.join('.') || 'the manifest'}: ${issue?.message}`,
    );
  }
  const { signature, ...spec } = parsed.data;
  return { ...spec, signature: signature === undefined ? undefined : signatureOf(signature) };
}
