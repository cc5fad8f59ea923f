import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WriteBatcher } from '../src/store/write-batcher.ts';

describe('WriteBatcher', () => {
  it('writes an item at once when idle, and the items that arrive meanwhile together after it', async () => {
    const batches: number[][] = [];
    const batcher = new WriteBatcher<number, number>(async (items) => {
      batches.push(items);
      await new Promise((resolve) => setTimeout(resolve, 10));
      return items.map((item) => item * 10);
    });
    const outputs = await Promise.all([1, 2, 3, 4].map((item) => batcher.write(item)));
    assert.deepEqual(outputs, [10, 20, 30, 40]);
    assert.deepEqual(batches, [[1], [2, 3, 4]]);
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
    assert.deepEqual(sizes, [1, 3, 3, 1]);
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
    assert.deepEqual(batches, [[1], [4, 5], [2], [30], [3]]);
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
