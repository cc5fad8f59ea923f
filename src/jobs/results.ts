// Where a job's result lives: inline in its row while small, in the artifact store (by content
// address) once larger than the inline limit, so big results do not bloat the database (or when it holds
// text jsonb cannot).
import { text } from 'node:stream/consumers';
import { storeContent, type ArtifactStore } from '../artifacts/store.ts';
import type { JobOutcome, JobRecord } from '../store/jobs.ts';
import { isStorableJson } from '../text.ts';

export async function storeResult(
  artifacts: ArtifactStore,
  result: unknown,
  inlineLimitBytes: number,
): Promise<JobOutcome & { status: 'succeeded' }> {
  const json = JSON.stringify(result);
  const bytes = Buffer.from(json);
  // jsonb holds no NUL and no lone surrogate (a model's string output may have them); the store holds bytes.
  if (bytes.length <= inlineLimitBytes && isStorableJson(json)) return { status: 'succeeded', result };
  return { status: 'succeeded', resultSha256: await storeContent(artifacts, bytes) };
}

export async function readResult(artifacts: ArtifactStore, job: JobRecord): Promise<unknown> {
  if (job.resultSha256 === null) return job.result;
  return JSON.parse(await text(await artifacts.read(job.resultSha256))) as unknown;
}
