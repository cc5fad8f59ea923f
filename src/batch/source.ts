// Batch input already in storage, named by a URL instead of sent as the body: `s3://bucket/key`, read with
// the artifact store's S3 settings, or `file:///path` on this server. Either is read with the server's
// rights, so only what lies in the operator's folders (config batchInputUrls) is opened; the stream then
// goes through the same submit as an upload.
import { constants } from 'node:fs';
import { open, realpath, stat, type FileHandle } from 'node:fs/promises';
import { isAbsolute, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import type { S3ConnectionOptions } from '../artifacts/s3.ts';
import { ModelgateError } from '../errors.ts';
import type { BatchFormat } from './plan.ts';
import { batchFormatOfName, parseBatchInputUrl, type BatchInputLocation } from './source-url.ts';

export interface BatchSource {
  format: BatchFormat;
  /** The content, already opened: the object or file exists and may be read. The caller reads or destroys it. */
  source: Readable;
}

export interface BatchSourcesOptions {
  /** Folders references must lie in (config batchInputUrls). Empty: every reference is refused. */
  allowedUrls: readonly string[];
  /** How to reach S3: the artifact store's settings (config s3Endpoint, s3Region, s3ForcePathStyle). */
  s3: S3ConnectionOptions;
}

const notAllowed = (url: string, why: string, cause?: unknown) =>
  new ModelgateError('batch_input_not_allowed', `input ${url}: ${why}`, { cause, details: { input: url } });
const notFound = (url: string, what: string, cause?: unknown) =>
  new ModelgateError('batch_input_not_found', `input ${url}: no such ${what}`, {
    cause,
    details: { input: url },
  });

/** True when `path` lies under `folder` (both absolute and normalised), not when it is the folder itself. */
function isInside(path: string, folder: string): boolean {
  const rest = relative(folder, path);
  return rest !== '' && rest !== '..' && !rest.startsWith(`..${sep}`) && !isAbsolute(rest);
}

const errorCode = (error: unknown) => (error as NodeJS.ErrnoException).code;
const isMissingFile = (error: unknown) => errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR';

export class BatchSources {
  private readonly folders: BatchInputLocation[];
  /** Made on the first s3:// reference: loading the AWS SDK takes ~0.2 s, which most processes never need. */
  private s3Client: S3Client | undefined;

  constructor(private readonly options: BatchSourcesOptions) {
    this.folders = options.allowedUrls.map((url) => parseBatchInputUrl(url, 'folder'));
  }

  /**
   * Opens the object or file `url` names, in `format` or the one its name says. Refuses (before reading a
   * byte) a malformed URL or an unknown format (bad_request), anything outside the allowed folders, by
   * its path or by where its symlinks lead (batch_input_not_allowed), and what does not exist
   * (batch_input_not_found).
   */
  async open(url: string, format?: BatchFormat): Promise<BatchSource> {
    let location: BatchInputLocation;
    try {
      location = parseBatchInputUrl(url);
    } catch (error) {
      throw new ModelgateError('bad_request', `input: ${(error as Error).message}`, {
        cause: error,
        details: { input: url },
      });
    }
    if (this.folders.length === 0) {
      throw notAllowed(url, 'this server reads no batch input from storage; send the file as the body');
    }
    if (location.scheme === 's3') {
      const { bucket, key } = location;
      const allowed = this.folders.some(
        (folder) =>
          folder.scheme === 's3' &&
          folder.bucket === bucket &&
          (folder.key === '' || key.startsWith(`${folder.key}/`)),
      );
      if (!allowed) throw notAllowed(url, 'not in a bucket folder this server reads batch input from');
      const chosen = formatOf(url, key, format);
      return { format: chosen, source: await this.openObject(url, bucket, key) };
    }
    const folders = await this.fileFolders();
    const { path } = location;
    if (!folders.some(({ given, real }) => isInside(path, given) || (real && isInside(path, real)))) {
      throw notAllowed(url, 'not in a folder this server reads batch input from');
    }
    const chosen = formatOf(url, path, format);
    const realFolders = folders.flatMap(({ real }) => (real ? [real] : []));
    return { format: chosen, source: await openFile(url, path, realFolders) };
  }

  async close(): Promise<void> {
    this.s3Client?.destroy();
    this.s3Client = undefined;
  }

  /** The allowed folders on this server, as configured and (if they exist) with their symlinks resolved. */
  private fileFolders(): Promise<{ given: string; real: string | undefined }[]> {
    return Promise.all(
      this.folders.flatMap((folder) =>
        folder.scheme === 'file'
          ? [
              realpath(folder.path).then(
                (real) => ({ given: folder.path, real }),
                () => ({ given: folder.path, real: undefined }),
              ),
            ]
          : [],
      ),
    );
  }

  /** GetObject's answer has arrived (the object exists) when this returns; its content streams after. */
  private async openObject(url: string, bucket: string, key: string): Promise<Readable> {
    const { createS3Client, getObject, s3StatusOf } = await import('../artifacts/s3.ts');
    this.s3Client ??= createS3Client(this.options.s3);
    try {
      return await getObject(this.s3Client, bucket, key);
    } catch (error) {
      const status = s3StatusOf(error);
      // NoSuchKey, or NoSuchBucket: the folder is allowed but the bucket is not there.
      if (status === 404) throw notFound(url, 'object', error);
      // AWS answers 403 for a missing key too when the credentials may not list the bucket.
      if (status === 403) throw notAllowed(url, "the server's S3 credentials may not read it", error);
      throw error;
    }
  }
}

/** The format given, else the one the name says, else a 400 asking for it. */
function formatOf(url: string, name: string, given: BatchFormat | undefined): BatchFormat {
  const format = given ?? batchFormatOfName(name);
  if (format) return format;
  throw new ModelgateError(
    'bad_request',
    `input ${url}: its name does not say its format (.csv, .jsonl or .ndjson); give "format": "csv" or "jsonl"`,
    { details: { input: url } },
  );
}

/**
 * Opens the file at `path`, which must be a regular file whose real path (symlinks resolved) lies in one
 * of `realFolders`. The file opened is compared with the one at its real path, so that a symlink swapped
 * between the check and the open cannot lead elsewhere.
 */
async function openFile(url: string, path: string, realFolders: string[]): Promise<Readable> {
  let handle: FileHandle;
  try {
    // Non-blocking: opening a FIFO for reading would otherwise wait for a writer.
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    if (isMissingFile(error)) throw notFound(url, 'file', error);
    if (errorCode(error) === 'EACCES') throw notAllowed(url, 'the server may not read it', error);
    throw error;
  }
  try {
    const real = await realpath(path);
    if (!realFolders.some((folder) => isInside(real, folder))) {
      throw notAllowed(url, 'it leads outside the folders this server reads batch input from');
    }
    const [opened, named] = await Promise.all([handle.stat(), stat(real)]);
    if (opened.dev !== named.dev || opened.ino !== named.ino) {
      throw notAllowed(url, 'it changed while it was being opened');
    }
    if (!opened.isFile()) {
      throw new ModelgateError('bad_request', `input ${url}: not a file`, { details: { input: url } });
    }
    return handle.createReadStream();
  } catch (error) {
    await handle.close();
    if (isMissingFile(error)) throw notFound(url, 'file', error);
    throw error;
  }
}
