import type { FastifyInstance } from 'fastify';
import { randomUUID } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { DURATION_PATTERN, parseDuration } from '../../protocol/duration.ts';
import { DriftlessError } from '../../protocol/errors.ts';
import { oneOf } from '../../protocol/resources.ts';
import type { AppDeps } from '../app.ts';
import { hashToken, newSecretToken } from '../auth/tokens.ts';
import type { TokenRecord } from '../store/store.ts';

const Expires = Type.String({ pattern: DURATION_PATTERN, description: 'lifetime: a number and s, m, h, d or w (`30d`)' });
const CreateToken = Type.Object(
  { role: oneOf(['viewer', 'operator', 'admin'] as const), description: Type.Optional(Type.String({ maxLength: 200 })), expires: Type.Optional(Expires) },
  { additionalProperties: false },
);
const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });

/** When a token given `expires` (`30d`) stops working, as stored. */
export function expiryOf(expires: string | undefined, nowMs: number): string | null {
  if (expires === undefined) return null;
  const ms = parseDuration(expires);
  if (ms === null) throw new DriftlessError('invalid-input', `expires: "${expires}" is not a duration such as 30d, 12h or 15m`);
  return new Date(nowMs + ms).toISOString();
}

/** A token as listed: never its secret (the store has only its hash), with its state in words. */
export function tokenView(t: TokenRecord, nowMs: number) {
  const state = t.revokedAt ? 'revoked' : t.expiresAt && Date.parse(t.expiresAt) <= nowMs ? 'expired' : 'active';
  return { id: t.id, role: t.role, description: t.description, state, createdAt: t.createdAt, expiresAt: t.expiresAt, revokedAt: t.revokedAt };
}

/** API tokens: shown once when created, stored only as a hash. */
export function registerTokenRoutes(app: FastifyInstance, deps: AppDeps): void {
  app.post<{ Body: Static<typeof CreateToken> }>(
    '/v1/tokens',
    { config: { access: 'admin' }, schema: { tags: ['tokens'], summary: 'Create an API token for a role', body: CreateToken } },
    async (request, reply) => {
      const token = newSecretToken('dla');
      const createdAt = new Date(deps.now()).toISOString();
      const expiresAt = expiryOf(request.body.expires, deps.now());
      const id = randomUUID();
      // The store is the caller's tenant's: the token reaches that tenant's fleet and no other.
      await deps.store.insertApiToken({ id, tokenHash: hashToken(token), role: request.body.role, description: request.body.description ?? '', createdAt, expiresAt, revokedAt: null });
      request.auditTarget = `token:${id}`;
      void reply.status(201);
      return { id, role: request.body.role, token, createdAt, expiresAt };
    },
  );

  app.get('/v1/tokens', { config: { access: 'admin' }, schema: { tags: ['tokens'], summary: "This tenant's API tokens (never their secrets)" } }, async () => {
    const nowMs = deps.now();
    return (await deps.store.listApiTokens()).map((t) => tokenView(t, nowMs));
  });

  app.post<{ Params: Static<typeof IdParams> }>(
    '/v1/tokens/:id/revoke',
    { config: { access: 'admin' }, schema: { tags: ['tokens'], summary: 'Revoke an API token: it is refused from now on', params: IdParams } },
    async (request) => {
      const nowIso = new Date(deps.now()).toISOString();
      if (!(await deps.store.revokeApiToken(request.params.id, nowIso))) throw new DriftlessError('not-found', `token "${request.params.id}" not found`);
      return { id: request.params.id, revoked: true };
    },
  );
}
