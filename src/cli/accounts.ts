// `modelgate keys create|list|revoke` and `modelgate tenants create|list`.
import { type Command, InvalidArgumentError } from 'commander';
import { SCOPES } from '../auth/keys.ts';
import { clientFor, output, table, withApiOptions, type ApiOptions } from './shared.ts';

const DURATION_UNITS_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

export function parseDurationSeconds(value: string): number {
  const match = /^(\d+)([smhd])$/.exec(value);
  if (!match) throw new InvalidArgumentError('use a number and a unit: 90s, 15m, 12h, 30d');
  return Number(match[1]) * DURATION_UNITS_SECONDS[match[2]!]!;
}

export function parseScopes(value: string): string[] {
  const scopes = value.split(',').map((scope) => scope.trim());
  const unknown = scopes.filter((scope) => !(SCOPES as readonly string[]).includes(scope));
  if (unknown.length > 0 || scopes.length === 0) {
    throw new InvalidArgumentError(`scopes are a comma-separated list of ${SCOPES.join(', ')}`);
  }
  return scopes;
}

export function registerAccountCommands(program: Command): void {
  const keys = program.command('keys').description('API keys of your tenant');
  withApiOptions(keys.command('create').description('create a key; it is shown once'))
    .requiredOption('--scopes <list>', `comma-separated: ${SCOPES.join(', ')}`, parseScopes)
    .option('--name <name>', 'a label for the key')
    .option('--expires-in <duration>', 'lifetime, e.g. 30d or 12h', parseDurationSeconds)
    .action(async (options: ApiOptions & { scopes: string[]; name?: string; expiresIn?: number }) => {
      const key = await clientFor(options).createKey({
        name: options.name,
        scopes: options.scopes,
        expires_in_seconds: options.expiresIn,
      });
      output(options, key, () => [
        key.key,
        `id ${key.id}, scopes ${key.scopes.join(',')}, expires ${key.expires_at ?? 'never'}`,
        'Store this key now: it is not shown again.',
      ]);
    });
  withApiOptions(keys.command('list').description('list keys (prefixes only)')).action(
    async (options: ApiOptions) => {
      const { keys: list } = await clientFor(options).listKeys();
      output(options, list, () =>
        table([
          ['ID', 'PREFIX', 'NAME', 'SCOPES', 'EXPIRES', 'REVOKED'],
          ...list.map((k) => [
            k.id,
            k.prefix,
            k.name,
            k.scopes.join(','),
            k.expires_at ?? '-',
            k.revoked_at ?? '-',
          ]),
        ]),
      );
    },
  );
  withApiOptions(
    keys.command('revoke').description('revoke a key; it stops working at once').argument('<id>'),
  ).action(async (id: string, options: ApiOptions) => {
    const key = await clientFor(options).revokeKey(id);
    output(options, key, () => [`revoked ${key.id} (${key.prefix}…) at ${key.revoked_at}`]);
  });

  const tenants = program.command('tenants').description('tenants (operator admins)');
  withApiOptions(
    tenants.command('create').description('create a tenant and its first admin key').argument('<name>'),
  ).action(async (name: string, options: ApiOptions) => {
    const tenant = await clientFor(options).createTenant(name);
    output(options, tenant, () => [
      `tenant ${tenant.name} (${tenant.id})`,
      `admin key: ${tenant.admin_key.key}`,
      'Store this key now: it is not shown again.',
    ]);
  });
  withApiOptions(tenants.command('list').description('list tenants')).action(async (options: ApiOptions) => {
    const { tenants: list } = await clientFor(options).listTenants();
    output(options, list, () =>
      table([
        ['ID', 'NAME', 'OPERATOR', 'CREATED'],
        ...list.map((t) => [t.id, t.name, String(t.operator), t.created_at]),
      ]),
    );
  });
}
