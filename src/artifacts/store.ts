// Where model files (and later batch inputs/outputs) live, addressed by the SHA-256 of their content.
// A local folder today; the interface leaves room for S3-compatible storage.
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
  /** A local file path holding the artifact (downloaded to a cache first, for remote stores). */
  localPath(sha256: string): Promise<string>;
  remove(sha256: string): Promise<void>;
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
  await staged.commit();
  return staged.sha256;
}
