// Request bodies and parameters are checked with zod; a mismatch becomes a 400 naming the field.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { ModelgateError } from '../errors.ts';
import { isStorableJson, storableText, textFault } from '../text.ts';

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

function textError(where: string, fault: string): ModelgateError {
  const at = where.length > 200 ? `${storableText(where.slice(0, 200))}…` : where;
  return new ModelgateError('bad_request', `${at} ${fault}`, { details: { at } });
}

/**
 * Checks the values a request carries in its path and query string (e.g. `/v1/jobs/%00`), once for every
 * route: each must be text that can be stored and compared.
 */
export function checkRequestText(params: unknown, query: unknown): void {
  for (const [what, values] of [
    ['path parameter', params],
    ['query parameter', query],
  ] as const) {
    if (typeof values !== 'object' || values === null) continue;
    for (const [name, value] of Object.entries(values)) {
      for (const text of [name, ...(Array.isArray(value) ? value : [value])]) {
        const fault = typeof text === 'string' ? textFault(text) : undefined;
        if (fault) throw textError(`${what} "${storableText(name.slice(0, 64))}"`, fault);
      }
    }
  }
}

/**
 * Checks every string (and object key) of a parsed JSON body whose text `raw` was, the same rule as for
 * path and query values; walked with a stack, so nesting depth costs no call stack. JSON text carries a NUL
 * or a lone surrogate only as an escape, so a body without such an escape (nearly all) is not walked.
 */
export function checkJsonText(raw: string, value: unknown): void {
  if (isStorableJson(raw)) return;
  // One frame per open array or object, so memory follows the depth, not the size; the path is spelled
  // only for the fault (a 2 MB body queued whole with its paths took 115 MB and 245 ms).
  const frames: { values: unknown[]; names: string[] | undefined; next: number }[] = [];
  const keyOf = (frame: (typeof frames)[number], index: number) => frame.names?.[index] ?? index;
  const pathTo = (last: string | number) =>
    [...frames.slice(0, -1).map((frame) => keyOf(frame, frame.next - 1)), last]
      .map((key) => (typeof key === 'number' ? `[${key}]` : `.${key}`))
      .join('')
      .replace(/^\./, '');
  const visit = (item: unknown, key: string | number | undefined) => {
    const where = () => (key === undefined ? '(root)' : storableText(pathTo(key)));
    if (typeof item === 'string') {
      const fault = textFault(item);
      if (fault) throw textError(`the body's string at ${where()}`, fault);
    } else if (Array.isArray(item)) {
      frames.push({ values: item, names: undefined, next: 0 });
    } else if (typeof item === 'object' && item !== null) {
      const names = Object.keys(item);
      for (const name of names) {
        const fault = textFault(name);
        if (fault) throw textError(`the body's key at ${where()}`, fault);
      }
      frames.push({ values: Object.values(item), names, next: 0 });
    }
  };
  visit(value, undefined);
  while (frames.length > 0) {
    const frame = frames[frames.length - 1]!;
    if (frame.next === frame.values.length) {
      frames.pop();
      continue;
    }
    const index = frame.next++;
    visit(frame.values[index], keyOf(frame, index));
  }
}

/**
 * How every JSON body is read, whatever its content type: Fastify's parser (prototype poisoning refused),
 * then its strings held to the rule for text (checkJsonText). Fails with `invalid_json` saying where the
 * text breaks, or that it was sound JSON and a prototype key is what was refused.
 */
export function jsonBodyReader(app: FastifyInstance): (request: FastifyRequest, text: string) => unknown {
  const parse = app.getDefaultJsonParser('error', 'error');
  return (request, text) => {
    let parsed: unknown;
    let failure: Error | null = null;
    // Fastify's default JSON parser answers synchronously.
    parse(request, text, (error, value) => {
      failure = error;
      parsed = value;
    });
    if (failure) {
      // Its error says only that it failed; JSON.parse says where.
      let why = 'it holds a __proto__ or constructor.prototype key, which is refused';
      try {
        JSON.parse(text);
      } catch (error) {
        why = (error as Error).message;
      }
      throw new ModelgateError('invalid_json', `the body is not valid JSON: ${why}`, { cause: failure });
    }
    checkJsonText(text, parsed);
    return parsed;
  };
}
