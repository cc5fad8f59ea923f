// The deployed models as this process sees them, in memory, so a real-time request never touches the
// database: loaded at start, refreshed when this or another process changes a model.
import { ModelgateError } from '../errors.ts';
import type { Db } from '../store/db.ts';
import type { ModelRecord, ModelVersionRecord } from '../store/models.ts';
import { listAllModels, listModelVersions, selectModel } from '../store/models.ts';

export interface CatalogEntry {
  model: ModelRecord;
  /** Ready versions, oldest first. */
  versions: ModelVersionRecord[];
}

export interface ResolvedVersion {
  model: ModelRecord;
  version: ModelVersionRecord;
}

/** What serving depends on in an entry: the model's identity and settings and its ready versions. */
function fingerprint(entry: CatalogEntry | undefined): string {
  if (!entry) return '';
  const versions = entry.versions.map((version) => `${version.version}:${version.artifactSha256}`);
  return JSON.stringify([entry.model.id, entry.model.settings, versions]);
}

export class Catalog {
  /** tenantId → model name → entry */
  private readonly byTenant = new Map<string, Map<string, CatalogEntry>>();

  constructor(private readonly db: Db) {}

  async loadAll(): Promise<void> {
    const models = await listAllModels(this.db);
    const versions = await listModelVersions(
      this.db,
      models.map((model) => model.id),
    );
    this.byTenant.clear();
    for (const model of models) {
      this.set(
        model,
        versions.filter((version) => version.modelId === model.id),
      );
    }
  }

  /** Re-reads one model; returns the entry before and after (so callers can release what it held). */
  async refresh(tenantId: string, name: string) {
    const previous = this.byTenant.get(tenantId)?.get(name);
    const model = await selectModel(this.db, tenantId, name);
    if (model) this.set(model, await listModelVersions(this.db, [model.id]));
    else this.byTenant.get(tenantId)?.delete(name);
    const current = this.byTenant.get(tenantId)?.get(name);
    // A change announced by this process arrives again through LISTEN; it then changes nothing.
    const changed = fingerprint(previous) !== fingerprint(current);
    return { previous, current, changed };
  }

  private set(model: ModelRecord, versions: ModelVersionRecord[]): void {
    let models = this.byTenant.get(model.tenantId);
    if (!models) this.byTenant.set(model.tenantId, (models = new Map()));
    models.set(model.name, { model, versions: versions.filter((version) => version.status === 'ready') });
  }

  private entryOf(tenantId: string, name: string): CatalogEntry {
    const entry = this.byTenant.get(tenantId)?.get(name);
    if (!entry || entry.versions.length === 0) {
      throw new ModelgateError('model_not_found', `model "${name}" not found`, { details: { model: name } });
    }
    return entry;
  }

  /** The named version, or the newest ready one; `model_not_found`/`version_not_found` otherwise. */
  resolve(tenantId: string, name: string, version?: number): ResolvedVersion {
    const entry = this.entryOf(tenantId, name);
    const found =
      version === undefined ? entry.versions.at(-1) : entry.versions.find((v) => v.version === version);
    if (!found) {
      throw new ModelgateError('version_not_found', `model "${name}" has no version ${version}`, {
        details: { model: name, version },
      });
    }
    return { model: entry.model, version: found };
  }

  /** The ready versions of a model, oldest first; `model_not_found` if it has none. */
  versionsOf(tenantId: string, name: string): ModelVersionRecord[] {
    return this.entryOf(tenantId, name).versions;
  }

  /** Every model this catalogue holds or the database has, once each: what a full refresh re-reads. */
  async knownModels(): Promise<{ tenantId: string; name: string }[]> {
    const models = new Map<string, { tenantId: string; name: string }>();
    for (const { tenantId, name } of [
      ...this.entries().map((entry) => entry.model),
      ...(await listAllModels(this.db)),
    ]) {
      models.set(JSON.stringify([tenantId, name]), { tenantId, name });
    }
    return [...models.values()];
  }

  entries(): CatalogEntry[] {
    return [...this.byTenant.values()].flatMap((models) => [...models.values()]);
  }
}
