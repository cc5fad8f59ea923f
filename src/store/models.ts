// Queries on models and their versions.
import type { ModelSignature } from '../runtime/signature.ts';
import type { Queryable } from './db.ts';
import { newId } from './ids.ts';

export interface ModelRecord {
  id: string;
  tenantId: string;
  name: string;
  settings: Record<string, unknown>;
  createdAt: Date;
}

export interface ModelVersionRecord {
  modelId: string;
  version: number;
  runtime: string;
  /** What the runtime needs beyond the artifact and the signature (the command runtime's manifest). */
  runtimeSettings: Record<string, unknown>;
  artifactSha256: string;
  sizeBytes: number;
  signature: ModelSignature;
  status: string;
  createdAt: Date;
}

const MODEL_COLUMNS = 'id, tenant_id AS "tenantId", name, settings, created_at AS "createdAt"';
const VERSION_COLUMNS = `model_id AS "modelId", version, runtime, runtime_settings AS "runtimeSettings",
  artifact_sha256 AS "artifactSha256",
  size_bytes::float8 AS "sizeBytes", signature, status, created_at AS "createdAt"`;

/** upsertModel($1 id, $2 tenant, $3 name): the tenant's model of that name, created if missing. */
export async function upsertModel(db: Queryable, tenantId: string, name: string): Promise<ModelRecord> {
  const [row] = await db.query<ModelRecord>(
    `INSERT INTO models (id, tenant_id, name) VALUES ($1, $2, $3)
     ON CONFLICT (tenant_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING ${MODEL_COLUMNS}`,
    [newId('mdl'), tenantId, name],
  );
  return row!;
}

/** mergeModelSettings($1 id, $2 settings): sets these settings and keeps the others, in one statement. */
export async function mergeModelSettings(
  db: Queryable,
  modelId: string,
  settings: Record<string, unknown>,
): Promise<ModelRecord | undefined> {
  const [row] = await db.query<ModelRecord>(
    `UPDATE models SET settings = settings || $2::jsonb WHERE id = $1 RETURNING ${MODEL_COLUMNS}`,
    [modelId, JSON.stringify(settings)],
  );
  return row;
}

export interface NewModelVersion {
  runtime: string;
  runtimeSettings: Record<string, unknown>;
  artifactSha256: string;
  sizeBytes: number;
  signature: ModelSignature;
}

/**
 * insertModelVersion($1 model, …): numbers the new version max+1. Call inside a transaction: the model row
 * is locked first so concurrent uploads of one model get consecutive numbers.
 */
export async function insertModelVersion(
  tx: Queryable,
  modelId: string,
  version: NewModelVersion,
): Promise<ModelVersionRecord> {
  await tx.query('SELECT id FROM models WHERE id = $1 FOR UPDATE', [modelId]);
  const [row] = await tx.query<ModelVersionRecord>(
    `INSERT INTO model_versions (model_id, version, runtime, artifact_sha256, size_bytes, signature, runtime_settings)
     SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4, $5, $6 FROM model_versions WHERE model_id = $1
     RETURNING ${VERSION_COLUMNS}`,
    [
      modelId,
      version.runtime,
      version.artifactSha256,
      version.sizeBytes,
      JSON.stringify(version.signature),
      JSON.stringify(version.runtimeSettings),
    ],
  );
  return row!;
}

/** selectModel($1 tenant, $2 name): the model or undefined. */
export async function selectModel(
  db: Queryable,
  tenantId: string,
  name: string,
): Promise<ModelRecord | undefined> {
  const [row] = await db.query<ModelRecord>(
    `SELECT ${MODEL_COLUMNS} FROM models WHERE tenant_id = $1 AND name = $2`,
    [tenantId, name],
  );
  return row;
}

/** listModels($1 tenant): the tenant's models by name. */
export async function listModels(db: Queryable, tenantId: string): Promise<ModelRecord[]> {
  return db.query<ModelRecord>(`SELECT ${MODEL_COLUMNS} FROM models WHERE tenant_id = $1 ORDER BY name`, [
    tenantId,
  ]);
}

/** listAllModels(): every tenant's models (a gateway loads its catalogue from this at start). */
export async function listAllModels(db: Queryable): Promise<ModelRecord[]> {
  return db.query<ModelRecord>(`SELECT ${MODEL_COLUMNS} FROM models ORDER BY tenant_id, name`);
}

/** listModelVersions($1 model ids): the versions of these models, oldest first. */
export async function listModelVersions(db: Queryable, modelIds: string[]): Promise<ModelVersionRecord[]> {
  return db.query<ModelVersionRecord>(
    `SELECT ${VERSION_COLUMNS} FROM model_versions WHERE model_id = ANY($1) ORDER BY model_id, version`,
    [modelIds],
  );
}

/** deleteModel($1 tenant, $2 name): removes the model and its versions; the removed model or undefined. */
export async function deleteModel(
  db: Queryable,
  tenantId: string,
  name: string,
): Promise<ModelRecord | undefined> {
  const [row] = await db.query<ModelRecord>(
    `DELETE FROM models WHERE tenant_id = $1 AND name = $2 RETURNING ${MODEL_COLUMNS}`,
    [tenantId, name],
  );
  return row;
}

/** deleteModelVersion($1 model, $2 version): true if the version existed. */
export async function deleteModelVersion(db: Queryable, modelId: string, version: number): Promise<boolean> {
  const rows = await db.query(
    'DELETE FROM model_versions WHERE model_id = $1 AND version = $2 RETURNING version',
    [modelId, version],
  );
  return rows.length > 0;
}
