import type { FastifyInstance } from 'fastify';
import { randomUUID } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { DriftlessError } from '../../protocol/errors.ts';
import { Name } from '../../protocol/resources.ts';
import type { RouteDeps } from '../app.ts';
import { hashToken, newSecretToken } from '../auth/tokens.ts';

/** The tenant whose admins run the server itself: they alone create tenants (the first admin token is one of them). */
export const SERVER_TENANT = 'default';

const CreateTenant = Type.Object({ name: Name }, { additionalProperties: false });

/** Tenants: organizations with separate fleets. The server operator (an admin of 'default') creates them. */
export function registerTenantRoutes(app: FastifyInstance, deps: RouteDeps): void {
  app.post<{ Body: Static<typeof CreateTenant> }>(
    '/v1/tenants',
    { config: { access: 'admin' }, schema: { tags: ['tenants'], summary: 'Create a tenant and its first admin token (server operator only)', body: CreateTenant } },
    async (request, reply) => {
      if (request.tenant !== SERVER_TENANT) throw new DriftlessError('forbidden', `creating tenants needs an admin token of the "${SERVER_TENANT}" tenant (the server operator)`);
      const { name } = request.body;
      const createdAt = new Date(deps.now()).toISOString();
      const token = newSecretToken('dla');
      const id = randomUUID();
      await deps.serverStore.transaction(async (tx) => {
        if (await tx.getTenant(name)) throw new DriftlessError('conflict', `tenant "${name}" already exists`);
        await tx.insertTenant({ name, createdAt });
        await tx.forTenant(name).insertApiToken({ id, tokenHash: hashToken(token), role: 'admin', description: `first admin of ${name}`, createdAt, expiresAt: null, revokedAt: null });
      });
      void reply.status(201);
      return { name, createdAt, admin: { id, role: 'admin', token } };
    },
  );

  app.get('/v1/tenants', { config: { access: 'admin' }, schema: { tags: ['tenants'], summary: 'Tenants: every one for the server operator, its own for any other admin' } }, async (request) => {
    const tenants = request.tenant === SERVER_TENANT ? await deps.serverStore.listTenants() : await deps.store.listTenants();
    return tenants;
  });
}
