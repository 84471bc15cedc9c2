import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { DriftlessError } from '../../protocol/errors.ts';
import { MAX_AUDIT_PAGE, type AuditLog } from '../audit/audit-log.ts';

const AuditQuery = Type.Object(
  {
    since: Type.Optional(Type.String({ maxLength: 40 })),
    until: Type.Optional(Type.String({ maxLength: 40 })),
    actor: Type.Optional(Type.String({ maxLength: 300 })),
    action: Type.Optional(Type.String({ maxLength: 300 })),
    outcome: Type.Optional(Type.String({ maxLength: 40 })),
    // Query strings arrive as text: counts are digits, read as numbers after validation.
    after: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$', description: `at most ${MAX_AUDIT_PAGE}` })),
  },
  { additionalProperties: false },
);

/** The audit trail of the caller's tenant: list and filter it, verify its chain. Admins only. */
export function registerAuditRoutes(app: FastifyInstance, deps: { audit: AuditLog }): void {
  app.get<{ Querystring: Static<typeof AuditQuery> }>(
    '/v1/audit',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['audit'],
        summary: 'Audit entries in chain order: after, limit; since, until (ISO 8601); actor; action (a trailing * matches a prefix); outcome (ok, failed, denied, a status, an error code)',
        querystring: AuditQuery,
      },
    },
    async (request) => {
      const { after, limit, ...filters } = request.query;
      const pageSize = limit === undefined ? MAX_AUDIT_PAGE : Number(limit);
      if (pageSize < 1 || pageSize > MAX_AUDIT_PAGE) throw new DriftlessError('invalid-input', `limit: must be from 1 to ${MAX_AUDIT_PAGE}`);
      return deps.audit.list(request.tenant!, { ...filters, ...(after === undefined ? {} : { after: Number(after) }), limit: pageSize });
    },
  );

  app.get(
    '/v1/audit/verify',
    { config: { access: 'admin' }, schema: { tags: ['audit'], summary: "Walks the tenant's audit hash chain; names the first broken entry" } },
    async (request) => deps.audit.verify(request.tenant!),
  );
}
