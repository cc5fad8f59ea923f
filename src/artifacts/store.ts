// Where model files, large job results and batch files live, addressed by the SHA-256 of their content:
// a local folder (local.ts) or an S3-compatible bucket (s3.ts), chosen by open.ts.
import { Readable } from 'node:stream';

/** An upload written to a local temporary file, hashed, and not yet visible in the store. */
export interface StagedArtifact {
  sha256: string;
  sizeBytes: number;
  /** Local file with the staged content (for inspection before commit). */
  path: string;
  /** Makes the content part of the store (idempotent: equal content is stored once). */
  commit(): Promise<void>;
  /** Deletes the staged file; nothing is kept. */
  discard(): Promise<void>;
}

export interface ArtifactStore {
  /** Streams `source` to a staging file, hashing it; fails with `payload_too_large` beyond `maxBytes`. */
  stage(source: Readable, maxBytes: number): Promise<StagedArtifact>;
  /** Streams the artifact's content; fails with `not_found` when it is not in the store. */
  read(sha256: string): Promise<Readable>;
  /**
   * A local file path holding the artifact (downloaded to a cache first, for remote stores); fails with
   * `not_found` when it is not in the store.
   */
  localPath(sha256: string): Promise<string>;
  /** Deletes the artifact (and any local copy); nothing happens when it is not there. */
  remove(sha256: string): Promise<void>;
  /** Releases connections; the store is not used afterwards. */
  close(): Promise<void>;
}

/** Stores content that is all in hand, or a stream of it with no size limit; returns its address. */
export async function storeContent(
  artifacts: ArtifactStore,
  content: Buffer | string | AsyncIterable<string | Buffer>,
): Promise<string> {
  const whole = typeof content === 'string' ? Buffer.from(content) : content;
  const staged = Buffer.isBuffer(whole)
    ? await artifacts.stage(Readable.from([whole]), whole.length)
    : await artifacts.stage(Readable.from(whole), Number.MAX_SAFE_INTEGER);
  try {
    await staged.commit();
  } catch (error) {
    await staged.discard();
    throw error;
  }
  return staged.sha256;
}
