// A real S3-compatible server for tests: s3rver (the maintained @20minutes fork), run in this process on a
// free port of 127.0.0.1 with one bucket, storing into a fresh temporary folder. It records every request
// it is sent, so a test can tell a multipart upload from a single PutObject, or a download from a cache hit.
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The part of s3rver's API used here (the package ships no types). */
interface S3rver {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  httpServer: Server;
  store: {
    listObjects(bucket: string, options: { prefix: string }): Promise<{ objects: { key: string }[] }>;
  };
}
type S3rverConstructor = new (options: {
  address: string;
  port: number;
  silent: boolean;
  directory: string;
  configureBuckets: { name: string }[];
}) => S3rver;

export interface S3Request {
  method: string;
  /** Path and query, e.g. `/bucket/key?partNumber=1&uploadId=…`. */
  url: string;
}

export interface TestS3Server {
  endpoint: string;
  bucket: string;
  /** s3rver checks signatures made with these. */
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Every request so far, oldest first. */
  requests: S3Request[];
  /** Requests whose path is the object `key` of the bucket. */
  requestsFor(key: string): S3Request[];
  /**
   * Keys of the objects stored under `prefix`, read from the server's own store: s3rver checks the
   * signature of SDK v3's bucket-level requests (ListObjectsV2) against the bucket's path without the
   * trailing slash the SDK signs, and refuses them.
   */
  listKeys(prefix: string): Promise<string[]>;
  close(): Promise<void>;
}

export async function startTestS3Server(bucket = 'modelgate-test'): Promise<TestS3Server> {
  const S3rver = createRequire(import.meta.url)('@20minutes/s3rver') as S3rverConstructor;
  const directory = await mkdtemp(join(tmpdir(), 'modelgate-s3-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  const { port } = await server.run();
  const requests: S3Request[] = [];
  server.httpServer.on('request', (request: { method?: string; url?: string }) =>
    requests.push({ method: request.method ?? '', url: request.url ?? '' }),
  );
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requests,
    requestsFor: (key) => requests.filter(({ url }) => url.split('?')[0] === `/${bucket}/${key}`),
    async listKeys(prefix) {
      const { objects } = await server.store.listObjects(bucket, { prefix });
      return objects.map(({ key }) => key);
    },
    async close() {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
