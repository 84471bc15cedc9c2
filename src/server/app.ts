import swagger from '@fastify/swagger';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Type, type TSchema } from '@sinclair/typebox';
import { DriftlessError } from '../protocol/errors.ts';
import { admitResponse, createAdmission, DEFAULT_ADMISSION, type AdmissionConfig } from './admission.ts';
import { clip, problems } from '../protocol/validate.ts';
import type { DesiredService } from './desired/desired-service.ts';
import type { Presence } from './presence.ts';
import type { RolloutEngine } from './rollout/rollout-engine.ts';
import type { Store } from './store/store.ts';
import { createSessionCache, hashToken } from './auth/tokens.ts';
import { createDeviceGate, type DeviceGate } from './auth/device-gate.ts';
import { createTenantScope } from './auth/tenant-scope.ts';
import { registerTenantRoutes } from './routes/tenants.ts';
import { registerDeviceCredentialRoutes } from './routes/device-credentials.ts';
import { registerArtifactRoutes, type ArtifactDeps } from './routes/artifacts.ts';
import { registerDeviceRoutes } from './routes/device-protocol.ts';
import { registerResourceRoutes } from './routes/resources.ts';
import { registerRolloutRoutes } from './routes/rollouts.ts';
import { registerTelemetryRoutes } from './routes/telemetry.ts';
import { registerMetricsRoute } from './telemetry/metrics.ts';
import { registerTokenRoutes } from './routes/tokens.ts';
import { registerTerminalRoutes } from './routes/terminal.ts';
import { registerAuditRoutes } from './routes/audit.ts';
import { registerAuditHook } from './audit/audit-hook.ts';
import { DEFAULT_DASHBOARD_DIR, registerDashboard } from './dashboard.ts';
import { createFleetIndex } from './fleet/fleet-index.ts';
import { registerFleetRoutes } from './routes/fleet.ts';
import type { AuditLog } from './audit/audit-log.ts';
import type { DeviceChannels } from './terminal/device-channels.ts';
import type { Recordings } from './terminal/recordings.ts';
import { createStatusWriter, createTelemetryWriter } from './status-writer.ts';
import { serverLoggerOptions, type ServerLogger } from './log-redaction.ts';
import { createAuthLimiter, DEFAULT_AUTH_LIMITS, type AuthLimitConfig } from './rate-limit.ts';

const NoQuery = Type.Object({}, { additionalProperties: false });

export type Role = 'viewer' | 'operator' | 'admin';
/** Who may call a route. Every route declares it; one without is refused at start-up. */
export type Access = 'public' | 'device' | Role;
const roleRank: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
    /** Costly work (a signature check, a write): waits for a turn under admission control, or is refused as busy. */
    admission?: boolean;
    /** The route checks a credential carried in its body (enrolment, a device session): rate-limited per source, and per the identity its body field names. */
    authAttempt?: { identity: string };
  }
  interface FastifyInstance {
    /** Every route's declared access, by `METHOD /path` (HEAD included): what the authorization test walks. */
    routeAccess: ReadonlyMap<string, Access>;
  }
  interface FastifyReply {
    /** Takes a turn under admission control for the rest of this request (for a route that knows only late that it is costly). */
    admit(): Promise<void>;
  }
  interface FastifyRequest {
    device: string | null;
    role: Role | null;
    /** The organization whose fleet this request may see and change (every authenticated request has one). */
    tenant: string | null;
    /** Who is calling, for the audit trail: `token:<id>` for an API token, `device:<name>` for a device. */
    actor: string | null;
  }
}

export type AppDeps = {
  store: Store;
  desired: DesiredService;
  rollouts: RolloutEngine;
  presence: Presence;
  serverKey: { publicKey: string; keyId: string };
  sessionSecret: Buffer;
  now: () => number;
  pollSeconds: number;
  offlineAfterMs: number;
  /** The server's log; secrets are redacted from it (log-redaction.ts). */
  logger?: ServerLogger;
  /** Serve HTTPS with this certificate and key (PEM); responses then carry Strict-Transport-Security. */
  tls?: { cert: string; key: string };
  /** How fast one source may try credentials (DEFAULT_AUTH_LIMITS when absent). */
  authLimits?: AuthLimitConfig;
  /** Where uploaded artifacts live and the key that signs them; without it, artifact routes answer 503. */
  artifacts?: ArtifactDeps;
  /** Every connected agent's channel (hints, terminal, exec); `disconnect` drops a revoked device at once. */
  channels: DeviceChannels;
  /** Where terminal and exec sessions are recorded; without it, the server opens no remote sessions (503). */
  recordings?: Recordings;
  /** Limits on costly device requests at once (DEFAULT_ADMISSION when absent). */
  admission?: AdmissionConfig;
  /** The audit trail (audit/): API calls are recorded by a hook; terminal and exec sessions call `audit.record` themselves. */
  audit: AuditLog;
  /** Devices refused despite a valid session (pending, revoked); loaded from the store when absent. */
  deviceGate?: DeviceGate;
  /** With several server replicas: the URL of the replica a device's channel is open to, if another one's (cluster.ts). */
  locateDevice?: (device: string) => Promise<string | null>;
  /** The built dashboard (web/dist) to serve at `/`; null serves none (the API only). DEFAULT_DASHBOARD_DIR when absent. */
  dashboardDir?: string | null;
  /** How old a fleet snapshot the dashboard's views may answer from (fleet-index.ts); 1 s when absent. */
  fleetSnapshotMs?: number;
};

/**
 * What route plugins get: `store` is confined to the calling request's tenant (tenant-scope.ts);
 * `serverStore` sees every tenant and is only for what must find its tenant first (enrollment by
 * token, a device's session by its name).
 */
export type RouteDeps = AppDeps & { serverStore: Store; deviceGate: DeviceGate };

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const secureHeaders = (reply: FastifyReply) => {
    void reply.header('x-content-type-options', 'nosniff');
    if (!reply.hasHeader('x-frame-options')) void reply.header('x-frame-options', 'DENY');
    void reply.header('referrer-policy', 'no-referrer');
    if (!reply.hasHeader('content-security-policy')) void reply.header('content-security-policy', "default-src 'none'; frame-ancestors 'none'");
    // API answers may hold secrets (a new token) or fleet state: no cache keeps them.
    if (!reply.hasHeader('cache-control')) void reply.header('cache-control', 'no-store');
    if (deps.tls) void reply.header('strict-transport-security', 'max-age=31536000');
  };
  const app = Fastify({
    logger: serverLoggerOptions(deps.logger),
    ...(deps.tls ? { https: deps.tls } : {}),
    bodyLimit: 4 * 1024 * 1024,
    return503OnClosing: true,
    // The router refuses some URLs before any route or error handler runs (a malformed escape, an over-long
    // parameter); they get the same `{ error: { code, message } }` body as every other error.
    frameworkErrors: (error, _request, reply) => {
      const status = error.statusCode ?? 400;
      secureHeaders(reply as FastifyReply);
      void (reply as FastifyReply).status(status).send({ error: { code: status >= 500 ? 'internal' : 'invalid-input', message: clip(error.message, 200) } });
    },
  });
  // Before any hook and route: WebSocket routes (device channel, terminal) are served, and an upgrade
  // refused by a hook (authentication, say) has its socket closed by the plugin's own hooks, which
  // must therefore run first. Frames are small JSON.
  // The subprotocol chosen is never the one carrying a token (see bearer()), so no secret is echoed back.
  await app.register(websocket, {
    options: { maxPayload: 256 * 1024, handleProtocols: (offered) => [...offered].find((p) => !p.startsWith(BEARER_SUBPROTOCOL)) ?? false },
  });
  app.decorateRequest('device', null);
  app.decorateRequest('role', null);
  app.decorateRequest('tenant', null);
  app.decorateRequest('actor', null);
  // Before every route: each mutating call and each refusal is recorded as its answer leaves.
  registerAuditHook(app, { audit: deps.audit });
  const admission = createAdmission(deps.admission ?? DEFAULT_ADMISSION);
  app.decorateReply('admit', function (this: FastifyReply) {
    return admitResponse(admission, this.raw);
  });

  // One validator for the whole product: the protocol's TypeBox schemas, with messages that name the field.
  app.setValidatorCompiler(({ schema, httpPart }) => (data: unknown) => {
    const [first] = problems(schema as TSchema, data, 1);
    if (!first) return { value: data };
    return { error: new DriftlessError('invalid-input', `${httpPart === 'body' ? 'request body' : httpPart}: ${first.field}: ${first.message}`) };
  });

  const routeAccess = new Map<string, Access>();
  app.decorate('routeAccess', routeAccess);
  app.addHook('onRoute', (route) => {
    if (!route.config?.access && !route.url.startsWith('/documentation')) {
      throw new Error(`route ${route.method} ${route.url} declares no access rule`);
    }
    if (route.config?.access) for (const method of [route.method].flat()) routeAccess.set(`${method} ${route.url}`, route.config.access);
    // A query parameter no route reads is a mistake (say `?dryRun=true`) and is refused, not ignored.
    route.schema = { ...route.schema, querystring: route.schema?.querystring ?? NoQuery };
    // A route-level hook, after authentication: other routes pay nothing for admission control.
    if (route.config?.admission) route.onRequest = [...[route.onRequest ?? []].flat(), async (_request, reply) => reply.admit()];
    // Once the body is read: an identity (a device name) that has failed too often waits, whichever address asks.
    if (route.config?.authAttempt) route.preHandler = [...[route.preHandler ?? []].flat(), async (request) => authLimits.check(null, attemptIdentity(request))];
  });

  // Guessing credentials runs dry: attempts and failures are counted per source (rate-limit.ts).
  const authLimits = createAuthLimiter(deps.authLimits ?? DEFAULT_AUTH_LIMITS, deps.now);
  const attemptIdentity = (request: FastifyRequest): string | null => {
    const field = request.routeOptions.config.authAttempt?.identity;
    const value = field ? (request.body as Record<string, unknown> | null | undefined)?.[field] : undefined;
    return typeof value === 'string' ? `device:${value}` : null;
  };
  const takesApiToken = (request: FastifyRequest) => {
    const access = request.routeOptions.config.access;
    return access !== undefined && access !== 'public' && access !== 'device';
  };
  app.addHook('onRequest', async (request) => {
    const attempt = request.routeOptions.config.authAttempt !== undefined;
    if (attempt || (takesApiToken(request) && request.headers.authorization !== undefined)) authLimits.check(request.ip);
    if (attempt) authLimits.attempt(request.ip);
  });
  app.addHook('onSend', async (request, reply, payload) => {
    const attempt = request.routeOptions.config.authAttempt !== undefined;
    const failed = reply.statusCode === 401 || (attempt && reply.statusCode === 403);
    if (failed && (attempt || takesApiToken(request))) authLimits.failed(request.ip, attemptIdentity(request));
    return payload;
  });

  // Secure headers on every answer; a route that sets its own (the dashboard's pages, a conditional GET) keeps them.
  app.addHook('onSend', async (_request, reply, payload) => {
    secureHeaders(reply);
    // A WebSocket route asked without an upgrade: @fastify/websocket answers an empty 404; say what the route wants.
    if (reply.statusCode === 404 && (payload === undefined || payload === null || payload === '')) {
      void reply.status(426).header('upgrade', 'websocket').type('application/json; charset=utf-8');
      return JSON.stringify({ error: { code: 'invalid-input', message: 'this route speaks WebSocket: connect with an "Upgrade: websocket" request' } });
    }
    return payload;
  });

  const sessions = createSessionCache(deps.sessionSecret);
  const tenantScope = createTenantScope();
  const deviceGate = deps.deviceGate ?? createDeviceGate();
  if (!deps.deviceGate) await deviceGate.load(deps.store);
  app.addHook('onRequest', async (request) => {
    const access = request.routeOptions.config.access;
    if (!access || access === 'public') return;
    const token = bearer(request);
    if (access === 'device') {
      const session = token ? sessions.read(token, deps.now()) : null;
      if (!session) throw new DriftlessError('unauthorized', 'device session missing or expired; authenticate again');
      // In memory, so a revoked device is refused on its next request, whatever its session says.
      const refused = deviceGate.refusal(session.device);
      if (refused) throw new DriftlessError('forbidden', refused === 'pending' ? `device "${session.device}" is pending approval` : `device "${session.device}" is revoked`);
      request.device = session.device;
      request.actor = `device:${session.device}`;
      request.tenant = session.tenant;
      return;
    }
    if (!token) throw new DriftlessError('unauthorized', 'no API token: pass --token or set DRIFTLESS_TOKEN');
    const record = await deps.store.findApiToken(hashToken(token));
    // The audit trail names a token it refuses below, by id (never its secret), in its own tenant.
    if (record) request.auditWho = { actor: `token:${record.id}`, role: record.role, tenant: record.tenant ?? 'default' };
    const expired = record?.expiresAt && Date.parse(record.expiresAt) <= deps.now();
    if (!record || record.revokedAt || expired) throw new DriftlessError('unauthorized', 'API token is unknown, revoked or expired');
    const role = record.role as Role;
    if (roleRank[role] < roleRank[access]) throw new DriftlessError('forbidden', `this needs the ${access} role; the token has ${role}`);
    request.role = role;
    request.actor = `token:${record.id}`;
    request.tenant = record.tenant ?? 'default';
  });
  // The handler, and all it awaits, runs as the request's tenant: the routes' store is confined to it.
  app.addHook('preHandler', (request, _reply, done) => tenantScope.run(request.tenant, done));

  app.setErrorHandler((error: FastifyError | DriftlessError, _request, reply) => {
    const { status, code, message } = describeError(error);
    if (status >= 500) app.log.error(error);
    if (error instanceof DriftlessError && error.retryAfterMs !== null) void reply.header('retry-after', String(Math.max(1, Math.ceil(error.retryAfterMs / 1000))));
    void reply.status(status).send({ error: { code, message } });
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send({ error: { code: 'not-found', message: `no such route: ${request.method} ${request.url.split('?')[0]}` } });
  });

  await app.register(swagger, {
    openapi: {
      info: { title: 'Driftless API', version: '1' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  app.get('/v1/openapi.json', { config: { access: 'public' }, schema: { hide: true } }, async () => app.swagger());
  app.get('/healthz', { config: { access: 'public' }, schema: { hide: true } }, async () => ({ ok: true }));

  // Status and telemetry are written by device name, for devices of every tenant: the server-wide store.
  const writers = { statusWriter: createStatusWriter(deps.store), telemetryWriter: createTelemetryWriter(deps.store) };
  const routeDeps: RouteDeps = { ...deps, store: tenantScope.store(deps.store), serverStore: deps.store, deviceGate };
  registerDeviceRoutes(app, { ...routeDeps, ...writers });
  registerTelemetryRoutes(app, { ...routeDeps, ...writers });
  registerMetricsRoute(app, { ...routeDeps, ...writers });
  registerResourceRoutes(app, routeDeps);
  registerRolloutRoutes(app, routeDeps);
  registerTokenRoutes(app, routeDeps);
  registerTenantRoutes(app, routeDeps);
  registerDeviceCredentialRoutes(app, routeDeps);
  registerArtifactRoutes(app, routeDeps);
  registerTerminalRoutes(app, routeDeps);
  registerAuditRoutes(app, routeDeps);
  const fleetIndex = createFleetIndex({ presence: deps.presence, clock: { now: deps.now, offlineAfterMs: deps.offlineAfterMs }, ...(deps.fleetSnapshotMs === undefined ? {} : { maxAgeMs: deps.fleetSnapshotMs }) });
  registerFleetRoutes(app, { ...routeDeps, fleetIndex });
  registerDashboard(app, deps.dashboardDir === undefined ? DEFAULT_DASHBOARD_DIR : deps.dashboardDir);
  return app;
}

/** A browser cannot set headers on a WebSocket: it offers its token as the subprotocol `driftless.bearer.<token>` instead. */
export const BEARER_SUBPROTOCOL = 'driftless.bearer.';

function bearer(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (header?.startsWith('Bearer ')) return header.slice(7).trim() || null;
  const offered = request.headers.upgrade?.toLowerCase() === 'websocket' ? request.headers['sec-websocket-protocol'] : undefined;
  const token = offered?.split(',').map((p) => p.trim()).find((p) => p.startsWith(BEARER_SUBPROTOCOL));
  return token ? token.slice(BEARER_SUBPROTOCOL.length) || null : null;
}

function describeError(error: FastifyError | DriftlessError): { status: number; code: string; message: string } {
  if (error instanceof DriftlessError) return { status: error.status, code: error.code, message: error.message };
  const cause = (error as { validation?: unknown; cause?: unknown }).cause;
  if (cause instanceof DriftlessError) return { status: cause.status, code: cause.code, message: cause.message };
  const status = error.statusCode ?? 500;
  if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return { status: 413, code: 'payload-too-large', message: 'request body is too large' };
  if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return { status: 415, code: 'invalid-input', message: 'request body must be application/json' };
  if (error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return { status: 400, code: 'invalid-input', message: 'request body is empty; expected JSON' };
  // A compressed body that does not inflate (truncated, corrupt) is the sender's problem.
  if (typeof error.code === 'string' && error.code.startsWith('Z_')) return { status: 400, code: 'invalid-input', message: `request body is not valid gzip: ${error.message}` };
  if (status === 400 && error instanceof SyntaxError) return { status, code: 'invalid-input', message: `request body is not valid JSON: ${error.message}` };
  if (status >= 400 && status < 500) return { status, code: 'invalid-input', message: error.message };
  return { status: 500, code: 'internal', message: 'internal error; see the server log' };
}
