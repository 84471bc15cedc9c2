import type { FastifyInstance } from 'fastify';
import { randomUUID } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { oneOf } from '../../protocol/resources.ts';
import type { AppDeps } from '../app.ts';
import { hashToken, newSecretToken } from '../auth/tokens.ts';

const CreateToken = Type.Object(
  { role: oneOf(['viewer', 'operator', 'admin'] as const), description: Type.Optional(Type.String({ maxLength: 200 })) },
  { additionalProperties: false },
);

/** API tokens: shown once when created, stored only as a hash. */
export function registerTokenRoutes(app: FastifyInstance, deps: AppDeps): void {
  app.post<{ Body: Static<typeof CreateToken> }>(
    '/v1/tokens',
    { config: { access: 'admin' }, schema: { tags: ['tokens'], summary: 'Create an API token for a role', body: CreateToken } },
    async (request, reply) => {
      const token = newSecretToken('dla');
      const createdAt = new Date(deps.now()).toISOString();
      const id = randomUUID();
      await deps.store.insertApiToken({ id, tokenHash: hashToken(token), role: request.body.role, description: request.body.description ?? '', createdAt, expiresAt: null, revokedAt: null });
      void reply.status(201);
      return { id, role: request.body.role, token, createdAt };
    },
  );
}
