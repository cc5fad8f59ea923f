import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WriteBatcher } from '../src/store/write-batcher.ts';

describe('WriteBatcher', () => {
  it('writes the items of one turn of the event loop together, and those that arrive meanwhile after them', async () => {
    const batches: number[][] = [];
    const batcher = new WriteBatcher<number, number>(async (items) => {
      batches.push(items);
      await new Promise((resolve) => setTimeout(resolve, 10));
      return items.map((item) => item * 10);
    });
    const first = [1, 2].map((item) => batcher.write(item));
    // Later in the same turn, after a few promise hops, as outcomes of one batch arrive.
    await Promise.resolve();
    await Promise.resolve();
    const second = batcher.write(3);
    // During the write of the first batch: these wait for it, then go together.
    await new Promise((resolve) => setTimeout(resolve, 5));
    const rest = [4, 5].map((item) => batcher.write(item));
    const outputs = await Promise.all([...first, second, ...rest]);
    assert.deepEqual(outputs, [10, 20, 30, 40, 50]);
    assert.deepEqual(batches, [
      [1, 2, 3],
      [4, 5],
    ]);
  });

  it('writes a lone item on its own at once', async () => {
    const batches: number[][] = [];
    const batcher = new WriteBatcher<number, number>(async (items) => {
      batches.push(items);
      return items;
    });
    assert.equal(await batcher.write(7), 7);
    assert.equal(await batcher.write(8), 8);
    assert.deepEqual(batches, [[7], [8]]);
  });

  it('splits a backlog into batches of at most maxItems', async () => {
    const sizes: number[] = [];
    const batcher = new WriteBatcher<number, number>(
      async (items) => {
        sizes.push(items.length);
        return items;
      },
      { maxItems: 3 },
    );
    await Promise.all(Array.from({ length: 8 }, (_, i) => batcher.write(i)));
    assert.deepEqual(sizes, [3, 3, 2]);
  });

  it('keeps batches within maxWeight; an item heavier than that goes alone', async () => {
    const batches: number[][] = [];
    const batcher = new WriteBatcher<number, number>(
      async (items) => {
        batches.push(items);
        return items;
      },
      { maxWeight: 10, weigh: (item) => item },
    );
    await Promise.all([1, 4, 5, 2, 30, 3].map((item) => batcher.write(item)));
    assert.deepEqual(batches, [[1, 4, 5], [2], [30], [3]]);
  });

  it('fails only the item that fails: a failed batch is written again item by item', async () => {
    const batcher = new WriteBatcher<number, string>(async (items) => {
      if (items.includes(13)) throw new Error('13 is refused');
      return items.map(String);
    });
    const results = await Promise.allSettled([1, 13, 2].map((item) => batcher.write(item)));
    assert.deepEqual(
      results.map((result) =>
        result.status === 'fulfilled' ? result.value : (result.reason as Error).message,
      ),
      ['1', '13 is refused', '2'],
    );
    // And it keeps working afterwards.
    assert.equal(await batcher.write(5), '5');
  });
});
