// Local-file work shared by every artifact store: writing a stream to a temporary file while hashing and
// metering it, and checking the digests that name stored content.
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ModelgateError } from '../errors.ts';
import type { StagedArtifact } from './store.ts';

/** Passes bytes on, and fails with `payload_too_large` ("<what> exceeds N bytes") beyond `maxBytes`. */
export function byteLimit(maxBytes: number, what: string): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > maxBytes) {
        callback(new ModelgateError('payload_too_large', `${what} exceeds ${maxBytes} bytes`));
        return;
      }
      callback(null, chunk);
    },
  });
}

export interface StagedFile {
  /** A new file under the staging folder; the caller renames, uploads or removes it. */
  path: string;
  sha256: string;
  sizeBytes: number;
}

/**
 * Streams `source` to a new file in `stagingDir`, hashing it; fails with `payload_too_large` beyond
 * `maxBytes`. On any failure the file is removed.
 */
export async function stageFile(source: Readable, maxBytes: number, stagingDir: string): Promise<StagedFile> {
  const path = join(stagingDir, randomUUID());
  const hash = createHash('sha256');
  let sizeBytes = 0;
  const hasher = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      sizeBytes += chunk.length;
      hash.update(chunk);
      callback(null, chunk);
    },
  });
  const file = createWriteStream(path);
  try {
    await pipeline(source, byteLimit(maxBytes, 'the upload'), hasher, file);
  } catch (error) {
    // The file may still be opening when the pipeline fails: removed before it exists, it would stay.
    if (!file.closed) await new Promise<void>((resolve) => file.once('close', () => resolve()));
    await rm(path, { force: true });
    throw error;
  }
  return { path, sha256: hash.digest('hex'), sizeBytes };
}

/** A staged file as a StagedArtifact whose `commit` runs once however often it is called (again if it failed). */
export function stagedArtifact(file: StagedFile, commit: () => Promise<void>): StagedArtifact {
  let committed: Promise<void> | undefined;
  return {
    ...file,
    commit: () =>
      (committed ??= commit().catch((error: unknown) => {
        committed = undefined;
        throw error;
      })),
    discard: () => rm(file.path, { force: true }),
  };
}

/** Refuses anything but a lowercase hex SHA-256 digest, so a digest can never name a path or key elsewhere. */
export function checkDigest(sha256: string): string {
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error(`not a sha256 digest: ${sha256}`);
  return sha256;
}

export function missingArtifact(sha256: string, cause?: unknown): ModelgateError {
  return new ModelgateError('not_found', `artifact ${sha256} is missing from the store`, { cause });
}
