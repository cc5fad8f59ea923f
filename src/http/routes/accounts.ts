// /v1/tenants and /v1/keys: tenants (operator admins only create them) and the API keys of a tenant.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { createKey, createTenant, listKeys, revokeKey } from '../../auth/accounts.ts';
import { SCOPES } from '../../auth/keys.ts';
import { ModelgateError } from '../../errors.ts';
import type { ApiKeyRecord } from '../../store/keys.ts';
import type { Tenant } from '../../store/tenants.ts';
import { listTenants, selectTenant } from '../../store/tenants.ts';
import { principalOf, type HttpDeps } from '../server.ts';
import { parseWith } from '../validation.ts';

const tenantBody = z
  .object({ name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lowercase letters, digits, "_" or "-"') })
  .strict();
/** 100 years: beyond it the expiry leaves the range of a Date (and would fail as a 500, not a 400). */
const MAX_EXPIRES_IN_SECONDS = 100 * 365 * 24 * 60 * 60;
const keyBody = z
  .object({
    name: z.string().max(200).optional(),
    scopes: z.array(z.enum(SCOPES)).min(1),
    expires_at: z.iso
      .datetime({ offset: true })
      .refine((value) => Date.parse(value) > Date.now(), 'must be in the future')
      .optional(),
    expires_in_seconds: z.number().int().positive().max(MAX_EXPIRES_IN_SECONDS).optional(),
  })
  .strict()
  .refine(
    (body) => !(body.expires_at && body.expires_in_seconds),
    'give expires_at or expires_in_seconds, not both',
  );

export function serializeTenant(tenant: Tenant) {
  return { id: tenant.id, name: tenant.name, operator: tenant.operator, created_at: tenant.createdAt };
}

export function serializeKey(key: ApiKeyRecord) {
  return {
    id: key.id,
    tenant_id: key.tenantId,
    name: key.name,
    prefix: key.displayPrefix,
    scopes: key.scopes,
    expires_at: key.expiresAt,
    revoked_at: key.revokedAt,
    created_at: key.createdAt,
  };
}

export function registerAccountRoutes(app: FastifyInstance, { db, authenticator }: HttpDeps): void {
  app.post('/v1/tenants', { config: { scope: 'admin' } }, async (request, reply) => {
    if (!principalOf(request).operator) {
      throw new ModelgateError('forbidden', 'only admin keys of the operator tenant create tenants');
    }
    const { name } = parseWith(tenantBody, request.body);
    const { tenant, key } = await createTenant(db, name);
    return reply
      .status(201)
      .send({ ...serializeTenant(tenant), admin_key: { ...serializeKey(key.record), key: key.secret } });
  });

  app.get('/v1/tenants', { config: { scope: 'admin' } }, async (request) => {
    const principal = principalOf(request);
    const tenants = principal.operator ? await listTenants(db) : [await selectTenant(db, principal.tenantId)];
    return { tenants: tenants.filter((tenant) => tenant !== undefined).map(serializeTenant) };
  });

  app.get<{ Params: { id: string } }>('/v1/tenants/:id', { config: { scope: 'admin' } }, async (request) => {
    const principal = principalOf(request);
    const tenant =
      principal.operator || request.params.id === principal.tenantId
        ? await selectTenant(db, request.params.id)
        : undefined;
    if (!tenant) throw new ModelgateError('not_found', `tenant "${request.params.id}" not found`);
    return serializeTenant(tenant);
  });

  app.post('/v1/keys', { config: { scope: 'admin' } }, async (request, reply) => {
    const body = parseWith(keyBody, request.body);
    const expiresAt = body.expires_at
      ? new Date(body.expires_at)
      : body.expires_in_seconds
        ? new Date(Date.now() + body.expires_in_seconds * 1000)
        : null;
    const created = await createKey(db, principalOf(request).tenantId, {
      name: body.name,
      scopes: body.scopes,
      expiresAt,
    });
    return reply.status(201).send({ ...serializeKey(created.record), key: created.secret });
  });

  app.get('/v1/keys', { config: { scope: 'admin' } }, async (request) => ({
    keys: (await listKeys(db, principalOf(request).tenantId)).map(serializeKey),
  }));

  app.get<{ Params: { id: string } }>('/v1/keys/:id', { config: { scope: 'admin' } }, async (request) => {
    const key = (await listKeys(db, principalOf(request).tenantId)).find((k) => k.id === request.params.id);
    if (!key) throw new ModelgateError('not_found', `key "${request.params.id}" not found`);
    return serializeKey(key);
  });

  app.delete<{ Params: { id: string } }>('/v1/keys/:id', { config: { scope: 'admin' } }, async (request) => {
    const revoked = await revokeKey(db, principalOf(request).tenantId, request.params.id);
    authenticator.forgetKey(revoked.id);
    return serializeKey(revoked);
  });
}
