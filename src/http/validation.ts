// Request bodies and parameters are checked with zod; a mismatch becomes a 400 naming the field.
import type { z } from 'zod';
import { ModelgateError } from '../errors.ts';

export function parseWith<Schema extends z.ZodType>(
  schema: Schema,
  value: unknown,
  what = 'body',
): z.infer<Schema> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = issue.path.length > 0 ? issue.path.join('.') : what;
  throw new ModelgateError('bad_request', `${what === 'body' ? '' : `${what}: `}${path}: ${issue.message}`, {
    details: { issues: result.error.issues.map((i) => ({ path: i.path, message: i.message })) },
  });
}

/** A version number from a path segment: a positive integer, else 404 (no such version can exist). */
export function parseVersion(model: string, raw: string): number {
  const version = Number(raw);
  if (!/^\d{1,9}$/.test(raw) || version < 1) {
    throw new ModelgateError('version_not_found', `model "${model}" has no version ${raw}`, {
      details: { model, version: raw },
    });
  }
  return version;
}
