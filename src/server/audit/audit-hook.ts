import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuditLog } from './audit-log.ts';
import { auditAction, auditTarget, errorCodeOf, shouldAudit, type AuditPolicy } from './describe.ts';

export type Who = { actor: string; role: string | null; tenant: string | null };

declare module 'fastify' {
  interface FastifyContextConfig {
    /** What of this route the audit trail records (describe.ts): by default every call that changes something, and every refusal. */
    audit?: AuditPolicy;
  }
  interface FastifyRequest {
    /** What a route adds to its audit entry (an id it created, a decision it took): names and numbers, never a secret. */
    auditDetail: Record<string, unknown> | null;
    /** The target, when the route knows it better than its parameters say (the id of a token it created). */
    auditTarget: string | null;
    /** Who presented a credential that was then refused (set by authentication): the token's id, role and tenant. */
    auditWho: Who | null;
  }
}

/** Where a refusal is recorded when the caller cannot be tied to a tenant (an unknown token). */
export const UNATTRIBUTED_TENANT = 'default';

/**
 * Records API calls in the audit trail as their answers leave: who (the request's actor, or for a
 * refused token the id of the token presented, never its secret), what (the action, its target),
 * when, from where (the peer address) and the outcome (status and error code). Entries are
 * submitted in the order the answers leave. A success waits until its entry is durable, so a
 * caller never holds an acknowledgement the trail does not; a refusal does not wait (a flood of
 * them must not queue behind the database), and the server waits for those entries on close.
 */
export function registerAuditHook(app: FastifyInstance, deps: { audit: AuditLog }): void {
  app.decorateRequest('auditDetail', null);
  app.decorateRequest('auditTarget', null);
  app.decorateRequest('auditWho', null);
  app.addHook('onSend', async (request, reply, payload) => {
    const route = request.routeOptions.url;
    // No route matched (a 404 for an unknown path): nothing was called.
    if (!route) return payload;
    const config = request.routeOptions.config;
    const status = reply.statusCode;
    if (!shouldAudit({ method: request.method, status, access: config.access, policy: config.audit })) return payload;
    const lost = (error: unknown) => request.log.error({ err: error, route, status }, 'audit entry could not be recorded');
    let recorded: Promise<unknown>;
    try {
      const who = request.auditWho ?? presented(request);
      const { target, detail } = auditTarget(route, request.params, request.body);
      recorded = deps.audit.record({
        tenant: request.tenant ?? who.tenant ?? UNATTRIBUTED_TENANT,
        actor: request.actor ?? who.actor,
        role: request.role ?? who.role,
        action: auditAction(request.method, route, request.params),
        target: request.auditTarget ?? target,
        sourceIp: request.ip,
        status,
        error: status >= 400 ? (errorCodeOf(payload) ?? 'unknown') : null,
        detail: { ...detail, ...request.auditDetail },
      });
    } catch (error) {
      recorded = Promise.reject(error);
    }
    // The call itself has happened: losing its entry is logged loudly, never turned into a failed answer.
    if (status < 400) await recorded.catch(lost);
    else void recorded.catch(lost);
    return payload;
  });
  app.addHook('onClose', async () => deps.audit.idle());
}

/** A request refused before it was tied to a token: did it present one the server does not know, or none? */
function presented(request: FastifyRequest): Who {
  const access = request.routeOptions.config.access;
  const takesApiToken = access !== undefined && access !== 'public' && access !== 'device';
  return { actor: takesApiToken && request.headers.authorization?.startsWith('Bearer ') ? 'unknown-token' : 'anonymous', role: null, tenant: null };
}
