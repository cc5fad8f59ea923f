// Turns an `Authorization: Bearer mg_…` header into a principal. Keys are cached in memory so that
// real-time requests do not touch the database; a revocation drops the cached key at once in this
// process and, through a change notice, in every other process on the same database.
import { ModelgateError } from '../errors.ts';
import { isConnectionLoss, type Db } from '../store/db.ts';
import type { ApiKeyRecord } from '../store/keys.ts';
import { selectApiKeyByDigest } from '../store/keys.ts';
import { selectTenant } from '../store/tenants.ts';
import { digestKey, digestsEqual, grants, type Scope } from './keys.ts';

export interface Principal {
  keyId: string;
  tenantId: string;
  /** The tenant may create and see other tenants. */
  operator: boolean;
  scopes: string[];
}

interface CachedKey {
  record: ApiKeyRecord | undefined;
  operator: boolean;
  loadedAtMs: number;
}

export interface AuthenticatorOptions {
  /** How long a looked-up key is trusted without asking the database again. Default 60 000 ms. */
  cacheTtlMs: number;
  /** How long an unknown key is remembered as unknown (limits database load from bad keys). Default 1 000 ms. */
  negativeCacheTtlMs: number;
}

const MAX_CACHED_KEYS = 10_000;

export class Authenticator {
  private readonly cache = new Map<string, CachedKey>();
  private readonly loading = new Map<string, Promise<CachedKey>>();
  /** Bumped by forgetKey, so that reads which started before a revocation are not cached. */
  private generation = 0;

  constructor(
    private readonly db: Db,
    private readonly options: AuthenticatorOptions = { cacheTtlMs: 60_000, negativeCacheTtlMs: 1_000 },
  ) {}

  async authenticate(authorization: string | undefined): Promise<Principal> {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!match) {
      throw new ModelgateError('unauthenticated', 'send an API key as "Authorization: Bearer <key>"');
    }
    const cached = await this.lookup(match[1]!);
    const record = cached.record;
    if (!record) throw new ModelgateError('unauthenticated', 'the API key is not valid');
    if (record.revokedAt) throw new ModelgateError('key_revoked', 'the API key has been revoked');
    if (record.expiresAt && record.expiresAt.getTime() <= Date.now()) {
      throw new ModelgateError('key_expired', 'the API key has expired');
    }
    return { keyId: record.id, tenantId: record.tenantId, operator: cached.operator, scopes: record.scopes };
  }

  /**
   * The stored key for a presented one. Cached by the presented key itself, so a hit costs no hashing
   * (SHA-256 on every request was 2.6% of the event loop at 13k req/s, bench/realtime.ts); the key is in
   * this process's memory while a request carries it anyway. Concurrent misses share one database read.
   * A known key whose time is up is kept for another cacheTtlMs when the database cannot be reached, so
   * that real-time requests, which need nothing else of it, keep answering (and do not each wait out a
   * database that stopped answering). Revocations made meanwhile are applied when it is back: its change
   * listener reconnects and every key is forgotten.
   */
  private lookup(presented: string): Promise<CachedKey> {
    const cached = this.cache.get(presented);
    const ttl = cached?.record ? this.options.cacheTtlMs : this.options.negativeCacheTtlMs;
    if (cached && performance.now() - cached.loadedAtMs < ttl) return Promise.resolve(cached);
    let loading = this.loading.get(presented);
    if (!loading) {
      const generation = this.generation;
      const started = this.load(presented)
        .catch((error: unknown) => {
          if (!cached?.record || generation !== this.generation || !isConnectionLoss(error)) throw error;
          const kept = { ...cached, loadedAtMs: performance.now() };
          this.cache.set(presented, kept);
          return kept;
        })
        .finally(() => {
          if (this.loading.get(presented) === started) this.loading.delete(presented);
        });
      this.loading.set(presented, (loading = started));
    }
    return loading;
  }

  private async load(presented: string): Promise<CachedKey> {
    const generation = this.generation;
    const digest = digestKey(presented);
    const found = await selectApiKeyByDigest(this.db, digest);
    // The lookup is by digest; comparing again in constant time keeps timing independent of near-misses.
    const record = found && digestsEqual(found.digest, digest) ? found : undefined;
    const tenant = record && (await selectTenant(this.db, record.tenantId));
    const fresh = { record, operator: tenant?.operator ?? false, loadedAtMs: performance.now() };
    // A key forgotten while this read was under way may have been read before its revocation: answer this
    // request with it, but do not cache it.
    if (generation !== this.generation) return fresh;
    // Bounded: a flood of made-up keys evicts the oldest entries instead of growing memory.
    if (this.cache.size >= MAX_CACHED_KEYS) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(presented, fresh);
    return fresh;
  }

  /**
   * Forgets a key (it was revoked), so the next request with it reads the database. Without an id
   * (revocations may have been missed) every key is read again at its next request, but kept in case the
   * database cannot be reached then, as for a key whose time is up.
   */
  forgetKey(keyId?: string): void {
    this.generation++;
    this.loading.clear();
    for (const [presented, cached] of this.cache) {
      if (keyId === undefined) this.cache.set(presented, { ...cached, loadedAtMs: -Infinity });
      else if (cached.record?.id === keyId) this.cache.delete(presented);
    }
  }
}

/** Passes when the key grants `scope`, or any one of several. */
export function requireScope(principal: Principal, scope: Scope | readonly Scope[]): void {
  const anyOf: readonly Scope[] = typeof scope === 'string' ? [scope] : scope;
  if (!anyOf.some((needed) => grants(principal.scopes, needed))) {
    const names = anyOf.map((needed) => `"${needed}"`).join(' or ');
    throw new ModelgateError('forbidden', `this API key lacks the ${names} scope`, {
      details: { requiredScope: anyOf.length === 1 ? anyOf[0] : anyOf },
    });
  }
}
