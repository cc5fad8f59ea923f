// The model registry: uploads become content-addressed artifacts and numbered versions whose signature
// is read from the model itself (an ONNX file, or a team's program started once to say it is ready). A
// model the runtime cannot load is refused and nothing is kept.
import { Readable } from 'node:stream';
import type { ArtifactStore } from '../artifacts/store.ts';
import { isArchiveFile } from '../artifacts/unpack.ts';
import { ModelgateError } from '../errors.ts';
import { isPlainObject } from '../json.ts';
import type { Runtime } from '../runtime/runtime.ts';
import { publishChange } from '../store/changes.ts';
import type { Db } from '../store/db.ts';
import type { ModelRecord, ModelVersionRecord } from '../store/models.ts';
import { scheduleArtifactRemovals } from '../store/artifacts.ts';
import {
  deleteModel,
  deleteModelVersion,
  insertModelVersion,
  listModels,
  listModelVersions,
  mergeModelSettings,
  selectModel,
  upsertModel,
} from '../store/models.ts';
import { modelSettingsSchema, type ModelSettings } from './settings.ts';

export const MODEL_NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$/;

export interface ModelWithVersions {
  model: ModelRecord;
  versions: ModelVersionRecord[];
}

export interface RegistryOptions {
  db: Db;
  artifacts: ArtifactStore;
  /**
   * The runtime of what is uploaded: `program` for an archive (.tar.gz or .zip) of a team's program with its
   * manifest, `file` for anything else (an ONNX file); a JSON deployment names one of `definitions`
   * (`http`: a server the team runs).
   */
  runtimes: { file: Runtime; program: Runtime; definitions: readonly Runtime[] };
  uploadLimitBytes: number;
  /** Called after a model changed in this process (to refresh caches before answering). */
  onModelChanged(tenantId: string, name: string): Promise<void>;
}

export function checkModelName(name: string): void {
  if (!MODEL_NAME_PATTERN.test(name)) {
    throw new ModelgateError(
      'bad_request',
      'a model name is 1-128 letters, digits, ".", "_" or "-", starting with a letter or digit',
      { details: { model: name } },
    );
  }
}

export function parseModelSettings(input: unknown): ModelSettings {
  const result = modelSettingsSchema.safeParse(input);
  if (!result.success) {
    throw new ModelgateError('bad_request', `invalid model settings: ${result.error.issues[0]?.message}`, {
      details: { issues: result.error.issues.map((issue) => ({ path: issue.path, message: issue.message })) },
    });
  }
  return result.data;
}

export class Registry {
  constructor(private readonly options: RegistryOptions) {}

  /**
   * Stores a new version of `name` from an uploaded file: an ONNX file, or an archive of a program, whose
   * manifest the upload's `manifest` fields may give or override.
   */
  deploy(tenantId: string, name: string, source: Readable, manifest?: Record<string, unknown>) {
    const { file, program } = this.options.runtimes;
    return this.store(
      tenantId,
      name,
      source,
      async (path) => {
        const archive = await isArchiveFile(path);
        if (manifest !== undefined && !archive) {
          throw new ModelgateError(
            'bad_request',
            "a manifest goes with a program's archive (.tar.gz or .zip); this upload is not one",
          );
        }
        return archive ? program : file;
      },
      manifest,
    );
  }

  /**
   * Stores a new version of `name` from a JSON deployment naming its runtime (`{"runtime": "http", …}`);
   * the definition is its artifact, content-addressed like a file.
   */
  deployDefinition(tenantId: string, name: string, definition: unknown) {
    const named = isPlainObject(definition) ? definition.runtime : undefined;
    const { definitions } = this.options.runtimes;
    const runtime = definitions.find((candidate) => candidate.name === named);
    if (!runtime) {
      const names = definitions.map((candidate) => `"${candidate.name}"`).join(', ');
      throw new ModelgateError(
        'bad_request',
        `a JSON deployment names its runtime, one of ${names}, as "runtime"; send an ONNX file or a ` +
          "program's archive as application/octet-stream or multipart/form-data",
        { details: { runtime: named ?? null } },
      );
    }
    const source = Readable.from([Buffer.from(JSON.stringify(definition))]);
    return this.store(tenantId, name, source, async () => runtime, undefined);
  }

  private async store(
    tenantId: string,
    name: string,
    source: Readable,
    runtimeOf: (path: string) => Promise<Runtime>,
    manifest: Record<string, unknown> | undefined,
  ) {
    checkModelName(name);
    const { db, artifacts } = this.options;
    const staged = await artifacts.stage(source, this.options.uploadLimitBytes);
    let runtime: Runtime;
    let inspected;
    try {
      if (staged.sizeBytes === 0) throw new ModelgateError('bad_request', 'the upload is empty');
      runtime = await runtimeOf(staged.path);
      inspected = await runtime.inspect(staged.path, manifest);
      if (inspected.signature.inputs.length === 0) {
        throw new ModelgateError('invalid_model', 'the model has no inputs');
      }
      await staged.commit();
    } catch (error) {
      await staged.discard();
      throw error;
    }
    const result = await db.transaction(async (tx) => {
      const model = await upsertModel(tx, tenantId, name);
      const version = await insertModelVersion(tx, model.id, {
        runtime: runtime.name,
        runtimeSettings: inspected.settings,
        artifactSha256: staged.sha256,
        sizeBytes: staged.sizeBytes,
        signature: inspected.signature,
      });
      await publishChange(tx, { kind: 'model', tenantId, name });
      return { model, version };
    });
    await this.options.onModelChanged(tenantId, name);
    return result;
  }

  async get(tenantId: string, name: string): Promise<ModelWithVersions> {
    const model = await selectModel(this.options.db, tenantId, name);
    if (!model)
      throw new ModelgateError('model_not_found', `model "${name}" not found`, { details: { model: name } });
    return { model, versions: await listModelVersions(this.options.db, [model.id]) };
  }

  async list(tenantId: string): Promise<ModelWithVersions[]> {
    const models = await listModels(this.options.db, tenantId);
    const versions = await listModelVersions(
      this.options.db,
      models.map((model) => model.id),
    );
    return models.map((model) => ({ model, versions: versions.filter((v) => v.modelId === model.id) }));
  }

  /** Sets the given settings and keeps the others (PATCH semantics). */
  async updateSettings(tenantId: string, name: string, settings: ModelSettings): Promise<ModelWithVersions> {
    const { model } = await this.get(tenantId, name);
    await this.options.db.transaction(async (tx) => {
      await mergeModelSettings(tx, model.id, settings);
      await publishChange(tx, { kind: 'model', tenantId, name });
    });
    await this.options.onModelChanged(tenantId, name);
    return this.get(tenantId, name);
  }

  /**
   * Removes the model (or one version). Its artifacts go by the rule for every artifact: once nothing refers
   * to them for the grace period (another deploy may be storing the same bytes right now).
   */
  async remove(tenantId: string, name: string, version?: number): Promise<void> {
    const { model, versions } = await this.get(tenantId, name);
    const doomed = versions.filter((v) => version === undefined || v.version === version);
    if (doomed.length === 0) {
      throw new ModelgateError('version_not_found', `model "${name}" has no version ${version}`, {
        details: { model: name, version },
      });
    }
    await this.options.db.transaction(async (tx) => {
      if (version === undefined) await deleteModel(tx, tenantId, name);
      else await deleteModelVersion(tx, model.id, version);
      await scheduleArtifactRemovals(
        tx,
        doomed.map((v) => v.artifactSha256),
      );
      await publishChange(tx, { kind: 'model', tenantId, name });
    });
    await this.options.onModelChanged(tenantId, name);
  }
}
