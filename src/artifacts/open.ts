// Opens the artifact store the configuration names: the local folder `artifactsDir` or, when
// `artifactsUrl` is set, the S3-compatible bucket it points at.
import { join } from 'node:path';
import type { Config } from '../config/config.ts';
import { openLocalArtifactStore } from './local.ts';
import type { S3ConnectionOptions } from './s3.ts';
import type { ArtifactStore } from './store.ts';

/** The S3 settings of the configuration, for every S3 client of the process; credentials from the SDK's chain. */
export function s3ConnectionOf(
  config: Pick<Config, 's3Endpoint' | 's3Region' | 's3ForcePathStyle'>,
): S3ConnectionOptions {
  return { endpoint: config.s3Endpoint, region: config.s3Region, forcePathStyle: config.s3ForcePathStyle };
}

export async function openArtifactStore(config: Config): Promise<ArtifactStore> {
  if (config.artifactsUrl === undefined) return openLocalArtifactStore(config.artifactsDir);
  // Loaded only when used: importing the AWS SDK takes ~0.2 s, which every CLI command would pay.
  const { openS3ArtifactStore } = await import('./s3.ts');
  return openS3ArtifactStore({
    url: config.artifactsUrl,
    cacheDir: join(config.dataDir, 'artifact-cache'),
    ...s3ConnectionOf(config),
  });
}
