// Which stored artifacts are still referenced: by a job's result, a model version, a batch's files, or an
// unfinished batch's parts (their input rows, output and errors).
import type { Queryable } from './db.ts';

/**
 * unreferencedArtifacts($1 hashes): those of `hashes` (nulls and repeats ignored) that nothing refers to;
 * the caller removes them from the store.
 */
export async function unreferencedArtifacts(
  db: Queryable,
  hashes: readonly (string | null)[],
): Promise<string[]> {
  const candidates = [...new Set(hashes.filter((hash) => hash !== null))];
  if (candidates.length === 0) return [];
  const used = await db.query<{ sha: string }>(
    `SELECT result_sha256 AS sha FROM jobs WHERE result_sha256 = ANY($1)
     UNION SELECT artifact_sha256 FROM model_versions WHERE artifact_sha256 = ANY($1)
     UNION SELECT output_sha256 FROM batches WHERE output_sha256 = ANY($1)
     UNION SELECT errors_sha256 FROM batches WHERE errors_sha256 = ANY($1)
     UNION SELECT ref.sha FROM jobs j JOIN batches b ON b.id = j.batch_id AND b.finished_at IS NULL,
       LATERAL (VALUES (j.input->'batchPart'->>'input'), (j.result->>'output'), (j.result->>'errors')) AS ref(sha)
     WHERE ref.sha = ANY($1)`,
    [candidates],
  );
  const usedSet = new Set(used.map((row) => row.sha));
  return candidates.filter((hash) => !usedSet.has(hash));
}
