// Tenants, their API keys and webhook signing secrets: creating, listing and revoking, and the first admin
// key of a fresh database.
import { ModelgateError } from '../errors.ts';
import { publishChange } from '../store/changes.ts';
import type { Db, Queryable } from '../store/db.ts';
import { StoreError } from '../store/db.ts';
import type { ApiKeyRecord } from '../store/keys.ts';
import { insertApiKey, listApiKeys, revokeApiKey, selectApiKeyByDigest } from '../store/keys.ts';
import type { Tenant } from '../store/tenants.ts';
import {
  countTenants,
  ensureWebhookSecret,
  insertTenant,
  listTenants,
  rotateWebhookSecret,
  selectTenant,
} from '../store/tenants.ts';
import { generateWebhookSecret } from '../webhooks/signature.ts';
import type { Authenticator, Principal } from './authenticator.ts';
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

/** The tenant's webhook signing secret, made on first use (two racing callers get the same one). */
export function tenantWebhookSecret(db: Queryable, tenantId: string): Promise<string> {
  return ensureWebhookSecret(db, tenantId, generateWebhookSecret);
}

/**
 * Tenants, keys and webhook secrets as the API offers them, for a principal: operator admins see every
 * tenant, others their own; a revoked key stops working in this process at once.
 */
export class Accounts {
  constructor(private readonly deps: { db: Db; authenticator: Authenticator }) {}

  /** A new tenant and its first admin key; only admins of the operator tenant create tenants. */
  async createTenant(principal: Principal, name: string): Promise<{ tenant: Tenant; key: CreatedKey }> {
    if (!principal.operator) {
      throw new ModelgateError('forbidden', 'only admin keys of the operator tenant create tenants');
    }
    return createTenant(this.deps.db, name);
  }

  async listTenants(principal: Principal): Promise<Tenant[]> {
    if (principal.operator) return listTenants(this.deps.db);
    const own = await selectTenant(this.deps.db, principal.tenantId);
    return own ? [own] : [];
  }

  async getTenant(principal: Principal, id: string): Promise<Tenant> {
    const visible = principal.operator || id === principal.tenantId;
    const tenant = visible ? await selectTenant(this.deps.db, id) : undefined;
    if (!tenant) throw new ModelgateError('not_found', `tenant "${id}" not found`);
    return tenant;
  }

  createKey(tenantId: string, options: NewKeyOptions): Promise<CreatedKey> {
    return createKey(this.deps.db, tenantId, options);
  }

  listKeys(tenantId: string): Promise<ApiKeyRecord[]> {
    return listApiKeys(this.deps.db, tenantId);
  }

  async getKey(tenantId: string, id: string): Promise<ApiKeyRecord> {
    const key = (await this.listKeys(tenantId)).find((k) => k.id === id);
    if (!key) throw new ModelgateError('not_found', `key "${id}" not found`);
    return key;
  }

  async revokeKey(tenantId: string, id: string): Promise<ApiKeyRecord> {
    const revoked = await revokeKey(this.deps.db, tenantId, id);
    this.deps.authenticator.forgetKey(revoked.id);
    return revoked;
  }

  webhookSecret(tenantId: string): Promise<string> {
    return tenantWebhookSecret(this.deps.db, tenantId);
  }

  /** Replaces the tenant's webhook signing secret; deliveries from now on are signed with the new one. */
  rotateWebhookSecret(tenantId: string): Promise<string> {
    return rotateWebhookSecret(this.deps.db, tenantId, generateWebhookSecret());
  }
}
