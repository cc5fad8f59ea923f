// Which stored artifacts are still referenced (by a job's result, a model version, a batch's files, or an
// unfinished batch's parts: their input rows, output and errors), and the removal of those that are not,
// after a grace period (0009_artifact_removals.sql).
import type { Db, Queryable } from './db.ts';

/** How long an artifact found unreferenced stays, for a writer that stored the same content meanwhile. */
export const ARTIFACT_REMOVAL_GRACE_SECONDS = 3600;

/**
 * unreferencedArtifacts($1 hashes): those of `hashes` (nulls and repeats ignored) that nothing refers to.
 */
export async function unreferencedArtifacts(
  db: Queryable,
  hashes: readonly (string | null | undefined)[],
): Promise<string[]> {
  const candidates = [...new Set(hashes.filter((hash) => typeof hash === 'string'))];
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

/**
 * scheduleArtifactRemovals($1 hashes, $2 seconds): those of `hashes` that nothing refers to now are removed
 * once `graceSeconds` have passed, if nothing refers to them then either (takeDueArtifactRemovals).
 */
export async function scheduleArtifactRemovals(
  db: Queryable,
  hashes: readonly (string | null | undefined)[],
  graceSeconds = ARTIFACT_REMOVAL_GRACE_SECONDS,
): Promise<void> {
  const unused = await unreferencedArtifacts(db, hashes);
  if (unused.length === 0) return;
  await db.query(
    `INSERT INTO artifact_removals (sha256, due_at)
     SELECT sha, now() + make_interval(secs => $2::float8) FROM unnest($1::text[]) AS sha
     ON CONFLICT (sha256) DO UPDATE SET due_at = excluded.due_at`,
    [unused, graceSeconds],
  );
}

/**
 * takeDueArtifactRemovals($1 limit): takes up to `limit` removals that are due and returns those still
 * unreferenced, for the caller to remove from the store (the others are in use again and stay).
 */
export async function takeDueArtifactRemovals(db: Db, limit = 1000): Promise<string[]> {
  return db.transaction(async (tx) => {
    const due = await tx.query<{ sha256: string }>(
      `DELETE FROM artifact_removals WHERE sha256 IN (
         SELECT sha256 FROM artifact_removals WHERE due_at <= now() ORDER BY due_at LIMIT $1
         FOR UPDATE SKIP LOCKED)
       RETURNING sha256`,
      [limit],
    );
    return unreferencedArtifacts(
      tx,
      due.map((row) => row.sha256),
    );
  });
}
