// Tenants and their API keys: creating, listing and revoking, and the first admin key of a fresh database.
import { ModelgateError } from '../errors.ts';
import { publishChange } from '../store/changes.ts';
import type { Db, Queryable } from '../store/db.ts';
import { StoreError } from '../store/db.ts';
import type { ApiKeyRecord } from '../store/keys.ts';
import { insertApiKey, listApiKeys, revokeApiKey, selectApiKeyByDigest } from '../store/keys.ts';
import type { Tenant } from '../store/tenants.ts';
import { countTenants, insertTenant, listTenants } from '../store/tenants.ts';
import { generateKey, keyFromSecret, type GeneratedKey, type Scope } from './keys.ts';

export const DEFAULT_TENANT = 'default';

export interface NewKeyOptions {
  name?: string;
  scopes: Scope[];
  expiresAt?: Date | null;
}

export interface CreatedKey {
  record: ApiKeyRecord;
  /** The key itself, shown to its owner this once. */
  secret: string;
}

async function storeKey(db: Queryable, tenantId: string, key: GeneratedKey, options: NewKeyOptions) {
  const record = await insertApiKey(db, {
    tenantId,
    name: options.name ?? '',
    digest: key.digest,
    displayPrefix: key.displayPrefix,
    scopes: [...new Set(options.scopes)],
    expiresAt: options.expiresAt ?? null,
  });
  return { record, secret: key.secret };
}

export function createKey(db: Queryable, tenantId: string, options: NewKeyOptions): Promise<CreatedKey> {
  return storeKey(db, tenantId, generateKey(), options);
}

/** Creates a tenant with a first admin key. A taken name is a `conflict`. */
export async function createTenant(db: Db, name: string): Promise<{ tenant: Tenant; key: CreatedKey }> {
  try {
    return await db.transaction(async (tx) => {
      const tenant = await insertTenant(tx, name);
      const key = await createKey(tx, tenant.id, { name: 'initial admin key', scopes: ['admin'] });
      return { tenant, key };
    });
  } catch (error) {
    if (error instanceof StoreError && error.kind === 'unique_violation') {
      throw new ModelgateError('conflict', `a tenant named "${name}" already exists`, { cause: error });
    }
    throw error;
  }
}

/**
 * On a database with no tenant yet: creates the operator tenant `default` and its admin key, `adminSecret`
 * if given (MODELGATE_ADMIN_KEY), else a generated one, returned to be printed once. On an existing
 * database a given `adminSecret` that is not stored yet is added as an admin key of the operator tenant
 * (a revoked one stays revoked). Safe when several processes start at once.
 */
export async function bootstrapAccounts(
  db: Db,
  adminSecret: string | undefined,
): Promise<CreatedKey | undefined> {
  const chosen = adminSecret === undefined ? undefined : keyFromSecret(adminSecret);
  if (adminSecret !== undefined && !chosen) {
    throw new ModelgateError(
      'bad_request',
      'MODELGATE_ADMIN_KEY must start with "mg_" and be at least 32 printable characters',
    );
  }
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [BOOTSTRAP_LOCK_KEY]);
    if ((await countTenants(tx)) === 0) {
      const tenant = await insertTenant(tx, DEFAULT_TENANT, true);
      const created = await storeKey(tx, tenant.id, chosen ?? generateKey(), BOOTSTRAP_KEY);
      return chosen ? undefined : created;
    }
    if (chosen && !(await selectApiKeyByDigest(tx, chosen.digest))) {
      const operator = (await listTenants(tx)).find((tenant) => tenant.operator);
      if (operator) await storeKey(tx, operator.id, chosen, BOOTSTRAP_KEY);
    }
    return undefined;
  });
}
const BOOTSTRAP_KEY: NewKeyOptions = { name: 'bootstrap admin key', scopes: ['admin'] };
const BOOTSTRAP_LOCK_KEY = 4_242_002;

export function listKeys(db: Queryable, tenantId: string): Promise<ApiKeyRecord[]> {
  return listApiKeys(db, tenantId);
}

/** Revokes a key of the tenant; every process stops accepting it on its next request. */
export async function revokeKey(db: Db, tenantId: string, keyId: string): Promise<ApiKeyRecord> {
  const record = await db.transaction(async (tx) => {
    const revoked = await revokeApiKey(tx, tenantId, keyId);
    if (revoked) await publishChange(tx, { kind: 'key', keyId });
    return revoked;
  });
  if (!record) throw new ModelgateError('not_found', `key "${keyId}" not found`);
  return record;
}
