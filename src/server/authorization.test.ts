import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { generateKeyPair, loadPrivateKey, sessionChallenge, signText, type KeyPairText } from '../protocol/signing.ts';
import type { Access } from './app.ts';
import { assembleServer } from './assemble.ts';
import { hashToken } from './auth/tokens.ts';
import { migrateToLatest } from './store/migrate.ts';
import { openSqlite } from './store/sqlite.ts';
import { createSqlStore, type Store } from './store/store.ts';
import { createArtifactFiles } from './artifacts/artifact-files.ts';

/**
 * The route × role × tenant walk. Every route the server registers must be classified in RULES
 * below — its expected access and how to address a resource of a given tenant — or this suite
 * fails: a new route cannot ship without an authorization rule and a tenancy check.
 *
 * Two tenants, north and south, each hold the same kinds of resource (a device, a site, a
 * Deployment and its rollout, an incident, an artifact, tokens). Every caller (no credentials, a
 * device session, viewer, operator and admin tokens, of each tenant) calls every route, at its own
 * tenant's resource and at the other tenant's. Expected: 401 without a fitting credential, 403 below
 * the route's role, 404 for the other tenant's resource (exactly as for a missing one), and the
 * route's own answer otherwise; a list never shows the other tenant's names.
 */

const ROOT = 'root-admin-token';
const START = Date.parse('2025-06-01T12:00:00.000Z');
const TENANTS = ['north', 'south'] as const;
type TenantName = (typeof TENANTS)[number];
type Caller = 'none' | 'device' | 'viewer' | 'operator' | 'admin';
const CALLERS: Caller[] = ['none', 'device', 'viewer', 'operator', 'admin'];
const rank: Record<Caller, number> = { none: -1, device: -1, viewer: 0, operator: 1, admin: 2 };

type Fixture = {
  tenant: TenantName;
  tokens: Record<'viewer' | 'operator' | 'admin', string>;
  enrollToken: string;
  device: { name: string; token: string; keys: KeyPairText };
  artifact: string;
};
type Request = { url: string; body?: unknown; octets?: Buffer };
type Ctx = { h: Harness; caller: Fixture; target: Fixture };

/**
 * How a route is expected to answer. `at` builds the request addressing `target`'s resource
 * (called once per call: it may make a fresh resource for a route that changes it). Without
 * `scoped`, the route names no resource of a tenant (a list, a create): it is called for the
 * caller's own tenant only and its answer must not mention the other tenant.
 */
type Rule = {
  access: Access;
  /** The answer of an allowed call on the caller's own resource; 'reached' accepts any answer past authorization and lookup (not 401, 403 or 404). */
  ok: number | 'reached';
  scoped: boolean;
  at: (ctx: Ctx) => Request | Promise<Request>;
  /** Only the server operator (an admin of the 'default' tenant) may call it: every tenant's admin gets 403. */
  serverOnly?: true;
  /**
   * The answer repeats what the tenant's own callers sent (the audit trail keeps a refused attempt at
   * another tenant's name, as typed): instead of no other tenant's names, every entry is the caller's tenant's.
   */
  echoesCallers?: true;
};

const dev = (ctx: Ctx) => ctx.target.device.name;
let fresh = 0;
const unique = (prefix: string) => `${prefix}-${++fresh}`;

const RULES: Record<string, Rule> = {
  // Public: no credential, no tenant.
  'GET /healthz': { access: 'public', ok: 200, scoped: false, at: () => ({ url: '/healthz' }) },
  'GET /v1/openapi.json': { access: 'public', ok: 200, scoped: false, at: () => ({ url: '/v1/openapi.json' }) },
  'POST /v1/enroll': { access: 'public', ok: 'reached', scoped: false, at: () => ({ url: '/v1/enroll', body: {} }) },
  'POST /v1/device/session': { access: 'public', ok: 'reached', scoped: false, at: () => ({ url: '/v1/device/session', body: {} }) },
  // The dashboard's files and pages (dashboard.ts): public. An unknown API path under it stays a JSON 404, built or not.
  'GET /*': { access: 'public', ok: 'reached', scoped: false, at: () => ({ url: '/v1/no-such-route' }) },

  // The device's own routes: its session says which device and tenant.
  'GET /v1/device/keys': { access: 'device', ok: 200, scoped: false, at: () => ({ url: '/v1/device/keys' }) },
  'GET /v1/device/desired-state': { access: 'device', ok: 200, scoped: false, at: () => ({ url: '/v1/device/desired-state' }) },
  'POST /v1/device/status': {
    access: 'device',
    ok: 200,
    scoped: false,
    at: () => ({ url: '/v1/device/status', body: { generation: 1, reportedAt: new Date(START).toISOString(), components: [], events: [] } }),
  },
  'POST /v1/device/telemetry': { access: 'device', ok: 200, scoped: false, at: () => ({ url: '/v1/device/telemetry', body: { records: [], dropped: 0 } }) },
  'GET /v1/device/artifacts/:digest': { access: 'device', ok: 200, scoped: true, at: (ctx) => ({ url: `/v1/device/artifacts/${ctx.target.artifact}` }) },
  // A WebSocket: a plain GET is past authorization when it is not 401/403.
  'GET /v1/device/channel': { access: 'device', ok: 'reached', scoped: false, at: () => ({ url: '/v1/device/channel' }) },

  // Reading the fleet.
  'GET /v1/devices': { access: 'viewer', ok: 200, scoped: false, at: () => ({ url: '/v1/devices' }) },
  'GET /v1/devices/:name': { access: 'viewer', ok: 200, scoped: true, at: (ctx) => ({ url: `/v1/devices/${dev(ctx)}` }) },
  'GET /v1/devices/:name/logs': { access: 'viewer', ok: 200, scoped: true, at: (ctx) => ({ url: `/v1/devices/${dev(ctx)}/logs` }) },
  'GET /v1/devices/:name/metrics': { access: 'viewer', ok: 200, scoped: true, at: (ctx) => ({ url: `/v1/devices/${dev(ctx)}/metrics` }) },
  'GET /v1/drift': { access: 'viewer', ok: 200, scoped: false, at: () => ({ url: '/v1/drift' }) },
  'GET /v1/sites': { access: 'viewer', ok: 200, scoped: false, at: () => ({ url: '/v1/sites' }) },
  'GET /v1/sites/:name': { access: 'viewer', ok: 200, scoped: true, at: (ctx) => ({ url: `/v1/sites/${ctx.target.tenant}-site` }) },
  'GET /v1/deployments': { access: 'viewer', ok: 200, scoped: false, at: () => ({ url: '/v1/deployments' }) },
  'GET /v1/deployments/:name': { access: 'viewer', ok: 200, scoped: true, at: (ctx) => ({ url: `/v1/deployments/${ctx.target.tenant}-app` }) },
  'GET /v1/rollouts': { access: 'viewer', ok: 200, scoped: false, at: () => ({ url: '/v1/rollouts' }) },
  'GET /v1/rollouts/:name': { access: 'viewer', ok: 200, scoped: true, at: (ctx) => ({ url: `/v1/rollouts/${ctx.target.tenant}-app-1` }) },
  'GET /v1/incidents': { access: 'viewer', ok: 200, scoped: false, at: () => ({ url: '/v1/incidents' }) },
  'GET /v1/incidents/:name': { access: 'viewer', ok: 200, scoped: true, at: (ctx) => ({ url: `/v1/incidents/${ctx.target.tenant}-app-1-incident` }) },
  'GET /v1/incidents/:name/markdown': { access: 'viewer', ok: 200, scoped: true, at: (ctx) => ({ url: `/v1/incidents/${ctx.target.tenant}-app-1-incident/markdown` }) },
  'GET /v1/artifacts': { access: 'viewer', ok: 200, scoped: false, at: () => ({ url: '/v1/artifacts' }) },
  'GET /metrics': { access: 'viewer', ok: 200, scoped: false, at: () => ({ url: '/metrics' }) },
  // The dashboard's views: one tenant's fleet each, from the caller's own snapshot.
  'GET /v1/whoami': { access: 'viewer', ok: 200, scoped: false, at: () => ({ url: '/v1/whoami' }) },
  'GET /v1/fleet/overview': { access: 'viewer', ok: 200, scoped: false, at: () => ({ url: '/v1/fleet/overview' }) },
  'GET /v1/fleet/devices': { access: 'viewer', ok: 200, scoped: false, at: () => ({ url: '/v1/fleet/devices?limit=500' }) },
  'GET /v1/fleet/sites': { access: 'viewer', ok: 200, scoped: false, at: () => ({ url: '/v1/fleet/sites?limit=500' }) },

  // Changing the fleet.
  'POST /v1/apply': {
    access: 'operator',
    ok: 200,
    scoped: true,
    // Labelling a Device names an existing resource: another tenant's reads as not enrolled.
    at: (ctx) => ({ url: '/v1/apply', body: { resources: [{ apiVersion: 'driftless/v1', kind: 'Device', metadata: { name: dev(ctx), labels: { tier: 'store', touched: 'yes' } } }] } }),
  },
  'POST /v1/rollouts/:name/:action': { access: 'operator', ok: 200, scoped: true, at: (ctx) => ({ url: `/v1/rollouts/${ctx.target.tenant}-app-1/pause` }) },
  'POST /v1/deployments/:name/rollback': { access: 'operator', ok: 'reached', scoped: true, at: (ctx) => ({ url: `/v1/deployments/${ctx.target.tenant}-app/rollback`, body: {} }) },
  'POST /v1/artifacts': {
    access: 'operator',
    ok: 201,
    scoped: false,
    at: () => {
      const version = unique('v');
      return { url: `/v1/artifacts?name=tool&version=${version}`, octets: Buffer.from(`bytes of ${version}`) };
    },
  },
  'POST /v1/devices/:name/accept': { access: 'operator', ok: 200, scoped: true, at: (ctx) => ({ url: `/v1/devices/${dev(ctx)}/accept` }) },
  'POST /v1/devices/:name/revoke': {
    access: 'operator',
    ok: 200,
    scoped: true,
    // Each call revokes a device of its own: the fixture's device must keep working for the rest of the walk.
    at: async (ctx) => ({ url: `/v1/devices/${(await enrolled(ctx.h, ctx.target, unique(`${ctx.target.tenant}-victim`))).name}/revoke` }),
  },

  // Remote access (terminal over WebSocket, exec, recordings): operator or above. No agent is connected here,
  // so an allowed call is answered past authorization (the device is not reachable), never 401, 403 or 404.
  'GET /v1/devices/:name/terminal': { access: 'operator', ok: 'reached', scoped: true, at: (ctx) => ({ url: `/v1/devices/${dev(ctx)}/terminal` }) },
  'POST /v1/devices/:name/exec': { access: 'operator', ok: 'reached', scoped: true, at: (ctx) => ({ url: `/v1/devices/${dev(ctx)}/exec`, body: { command: ['true'] } }) },
  'GET /v1/recordings': { access: 'operator', ok: 200, scoped: false, at: () => ({ url: '/v1/recordings' }) },
  // No recording exists in this walk: every caller allowed in gets 404 alike, which shows no other tenant's.
  'GET /v1/recordings/:id': { access: 'operator', ok: 404, scoped: true, at: (ctx) => ({ url: `/v1/recordings/${ctx.target.tenant}-recording` }) },

  // Credentials and the tenant's own records: admin.
  'POST /v1/tokens': { access: 'admin', ok: 201, scoped: false, at: () => ({ url: '/v1/tokens', body: { role: 'viewer', description: 'made by the walk' } }) },
  'GET /v1/tokens': { access: 'admin', ok: 200, scoped: false, at: () => ({ url: '/v1/tokens' }) },
  'POST /v1/tokens/:id/revoke': {
    access: 'admin',
    ok: 200,
    scoped: true,
    at: async (ctx) => ({ url: `/v1/tokens/${await apiTokenId(ctx.h, ctx.target)}/revoke` }),
  },
  'POST /v1/enroll-tokens': { access: 'admin', ok: 201, scoped: false, at: () => ({ url: '/v1/enroll-tokens', body: { autoAccept: false, uses: 1 } }) },
  'GET /v1/enroll-tokens': { access: 'admin', ok: 200, scoped: false, at: () => ({ url: '/v1/enroll-tokens' }) },
  'POST /v1/enroll-tokens/:id/revoke': {
    access: 'admin',
    ok: 200,
    scoped: true,
    at: async (ctx) => ({ url: `/v1/enroll-tokens/${await enrollTokenId(ctx.h, ctx.target)}/revoke` }),
  },
  'GET /v1/audit': { access: 'admin', ok: 200, scoped: false, echoesCallers: true, at: () => ({ url: '/v1/audit' }) },
  'GET /v1/audit/verify': { access: 'admin', ok: 200, scoped: false, at: () => ({ url: '/v1/audit/verify' }) },
  'GET /v1/tenants': { access: 'admin', ok: 200, scoped: false, at: () => ({ url: '/v1/tenants' }) },
  'POST /v1/tenants': { access: 'admin', ok: 201, scoped: false, serverOnly: true, at: () => ({ url: '/v1/tenants', body: { name: unique('tenant') } }) },
};

// ---- the server under test ----

type Harness = { app: FastifyInstance; store: Store; close(): Promise<void> };

async function harness(): Promise<Harness> {
  const db = openSqlite(':memory:');
  await migrateToLatest(db);
  const store = createSqlStore(db);
  const nowIso = new Date(START).toISOString();
  await store.insertApiToken({ id: 'root', tokenHash: hashToken(ROOT), role: 'admin', description: 'server operator', createdAt: nowIso, expiresAt: null, revokedAt: null });
  const artifactDir = mkdtempSync(join(tmpdir(), 'driftless-authz-'));
  // The walk makes hundreds of refused calls from one address: the rate limit on failed authentication is another test's subject.
  const unlimited = { capacity: 1e9, refillPerSecond: 1e9 };
  const authLimits = { perSource: unlimited, perIdentity: unlimited, attemptCost: 1, failureCost: 1 };
  const { app } = await assembleServer({ store, now: () => START, signing: generateKeyPair(), sessionSecret: randomBytes(32), pollSeconds: 30, isOnline: () => true, artifactFiles: createArtifactFiles(artifactDir), authLimits });
  await app.ready();
  return {
    app,
    store,
    async close() {
      await app.close();
      await db.destroy();
      rmSync(artifactDir, { recursive: true, force: true });
    },
  };
}

function send(h: Harness, method: string, token: string | undefined, request: Request): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  if (request.octets) return h.app.inject({ method: method as 'POST', url: request.url, headers: { ...headers, 'content-type': 'application/octet-stream' }, payload: request.octets });
  if (request.body !== undefined) return h.app.inject({ method: method as 'POST', url: request.url, headers, payload: request.body as object });
  return h.app.inject({ method: method as 'GET', url: request.url, headers });
}

async function ok(reply: LightMyRequestResponse, status = 200): Promise<unknown> {
  assert.equal(reply.statusCode, status, reply.body.slice(0, 300));
  return reply.json();
}

async function enrolled(h: Harness, t: Fixture | { enrollToken: string }, name: string): Promise<Fixture['device']> {
  const keys = generateKeyPair();
  await ok(await send(h, 'POST', undefined, { url: '/v1/enroll', body: { token: t.enrollToken, name, labels: { tier: 'store' }, publicKey: keys.publicKey } }), 201);
  const timestamp = new Date(START).toISOString();
  const signature = signText(loadPrivateKey(keys.privateKey), sessionChallenge(name, timestamp));
  const { token } = (await ok(await send(h, 'POST', undefined, { url: '/v1/device/session', body: { device: name, timestamp, signature } }))) as { token: string };
  return { name, token, keys };
}

async function apiTokenId(h: Harness, t: Fixture): Promise<string> {
  return ((await ok(await send(h, 'POST', t.tokens.admin, { url: '/v1/tokens', body: { role: 'viewer' } }), 201)) as { id: string }).id;
}

async function enrollTokenId(h: Harness, t: Fixture): Promise<string> {
  return ((await ok(await send(h, 'POST', t.tokens.admin, { url: '/v1/enroll-tokens', body: { autoAccept: true } }), 201)) as { id: string }).id;
}

/** A tenant with one of everything, made through the API as its admin would. */
async function tenantFixture(h: Harness, tenant: TenantName): Promise<Fixture> {
  const made = (await ok(await send(h, 'POST', ROOT, { url: '/v1/tenants', body: { name: tenant } }), 201)) as { admin: { token: string } };
  const admin = made.admin.token;
  const tokenFor = async (role: string) => ((await ok(await send(h, 'POST', admin, { url: '/v1/tokens', body: { role } }), 201)) as { token: string }).token;
  const tokens = { viewer: await tokenFor('viewer'), operator: await tokenFor('operator'), admin };
  const { token: enrollToken } = (await ok(await send(h, 'POST', admin, { url: '/v1/enroll-tokens', body: { autoAccept: true } }), 201)) as { token: string };
  const device = await enrolled(h, { enrollToken }, `${tenant}-dev`);
  const resources = [
    { apiVersion: 'driftless/v1', kind: 'Site', metadata: { name: `${tenant}-site` }, spec: { timeZone: 'UTC' } },
    // The same name in both tenants: names are per tenant, so neither learns of the other's.
    { apiVersion: 'driftless/v1', kind: 'Site', metadata: { name: 'shared', labels: { owner: tenant } }, spec: {} },
    {
      apiVersion: 'driftless/v1',
      kind: 'Deployment',
      metadata: { name: `${tenant}-app` },
      spec: {
        selector: { matchLabels: { tier: 'store' } },
        template: { version: '1.0.0', components: [{ name: 'app', image: `registry.example/${tenant}:1` }] },
        strategy: { waves: [{ percent: 100 }] },
      },
    },
  ];
  await ok(await send(h, 'POST', tokens.operator, { url: '/v1/apply', body: { resources } }));
  await h.store.forTenant(tenant).putIncident({
    id: `${tenant}-app-1-incident`,
    rollout: `${tenant}-app-1`,
    deployment: `${tenant}-app`,
    state: 'open',
    title: `${tenant}-app-1 halted`,
    timeline: [],
    openedAt: new Date(START).toISOString(),
    closedAt: null,
  });
  const pushed = (await ok(await send(h, 'POST', tokens.operator, { url: `/v1/artifacts?name=${tenant}-tool&version=1`, octets: Buffer.from(`the ${tenant} tool`) }), 201)) as { sha256: string };
  return { tenant, tokens, enrollToken, device, artifact: pushed.sha256 };
}

function credential(caller: Caller, f: Fixture): string | undefined {
  if (caller === 'none') return undefined;
  if (caller === 'device') return f.device.token;
  return f.tokens[caller];
}

/** What a caller should get from a route, for a resource of its own tenant (`own`) or of the other. */
function expected(rule: Rule, caller: Caller, own: boolean): number | 'reached' | 'not-401' {
  if (rule.access === 'public') return 'not-401';
  if (caller === 'none') return 401;
  if (rule.access === 'device') return caller === 'device' ? (own ? rule.ok : 404) : 401;
  if (caller === 'device') return 401;
  if (rank[caller] < rank[rule.access]) return 403;
  if (rule.serverOnly) return 403;
  return own ? rule.ok : 404;
}

describe('authorization: every route × role × tenant', () => {
  let h: Harness;
  const fixtures = {} as Record<TenantName, Fixture>;

  before(async () => {
    h = await harness();
    for (const tenant of TENANTS) fixtures[tenant] = await tenantFixture(h, tenant);
  });
  after(() => h.close());

  test('every registered route has a rule, and its declared access is the rule’s', () => {
    const registered = [...h.app.routeAccess].filter(([key]) => !key.startsWith('HEAD '));
    const missing = registered.filter(([key]) => !(key in RULES)).map(([key, access]) => `${key} (declares ${access})`);
    assert.deepEqual(missing, [], `routes without an authorization rule in authorization.test.ts: classify them in RULES`);
    for (const [key, access] of registered) assert.equal(access, RULES[key]!.access, `${key} declares ${access}; RULES says ${RULES[key]!.access}`);
    const stale = Object.keys(RULES).filter((key) => !h.app.routeAccess.has(key));
    assert.deepEqual(stale, [], 'RULES names routes the server no longer has');
  });

  for (const [key, rule] of Object.entries(RULES)) {
    const [method] = key.split(' ') as [string];
    test(key, async () => {
      if (!h.app.routeAccess.has(key)) return; // reported by the completeness test
      for (const callerTenant of TENANTS) {
        const other = TENANTS.find((t) => t !== callerTenant)!;
        for (const caller of CALLERS) {
          for (const targetTenant of rule.scoped ? TENANTS : [callerTenant]) {
            const own = targetTenant === callerTenant;
            const ctx: Ctx = { h, caller: fixtures[callerTenant], target: fixtures[targetTenant] };
            const request = await rule.at(ctx);
            const reply = await send(h, method, credential(caller, fixtures[callerTenant]), request);
            const want = expected(rule, caller, own);
            const what = `${key} as ${callerTenant} ${caller} at ${targetTenant}'s: ${reply.statusCode} ${reply.body.slice(0, 200)}`;
            // 503 only where an allowed call reaches a part this server lacks (no agent connected, no recordings).
            assert.ok(reply.statusCode < 500 || (want === 'reached' && reply.statusCode === 503), what);
            if (want === 'not-401') assert.notEqual(reply.statusCode, 401, what);
            else if (want === 'reached') assert.ok(![401, 403, 404].includes(reply.statusCode), what);
            else assert.equal(reply.statusCode, want, what);
            if (!own && reply.statusCode === 404) {
              // Another tenant's resource answers exactly as a missing one: nothing in the message tells it exists.
              const missing = await send(h, method, credential(caller, fixtures[callerTenant]), { ...request, url: request.url.replaceAll(`${targetTenant}-`, `${targetTenant}-nonexistent-`).replace(fixtures[targetTenant].artifact, 'f'.repeat(64)) });
              assert.equal(missing.statusCode, 404, `${what}; a missing one: ${missing.statusCode}`);
              assert.equal(reply.json().error.code, missing.json().error.code, what);
            }
            if (reply.statusCode < 300 && rule.echoesCallers) {
              const { entries } = reply.json() as { entries: { tenant: string }[] };
              assert.ok(entries.length > 0 && entries.every((e) => e.tenant === callerTenant), `${what}: entries of another tenant`);
            } else if (reply.statusCode < 300 && rule.access !== 'public') {
              const at = reply.body.indexOf(`${other}-`);
              assert.ok(at < 0, `${what}: the answer shows ${other}'s resources: …${reply.body.slice(Math.max(0, at - 300), at + 100)}`);
              assert.ok(!reply.body.includes(`"${other}"`), `${what}: the answer names tenant ${other}`);
            }
          }
        }
      }
    });
  }

  test("another tenant's resource changed nothing: labels, rollouts and devices of each stay its own", async () => {
    for (const tenant of TENANTS) {
      const f = fixtures[tenant];
      const device = (await ok(await send(h, 'GET', f.tokens.viewer, { url: `/v1/devices/${f.device.name}` }))) as { labels: Record<string, string>; status: string };
      assert.equal(device.status, 'accepted', 'the fixture device was not revoked by anyone');
      const shared = (await ok(await send(h, 'GET', f.tokens.viewer, { url: '/v1/sites/shared' }))) as { labels: Record<string, string> };
      assert.deepEqual(shared.labels, { owner: tenant }, 'a site name both tenants use is two sites');
    }
  });
});
