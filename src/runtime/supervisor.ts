// One child that answers requests by id, for a runtime that runs models outside the main thread (ONNX
// Runtime's inference threads; a team's own program next): the requests it holds, failed when it dies, a
// replacement started when it ends unasked, and a close that asks it to end and forces it after a grace.
// The runtime says how to start a child, send to it, ask it to end and make it end.

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
  private child: Child<Request>;
  /** Settles when the current child has ended. */
  private ended!: Promise<void>;
  private readonly pending = new Map<number, Pending<Response>>();
  private nextId = 1;
  private closing = false;

  constructor(private readonly start: (events: ChildEvents<Response>) => Child<Request>) {
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
      this.child.send(id, request);
    });
  }

  /** Asks the child to end once what it holds is done; forces it when it has not ended after `graceMs`. */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    const { child, ended } = this;
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
    return this.start({
      answer: (id, response) => {
        const pending = this.pending.get(id);
        this.pending.delete(id);
        pending?.resolve(response);
      },
      failed: (error) => this.failAll(error),
      exited: (error) => {
        this.failAll(error);
        markEnded();
        // A child that dies (out of memory, a crashing model) is replaced; it reloads what it needs.
        if (!this.closing) this.child = this.spawn();
      },
    });
  }

  private failAll(error: Error): void {
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }
}
