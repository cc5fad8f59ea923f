// JSON values as they arrive from outside (request bodies, manifests, answers of programs and upstreams).

/** A JSON object: not null and not an array. */
export const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
