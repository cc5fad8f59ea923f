// The artifact store on a local folder: `<root>/sha256/<hash>`, staged under `<root>/tmp/`.
import { access, mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { checkDigest, missingArtifact, stagedArtifact, stageFile } from './staging.ts';
import type { ArtifactStore, StagedArtifact } from './store.ts';

export async function openLocalArtifactStore(root: string): Promise<ArtifactStore> {
  const blobsDir = join(root, 'sha256');
  const stagingDir = join(root, 'tmp');
  await mkdir(blobsDir, { recursive: true });
  await mkdir(stagingDir, { recursive: true });
  const blobPath = (sha256: string) => join(blobsDir, checkDigest(sha256));

  return {
    async stage(source: Readable, maxBytes: number): Promise<StagedArtifact> {
      const file = await stageFile(source, maxBytes, stagingDir);
      // Over an equal blob, if there is one: the same name means the same bytes.
      return stagedArtifact(file, () => rename(file.path, blobPath(file.sha256)));
    },
    async read(sha256: string): Promise<Readable> {
      // Opened before the stream is made: a missing file is this call's not_found, not a stream error.
      const handle = await open(blobPath(sha256)).catch((error: unknown) => {
        throw missingArtifact(sha256, error);
      });
      return handle.createReadStream();
    },
    async localPath(sha256: string): Promise<string> {
      const path = blobPath(sha256);
      await access(path).catch((error: unknown) => {
        throw missingArtifact(sha256, error);
      });
      return path;
    },
    async remove(sha256: string): Promise<void> {
      await rm(blobPath(sha256), { force: true });
    },
    async close(): Promise<void> {},
  };
}
