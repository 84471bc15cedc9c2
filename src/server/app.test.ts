import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import fc from 'fast-check';
import type { SignedDesiredState, StatusReport } from '../protocol/messages.ts';
import { generateKeyPair, keyId, loadPrivateKey, loadPublicKey, sessionChallenge, signText, verifyValue, type KeyPairText } from '../protocol/signing.ts';
import { buildApp } from './app.ts';
import { hashToken } from './auth/tokens.ts';
import { createDesiredService } from './desired/desired-service.ts';
import { createPresence } from './presence.ts';
import { createDeviceChannels } from './terminal/device-channels.ts';
import { createAuditLog } from './audit/audit-log.ts';
import { createRolloutEngine } from './rollout/rollout-engine.ts';
import { startServer } from './server.ts';
import { migrateToLatest } from './store/migrate.ts';
import { openSqlite } from './store/sqlite.ts';
import { createSqlStore } from './store/store.ts';
import { routesOf } from '../../test/support/hostile-input.ts';
import { startInProcessServer, type InProcessServer } from '../../test/support/in-process-server.ts';

const ADMIN = 'admin-token';
const OPERATOR = 'operator-token';
const VIEWER = 'viewer-token';
const ENROLL = 'enroll-token';
const START = Date.parse('2025-06-01T12:00:00.000Z');

type Harness = InProcessServer & { serverKey: string };

/** The app as server.ts builds it, on an in-memory SQLite store, with a clock the test moves. */
async function harness(): Promise<Harness> {
  // These tests send many wrong credentials from one address on purpose; the rate limits have their own tests (hardening.test.ts).
  const unlimited = { capacity: 1e9, refillPerSecond: 1e9 };
  const h = await startInProcessServer({
    start: START,
    tokens: { [ADMIN]: 'admin', [OPERATOR]: 'operator', [VIEWER]: 'viewer' },
    enrollToken: ENROLL,
    authLimits: { perSource: unlimited, perIdentity: unlimited, attemptCost: 1, failureCost: 1 },
    seed: async (store, nowIso) => {
      await store.insertApiToken({ id: 'expired', tokenHash: hashToken('expired-token'), role: 'admin', description: '', createdAt: nowIso, expiresAt: nowIso, revokedAt: null });
      await store.insertApiToken({ id: 'revoked', tokenHash: hashToken('revoked-token'), role: 'admin', description: '', createdAt: nowIso, expiresAt: null, revokedAt: nowIso });
    },
  });
  return { ...h, serverKey: h.signing.publicKey };
}

type Call = { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> };

async function call(h: Harness, method: 'GET' | 'POST' | 'HEAD' | 'PUT' | 'DELETE' | 'PATCH', url: string, opts: Call = {}): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...opts.headers };
  if (opts.raw !== undefined) return h.app.inject({ method, url, headers: { 'content-type': 'application/json', ...headers }, payload: opts.raw });
  if (opts.body !== undefined) return h.app.inject({ method, url, headers, payload: opts.body as object });
  return h.app.inject({ method, url, headers });
}

/** Every error the API gives is `{ error: { code, message } }` with a 4xx status, unless the server itself broke. */
function assertError(reply: LightMyRequestResponse, status: number, code?: string, message?: RegExp): { code: string; message: string } {
  assert.equal(reply.statusCode, status, `${reply.statusCode}: ${reply.body.slice(0, 300)}`);
  assert.match(String(reply.headers['content-type']), /^application\/json/);
  const body = reply.json() as { error?: { code?: unknown; message?: unknown } };
  assert.equal(typeof body.error?.code, 'string', reply.body);
  assert.equal(typeof body.error?.message, 'string', reply.body);
  assert.deepEqual(Object.keys(body), ['error']);
  const error = body.error as { code: string; message: string };
  if (code) assert.equal(error.code, code);
  if (message) assert.match(error.message, message);
  return error;
}

// ---- devices ----

type TestDevice = { name: string; keys: KeyPairText };
const newDevice = (name: string): TestDevice => ({ name, keys: generateKeyPair() });

function enroll(h: Harness, d: TestDevice, extra: Record<string, unknown> = {}) {
  return call(h, 'POST', '/v1/enroll', { body: { token: ENROLL, name: d.name, site: 'store-12', labels: { tier: 'store' }, publicKey: d.keys.publicKey, ...extra } });
}

function session(h: Harness, d: TestDevice, atMs = h.clock.ms, signer: KeyPairText = d.keys) {
  const timestamp = new Date(atMs).toISOString();
  return call(h, 'POST', '/v1/device/session', { body: { device: d.name, timestamp, signature: signText(loadPrivateKey(signer.privateKey), sessionChallenge(d.name, timestamp)) } });
}

async function deviceToken(h: Harness, d: TestDevice): Promise<string> {
  const reply = await session(h, d);
  assert.equal(reply.statusCode, 200, reply.body);
  return (reply.json() as { token: string }).token;
}

async function enrolled(h: Harness, name: string, extra: Record<string, unknown> = {}): Promise<TestDevice & { token: string }> {
  const d = newDevice(name);
  const reply = await enroll(h, d, extra);
  assert.equal(reply.statusCode, 201, reply.body);
  return { ...d, token: await deviceToken(h, d) };
}

// ---- resources ----

function deploymentResource(name: string, version: string, change: { labels?: Record<string, string>; strategy?: unknown; selector?: unknown } = {}) {
  return {
    apiVersion: 'driftless/v1',
    kind: 'Deployment',
    metadata: { name, ...(change.labels ? { labels: change.labels } : {}) },
    spec: {
      selector: change.selector ?? { matchLabels: { tier: 'store' } },
      template: { version, components: [{ name: 'pos', image: `registry.example/pos:${version}`, ports: ['8080:8080'], health: { http: { port: 8080, path: '/healthz' } } }] },
      // All at once: these tests are about desired state, not waves (the rollout tests cover those).
      strategy: change.strategy ?? { waves: [{ percent: 100 }] },
    },
  };
}
const siteResource = (name: string, labels: Record<string, string> = {}) => ({ apiVersion: 'driftless/v1', kind: 'Site', metadata: { name, labels }, spec: { timeZone: 'Europe/Amsterdam' } });

type ApplyResult = { kind: string; name: string; action: string; revision?: number };
async function apply(h: Harness, resources: unknown[], token = OPERATOR): Promise<ApplyResult[]> {
  const reply = await call(h, 'POST', '/v1/apply', { token, body: { resources } });
  assert.equal(reply.statusCode, 200, reply.body);
  await h.tick();
  return (reply.json() as { results: ApplyResult[] }).results;
}

async function desiredOf(h: Harness, d: { token: string }, etag?: string) {
  return call(h, 'GET', '/v1/device/desired-state', { token: d.token, headers: etag ? { 'if-none-match': etag } : {} });
}

function statusReport(generation: number, change: Partial<StatusReport> = {}, at = START): StatusReport {
  return {
    generation,
    reportedAt: new Date(at).toISOString(),
    components: [{ name: 'pos', deployment: 'pos', desiredVersion: '2.4.1', version: '2.4.1', state: 'healthy', reason: null, detail: null, since: new Date(at).toISOString() }],
    events: [],
    ...change,
  };
}
const event = (seq: number) => ({ seq, at: new Date(START).toISOString(), type: 'committed' as const, component: 'pos.pos', message: `event ${seq}` });

// ---- the tests ----

describe('API in process', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await harness();
  });
  afterEach(async () => {
    await h.close();
  });

  describe('enrollment', () => {
    test('a good token enrolls the device and answers with the server key to pin', async () => {
      const d = newDevice('pos-01');
      const reply = await enroll(h, d);
      assert.equal(reply.statusCode, 201);
      assert.deepEqual(reply.json(), { device: 'pos-01', serverKey: h.serverKey, pollSeconds: 30 });
      const stored = await h.store.getDevice('pos-01');
      assert.equal(stored?.publicKey, d.keys.publicKey);
      assert.equal(stored?.site, 'store-12');
      assert.ok(await h.store.getSite('store-12'), 'the site it names now exists');
    });

    test('a wrong token is 401 and enrolls nothing', async () => {
      assertError(await call(h, 'POST', '/v1/enroll', { body: { token: 'nope', name: 'pos-01', publicKey: newDevice('x').keys.publicKey } }), 401, 'unauthorized');
      assert.equal(await h.store.getDevice('pos-01'), null);
    });

    test('the same key enrolling again is idempotent; another key for the same name is 409', async () => {
      const d = newDevice('pos-01');
      assert.equal((await enroll(h, d)).statusCode, 201);
      const before = await h.store.getDevice('pos-01');
      assert.equal((await enroll(h, d, { labels: { tier: 'changed' } })).statusCode, 201);
      assert.deepEqual(await h.store.getDevice('pos-01'), before, 're-enrolling changes nothing');
      assertError(await enroll(h, { name: 'pos-01', keys: generateKeyPair() }), 409, 'conflict', /already enrolled with another key/);
      assert.equal((await h.store.getDevice('pos-01'))?.publicKey, d.keys.publicKey);
    });

    test('a malformed public key is 400 naming publicKey', async () => {
      assertError(await call(h, 'POST', '/v1/enroll', { body: { token: ENROLL, name: 'pos-01', publicKey: 'AAAA' } }), 400, 'invalid-input', /publicKey/);
      assertError(await call(h, 'POST', '/v1/enroll', { body: { token: ENROLL, name: 'pos-01', publicKey: 'not base64!' } }), 400, 'invalid-input', /publicKey/);
      assertError(await call(h, 'POST', '/v1/enroll', { body: { token: ENROLL, name: 'Bad Name', publicKey: newDevice('x').keys.publicKey } }), 400, 'invalid-input', /name/);
      assert.deepEqual(await h.store.listDevices(), []);
    });

    test('a revoked device cannot enroll again, get a session or report', async () => {
      const d = await enrolled(h, 'pos-01');
      await h.store.updateDevice('pos-01', { status: 'revoked' });
      assertError(await enroll(h, d), 403, 'forbidden');
      assertError(await session(h, d), 403, 'forbidden');
      assertError(await call(h, 'POST', '/v1/device/status', { token: d.token, body: statusReport(1) }), 403, 'forbidden');
    });
  });

  describe('device session', () => {
    test('a valid signature gets a session token that opens the device routes', async () => {
      const d = newDevice('pos-01');
      await enroll(h, d);
      const reply = await session(h, d);
      assert.equal(reply.statusCode, 200);
      const body = reply.json() as { token: string; expiresAt: string };
      assert.equal(body.expiresAt, new Date(START + 3600_000).toISOString());
      assert.equal((await desiredOf(h, body)).statusCode, 200);
    });

    test('a signature by another key is 401', async () => {
      const d = newDevice('pos-01');
      await enroll(h, d);
      assertError(await session(h, d, h.clock.ms, generateKeyPair()), 401, 'unauthorized');
    });

    test('a stale or future timestamp is 401 even when signed correctly', async () => {
      const d = newDevice('pos-01');
      await enroll(h, d);
      assertError(await session(h, d, START - 6 * 60_000), 401, 'unauthorized', /timestamp/);
      assertError(await session(h, d, START + 6 * 60_000), 401, 'unauthorized', /timestamp/);
      assert.equal((await session(h, d, START - 4 * 60_000)).statusCode, 200, 'a little clock skew is fine');
    });

    test('an unknown device is 401', async () => {
      assertError(await session(h, newDevice('ghost')), 401, 'unauthorized');
    });

    test('the session expires, and a forged or API token is no session', async () => {
      const d = await enrolled(h, 'pos-01');
      assertError(await desiredOf(h, { token: `${d.token.split('.')[0]}.AAAA` }), 401, 'unauthorized');
      assertError(await desiredOf(h, { token: ADMIN }), 401, 'unauthorized');
      h.clock.ms = START + 3600_000;
      assertError(await desiredOf(h, d), 401, 'unauthorized', /expired/);
    });

    test('a session token is not an API token', async () => {
      const d = await enrolled(h, 'pos-01');
      assertError(await call(h, 'GET', '/v1/devices', { token: d.token }), 401, 'unauthorized');
    });
  });

  describe('desired state', () => {
    test('200 with an ETag and a signed document, then 304 for the same ETag, then the change after an apply', async () => {
      await apply(h, [deploymentResource('pos', '2.4.1')]);
      const d = await enrolled(h, 'pos-01');

      const first = await desiredOf(h, d);
      assert.equal(first.statusCode, 200);
      const etag = String(first.headers.etag);
      assert.match(etag, /^"g\d+-/);
      const doc = first.json() as SignedDesiredState;
      assert.equal(doc.keyId, keyId(h.serverKey));
      assert.ok(verifyValue(loadPublicKey(h.serverKey), doc.payload, doc.signature), 'signed by the key the device pinned');
      assert.equal(doc.payload.device, 'pos-01');
      assert.deepEqual(doc.payload.components.map((c) => `${c.deployment}/${c.name}@${c.version}#${c.revision}`), ['pos/pos@2.4.1#1']);

      const again = await desiredOf(h, d, etag);
      assert.equal(again.statusCode, 304);
      assert.equal(again.body, '');

      await apply(h, [deploymentResource('pos', '2.4.2')]);
      const changed = await desiredOf(h, d, etag);
      assert.equal(changed.statusCode, 200);
      assert.notEqual(changed.headers.etag, etag);
      const next = changed.json() as SignedDesiredState;
      assert.ok(next.payload.generation > doc.payload.generation);
      assert.equal(next.payload.components[0]?.version, '2.4.2');
      assert.ok(verifyValue(loadPublicKey(h.serverKey), next.payload, next.signature));
    });

    test('a device selected by nothing gets an explicit removeAll document', async () => {
      await apply(h, [deploymentResource('pos', '2.4.1')]);
      const d = await enrolled(h, 'kiosk-01', { labels: { tier: 'kiosk' } });
      const doc = (await desiredOf(h, d)).json() as SignedDesiredState;
      assert.deepEqual(doc.payload.components, []);
      assert.equal(doc.payload.removeAll, true);
    });

    test('relabelling a device through apply changes its desired state', async () => {
      await apply(h, [deploymentResource('pos', '2.4.1')]);
      const d = await enrolled(h, 'kiosk-01', { labels: { tier: 'kiosk' } });
      const before = (await desiredOf(h, d)).json() as SignedDesiredState;
      const results = await apply(h, [{ apiVersion: 'driftless/v1', kind: 'Device', metadata: { name: 'kiosk-01', labels: { tier: 'store' } } }]);
      assert.deepEqual(results, [{ kind: 'Device', name: 'kiosk-01', action: 'configured' }]);
      const after = (await desiredOf(h, d)).json() as SignedDesiredState;
      assert.equal(after.payload.generation, before.payload.generation + 1);
      assert.equal(after.payload.components.length, 1);
    });

    test('moving a device to a new site creates the site at the server clock\'s time', async () => {
      await enrolled(h, 'pos-01');
      h.clock.ms = START + 60_000;
      const results = await apply(h, [{ apiVersion: 'driftless/v1', kind: 'Device', metadata: { name: 'pos-01' }, spec: { site: 'store-50' } }]);
      assert.deepEqual(results, [{ kind: 'Device', name: 'pos-01', action: 'configured' }]);
      assert.equal((await h.store.getSite('store-50'))?.createdAt, new Date(START + 60_000).toISOString());
      assert.equal((await h.store.getDevice('pos-01'))?.site, 'store-50');
    });
  });

  describe('status reports', () => {
    test('stored, acknowledged by sequence number, and events deduplicated when resent', async () => {
      await apply(h, [deploymentResource('pos', '2.4.1')]);
      const d = await enrolled(h, 'pos-01');
      const generation = ((await desiredOf(h, d)).json() as SignedDesiredState).payload.generation;

      const first = await call(h, 'POST', '/v1/device/status', { token: d.token, body: statusReport(generation, { events: [event(1), event(2)] }) });
      assert.equal(first.statusCode, 200, first.body);
      assert.deepEqual(first.json(), { ackedSeq: 2 });
      // The acknowledgement was lost: the agent sends the same events again, with one more.
      const resent = await call(h, 'POST', '/v1/device/status', { token: d.token, body: statusReport(generation, { events: [event(1), event(2), event(3)] }) });
      assert.deepEqual(resent.json(), { ackedSeq: 3 });

      const detail = (await call(h, 'GET', '/v1/devices/pos-01', { token: VIEWER })).json() as {
        events: { seq: number }[];
        history: unknown[];
        components: { state: string; version: string | null }[];
        appliedGeneration: number;
      };
      assert.deepEqual(detail.events.map((e) => e.seq), [3, 2, 1]);
      assert.equal(detail.history.length, 2);
      assert.equal(detail.appliedGeneration, generation);
      assert.deepEqual(detail.components.map((c) => [c.state, c.version]), [['healthy', '2.4.1']]);
    });

    test('a malformed report is 400 naming the field, and nothing is stored', async () => {
      const d = await enrolled(h, 'pos-01');
      const bad = { ...statusReport(1), events: [{ ...event(1), type: 'exploded' }] };
      assertError(await call(h, 'POST', '/v1/device/status', { token: d.token, body: bad }), 400, 'invalid-input', /events\[0\]\.type/);
      assert.deepEqual(await h.store.listStatusHistory('pos-01', 10), []);
    });
  });

  describe('apply', () => {
    test('created, then unchanged, then configured; a new revision only when the template changes', async () => {
      assert.deepEqual(await apply(h, [siteResource('store-12'), deploymentResource('pos', '2.4.1')]), [
        { kind: 'Site', name: 'store-12', action: 'created' },
        { kind: 'Deployment', name: 'pos', action: 'created', revision: 1 },
      ]);
      assert.deepEqual(await apply(h, [siteResource('store-12'), deploymentResource('pos', '2.4.1')]), [
        { kind: 'Site', name: 'store-12', action: 'unchanged' },
        { kind: 'Deployment', name: 'pos', action: 'unchanged', revision: 1 },
      ]);
      assert.deepEqual(await apply(h, [siteResource('store-12', { region: 'eu' }), deploymentResource('pos', '2.4.1', { labels: { team: 'retail' } })]), [
        { kind: 'Site', name: 'store-12', action: 'configured' },
        { kind: 'Deployment', name: 'pos', action: 'configured', revision: 1 },
      ]);
      assert.deepEqual(await apply(h, [deploymentResource('pos', '2.4.1', { labels: { team: 'retail' }, strategy: { maxFailurePercent: 5 } })]), [
        { kind: 'Deployment', name: 'pos', action: 'configured', revision: 1 },
      ]);
      assert.deepEqual(await apply(h, [deploymentResource('pos', '2.4.2')]), [{ kind: 'Deployment', name: 'pos', action: 'configured', revision: 2 }]);

      const deployment = (await call(h, 'GET', '/v1/deployments/pos', { token: VIEWER })).json() as { revision: number; revisions: { revision: number; version: string }[]; rollouts: { name: string; state: string }[] };
      assert.equal(deployment.revision, 2);
      assert.deepEqual(deployment.revisions.map((r) => [r.revision, r.version]), [[1, '2.4.1'], [2, '2.4.2']]);
      // No device is enrolled, so each rollout completes at the first tick after its apply.
      assert.deepEqual(deployment.rollouts.map((r) => [r.name, r.state]), [['pos-1', 'complete'], ['pos-2', 'complete']]);
    });

    test('an invalid resource is 400 naming resources[i] and the field, and nothing changes', async () => {
      await apply(h, [deploymentResource('pos', '2.4.1')]);
      const d = await enrolled(h, 'pos-01');
      const before = (await desiredOf(h, d)).json() as SignedDesiredState;

      const bad = deploymentResource('pos', '2.4.2');
      (bad.spec.template.components[0] as Record<string, unknown>).imagee = 'typo';
      assertError(
        await call(h, 'POST', '/v1/apply', { token: OPERATOR, body: { resources: [siteResource('store-99'), bad] } }),
        400,
        'invalid-input',
        /^resources\[1\] \(Deployment pos\): spec\.template\.components\[0\]\.imagee: unknown field "imagee"$/,
      );
      const noImage = deploymentResource('cam', '1');
      delete (noImage.spec.template.components[0] as Record<string, unknown>).image;
      assertError(await call(h, 'POST', '/v1/apply', { token: OPERATOR, body: { resources: [noImage] } }), 400, 'invalid-input', /^resources\[0\] \(Deployment cam\): spec\.template\.components\[0\]: needs "image"/);
      assertError(await call(h, 'POST', '/v1/apply', { token: OPERATOR, body: { resources: [{ kind: 'Gizmo' }] } }), 400, 'invalid-input', /^resources\[0\] \(Gizmo\): kind: must be one of/);

      assert.equal(await h.store.getSite('store-99'), null);
      assert.equal((await h.store.getDeployment('pos'))?.revision, 1);
      assert.equal(await h.store.getDeployment('cam'), null);
      const after = await desiredOf(h, d, String((await desiredOf(h, d)).headers.etag));
      assert.equal(after.statusCode, 304);
      assert.equal(((await desiredOf(h, d)).json() as SignedDesiredState).payload.generation, before.payload.generation);
    });

    test('all or nothing: a resource failing inside the transaction undoes the ones before it', async () => {
      await apply(h, [deploymentResource('pos', '2.4.1')]);
      const rolloutsBefore = await h.store.listRollouts();
      const desiredBefore = await h.store.listDesired();
      assertError(
        await call(h, 'POST', '/v1/apply', {
          token: OPERATOR,
          body: { resources: [siteResource('store-77'), deploymentResource('pos', '9.9.9'), { apiVersion: 'driftless/v1', kind: 'Device', metadata: { name: 'ghost', labels: { a: 'b' } } }] },
        }),
        404,
        'not-found',
        /Device "ghost" is not enrolled/,
      );
      assert.equal(await h.store.getSite('store-77'), null);
      assert.equal((await h.store.getDeployment('pos'))?.revision, 1);
      assert.equal(await h.store.getRevision('pos', 2), null);
      assert.deepEqual(await h.store.listRollouts(), rolloutsBefore);
      assert.deepEqual(await h.store.listDesired(), desiredBefore);
    });
  });

  describe('reading', () => {
    test('devices, one device, sites, deployments, rollouts, with their filters and 404s', async () => {
      await apply(h, [siteResource('store-12', { region: 'eu' }), deploymentResource('pos', '2.4.1')]);
      await enrolled(h, 'pos-01');
      await enrolled(h, 'kiosk-01', { labels: { tier: 'kiosk' }, site: 'store-13' });

      const all = (await call(h, 'GET', '/v1/devices', { token: VIEWER })).json() as { name: string; online: boolean; components: unknown[] }[];
      assert.deepEqual(all.map((d) => [d.name, d.online]), [['kiosk-01', true], ['pos-01', true]]);
      const selected = (await call(h, 'GET', '/v1/devices?selector=tier%3Dstore', { token: VIEWER })).json() as { name: string }[];
      assert.deepEqual(selected.map((d) => d.name), ['pos-01']);
      const bySite = (await call(h, 'GET', '/v1/devices?site=store-13', { token: VIEWER })).json() as { name: string }[];
      assert.deepEqual(bySite.map((d) => d.name), ['kiosk-01']);
      assertError(await call(h, 'GET', '/v1/devices?selector=%3D%3D', { token: VIEWER }), 400, 'invalid-input', /label selector/);
      assertError(await call(h, 'GET', '/v1/devices/nobody', { token: VIEWER }), 404, 'not-found');

      const sites = (await call(h, 'GET', '/v1/sites', { token: VIEWER })).json() as { name: string; devices: number }[];
      assert.deepEqual(sites.map((s) => [s.name, s.devices]), [['store-12', 1], ['store-13', 1]]);
      const site = (await call(h, 'GET', '/v1/sites/store-12', { token: VIEWER })).json() as { deviceNames: string[]; labels: unknown };
      assert.deepEqual(site.deviceNames, ['pos-01']);
      assert.deepEqual(site.labels, { region: 'eu' });
      assertError(await call(h, 'GET', '/v1/sites/nowhere', { token: VIEWER }), 404, 'not-found');

      const deployments = (await call(h, 'GET', '/v1/deployments', { token: VIEWER })).json() as { name: string; revision: number; targetRevision: number }[];
      assert.deepEqual(deployments.map((d) => [d.name, d.revision, d.targetRevision]), [['pos', 1, 1]]);
      assertError(await call(h, 'GET', '/v1/deployments/none', { token: VIEWER }), 404, 'not-found');

      const rollouts = (await call(h, 'GET', '/v1/rollouts?deployment=pos', { token: VIEWER })).json() as { name: string; revision: number }[];
      assert.deepEqual(rollouts.map((r) => [r.name, r.revision]), [['pos-1', 1]]);
      assert.deepEqual((await call(h, 'GET', '/v1/rollouts?deployment=other', { token: VIEWER })).json(), []);
      assert.equal(((await call(h, 'GET', '/v1/rollouts/pos-1', { token: VIEWER })).json() as { deployment: string }).deployment, 'pos');
      assertError(await call(h, 'GET', '/v1/rollouts/pos-9', { token: VIEWER }), 404, 'not-found');
    });

    test('health and the OpenAPI document are public', async () => {
      assert.deepEqual((await call(h, 'GET', '/healthz')).json(), { ok: true });
      const doc = (await call(h, 'GET', '/v1/openapi.json')).json() as { openapi: string; paths: Record<string, unknown> };
      assert.match(doc.openapi, /^3\./);
      assert.ok('/v1/apply' in doc.paths);
    });
  });

  describe('drift', () => {
    test('why each device differs: not yet applied, reverted, offline; nothing for one in line', async () => {
      await apply(h, [deploymentResource('pos', '2.4.1')]);
      const good = await enrolled(h, 'pos-01');
      const bad = await enrolled(h, 'pos-02');
      await enrolled(h, 'pos-03');
      const generation = ((await desiredOf(h, good)).json() as SignedDesiredState).payload.generation;
      await call(h, 'POST', '/v1/device/status', { token: good.token, body: statusReport(generation) });
      const reverted = statusReport(generation, {
        components: [{ name: 'pos', deployment: 'pos', desiredVersion: '2.4.1', version: '2.4.0', state: 'reverted', reason: 'health-check-failed', detail: 'HTTP 500; reverted to version 2.4.0', since: new Date(START).toISOString() }],
      });
      await call(h, 'POST', '/v1/device/status', { token: bad.token, body: reverted });

      const drift = (await call(h, 'GET', '/v1/drift', { token: VIEWER })).json() as { summary: string; entries: { device: string; reason: string; detail: string }[] };
      assert.deepEqual(drift.entries.map((e) => [e.device, e.reason]), [['pos-02', 'reverted'], ['pos-03', 'applying']]);
      assert.equal(drift.summary, '2 of 3 devices drifted: 1 reverted, 1 applying');

      h.clock.ms = START + 10 * 60_000; // nobody has polled for ten minutes
      const later = (await call(h, 'GET', '/v1/drift', { token: VIEWER })).json() as { entries: { device: string; reason: string; detail: string }[] };
      assert.deepEqual(later.entries.map((e) => [e.device, e.reason]), [['pos-02', 'offline'], ['pos-03', 'offline']]);
      assert.match(later.entries[0]?.detail ?? '', /offline since 2025-06-01T12:00:00\.000Z/);
    });
  });

  describe('API tokens and roles', () => {
    test('no token is 401; unknown, expired and revoked tokens are 401', async () => {
      assertError(await call(h, 'GET', '/v1/devices'), 401, 'unauthorized');
      for (const token of ['nope', 'expired-token', 'revoked-token']) assertError(await call(h, 'GET', '/v1/devices', { token }), 401, 'unauthorized');
      assertError(await call(h, 'GET', '/v1/devices', { headers: { authorization: 'Basic YWRtaW46YWRtaW4=' } }), 401, 'unauthorized');
    });

    test('a viewer reads but cannot apply; an operator applies but cannot make tokens; an admin makes tokens', async () => {
      assert.equal((await call(h, 'GET', '/v1/devices', { token: VIEWER })).statusCode, 200);
      assertError(await call(h, 'POST', '/v1/apply', { token: VIEWER, body: { resources: [siteResource('s')] } }), 403, 'forbidden', /operator/);
      assert.equal(await h.store.getSite('s'), null);
      assertError(await call(h, 'POST', '/v1/tokens', { token: OPERATOR, body: { role: 'viewer' } }), 403, 'forbidden', /admin/);

      const made = await call(h, 'POST', '/v1/tokens', { token: ADMIN, body: { role: 'viewer', description: 'dashboards' } });
      assert.equal(made.statusCode, 201);
      const { token, role } = made.json() as { token: string; role: string };
      assert.equal(role, 'viewer');
      assert.equal((await call(h, 'GET', '/v1/drift', { token })).statusCode, 200, 'the new token works');
      assertError(await call(h, 'POST', '/v1/apply', { token, body: { resources: [siteResource('s')] } }), 403, 'forbidden');
      assertError(await call(h, 'POST', '/v1/tokens', { token: ADMIN, body: { role: 'root' } }), 400, 'invalid-input', /role/);
    });
  });

  describe('every route, sent garbage', () => {
    // '*': the dashboard's pages and files (dashboard.ts).
    const PUBLIC = ['/healthz', '/v1/openapi.json', '/v1/enroll', '/v1/device/session', '*'];
    const fill = (path: string, value: string) => path.replace(/:[A-Za-z]+/g, value);

    test('the route list is complete: it holds every path of the OpenAPI document', async () => {
      const routes = routesOf(h.app).map(([, path]) => path.replace(/:([A-Za-z]+)/g, '{$1}'));
      const documented = Object.keys(((await call(h, 'GET', '/v1/openapi.json')).json() as { paths: object }).paths);
      assert.ok(documented.length >= 10);
      for (const path of documented) assert.ok(routes.includes(path), `${path} missing from the route list`);
      assert.ok(routesOf(h.app).length >= documented.length + 2);
    });

    test('without credentials, every route but the public ones is 401', async () => {
      for (const [method, path] of routesOf(h.app)) {
        const reply = await call(h, method as 'GET', fill(path, 'x'), method === 'POST' ? { body: {} } : {});
        if (PUBLIC.includes(path)) assert.notEqual(reply.statusCode, 401, `${method} ${path} should be public`);
        else if (method === 'HEAD') assert.equal(reply.statusCode, 401, `${method} ${path}`);
        else assertError(reply, 401, 'unauthorized');
      }
    });

    test('garbage gets a 4xx JSON error, never a 5xx, whoever sends it', async () => {
      const d = await enrolled(h, 'pos-01');
      const senders = [undefined, ADMIN, d.token];
      const huge = `{"resources":["${'x'.repeat(5 * 1024 * 1024)}"]}`;
      const bodies: { raw?: string; body?: unknown; headers?: Record<string, string> }[] = [
        { body: { nonsense: [1, 2, 3] } },
        { body: [1, 2] },
        { raw: 'null' },
        { raw: '"text"' },
        { raw: '{not json' },
        { raw: '' },
        { raw: '{"__proto__":{"admin":true}}' },
        { raw: 'hello', headers: { 'content-type': 'text/plain' } },
        { raw: huge },
      ];
      let reachedValidation = 0;
      for (const [method, path] of routesOf(h.app)) {
        if (method === 'HEAD') continue;
        for (const token of senders) {
          const urls = [`${fill(path, 'x')}?bogus=1&selector[]=x`, fill(path, 'x'.repeat(300)), fill(path, '%E0%A4%A'), fill(path, '..%2F..%2Fetc')];
          for (const url of urls) {
            const reply = await call(h, method as 'GET', url, { token, ...(method === 'POST' ? { body: {} } : {}) });
            assert.ok(reply.statusCode < 500, `${method} ${url.slice(0, 60)}: ${reply.statusCode} ${reply.body.slice(0, 200)}`);
            if (reply.statusCode >= 400) assertError(reply, reply.statusCode);
          }
          if (method !== 'POST') continue;
          for (const garbage of bodies) {
            const reply = await call(h, 'POST', path, { token, ...garbage });
            assert.ok(reply.statusCode >= 400 && reply.statusCode < 500, `POST ${path} with ${JSON.stringify(garbage).slice(0, 60)}: ${reply.statusCode} ${reply.body.slice(0, 200)}`);
            const error = assertError(reply, reply.statusCode);
            if (reply.statusCode !== 401 && reply.statusCode !== 403) reachedValidation++;
            if (garbage.raw === huge && reply.statusCode !== 401) assert.equal(error.code, 'payload-too-large');
          }
        }
      }
      assert.ok(reachedValidation >= 5 * bodies.length, 'garbage got past authentication on every POST route');
    });

    test('property: arbitrary JSON bodies on every POST route are refused with a 4xx JSON error', async () => {
      const d = await enrolled(h, 'pos-01');
      const posts = routesOf(h.app).filter(([method]) => method === 'POST').map(([, path]) => path);
      assert.ok(posts.length >= 5);
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...posts), fc.jsonValue({ maxDepth: 4 }), async (path, value) => {
          const token = path.startsWith('/v1/device/') ? d.token : ADMIN;
          const reply = await call(h, 'POST', path, { token, raw: JSON.stringify(value) });
          assert.ok(reply.statusCode >= 400 && reply.statusCode < 500, `${path} ${JSON.stringify(value).slice(0, 100)}: ${reply.statusCode} ${reply.body.slice(0, 200)}`);
          assertError(reply, reply.statusCode);
        }),
        { numRuns: 300 },
      );
    });

    test('unknown query parameters are refused where a route takes a query, and on apply', async () => {
      for (const path of ['/v1/devices', '/v1/rollouts']) {
        assertError(await call(h, 'GET', `${path}?bogus=1`, { token: VIEWER }), 400, 'invalid-input', /bogus/);
      }
      assertError(await call(h, 'POST', '/v1/apply?dryRun=true', { token: OPERATOR, body: { resources: [siteResource('s')] } }), 400, 'invalid-input', /dryRun/);
      assert.equal(await h.store.getSite('s'), null, 'the change did not go through');
    });

    test('unknown routes and methods are 404 JSON', async () => {
      assertError(await call(h, 'GET', '/v1/nothing', { token: ADMIN }), 404, 'not-found');
      assertError(await call(h, 'DELETE', '/v1/apply', { token: ADMIN }), 404, 'not-found');
      assertError(await call(h, 'PUT', '/v1/devices/pos-01', { token: ADMIN, body: {} }), 404, 'not-found');
    });
  });

  test('a route registered without an access rule is refused', async () => {
    const db = openSqlite(':memory:');
    await migrateToLatest(db);
    const store = createSqlStore(db);
    const rollouts = createRolloutEngine({ isOnline: () => true });
    const signing = generateKeyPair();
    const app = await buildApp({
      store,
      desired: createDesiredService({ signingKey: loadPrivateKey(signing.privateKey), keyId: keyId(signing.publicKey), rollouts, now: () => START }),
      rollouts,
      presence: createPresence(store),
      audit: createAuditLog({ store, now: () => START }),
      channels: createDeviceChannels(),
      serverKey: { publicKey: signing.publicKey, keyId: keyId(signing.publicKey) },
      sessionSecret: randomBytes(32),
      now: () => START,
      pollSeconds: 30,
      offlineAfterMs: 90_000,
    });
    assert.throws(() => app.get('/v1/unguarded', async () => ({ secret: true })), /route GET \/v1\/unguarded declares no access rule/);
    app.get('/v1/guarded', { config: { access: 'viewer' } }, async () => ({ ok: true }));
    await app.close();
    await db.destroy();
  });
});

describe('startServer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'driftless-server-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('boots on a free port with the chosen credentials, and keeps its key and tokens across restarts', async () => {
    const first = await startServer({ dataDir: dir, host: '127.0.0.1', port: 0, adminToken: 'chosen-admin', enrollToken: 'chosen-enroll' });
    let serverKey: string;
    try {
      assert.match(first.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.deepEqual(first.created, { adminToken: 'chosen-admin', enrollToken: 'chosen-enroll' });
      assert.equal((await first.app.inject({ method: 'GET', url: '/v1/devices', headers: { authorization: 'Bearer chosen-admin' } })).statusCode, 200);
      const d = newDevice('pos-01');
      const enrolledReply = await first.app.inject({ method: 'POST', url: '/v1/enroll', payload: { token: 'chosen-enroll', name: d.name, publicKey: d.keys.publicKey } });
      assert.equal(enrolledReply.statusCode, 201);
      serverKey = (enrolledReply.json() as { serverKey: string }).serverKey;
    } finally {
      await first.close();
    }
    const second = await startServer({ dataDir: dir, host: '127.0.0.1', port: 0 });
    try {
      assert.deepEqual(second.created, {}, 'nothing new is made on a restart');
      assert.equal((await second.app.inject({ method: 'GET', url: '/v1/devices/pos-01', headers: { authorization: 'Bearer chosen-admin' } })).statusCode, 200);
      const d = newDevice('pos-02');
      const reply = await second.app.inject({ method: 'POST', url: '/v1/enroll', payload: { token: 'chosen-enroll', name: d.name, publicKey: d.keys.publicKey } });
      assert.equal((reply.json() as { serverKey: string }).serverKey, serverKey, 'the signing key the devices pinned is kept');
    } finally {
      await second.close();
    }
  });
});
