// /v1/tenants, /v1/keys and /v1/webhook-secret: tenants (operator admins only create them), the API keys
// of a tenant, and the secret its webhooks are signed with.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { SCOPES } from '../../auth/keys.ts';
import type { ApiKeyRecord } from '../../store/keys.ts';
import type { Tenant } from '../../store/tenants.ts';
import { principalOf, type HttpDeps } from '../context.ts';
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

export function registerAccountRoutes(app: FastifyInstance, { accounts }: HttpDeps): void {
  app.post('/v1/tenants', { config: { scope: 'admin' } }, async (request, reply) => {
    const { name } = parseWith(tenantBody, request.body);
    const { tenant, key } = await accounts.createTenant(principalOf(request), name);
    return reply
      .status(201)
      .send({ ...serializeTenant(tenant), admin_key: { ...serializeKey(key.record), key: key.secret } });
  });

  app.get('/v1/tenants', { config: { scope: 'admin' } }, async (request) => ({
    tenants: (await accounts.listTenants(principalOf(request))).map(serializeTenant),
  }));

  app.get<{ Params: { id: string } }>('/v1/tenants/:id', { config: { scope: 'admin' } }, async (request) =>
    serializeTenant(await accounts.getTenant(principalOf(request), request.params.id)),
  );

  app.post('/v1/keys', { config: { scope: 'admin' } }, async (request, reply) => {
    const body = parseWith(keyBody, request.body);
    const expiresAt = body.expires_at
      ? new Date(body.expires_at)
      : body.expires_in_seconds
        ? new Date(Date.now() + body.expires_in_seconds * 1000)
        : null;
    const created = await accounts.createKey(principalOf(request).tenantId, {
      name: body.name,
      scopes: body.scopes,
      expiresAt,
    });
    return reply.status(201).send({ ...serializeKey(created.record), key: created.secret });
  });

  app.get('/v1/keys', { config: { scope: 'admin' } }, async (request) => ({
    keys: (await accounts.listKeys(principalOf(request).tenantId)).map(serializeKey),
  }));

  app.get<{ Params: { id: string } }>('/v1/keys/:id', { config: { scope: 'admin' } }, async (request) =>
    serializeKey(await accounts.getKey(principalOf(request).tenantId, request.params.id)),
  );

  app.delete<{ Params: { id: string } }>('/v1/keys/:id', { config: { scope: 'admin' } }, async (request) =>
    serializeKey(await accounts.revokeKey(principalOf(request).tenantId, request.params.id)),
  );

  app.get('/v1/webhook-secret', { config: { scope: 'admin' } }, async (request) => ({
    secret: await accounts.webhookSecret(principalOf(request).tenantId),
  }));
  app.post('/v1/webhook-secret/rotate', { config: { scope: 'admin' } }, async (request) => ({
    secret: await accounts.rotateWebhookSecret(principalOf(request).tenantId),
  }));
}
