// One child that answers requests by id, for a runtime that runs models outside the main thread (ONNX
// Runtime's inference threads, a team's own program): the requests it holds, failed when it dies, a
// replacement started when it ends unasked (after a backoff, when the runtime gives one; requests sent
// meanwhile wait for it), and a close that asks it to end and forces it after a grace. The runtime says
// how to start a child, send to it, ask it to end and make it end.

/** A running child, as the runtime drives it. */
export interface Child<Request> {
  send(id: number, request: Request): void;
  /** Asks it to finish what it holds and end by itself. */
  end(): void;
  /** Ends it now. */
  kill(): Promise<void>;
}

/** What a child tells its supervisor. */
export interface ChildEvents<Response> {
  answer(id: number, response: Response): void;
  /** Something failed that the requests it holds cannot survive (they fail with `error`); it may still end. */
  failed(error: Error): void;
  /** It has ended: what it held fails with `error`, and unless it was asked to, another is started. */
  exited(error: Error): void;
  /** It is serving: the next replacement after it ends starts without the backoff of failures in a row. */
  started(): void;
}

export interface SupervisorOptions {
  /** How long to wait before the `failures`-th replacement in a row (1, 2, …) is started. Default: at once. */
  restartDelayMs?(failures: number): number;
  /** What requests waiting for a replacement fail with when the supervisor is closed first. */
  closedError?(): Error;
}

/** The child of these with the fewest requests waiting: where the next request goes. */
export function leastQueued<S extends { readonly queued: number }>(supervisors: readonly S[]): S {
  return supervisors.reduce((best, next) => (next.queued < best.queued ? next : best));
}

interface Pending<Response> {
  resolve(response: Response): void;
  reject(error: Error): void;
}

export class Supervisor<Request, Response> {
  /** The running child; undefined while a replacement waits out its backoff. */
  private child: Child<Request> | undefined;
  /** Settles when the current child has ended. */
  private ended: Promise<void> = Promise.resolve();
  private readonly pending = new Map<number, Pending<Response>>();
  /** Requests sent while no child runs, sent to the next one. */
  private waiting: [number, Request][] = [];
  private restartTimer: NodeJS.Timeout | undefined;
  private failuresInARow = 0;
  private nextId = 1;
  /** Counts children started, so that only the current one's end is acted on. */
  private generation = 0;
  private closing = false;

  constructor(
    private readonly start: (events: ChildEvents<Response>) => Child<Request>,
    private readonly options: SupervisorOptions = {},
  ) {
    this.child = this.spawn();
  }

  /** Requests sent and not answered yet. */
  get queued(): number {
    return this.pending.size;
  }

  request(request: Request): Promise<Response> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.child) this.child.send(id, request);
      else this.waiting.push([id, request]);
    });
  }

  /** Asks the child to end once what it holds is done; forces it when it has not ended after `graceMs`. */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    clearTimeout(this.restartTimer);
    const { child, ended } = this;
    if (!child) {
      this.failAll(this.options.closedError?.() ?? new Error('closed before its child started'));
      return;
    }
    child.end();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), graceMs);
    });
    if (await Promise.race([ended.then(() => false), timedOut])) await child.kill();
    clearTimeout(timer);
  }

  private spawn(): Child<Request> {
    let markEnded!: () => void;
    this.ended = new Promise((resolve) => (markEnded = resolve));
    const generation = ++this.generation;
    return this.start({
      answer: (id, response) => {
        const pending = this.pending.get(id);
        this.pending.delete(id);
        pending?.resolve(response);
      },
      failed: (error) => this.failAll(error),
      started: () => (this.failuresInARow = 0),
      exited: (error) => {
        // Only the current child's end counts (a late event of an earlier one changes nothing).
        if (generation !== this.generation) return;
        this.failAll(error);
        markEnded();
        this.child = undefined;
        // A child that dies (out of memory, a crashing model) is replaced; it reloads what it needs.
        if (!this.closing) this.scheduleRestart();
      },
    });
  }

  private scheduleRestart(): void {
    const delayMs = this.options.restartDelayMs?.(++this.failuresInARow) ?? 0;
    const restart = () => {
      this.child = this.spawn();
      for (const [id, request] of this.waiting.splice(0)) this.child.send(id, request);
    };
    if (delayMs <= 0) return restart();
    this.restartTimer = setTimeout(restart, delayMs);
  }

  private failAll(error: Error): void {
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
    this.waiting = [];
  }
}
