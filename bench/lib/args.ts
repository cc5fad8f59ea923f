// Command-line values of the benchmarks, checked as they are read.

/** A bad command line: the benchmark prints the message and its usage, and exits with 2. */
export class UsageError extends Error {}

export function parseNumber(
  text: string,
  flag: string,
  { integer = true, min = 1, max = Infinity } = {},
): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    const range = max === Infinity ? `>= ${min}` : `from ${min} to ${max}`;
    throw new UsageError(
      `${flag} must be ${integer ? 'a whole number' : 'a number'} ${range}, got "${text}"`,
    );
  }
  return value;
}
