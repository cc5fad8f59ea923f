// The `modelgate` command line: `serve` runs the platform; the other commands call its HTTP API.
import { Command, CommanderError } from 'commander';
import { ApiError } from '../client/client.ts';
import { ConfigError } from '../config/config.ts';
import { registerAccountCommands } from './accounts.ts';
import { registerJobCommands } from './jobs.ts';
import { registerBatchCommands } from './batch.ts';
import { registerModelCommands } from './models.ts';
import { registerServeCommand } from './serve.ts';
import { UsageError } from './shared.ts';

/** Exit codes: 0 done, 1 the API refused, 2 bad usage or configuration, 3 the server was unreachable. */
export const EXIT = { ok: 0, api: 1, usage: 2, unreachable: 3 } as const;

const program = new Command('modelgate')
  .description('Secure, observable inference APIs for your models.')
  .showHelpAfterError()
  .exitOverride();
registerServeCommand(program);
registerAccountCommands(program);
registerModelCommands(program);
registerJobCommands(program);
registerBatchCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  process.exitCode = exitCodeFor(error);
}

function exitCodeFor(error: unknown): number {
  if (error instanceof CommanderError) {
    return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
  if (error instanceof ApiError) {
    console.error(`error: ${error.message}`);
    return EXIT.api;
  }
  if (error instanceof ConfigError || error instanceof UsageError) {
    console.error(`error: ${error.message}`);
    return EXIT.usage;
  }
  // fetch() fails with a TypeError whose cause says why (connection refused, DNS, bad port).
  if (error instanceof TypeError && error.message === 'fetch failed') {
    const cause = error.cause instanceof Error ? error.cause.message : String(error.cause);
    console.error(`error: cannot reach the modelgate server (${cause}); is it running? see --url`);
    return EXIT.unreachable;
  }
  console.error(error);
  return EXIT.api;
}
