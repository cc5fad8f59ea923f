// The artifact store on an S3-compatible bucket (AWS S3, MinIO, Cloudflare R2, GCS's interoperability
// endpoint): objects at `<prefix>/sha256/<hash>`. Uploads are staged in a local cache folder first, and
// localPath() keeps downloaded copies there, since ONNX Runtime loads models from a path. Only the plainest
// operations are used (PutObject, multipart upload, GetObject, HeadObject, DeleteObject), which every one of
// those services implements alike. createS3Client() and getObject() also read batch inputs from a bucket.
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createReadStream } from 'node:fs';
import { access, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ModelgateError } from '../errors.ts';
import { parseS3Url } from './s3-url.ts';
import { checkDigest, missingArtifact, stagedArtifact, stageFile } from './staging.ts';
import type { ArtifactStore, StagedArtifact } from './store.ts';

const MiB = 1024 * 1024;

/** How to reach the S3-compatible service: shared by the artifact store and batch inputs read from a bucket. */
export interface S3ConnectionOptions {
  /** Endpoint of an S3-compatible service (MinIO, R2, GCS). Default: AWS S3 of the region. */
  endpoint?: string;
  /** Region. Default: the AWS SDK's chain (AWS_REGION, then the shared config file). */
  region?: string;
  /** Address buckets as `<endpoint>/<bucket>` instead of `<bucket>.<endpoint>` (MinIO wants it). Default false. */
  forcePathStyle?: boolean;
  /** Default: the AWS SDK's chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, profiles, instance roles). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

export interface S3ArtifactStoreOptions extends S3ConnectionOptions {
  /** Where the artifacts live: `s3://bucket` or `s3://bucket/prefix`. */
  url: string;
  /** Local folder for staged uploads (`tmp/`) and downloaded copies (`sha256/<hash>`). */
  cacheDir: string;
  /**
   * Part size of multipart uploads; smaller objects go up in one PutObject. Default 8 MiB: S3 takes parts
   * of 5 MiB to 5 GiB and at most 10,000 of them, so objects up to 78 GiB.
   */
  partSizeBytes?: number;
  /** Parts uploaded at once, each held in memory meanwhile. Default 4. */
  uploadConcurrency?: number;
}

/** The one way modelgate makes an S3 client; the caller destroys it when done. */
export function createS3Client(options: S3ConnectionOptions): S3Client {
  return new S3Client({
    endpoint: options.endpoint,
    region: options.region,
    forcePathStyle: options.forcePathStyle,
    credentials: options.credentials,
    // Since early 2025 the SDK adds CRC checksums to every upload and checks them on every download by
    // default; GCS's and R2's S3 APIs refuse or lack them. Content is verified by its SHA-256 instead.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** GetObject's content as a stream; the SDK's error when there is none (s3StatusOf tells a missing key). */
export async function getObject(client: S3Client, bucket: string, key: string): Promise<Readable> {
  const { Body } = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  if (!(Body instanceof Readable)) throw new Error(`GetObject of ${key} gave no stream`);
  return Body;
}

/** The HTTP status of an error answer of the S3 service; undefined for other errors (network, …). */
export function s3StatusOf(error: unknown): number | undefined {
  return error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
}

export async function openS3ArtifactStore(options: S3ArtifactStoreOptions): Promise<ArtifactStore> {
  const { bucket, prefix } = parseS3Url(options.url);
  const { partSizeBytes = 8 * MiB, uploadConcurrency = 4 } = options;
  const stagingDir = join(options.cacheDir, 'tmp');
  const copiesDir = join(options.cacheDir, 'sha256');
  await mkdir(stagingDir, { recursive: true });
  await mkdir(copiesDir, { recursive: true });
  const client = createS3Client(options);
  const objectKey = (sha256: string) => `${prefix ? `${prefix}/` : ''}sha256/${checkDigest(sha256)}`;
  const copyPath = (sha256: string) => join(copiesDir, checkDigest(sha256));

  async function objectExists(sha256: string): Promise<boolean> {
    try {
      await client.send(new HeadObjectCommand({ Bucket: bucket, Key: objectKey(sha256) }));
      return true;
    } catch (error) {
      // A HEAD answer has no body, so a missing key is told by its status alone. AWS answers 403 instead
      // when the credentials may not list the bucket: the upload then tells whether they may write.
      const status = s3StatusOf(error);
      if (status === 404 || status === 403) return false;
      throw error;
    }
  }

  async function upload(path: string, sha256: string): Promise<void> {
    const body = createReadStream(path);
    try {
      await new Upload({
        client,
        params: {
          Bucket: bucket,
          Key: objectKey(sha256),
          Body: body,
          ContentType: 'application/octet-stream',
        },
        partSize: partSizeBytes,
        queueSize: uploadConcurrency,
      }).done();
    } finally {
      body.destroy();
    }
  }

  async function read(sha256: string): Promise<Readable> {
    try {
      return await getObject(client, bucket, objectKey(sha256));
    } catch (error) {
      // NoSuchBucket is a 404 as well, and is not a missing artifact.
      if (error instanceof S3ServiceException && (error.name === 'NoSuchKey' || error.name === 'NotFound')) {
        throw missingArtifact(sha256, error);
      }
      throw error;
    }
  }

  /** Downloads to a temporary file, checks its SHA-256, then renames it into place: a copy is whole or absent. */
  async function download(sha256: string): Promise<string> {
    const path = copyPath(sha256);
    if (await exists(path)) return path;
    const staged = await stageFile(await read(sha256), Number.MAX_SAFE_INTEGER, stagingDir);
    if (staged.sha256 !== sha256) {
      await rm(staged.path, { force: true });
      throw new ModelgateError(
        'internal',
        `artifact ${sha256}: the object at ${objectKey(sha256)} has SHA-256 ${staged.sha256}`,
      );
    }
    await rename(staged.path, path);
    return path;
  }
  // Callers that want the same artifact at once (a model warmed and served together) share one download.
  const downloads = new Map<string, Promise<string>>();

  return {
    async stage(source: Readable, maxBytes: number): Promise<StagedArtifact> {
      const file = await stageFile(source, maxBytes, stagingDir);
      return stagedArtifact(file, async () => {
        if (!(await objectExists(file.sha256))) await upload(file.path, file.sha256);
        await rm(file.path, { force: true });
      });
    },
    read,
    localPath(sha256: string): Promise<string> {
      let pending = downloads.get(sha256);
      if (!pending) {
        pending = download(sha256).finally(() => downloads.delete(sha256));
        downloads.set(sha256, pending);
      }
      return pending;
    },
    async remove(sha256: string): Promise<void> {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: objectKey(sha256) }));
      await rm(copyPath(sha256), { force: true });
    },
    async close(): Promise<void> {
      client.destroy();
    },
  };
}

function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
