import swagger from '@fastify/swagger';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Type, type TSchema } from '@sinclair/typebox';
import { DriftlessError } from '../protocol/errors.ts';
import { admitResponse, createAdmission, DEFAULT_ADMISSION, type AdmissionConfig } from './admission.ts';
import { problems } from '../protocol/validate.ts';
import type { DesiredService } from './desired/desired-service.ts';
import type { Presence } from './presence.ts';
import type { RolloutEngine } from './rollout/rollout-engine.ts';
import type { Store } from './store/store.ts';
import { createSessionCache, hashToken } from './auth/tokens.ts';
import { registerArtifactRoutes, type ArtifactDeps } from './routes/artifacts.ts';
import { registerDeviceRoutes } from './routes/device-protocol.ts';
import { registerResourceRoutes } from './routes/resources.ts';
import { registerRolloutRoutes } from './routes/rollouts.ts';
import { registerTelemetryRoutes } from './routes/telemetry.ts';
import { registerMetricsRoute } from './telemetry/metrics.ts';
import { registerTokenRoutes } from './routes/tokens.ts';
import { createStatusWriter, createTelemetryWriter } from './status-writer.ts';

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
  logger?: boolean;
  /** Where uploaded artifacts live and the key that signs them; without it, artifact routes answer 503. */
  artifacts?: ArtifactDeps;
  /** Limits on costly device requests at once (DEFAULT_ADMISSION when absent). */
  admission?: AdmissionConfig;
};

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: deps.logger ?? false,
    bodyLimit: 4 * 1024 * 1024,
    return503OnClosing: true,
    // The router refuses some URLs before any route or error handler runs (a malformed escape, an over-long
    // parameter); they get the same `{ error: { code, message } }` body as every other error.
    frameworkErrors: (error, _request, reply) => {
      const status = error.statusCode ?? 400;
      void (reply as FastifyReply).status(status).send({ error: { code: status >= 500 ? 'internal' : 'invalid-input', message: error.message } });
    },
  });
  app.decorateRequest('device', null);
  app.decorateRequest('role', null);
  app.decorateRequest('tenant', null);
  app.decorateRequest('actor', null);
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

  app.addHook('onRoute', (route) => {
    if (!route.config?.access && !route.url.startsWith('/documentation')) {
      throw new Error(`route ${route.method} ${route.url} declares no access rule`);
    }
    // A query parameter no route reads is a mistake (say `?dryRun=true`) and is refused, not ignored.
    route.schema = { ...route.schema, querystring: route.schema?.querystring ?? NoQuery };
    // A route-level hook, after authentication: other routes pay nothing for admission control.
    if (route.config?.admission) route.onRequest = [...[route.onRequest ?? []].flat(), async (_request, reply) => reply.admit()];
  });

  const sessions = createSessionCache(deps.sessionSecret);
  app.addHook('onRequest', async (request) => {
    const access = request.routeOptions.config.access;
    if (!access || access === 'public') return;
    const token = bearer(request);
    if (access === 'device') {
      const session = token ? sessions.read(token, deps.now()) : null;
      if (!session) throw new DriftlessError('unauthorized', 'device session missing or expired; authenticate again');
      request.device = session.device;
      request.actor = `device:${session.device}`;
      request.tenant = 'default';
      return;
    }
    if (!token) throw new DriftlessError('unauthorized', 'no API token: pass --token or set DRIFTLESS_TOKEN');
    const record = await deps.store.findApiToken(hashToken(token));
    const expired = record?.expiresAt && Date.parse(record.expiresAt) <= deps.now();
    if (!record || record.revokedAt || expired) throw new DriftlessError('unauthorized', 'API token is unknown, revoked or expired');
    const role = record.role as Role;
    if (roleRank[role] < roleRank[access]) throw new DriftlessError('forbidden', `this needs the ${access} role; the token has ${role}`);
    request.role = role;
    request.actor = `token:${record.id}`;
    request.tenant = 'default';
  });

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

  const writers = { statusWriter: createStatusWriter(deps.store), telemetryWriter: createTelemetryWriter(deps.store) };
  registerDeviceRoutes(app, { ...deps, ...writers });
  registerTelemetryRoutes(app, { ...deps, ...writers });
  registerMetricsRoute(app, { ...deps, ...writers });
  registerResourceRoutes(app, deps);
  registerRolloutRoutes(app, deps);
  registerTokenRoutes(app, deps);
  registerArtifactRoutes(app, deps);
  return app;
}

function bearer(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (!header?.startsWith('Bearer ')) return null;
  return header.slice(7).trim() || null;
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
