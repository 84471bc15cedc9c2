import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import fc from 'fast-check';
import { generateKeyPair, loadPrivateKey, sessionChallenge, signText } from '../protocol/signing.ts';
import { assembleServer } from './assemble.ts';
import { hashToken } from './auth/tokens.ts';
import { migrateToLatest } from './store/migrate.ts';
import { openSqlite } from './store/sqlite.ts';
import { createSqlStore } from './store/store.ts';
import { pathsOf, replaced, routesOf } from '../../test/support/hostile-input.ts';
import { createArtifactFiles } from './artifacts/artifact-files.ts';

/**
 * The whole API, fed random and hostile requests in process: any registered route (found from the
 * router, so a new route is fuzzed without anyone remembering to), any method, random path
 * parameters and query strings, bodies shaped near each route's own schema (read from the OpenAPI
 * document) and then broken, wrong content types, and gzip garbage for telemetry. Never a 5xx
 * (but a deliberate 503 `unavailable`), and every 4xx is `{ error: { code, message } }` with a
 * message. DRIFTLESS_FUZZ_RUNS raises the number of runs (default 100 per property).
 */

const RUNS = Number(process.env.DRIFTLESS_FUZZ_RUNS ?? 100);
const ADMIN = `dla_${randomBytes(24).toString('base64url')}`;
const VIEWER = `dla_${randomBytes(24).toString('base64url')}`;
const ENROLL = `dle_${randomBytes(24).toString('base64url')}`;
const DEVICE = 'fuzz-device-1';

type JsonSchema = {
  type?: string | string[];
  const?: unknown;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  patternProperties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  maxItems?: number;
  minItems?: number;
};
type Operation = { requestBody?: { content?: Record<string, { schema?: JsonSchema }> }; parameters?: { in: string; name: string; schema?: JsonSchema }[] };
type Route = { method: string; path: string; body: JsonSchema | null; query: Record<string, JsonSchema> };

const anyJson = fc.jsonValue({ maxDepth: 3 });

/** Values shaped like a JSON schema says (then broken elsewhere): a valid-looking body gets past the outer checks. */
function shaped(schema: JsonSchema | undefined, depth = 0): fc.Arbitrary<unknown> {
  if (!schema || depth > 6) return anyJson;
  if ('const' in schema) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...schema.enum);
  const union = schema.anyOf ?? schema.oneOf;
  if (union && union.length > 0) return fc.oneof(...union.map((s) => shaped(s, depth + 1)));
  if (schema.allOf && schema.allOf.length > 0) return shaped(schema.allOf[0], depth + 1);
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'object': {
      if (schema.properties) {
        const members = Object.fromEntries(Object.entries(schema.properties).map(([key, s]) => [key, shaped(s, depth + 1)]));
        return fc.record(members, { requiredKeys: (schema.required ?? []).filter((key) => key in members) });
      }
      const [keyPattern, value] = Object.entries(schema.patternProperties ?? {})[0] ?? [];
      if (keyPattern) return fc.dictionary(safeMatching(keyPattern), shaped(value, depth + 1), { maxKeys: 3 });
      return fc.dictionary(fc.string({ maxLength: 8 }), anyJson, { maxKeys: 3 });
    }
    case 'array':
      return fc.array(shaped(schema.items, depth + 1), { minLength: Math.min(schema.minItems ?? 0, 3), maxLength: Math.max(Math.min(schema.maxItems ?? 3, 3), Math.min(schema.minItems ?? 0, 3)) });
    case 'string':
      if (schema.format === 'date-time') return fc.date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }).map((d) => d.toISOString());
      if (schema.pattern) return safeMatching(schema.pattern, schema.maxLength);
      return fc.string({ minLength: schema.minLength ?? 0, maxLength: Math.min(schema.maxLength ?? 20, 40) });
    case 'integer':
      return fc.integer({ min: Math.max(schema.minimum ?? -1000, -1e9), max: Math.min(schema.maximum ?? 1_000_000, 1e9) });
    case 'number':
      return fc.double({ noNaN: true, noDefaultInfinity: true, min: schema.minimum ?? -1e6, max: schema.maximum ?? 1e6 });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    default:
      return anyJson;
  }
}

function safeMatching(pattern: string, maxLength = 64): fc.Arbitrary<string> {
  try {
    return fc.stringMatching(new RegExp(pattern)).filter((s) => s.length <= maxLength);
  } catch {
    return fc.string({ maxLength: 20 });
  }
}


/** A body for a route: shaped by its schema, the same with one member replaced by anything, or any JSON at all. */
function bodyFor(route: Route): fc.Arbitrary<unknown> {
  const near = shaped(route.body ?? undefined);
  const broken = fc.tuple(near, fc.nat(), anyJson).map(([value, pick, replacement]) => {
    const paths = pathsOf(value);
    return replaced(value, paths[pick % paths.length]!, replacement);
  });
  return fc.oneof({ weight: 3, arbitrary: near }, { weight: 3, arbitrary: broken }, { weight: 1, arbitrary: anyJson });
}

const paramValue = fc.oneof(
  fc.constantFrom(DEVICE, 'pos-01', 'x', 'default', 'a'.repeat(64), '0'.repeat(64), 'pause', 'resume', 'abort', 'rollback', '..', '%2e%2e', '%00', '%E0%A4%A', '%', 'a'.repeat(300), '%F0%9F%92%A9', '__proto__', 'constructor'),
  fc.string({ maxLength: 30 }).map(encodeURIComponent),
  fc.string({ unit: 'binary', maxLength: 30 }).map((s) => encodeURIComponent(s.replace(/[\ud800-\udfff]/g, ''))),
  fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,20}$/),
);

const queryValue = fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('', '0', '-1', '1e309', 'NaN', 'true', '2025-06-01T12:00:00Z', 'tier=store,region!=eu', 'a'.repeat(2000), '[]', '{}'));

type Fuzzed = { method: string; url: string; headers: Record<string, string>; payload?: string | Buffer };

type Harness = { app: FastifyInstance; routes: Route[]; deviceToken: string; close(): Promise<void> };

async function harness(): Promise<Harness> {
  const db = openSqlite(':memory:');
  await migrateToLatest(db);
  const store = createSqlStore(db);
  const nowIso = new Date().toISOString();
  // Random ids: a fuzzed revoke cannot guess them and lock the fuzzer out.
  await store.insertApiToken({ id: randomUUID(), tokenHash: hashToken(ADMIN), role: 'admin', description: '', createdAt: nowIso, expiresAt: null, revokedAt: null });
  await store.insertApiToken({ id: randomUUID(), tokenHash: hashToken(VIEWER), role: 'viewer', description: '', createdAt: nowIso, expiresAt: null, revokedAt: null });
  await store.insertEnrollToken({ id: randomUUID(), tokenHash: hashToken(ENROLL), description: '', createdAt: nowIso, expiresAt: null, revokedAt: null });
  const artifactDir = mkdtempSync(join(tmpdir(), 'driftless-fuzz-'));
  const { app } = await assembleServer({
    store,
    now: Date.now,
    signing: generateKeyPair(),
    sessionSecret: randomBytes(32),
    pollSeconds: 30,
    isOnline: () => true,
    artifactFiles: createArtifactFiles(artifactDir),
    // Failures are the point here: the rate limiter must not end the fuzzing early.
    authLimits: { perSource: { capacity: 1e9, refillPerSecond: 1e9 }, perIdentity: { capacity: 1e9, refillPerSecond: 1e9 }, attemptCost: 1, failureCost: 1 },
  });
  await app.ready();

  const keys = generateKeyPair();
  const enrolled = await app.inject({ method: 'POST', url: '/v1/enroll', payload: { token: ENROLL, name: DEVICE, publicKey: keys.publicKey } });
  assert.equal(enrolled.statusCode, 201, enrolled.body);
  // A device may land pending under a tenant's enrollment rules: accept it when the API has that.
  await app.inject({ method: 'POST', url: `/v1/devices/${DEVICE}/accept`, headers: { authorization: `Bearer ${ADMIN}` } });
  const timestamp = new Date().toISOString();
  const session = await app.inject({ method: 'POST', url: '/v1/device/session', payload: { device: DEVICE, timestamp, signature: signText(loadPrivateKey(keys.privateKey), sessionChallenge(DEVICE, timestamp)) } });
  assert.equal(session.statusCode, 200, session.body);

  const doc = app.swagger() as { paths: Record<string, Record<string, Operation>> };
  const routes = routesOf(app).map(([method, path]): Route => {
    const op = doc.paths[path.replace(/:([A-Za-z]+)/g, '{$1}')]?.[method.toLowerCase()];
    const query = Object.fromEntries((op?.parameters ?? []).filter((p) => p.in === 'query').map((p) => [p.name, p.schema ?? {}]));
    return { method, path, body: op?.requestBody?.content?.['application/json']?.schema ?? null, query };
  });
  return {
    app,
    routes,
    deviceToken: (session.json() as { token: string }).token,
    async close() {
      await app.close();
      await db.destroy();
      rmSync(artifactDir, { recursive: true, force: true });
    },
  };
}

/** The contract every answer keeps, whatever was sent. */
function assertAnswer(request: Fuzzed, reply: LightMyRequestResponse): void {
  const what = `${request.method} ${request.url.slice(0, 100)} [${request.headers['content-type'] ?? ''}] ${String(request.payload ?? '').slice(0, 120)}\n→ ${reply.statusCode} ${reply.body.slice(0, 300)}`;
  const deliberate = reply.statusCode === 503 && reply.body.includes('"unavailable"');
  assert.ok(reply.statusCode < 500 || deliberate, what);
  assert.equal(reply.headers['x-content-type-options'], 'nosniff', what);
  if (reply.statusCode < 400 || request.method === 'HEAD') return;
  assert.match(String(reply.headers['content-type']), /^application\/json/, what);
  const body = reply.json() as { error?: { code?: unknown; message?: unknown } };
  assert.deepEqual(Object.keys(body), ['error'], what);
  assert.equal(typeof body.error?.code, 'string', what);
  assert.ok(typeof body.error?.message === 'string' && body.error.message.length > 0, what);
  assert.ok(body.error.message.length < 1000, `a ${body.error.message.length}-character message: ${what}`);
}

async function send(h: Harness, request: Fuzzed): Promise<LightMyRequestResponse> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in 10 s: ${request.method} ${request.url.slice(0, 100)}`)), 10_000);
  });
  try {
    const reply = await Promise.race([h.app.inject({ method: request.method as 'GET', url: request.url, headers: request.headers, ...(request.payload === undefined ? {} : { payload: request.payload }) }), hung]);
    assertAnswer(request, reply);
    return reply;
  } finally {
    clearTimeout(timer);
  }
}

describe('the API, fed random and hostile requests', () => {
  let h: Harness;
  before(async () => {
    h = await harness();
  });
  after(async () => {
    await h.close();
  });

  const sender = (token: string | undefined): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});
  const senders = () => fc.constantFrom<(string | undefined)[]>(undefined, ADMIN, VIEWER, h.deviceToken, 'garbage', `${h.deviceToken}x`, '', ' ');

  function request(): fc.Arbitrary<Fuzzed> {
    return fc.constantFrom(...h.routes).chain((route) =>
      fc.record({
        route: fc.constant(route),
        method: fc.oneof({ weight: 6, arbitrary: fc.constant(route.method) }, { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS') }),
        params: fc.array(paramValue, { minLength: 3, maxLength: 3 }),
        query: fc.oneof(
          fc.constant<[string, string][]>([]),
          fc.array(fc.tuple(fc.oneof(fc.constantFrom(...Object.keys(route.query), 'bogus', '__proto__', 'a[b]'), fc.string({ maxLength: 8 })), queryValue), { maxLength: 4 }),
        ),
        token: senders(),
        contentType: fc.constantFrom<string | undefined>('application/json', 'application/json', 'application/json', 'application/json; charset=utf-8', 'text/plain', 'application/octet-stream', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'application/json; charset=latin1', '', undefined),
        body: fc.oneof(
          { weight: 6, arbitrary: bodyFor(route).map((value) => JSON.stringify(value) ?? 'null') },
          { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
          { weight: 1, arbitrary: fc.constantFrom('', '{', 'null', '[]', '{"__proto__":{"admin":true}}', '{"constructor":{"prototype":{"x":1}}}', `${'['.repeat(20_000)}${']'.repeat(20_000)}`, `${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}`) },
        ),
      }).map(({ route: r, method, params, query, token, contentType, body }): Fuzzed => {
        let i = 0;
        const path = r.path.replace(/:[A-Za-z]+/g, () => params[i++ % params.length]!);
        const search = query.length > 0 ? `?${new URLSearchParams(query).toString()}` : '';
        const withBody = method !== 'GET' && method !== 'HEAD';
        return { method, url: `${path}${search}`, headers: { ...sender(token), ...(contentType === undefined || !withBody ? {} : { 'content-type': contentType }) }, ...(withBody ? { payload: body } : {}) };
      }),
    );
  }

  test('the fuzzer reaches every route the router has, bodies shaped by the OpenAPI document', () => {
    assert.ok(h.routes.length >= 20);
    const shapedRoutes = h.routes.filter((r) => r.body !== null).map((r) => r.path);
    for (const path of ['/v1/enroll', '/v1/device/session', '/v1/device/status', '/v1/device/telemetry', '/v1/apply', '/v1/tokens']) assert.ok(shapedRoutes.includes(path), `${path} has no body schema`);
  });

  test('property: random requests to every route', async () => {
    await fc.assert(
      fc.asyncProperty(request(), async (r) => {
        await send(h, r);
      }),
      { numRuns: RUNS * 5 },
    );
  });

  test('property: bodies shaped near each POST route’s schema, from an authorized sender', async () => {
    const posts = h.routes.filter((r) => r.method === 'POST' && r.body !== null);
    const requests = fc.constantFrom(...posts).chain((route) =>
      bodyFor(route).map((body): Fuzzed => ({
        method: 'POST',
        url: route.path.replace(/:[A-Za-z]+/g, DEVICE),
        headers: { ...sender(route.path.startsWith('/v1/device/') ? h.deviceToken : ADMIN), 'content-type': 'application/json' },
        payload: JSON.stringify(body) ?? 'null',
      })),
    );
    await fc.assert(fc.asyncProperty(requests, async (r) => void (await send(h, r))), { numRuns: RUNS * 2 });
  });

  test('property: random paths and methods that match no route', async () => {
    const requests = fc
      .tuple(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'), fc.array(paramValue, { maxLength: 5 }), fc.constantFrom('/', '/v1/', '/v2/', '//', '/v1/device/', '/%2e%2e/'))
      .map(([method, parts, prefix]): Fuzzed => ({ method, url: `${prefix}${parts.join('/')}`, headers: { authorization: `Bearer ${ADMIN}` } }));
    await fc.assert(fc.asyncProperty(requests, async (r) => void (await send(h, r))), { numRuns: RUNS * 3 });
  });

  describe('regressions the fuzzers found', () => {
    test('a WebSocket route asked with plain HTTP is 426 with a JSON error, not an empty 404', async () => {
      const channel = h.routes.find((r) => r.path === '/v1/device/channel');
      const reply = await send(h, { method: 'GET', url: '/v1/device/channel', headers: sender(h.deviceToken) });
      if (!channel) return; // no WebSocket route in this build
      assert.equal(reply.statusCode, 426);
      assert.equal(reply.headers.upgrade, 'websocket');
      assert.match((reply.json() as { error: { message: string } }).error.message, /WebSocket/);
    });

    test('a malformed URL with a long query is refused with a short message (the router echoed the whole URL)', async () => {
      const reply = await send(h, { method: 'POST', url: `/v1/tokens/%E0%A4%A/revoke?=${'a'.repeat(5000)}`, headers: sender(ADMIN) });
      assert.equal(reply.statusCode, 400);
      assert.ok(reply.body.length < 400, reply.body.slice(0, 100));
    });

    test('apply: a megabyte-long kind or name is not echoed whole in the error', async () => {
      for (const resource of [{ kind: 'k'.repeat(1 << 20) }, { kind: 'Site', metadata: { name: 'n'.repeat(1 << 20) } }]) {
        const reply = await send(h, { method: 'POST', url: '/v1/apply', headers: { ...sender(ADMIN), 'content-type': 'application/json' }, payload: JSON.stringify({ resources: [resource] }) });
        assert.equal(reply.statusCode, 400);
      }
    });

    test('a literal field holding a deeply nested value is a 400 naming the field, not a 500 from a stack overflow', async () => {
      const deep = `${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}`;
      const payload = `{"records":[{"seq":1,"at":"2025-06-01T12:00:00.000Z","kind":${deep},"component":"pos","line":"x"}],"dropped":0}`;
      const reply = await send(h, { method: 'POST', url: '/v1/device/telemetry', headers: { ...sender(h.deviceToken), 'content-type': 'application/json' }, payload });
      assert.equal(reply.statusCode, 400);
      assert.match(reply.body, /records\[0\]\.kind: must be one of \\"log\\", \\"metric\\", \\"event\\", not a mapping/);
    });
  });

  describe('telemetry, fed gzip garbage', () => {
    const batch = (n: number) => ({ records: Array.from({ length: n }, (_, i) => ({ seq: i + 1, at: '2025-06-01T12:00:00.000Z', kind: 'log', component: 'pos', line: `line ${i}` })), dropped: 0 });
    const telemetry = (payload: Buffer | string, encoding: string | undefined): Fuzzed => ({
      method: 'POST',
      url: '/v1/device/telemetry',
      headers: { ...sender(h.deviceToken), 'content-type': 'application/json', ...(encoding === undefined ? {} : { 'content-encoding': encoding }) },
      payload,
    });

    test('hostile encodings: truncated, corrupt, a bomb, unsupported, stacked', async () => {
      const good = gzipSync(JSON.stringify(batch(3)));
      const cases: [string, Fuzzed, number][] = [
        ['valid gzip', telemetry(good, 'gzip'), 200],
        ['truncated gzip', telemetry(good.subarray(0, good.length - 9), 'gzip'), 400],
        ['corrupt gzip', telemetry(Buffer.concat([good.subarray(0, 12), Buffer.alloc(20, 0xff), good.subarray(32)]), 'gzip'), 400],
        ['plain JSON marked gzip', telemetry(JSON.stringify(batch(1)), 'gzip'), 400],
        ['gzip bomb: 64 MiB of zeros in 64 KiB', telemetry(gzipSync(Buffer.alloc(64 * 1024 * 1024)), 'gzip'), 413],
        ['gzip of garbage', telemetry(gzipSync(randomBytes(1000)), 'gzip'), 400],
        ['gzip of deeply nested JSON', telemetry(gzipSync(`${'{"records":'.repeat(50_000)}1${'}'.repeat(50_000)}`), 'gzip'), 400],
        ['deflate', telemetry(good, 'deflate'), 400],
        ['br', telemetry(good, 'br'), 400],
        ['gzip twice in the header', telemetry(good, 'gzip, gzip'), 400],
        ['empty gzip body', telemetry(Buffer.alloc(0), 'gzip'), 400],
      ];
      for (const [name, request, status] of cases) {
        const reply = await send(h, request);
        assert.equal(reply.statusCode, status, `${name}: ${reply.body.slice(0, 200)}`);
      }
    });

    test('property: random bytes, gzipped or not, under any encoding header', async () => {
      const bytes = fc.oneof(
        fc.uint8Array({ maxLength: 2000 }).map((b) => Buffer.from(b)),
        fc.uint8Array({ maxLength: 2000 }).map((b) => gzipSync(b)),
        fc.jsonValue({ maxDepth: 4 }).map((v) => gzipSync(JSON.stringify(v))),
        fc.tuple(fc.jsonValue({ maxDepth: 2 }), fc.nat()).map(([v, cut]) => {
          const zipped = gzipSync(JSON.stringify({ records: [v], dropped: 0 }));
          return zipped.subarray(0, cut % (zipped.length + 1));
        }),
      );
      await fc.assert(
        fc.asyncProperty(bytes, fc.constantFrom<string | undefined>('gzip', 'gzip', 'identity', undefined, 'GZIP', 'x-gzip', '', 'compress'), async (payload, encoding) => {
          const reply = await send(h, telemetry(payload, encoding));
          assert.ok(reply.statusCode < 300 || reply.statusCode >= 400);
        }),
        { numRuns: RUNS * 3 },
      );
    });
  });
});
