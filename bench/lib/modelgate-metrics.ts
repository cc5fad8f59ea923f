// What modelgate's batcher did during one benchmark cell, read from its Prometheus /metrics before and
// after the cell: how many runtime calls, how many requests each merged, and how long each took.
export interface BatchStats {
  batches: number;
  meanRequestsPerBatch: number;
  /** Wall time of one runtime call as the batcher sees it: the hop to the inference thread included. */
  meanBatchWallMs: number;
}

type Totals = Record<string, number>;

const SERIES = [
  'modelgate_batch_size_sum',
  'modelgate_batch_size_count',
  'modelgate_inference_duration_seconds_sum',
];

export async function readBatchTotals(baseUrl: string, model: string): Promise<Totals> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const totals: Totals = {};
  for (const line of text.split('\n')) {
    const match = /^(\w+)\{([^}]*)\} (\S+)$/.exec(line);
    if (match && SERIES.includes(match[1]!) && match[2]!.includes(`model="${model}"`)) {
      totals[match[1]!] = (totals[match[1]!] ?? 0) + Number(match[3]);
    }
  }
  return totals;
}

export function batchStatsBetween(before: Totals, after: Totals): BatchStats {
  const delta = (name: string) => (after[name] ?? 0) - (before[name] ?? 0);
  const batches = delta('modelgate_batch_size_count');
  return {
    batches,
    meanRequestsPerBatch: Math.round((delta('modelgate_batch_size_sum') / batches) * 100) / 100,
    meanBatchWallMs: Math.round((delta('modelgate_inference_duration_seconds_sum') / batches) * 1e6) / 1e3,
  };
}
