// A batch's last step, once none of its parts is left to run: its output and its row errors are joined
// from the parts' objects into one object each (a CSV header, then the parts' rows in order), the batch
// records them and has finished, and the parts' objects (their input rows too) are removed. The worker
// that finished the last part does it, a cancel does it, and housekeeping does it for a batch whose last
// worker died first. Done twice at once, both store the same objects and one records them.
import type { ArtifactStore } from '../artifacts/store.ts';
import { storeContent } from '../artifacts/store.ts';
import { unreferencedArtifacts } from '../store/artifacts.ts';
import { finishBatch, selectBatchParts, selectDoneBatch } from '../store/batches.ts';
import type { Db } from '../store/db.ts';
import { formatRows } from './part.ts';
import { outputColumns, type BatchPlan } from './plan.ts';

/** Finishes batch `id` if none of its parts is left to run; true when this call finished it. */
export async function finishBatchIfDone(
  deps: { db: Db; artifacts: ArtifactStore },
  id: string,
): Promise<boolean> {
  const { db, artifacts } = deps;
  const batch = await selectDoneBatch(db, id);
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
        results.map((result) => result.errors),
      ),
    ),
  };
  if (!(await finishBatch(db, id, files))) return false;
  const partObjects = parts.flatMap((part) => [part.input, part.result?.output, part.result?.errors]);
  // The batch's own files are among those still referenced, should a part's object be the same content.
  const unused = await unreferencedArtifacts(
    db,
    partObjects.filter((sha256) => sha256 !== undefined),
  );
  for (const sha256 of unused) await artifacts.remove(sha256);
  return true;
}
