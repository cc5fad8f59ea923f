// A batch's last step, once none of its parts is left to run: its output and its row errors are joined
// from the parts' objects into one object each (a CSV header, then the parts' rows in order), the batch
// records them and has finished, and the parts' objects (their input rows too) are removed after the grace
// period. The worker that finished the last part does it, a cancel does it, and housekeeping does it for a
// batch whose last worker died first; one at a time, under a lease.
import type { ArtifactStore } from '../artifacts/store.ts';
import { storeContent } from '../artifacts/store.ts';
import { scheduleArtifactRemovals } from '../store/artifacts.ts';
import { claimDoneBatch, finishBatch, selectBatchParts } from '../store/batches.ts';
import type { Db } from '../store/db.ts';
import { formatRows } from './part.ts';
import { outputColumns, type BatchPlan } from './plan.ts';

/** How long a join may take before another worker may try it again (after a failure, say). */
const FINISH_LEASE_SECONDS = 15 * 60;

/** Finishes batch `id` if none of its parts is left to run and no one else is at it; true when this call did. */
export async function finishBatchIfDone(
  deps: { db: Db; artifacts: ArtifactStore },
  id: string,
): Promise<boolean> {
  const { db, artifacts } = deps;
  const batch = await claimDoneBatch(db, id, FINISH_LEASE_SECONDS);
  if (!batch) return false;
  const plan = batch.plan as BatchPlan;
  const parts = await selectBatchParts(db, id);
  // A part that failed for good, or was canceled, has no rows to give.
  const results = parts.flatMap((part) => (part.result ? [part.result] : []));
  // A part whose rows all failed names no prediction columns; the first that ran one does.
  const predictionColumns = results.find((result) => result.predictionColumns.length > 0)?.predictionColumns;
  const join = async function* (header: string[], objects: string[]) {
    if (plan.outputFormat === 'csv') yield formatRows('csv', [], [header]);
    for (const sha256 of objects) yield* await artifacts.read(sha256);
  };
  const files = {
    output: await storeContent(
      artifacts,
      join(
        outputColumns(plan, predictionColumns ?? []),
        results.map((result) => result.output),
      ),
    ),
    errors: await storeContent(
      artifacts,
      join(
        ['row', 'error'],
        results.flatMap((result) => (result.errors === null ? [] : [result.errors])),
      ),
    ),
  };
  // One transaction: whoever sees the batch finished finds its parts' objects scheduled for removal.
  return db.transaction(async (tx) => {
    if (!(await finishBatch(tx, id, files))) return false;
    await scheduleArtifactRemovals(
      tx,
      parts.flatMap((part) => [part.input, part.result?.output, part.result?.errors]),
    );
    return true;
  });
}
