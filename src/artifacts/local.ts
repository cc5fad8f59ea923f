// The artifact store on a local folder: `<root>/sha256/<hash>`, staged under `<root>/tmp/`.
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { access, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ModelgateError } from '../errors.ts';
import type { ArtifactStore, StagedArtifact } from './store.ts';

export async function openLocalArtifactStore(root: string): Promise<ArtifactStore> {
  const blobsDir = join(root, 'sha256');
  const stagingDir = join(root, 'tmp');
  await mkdir(blobsDir, { recursive: true });
  await mkdir(stagingDir, { recursive: true });
  const blobPath = (sha256: string) => {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error(`not a sha256 digest: ${sha256}`);
    return join(blobsDir, sha256);
  };

  return {
    async stage(source: Readable, maxBytes: number): Promise<StagedArtifact> {
      const path = join(stagingDir, randomUUID());
      const hash = createHash('sha256');
      let sizeBytes = 0;
      const meter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          sizeBytes += chunk.length;
          if (sizeBytes > maxBytes) {
            callback(new ModelgateError('payload_too_large', `the upload exceeds ${maxBytes} bytes`));
            return;
          }
          hash.update(chunk);
          callback(null, chunk);
        },
      });
      const file = createWriteStream(path);
      try {
        await pipeline(source, meter, file);
      } catch (error) {
        // The file may still be opening when the pipeline fails: removed before it exists, it would stay.
        if (!file.closed) await new Promise<void>((resolve) => file.once('close', () => resolve()));
        await rm(path, { force: true });
        throw error;
      }
      const sha256 = hash.digest('hex');
      return {
        sha256,
        sizeBytes,
        path,
        commit: () => rename(path, blobPath(sha256)),
        discard: () => rm(path, { force: true }),
      };
    },
    async localPath(sha256: string): Promise<string> {
      const path = blobPath(sha256);
      await access(path).catch((error: unknown) => {
        throw new ModelgateError('not_found', `artifact ${sha256} is missing from the store`, {
          cause: error,
        });
      });
      return path;
    },
    async remove(sha256: string): Promise<void> {
      await rm(blobPath(sha256), { force: true });
    },
  };
}
