// Reads where a batch input already in storage is, `s3://bucket/key` or `file:///absolute/path`, the
// folders of config `batchInputUrls`, and the format a name says. Without IO or the AWS SDK, so that the
// configuration and the CLI can use it.
import { extname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseS3Url } from '../artifacts/s3-url.ts';
import type { BatchFormat } from './plan.ts';

export type BatchInputLocation =
  { scheme: 's3'; bucket: string; key: string } | { scheme: 'file'; path: string };

/**
 * Where `url` points: a bucket and key, taken as written (without leading or trailing slashes, and never
 * with `.` or `..` segments, which some services and proxies resolve), or an absolute path (percent-decoded,
 * its dot segments resolved as URLs resolve them). Throws an Error saying what is wrong otherwise. A
 * `folder` may be a bucket's root.
 */
export function parseBatchInputUrl(url: string, what: 'object' | 'folder' = 'object'): BatchInputLocation {
  if (url.startsWith('s3:')) {
    const { bucket, prefix: key } = parseS3Url(url);
    if (key === '' && what === 'object') throw new Error(`"${url}" names no object: s3://bucket/key`);
    if (key.split('/').some((segment) => segment === '.' || segment === '..')) {
      throw new Error(`"${url}" has a "." or ".." segment in its key`);
    }
    return { scheme: 's3', bucket, key };
  }
  if (url.startsWith('file:')) {
    let path: string;
    try {
      path = fileURLToPath(url);
    } catch (error) {
      throw new Error(`"${url}" is not a file URL of an absolute path: ${(error as Error).message}`, {
        cause: error,
      });
    }
    if (path.includes('\0')) throw new Error(`"${url}" has a NUL character in its path`);
    return { scheme: 'file', path: resolve(path) };
  }
  throw new Error(`"${url}" is neither s3://bucket/key nor file:///absolute/path`);
}

/** The format a file's name says: `.csv`, or `.jsonl` and `.ndjson`; undefined for any other name. */
export function batchFormatOfName(name: string): BatchFormat | undefined {
  const extension = extname(name).toLowerCase();
  if (extension === '.csv') return 'csv';
  if (extension === '.jsonl' || extension === '.ndjson') return 'jsonl';
  return undefined;
}
