/**
 * What the audit trail says about an API call: whether it is recorded at all, its action name,
 * its target and a few safe details. Pure, so the rules can be read and tested in one place.
 * Nothing here copies a request body: only named fields that cannot hold a secret.
 */

/** `all`: every call of the route is recorded; `failures`: only refusals and errors (device data intake, session renewals). */
export type AuditPolicy = 'all' | 'failures';

/**
 * Action names for the routes that have one; any other route is recorded as `METHOD /pattern`
 * (so a new route is never left out; give it a name here). `{param}` is replaced by that parameter.
 */
export const auditActions: Readonly<Record<string, string>> = {
  'POST /v1/apply': 'apply',
  'POST /v1/tokens': 'token.create',
  'POST /v1/tokens/:id/revoke': 'token.revoke',
  'POST /v1/enroll-tokens': 'enroll-token.create',
  'POST /v1/enroll-tokens/:id/revoke': 'enroll-token.revoke',
  'POST /v1/tenants': 'tenant.create',
  'POST /v1/devices/:name/accept': 'device.accept',
  'POST /v1/devices/:name/revoke': 'device.revoke',
  'POST /v1/devices/:name/exec': 'device.exec',
  'GET /v1/devices/:name/terminal': 'device.terminal',
  'POST /v1/enroll': 'device.enroll',
  'POST /v1/device/session': 'device.session',
  'POST /v1/device/status': 'device.status',
  'POST /v1/device/telemetry': 'device.telemetry',
  'POST /v1/rollouts/:name/:action': 'rollout.{action}',
  'POST /v1/deployments/:name/rollback': 'deployment.rollback',
  'POST /v1/artifacts': 'artifact.push',
};

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Mutating calls are recorded, and every refused authentication (401, 403) on any route, reads
 * included: that is a token or a device trying what it may not. Reads that succeed are not (the
 * devices' poll is the hot path), nor are calls shed under load or by the rate limiter (429, 503):
 * nothing was decided, and a storm of them must not cost a write each when the server is busiest.
 */
export function shouldAudit(call: { method: string; status: number; access: string | undefined; policy: AuditPolicy | undefined }): boolean {
  if (call.status === 429 || call.status === 503) return false;
  if (call.status === 401 || call.status === 403) return true;
  if (READS.has(call.method)) return false;
  const policy = call.policy ?? (call.access === 'device' ? 'failures' : 'all');
  return policy === 'all' || call.status >= 400;
}

export function auditAction(method: string, route: string, params: unknown): string {
  const named = auditActions[`${method} ${route}`];
  if (!named) return `${method} ${route}`;
  return named.replace(/\{([a-zA-Z]+)\}/g, (_, key: string) => clip(field(params, key)) ?? key);
}

/** The target (a name from the route's parameters or, for the few calls that name it in their body, from there) and safe details. */
export function auditTarget(route: string, params: unknown, body: unknown): { target: string | null; detail: Record<string, unknown> } {
  const detail: Record<string, unknown> = {};
  if (route === '/v1/apply') {
    const resources = Array.isArray(field(body, 'resources')) ? (field(body, 'resources') as unknown[]) : [];
    const names = resources.slice(0, 100).map((r) => `${clip(field(r, 'kind')) ?? '?'}/${clip(field(field(r, 'metadata'), 'name')) ?? '?'}`);
    if (names.length > 0) detail.resources = names;
    if (resources.length > names.length) detail.more = resources.length - names.length;
    return { target: names.length === 1 ? names[0]! : resources.length > 1 ? `${resources.length} resources` : null, detail };
  }
  const role = clip(field(body, 'role'));
  if (role) detail.role = role;
  const toRevision = field(body, 'toRevision');
  if (typeof toRevision === 'number' && Number.isFinite(toRevision)) detail.toRevision = toRevision;
  const site = clip(field(body, 'site'));
  if (site) detail.site = site;
  // `name` of a route, then the device an enrollment or a session names (its token or signature is never read).
  const target = clip(field(params, 'name')) ?? clip(field(params, 'id')) ?? clip(field(params, 'device')) ?? clip(field(body, 'name')) ?? clip(field(body, 'device'));
  return { target: target ?? null, detail };
}

/** The error code of a JSON error answer (`{ error: { code } }`), without trusting its shape. */
export function errorCodeOf(payload: unknown): string | null {
  const text = typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : null;
  if (text === null || text.length > 65_536) return null;
  try {
    const code = field(field(JSON.parse(text), 'error'), 'code');
    return typeof code === 'string' ? code.slice(0, 100) : null;
  } catch {
    return null;
  }
}

function field(value: unknown, key: string): unknown {
  return value !== null && typeof value === 'object' && Object.hasOwn(value, key) ? (value as Record<string, unknown>)[key] : undefined;
}

function clip(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value.slice(0, 253) : undefined;
}
