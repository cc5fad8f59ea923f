// Queries on tenants.
import type { Queryable } from './db.ts';
import { newId } from './ids.ts';

export interface Tenant {
  id: string;
  name: string;
  operator: boolean;
  createdAt: Date;
}

const COLUMNS = 'id, name, operator, created_at AS "createdAt"';

/** insertTenant($1 id, $2 name, $3 operator): the new tenant. Fails with unique_violation on a taken name. */
export async function insertTenant(db: Queryable, name: string, operator = false): Promise<Tenant> {
  const [row] = await db.query<Tenant>(
    `INSERT INTO tenants (id, name, operator) VALUES ($1, $2, $3) RETURNING ${COLUMNS}`,
    [newId('tn'), name, operator],
  );
  return row!;
}

/** selectTenant($1 id): the tenant or undefined. */
export async function selectTenant(db: Queryable, id: string): Promise<Tenant | undefined> {
  const [row] = await db.query<Tenant>(`SELECT ${COLUMNS} FROM tenants WHERE id = $1`, [id]);
  return row;
}

/** selectTenantByName($1 name): the tenant or undefined. */
export async function selectTenantByName(db: Queryable, name: string): Promise<Tenant | undefined> {
  const [row] = await db.query<Tenant>(`SELECT ${COLUMNS} FROM tenants WHERE name = $1`, [name]);
  return row;
}

/** listTenants(): every tenant, oldest first. */
export async function listTenants(db: Queryable): Promise<Tenant[]> {
  return db.query<Tenant>(`SELECT ${COLUMNS} FROM tenants ORDER BY created_at, id`);
}

/** countTenants(): how many tenants exist (0 means a fresh database). */
export async function countTenants(db: Queryable): Promise<number> {
  const [row] = await db.query<{ count: number }>('SELECT count(*)::int AS count FROM tenants');
  return row!.count;
}

/**
 * ensureWebhookSecret($1 tenant id, $2 new secret): the tenant's webhook signing secret, set to one made by
 * `newSecret` on first use (two racing callers get the same one).
 */
export async function ensureWebhookSecret(
  db: Queryable,
  tenantId: string,
  newSecret: () => string,
): Promise<string> {
  // Read first: every delivery asks, and only the first needs to write.
  const [existing] = await db.query<{ secret: string | null }>(
    'SELECT webhook_secret AS secret FROM tenants WHERE id = $1',
    [tenantId],
  );
  if (existing?.secret) return existing.secret;
  const [row] = await db.query<{ secret: string }>(
    `UPDATE tenants SET webhook_secret = coalesce(webhook_secret, $2) WHERE id = $1
     RETURNING webhook_secret AS secret`,
    [tenantId, newSecret()],
  );
  return row!.secret;
}

/** rotateWebhookSecret($1 tenant id, $2 secret): sets the tenant's webhook signing secret; returns it. */
export async function rotateWebhookSecret(db: Queryable, tenantId: string, secret: string): Promise<string> {
  const [row] = await db.query<{ secret: string }>(
    'UPDATE tenants SET webhook_secret = $2 WHERE id = $1 RETURNING webhook_secret AS secret',
    [tenantId, secret],
  );
  return row!.secret;
}
