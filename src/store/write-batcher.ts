// Group commit for hot writes (queued jobs, finished jobs): writes made in one turn of the event loop (the
// requests read together, the outcomes of one inference batch) go together, and a write that arrives
// while a batch is being written waits for it, then goes with every other write that waited, in one
// statement and one commit. An idle system writes each item at once; a busy one writes fewer, larger
// statements, which saves the database a statement, a commit and a round of notices per item.

/** Writes `items` in one statement; returns one output per item, in the same order. */
export type WriteBatch<I, O> = (items: I[]) => Promise<O[]>;

interface Pending<I, O> {
  item: I;
  resolve: (output: O) => void;
  reject: (error: unknown) => void;
}

export interface WriteBatcherLimits<I> {
  /** Most items in one statement. Default 256. */
  maxItems?: number;
  /** Most total weight (e.g. bytes of JSON) in one statement; an item heavier than this goes alone. */
  maxWeight?: number;
  weigh?: (item: I) => number;
}

export class WriteBatcher<I, O> {
  private pending: (Pending<I, O> & { weight: number })[] = [];
  private writing = false;

  constructor(
    private readonly writeBatch: WriteBatch<I, O>,
    private readonly limits: WriteBatcherLimits<I> = {},
  ) {}

  write(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ item, resolve, reject, weight: this.limits.weigh?.(item) ?? 0 });
      if (this.writing) return;
      this.writing = true;
      setImmediate(() => void this.drain());
    });
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, this.batchLength());
      try {
        const outputs = await this.writeBatch(batch.map((entry) => entry.item));
        batch.forEach((entry, i) => entry.resolve(outputs[i]!));
      } catch (error) {
        // One bad item must not fail the others: a failed batch is written again item by item.
        if (batch.length === 1) batch[0]!.reject(error);
        else await Promise.all(batch.map((entry) => this.writeAlone(entry)));
      }
    }
    this.writing = false;
  }

  /** How many of the pending items the next statement takes: at least one, within both limits. */
  private batchLength(): number {
    let weight = this.pending[0]!.weight;
    let length = 1;
    const { maxItems = 256, maxWeight = Infinity } = this.limits;
    while (length < Math.min(this.pending.length, maxItems)) {
      weight += this.pending[length]!.weight;
      if (weight > maxWeight) break;
      length++;
    }
    return length;
  }

  private async writeAlone(entry: Pending<I, O>): Promise<void> {
    try {
      const [output] = await this.writeBatch([entry.item]);
      entry.resolve(output!);
    } catch (error) {
      entry.reject(error);
    }
  }
}
