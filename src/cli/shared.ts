// Options every API command shares (--url, --key, --json) and how results are printed.
import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { ModelgateClient } from '../client/client.ts';

/** The statuses of a job or batch that has finished, one way or another. */
export const FINISHED = new Set(['succeeded', 'failed', 'canceled']);

/**
 * Bad usage found while a command runs (a file that is not there, a format it cannot tell), printed and
 * exit code 2 like the errors Commander finds reading the arguments (which it prints itself).
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Fails with a UsageError unless `file` exists. */
export async function requireFile(file: string): Promise<void> {
  await stat(file).catch(() => {
    throw new UsageError(`no such file: ${file}`);
  });
}

export interface ApiOptions {
  url: string;
  key?: string;
  json?: boolean;
}

export function withApiOptions(command: Command): Command {
  return command
    .option(
      '--url <url>',
      'server URL (env MODELGATE_URL)',
      process.env.MODELGATE_URL ?? 'http://127.0.0.1:8080',
    )
    .option('--key <key>', 'API key (env MODELGATE_KEY)', process.env.MODELGATE_KEY)
    .option('--json', 'print machine-readable JSON');
}

export function clientFor(options: ApiOptions): ModelgateClient {
  return new ModelgateClient({ url: options.url, key: options.key });
}

/** Prints `value` as JSON with --json, else the human lines. */
export function output(options: ApiOptions, value: unknown, lines: () => string[]): void {
  console.log(options.json ? JSON.stringify(value, null, 2) : lines().join('\n'));
}

export function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) =>
    row
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join('  ')
      .trimEnd(),
  );
}
