// Queries on API keys. Only a key's SHA-256 digest and display prefix are stored.
import type { Queryable } from './db.ts';
import { newId } from './ids.ts';

export interface ApiKeyRecord {
  id: string;
  tenantId: string;
  name: string;
  digest: string;
  displayPrefix: string;
  scopes: string[];
  expiresAt: Date | null;
  revokedAt: Date | null;
  createdAt: Date;
}

const COLUMNS = `id, tenant_id AS "tenantId", name, digest, display_prefix AS "displayPrefix", scopes,
  expires_at AS "expiresAt", revoked_at AS "revokedAt", created_at AS "createdAt"`;

export type NewApiKey = Omit<ApiKeyRecord, 'id' | 'revokedAt' | 'createdAt'>;

/** insertApiKey($1 id, $2 tenant, $3 name, $4 digest, $5 prefix, $6 scopes, $7 expiry): the stored record. */
export async function insertApiKey(db: Queryable, key: NewApiKey): Promise<ApiKeyRecord> {
  const [row] = await db.query<ApiKeyRecord>(
    `INSERT INTO api_keys (id, tenant_id, name, digest, display_prefix, scopes, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${COLUMNS}`,
    [newId('key'), key.tenantId, key.name, key.digest, key.displayPrefix, key.scopes, key.expiresAt],
  );
  return row!;
}

/** selectApiKeyByDigest($1 digest): the key with this digest, revoked or not, or undefined. */
export async function selectApiKeyByDigest(db: Queryable, digest: string): Promise<ApiKeyRecord | undefined> {
  const [row] = await db.query<ApiKeyRecord>(`SELECT ${COLUMNS} FROM api_keys WHERE digest = $1`, [digest]);
  return row;
}

/** listApiKeys($1 tenant): the tenant's keys, oldest first. */
export async function listApiKeys(db: Queryable, tenantId: string): Promise<ApiKeyRecord[]> {
  return db.query<ApiKeyRecord>(
    `SELECT ${COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id`,
    [tenantId],
  );
}

/** revokeApiKey($1 tenant, $2 id): the revoked key (first revocation time kept), or undefined if not the tenant's. */
export async function revokeApiKey(
  db: Queryable,
  tenantId: string,
  id: string,
): Promise<ApiKeyRecord | undefined> {
  const [row] = await db.query<ApiKeyRecord>(
    `UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
     WHERE tenant_id = $1 AND id = $2 RETURNING ${COLUMNS}`,
    [tenantId, id],
  );
  return row;
}
