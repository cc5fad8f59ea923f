// What the benchmark peers share: their command line (--port and a repeated --<flag> name=path), their
// thread count, and serving on 127.0.0.1 until SIGTERM or SIGINT. Only node: modules here, as each peer is
// a process of its own (node --import tsx bench/peers/X.ts) and should start no slower than alone.
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { parseArgs } from 'node:util';

/**
 * The peer's --port, its repeated `--<flag> name=path` (e.g. --model iris=/path/iris.onnx) by name, and
 * the values of its own further options (`others`, each `--name value`, undefined when not given).
 */
export function readPeerArgs(
  flag: string,
  others: readonly string[] = [],
): { port: number; paths: Map<string, string>; others: Record<string, string | undefined> } {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      [flag]: { type: 'string', multiple: true, default: [] },
      ...Object.fromEntries(others.map((name) => [name, { type: 'string' as const }])),
    },
    strict: true,
  });
  const paths = new Map<string, string>();
  for (const entry of values[flag] as unknown as string[]) {
    const [name, path] = entry.split('=');
    if (!name || !path) throw new Error(`--${flag} takes name=path, got "${entry}"`);
    paths.set(name, path);
  }
  const given = Object.fromEntries(others.map((name) => [name, values[name] as string | undefined]));
  return { port: Number(values.port), paths, others: given };
}

/** OS threads of this process right now (Linux), to record how many threads ORT's defaults started. */
export function countProcessThreads(): number | undefined {
  try {
    const match = /^Threads:\s+(\d+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Listens on 127.0.0.1, prints `{"event":"listening","port":…, ...announce()}` on stdout once it does
 * (bench/lib/servers.ts waits for that line), and closes on SIGTERM or SIGINT.
 */
export function serve(
  server: Server,
  port: number,
  announce: () => Record<string, unknown> = () => ({}),
): void {
  server.listen(port, '127.0.0.1', () => {
    const address = server.address();
    const listening = typeof address === 'object' && address ? address.port : 0;
    process.stdout.write(`${JSON.stringify({ event: 'listening', port: listening, ...announce() })}\n`);
  });
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
