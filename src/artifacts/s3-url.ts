// Reads `s3://bucket/prefix`, the address of an S3-compatible artifact store (config `artifactsUrl`).
// Apart from s3.ts so that resolving the configuration does not load the AWS SDK.

export interface S3Location {
  bucket: string;
  /** Key prefix without leading or trailing slashes; '' for the bucket's root. */
  prefix: string;
}

/** The bucket and prefix of `s3://bucket[/prefix]`; throws an Error saying what is wrong otherwise. */
export function parseS3Url(url: string): S3Location {
  const match = /^s3:\/\/([^/?#]*)(?:\/([^?#]*))?$/.exec(url);
  if (!match) throw new Error(`"${url}" is not of the form s3://bucket/prefix`);
  const bucket = match[1] ?? '';
  if (!isBucketName(bucket)) {
    throw new Error(
      `"${bucket}" in "${url}" is not a bucket name: 3 to 222 lowercase letters, digits, dots, dashes, underscores`,
    );
  }
  return { bucket, prefix: (match[2] ?? '').replace(/^\/+|\/+$/g, '') };
}

/** Bucket names as S3, GCS and R2 accept them: 3 to 222 lowercase letters, digits, dots, dashes, underscores. */
export function isBucketName(name: string): boolean {
  return /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(name);
}
