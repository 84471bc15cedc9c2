import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { generateKeyPair, loadPrivateKey, sessionChallenge, signText, type KeyPairText } from '../../protocol/signing.ts';
import { assembleServer, type Assembled } from '../assemble.ts';
import { hashToken } from '../auth/tokens.ts';
import { migrateToLatest } from '../store/migrate.ts';
import { openSqlite } from '../store/sqlite.ts';
import { createSqlStore, type Store } from '../store/store.ts';

const ROOT = 'root-admin-token';
const BOOTSTRAP = 'bootstrap-enroll-token';
const START = Date.parse('2025-06-01T12:00:00.000Z');

type Harness = { server: Assembled; store: Store; clock: { ms: number }; disconnected: string[] };

async function harness(): Promise<Harness & { close(): Promise<void> }> {
  const db = openSqlite(':memory:');
  await migrateToLatest(db);
  const store = createSqlStore(db);
  const nowIso = new Date(START).toISOString();
  await store.insertApiToken({ id: 'root', tokenHash: hashToken(ROOT), role: 'admin', description: '', createdAt: nowIso, expiresAt: null, revokedAt: null });
  await store.insertEnrollToken({ id: 'bootstrap', tokenHash: hashToken(BOOTSTRAP), description: 'bootstrap', createdAt: nowIso, expiresAt: null, revokedAt: null });
  const clock = { ms: START };
  const server = await assembleServer({ store, now: () => clock.ms, signing: generateKeyPair(), sessionSecret: randomBytes(32), pollSeconds: 30, isOnline: () => true });
  await server.app.ready();
  // What the device channels were told to drop (the WebSocket side has its own tests).
  const disconnected: string[] = [];
  const drop = server.channels.disconnect.bind(server.channels);
  server.channels.disconnect = (device, reason) => {
    disconnected.push(`${device}:${reason}`);
    drop(device, reason);
  };
  return {
    server,
    store,
    clock,
    disconnected,
    async close() {
      await server.app.close();
      await db.destroy();
    },
  };
}

function call(h: Harness, method: 'GET' | 'POST', url: string, token?: string, body?: unknown): Promise<LightMyRequestResponse> {
  return h.server.app.inject({ method, url, headers: token ? { authorization: `Bearer ${token}` } : {}, ...(body === undefined ? {} : { payload: body as object }) });
}

function json<T>(reply: LightMyRequestResponse, status: number): T {
  assert.equal(reply.statusCode, status, reply.body.slice(0, 300));
  return reply.json() as T;
}

type Device = { name: string; keys: KeyPairText };
function enroll(h: Harness, token: string, name: string, extra: Record<string, unknown> = {}, keys = generateKeyPair()): Promise<LightMyRequestResponse & { device?: Device }> {
  return call(h, 'POST', '/v1/enroll', undefined, { token, name, labels: { tier: 'store' }, publicKey: keys.publicKey, ...extra }).then((r) => Object.assign(r, { device: { name, keys } }));
}
function session(h: Harness, d: Device): Promise<LightMyRequestResponse> {
  const timestamp = new Date(h.clock.ms).toISOString();
  return call(h, 'POST', '/v1/device/session', undefined, { device: d.name, timestamp, signature: signText(loadPrivateKey(d.keys.privateKey), sessionChallenge(d.name, timestamp)) });
}

describe('device credentials: enrollment tokens, pending, accept, revoke', () => {
  let h: Harness & { close(): Promise<void> };
  let admin: string;
  let operator: string;
  before(async () => {
    h = await harness();
    admin = json<{ admin: { token: string } }>(await call(h, 'POST', '/v1/tenants', ROOT, { name: 'acme' }), 201).admin.token;
    operator = json<{ token: string }>(await call(h, 'POST', '/v1/tokens', admin, { role: 'operator' }), 201).token;
  });
  after(() => h.close());

  test('a device enrolled with a token that does not auto-accept is pending until an operator accepts it', async () => {
    const { token } = json<{ token: string }>(await call(h, 'POST', '/v1/enroll-tokens', admin, { autoAccept: false }), 201);
    const reply = await enroll(h, token, 'kiosk-01');
    assert.equal(reply.statusCode, 201, reply.body);
    const device = reply.device!;
    const refused = json<{ error: { code: string; message: string } }>(await session(h, device), 403);
    assert.match(refused.error.message, /pending approval.*driftless device accept kiosk-01/);
    const listed = json<{ name: string; status: string }[]>(await call(h, 'GET', '/v1/devices', operator), 200);
    assert.deepEqual(listed.map((d) => [d.name, d.status]), [['kiosk-01', 'pending']]);

    // Another tenant's operator cannot accept it: to them it does not exist.
    const rootOperator = json<{ token: string }>(await call(h, 'POST', '/v1/tokens', ROOT, { role: 'operator' }), 201).token;
    assert.equal((await call(h, 'POST', '/v1/devices/kiosk-01/accept', rootOperator)).statusCode, 404);

    assert.equal(json<{ action: string }>(await call(h, 'POST', '/v1/devices/kiosk-01/accept', operator), 200).action, 'accepted');
    const { token: sessionToken } = json<{ token: string }>(await session(h, device), 200);
    assert.equal((await call(h, 'GET', '/v1/device/desired-state', sessionToken)).statusCode, 200, 'accepted: it gets its desired state');
    assert.equal(json<{ action: string }>(await call(h, 'POST', '/v1/devices/kiosk-01/accept', operator), 200).action, 'unchanged');
  });

  test('a revoked device is refused at once: its valid session, a new session, re-enrollment; its open channel is dropped', async () => {
    const { token } = json<{ token: string }>(await call(h, 'POST', '/v1/enroll-tokens', admin, { autoAccept: true }), 201);
    const reply = await enroll(h, token, 'kiosk-02');
    assert.equal(reply.statusCode, 201, reply.body);
    const device = reply.device!;
    const { token: sessionToken } = json<{ token: string }>(await session(h, device), 200);
    const report = { generation: 0, reportedAt: new Date(START).toISOString(), components: [], events: [] };
    assert.equal((await call(h, 'POST', '/v1/device/status', sessionToken, report)).statusCode, 200);

    assert.equal(json<{ action: string }>(await call(h, 'POST', '/v1/devices/kiosk-02/revoke', operator), 200).action, 'revoked');
    assert.deepEqual(h.disconnected, ['kiosk-02:revoked']);
    // The session token is still within its hour: refused anyway, on every device route.
    for (const [method, url, body] of [['GET', '/v1/device/desired-state'], ['POST', '/v1/device/status', report], ['POST', '/v1/device/telemetry', { records: [], dropped: 0 }], ['GET', '/v1/device/channel']] as const) {
      const refused = await call(h, method, url, sessionToken, body);
      assert.equal(refused.statusCode, 403, `${method} ${url}: ${refused.body}`);
      assert.match(refused.body, /revoked/);
    }
    assert.equal((await session(h, device)).statusCode, 403);
    assert.equal((await enroll(h, token, 'kiosk-02', {}, device.keys)).statusCode, 403, 're-enrolling with the same key does not bring it back');
    assert.equal((await call(h, 'POST', '/v1/devices/kiosk-02/accept', operator)).statusCode, 409, 'a revoked device stays revoked');
    const listed = json<{ name: string; status: string }[]>(await call(h, 'GET', '/v1/devices', operator), 200);
    assert.equal(listed.find((d) => d.name === 'kiosk-02')?.status, 'revoked');
  });

  test('an enrollment token: its tenant, its site, its use limit, its expiry, its revocation', async () => {
    const made = json<{ id: string; token: string; site: string; maxUses: number }>(await call(h, 'POST', '/v1/enroll-tokens', admin, { autoAccept: true, site: 'dock-3', uses: 2, expires: '1h' }), 201);
    assert.equal((await enroll(h, made.token, 'dock-01')).statusCode, 201);
    assert.equal((await enroll(h, made.token, 'dock-02', { site: 'elsewhere' })).statusCode, 403, 'a site-scoped token refuses another site');
    assert.equal((await enroll(h, made.token, 'dock-02', { site: 'dock-3' })).statusCode, 201);
    const usedUp = await enroll(h, made.token, 'dock-03');
    assert.equal(usedUp.statusCode, 401);
    assert.match(usedUp.body, /used up/);
    assert.equal(json<{ site: string }>(await call(h, 'GET', '/v1/devices/dock-01', operator), 200).site, 'dock-3');
    const listed = json<{ id: string; state: string; uses: number }[]>(await call(h, 'GET', '/v1/enroll-tokens', admin), 200).find((t) => t.id === made.id);
    assert.deepEqual([listed?.state, listed?.uses], ['used-up', 2]);
    // The devices are the tenant's: the server operator's tenant does not see them.
    const rootViewer = json<{ token: string }>(await call(h, 'POST', '/v1/tokens', ROOT, { role: 'viewer' }), 201).token;
    assert.equal((await call(h, 'GET', '/v1/devices/dock-01', rootViewer)).statusCode, 404);

    const expiring = json<{ token: string }>(await call(h, 'POST', '/v1/enroll-tokens', admin, { autoAccept: true, expires: '10m' }), 201);
    h.clock.ms += 11 * 60_000;
    assert.equal((await enroll(h, expiring.token, 'late-01')).statusCode, 401);
    const revoked = json<{ id: string; token: string }>(await call(h, 'POST', '/v1/enroll-tokens', admin, { autoAccept: true }), 201);
    json(await call(h, 'POST', `/v1/enroll-tokens/${revoked.id}/revoke`, admin), 200);
    assert.equal((await enroll(h, revoked.token, 'late-02')).statusCode, 401);
  });

  test("a device name taken in another tenant answers like any taken name; the bootstrap token still joins 'default', accepted", async () => {
    const { token } = json<{ token: string }>(await call(h, 'POST', '/v1/enroll-tokens', admin, { autoAccept: true }), 201);
    assert.equal((await enroll(h, BOOTSTRAP, 'pos-01')).statusCode, 201);
    const sameTenant = await enroll(h, BOOTSTRAP, 'pos-01');
    const otherTenant = await enroll(h, token, 'pos-01');
    assert.equal(otherTenant.statusCode, 409);
    assert.deepEqual(otherTenant.json(), sameTenant.json(), 'nothing says which tenant has it');
    assert.equal((await session(h, (await enroll(h, BOOTSTRAP, 'pos-02')).device!)).statusCode, 200);
  });

  test('API tokens: expiring, listed without secrets, revoked; each refused with a clear 401', async () => {
    const made = json<{ id: string; token: string; expiresAt: string }>(await call(h, 'POST', '/v1/tokens', admin, { role: 'viewer', expires: '1h', description: 'ci' }), 201);
    assert.equal(made.expiresAt, new Date(h.clock.ms + 3_600_000).toISOString());
    assert.equal((await call(h, 'GET', '/v1/devices', made.token)).statusCode, 200);
    const listed = json<{ id: string; state: string }[]>(await call(h, 'GET', '/v1/tokens', admin), 200);
    assert.ok(!JSON.stringify(listed).includes(made.token), 'no secret in the list');
    assert.equal(listed.find((t) => t.id === made.id)?.state, 'active');
    h.clock.ms += 3_600_000;
    const expired = await call(h, 'GET', '/v1/devices', made.token);
    assert.equal(expired.statusCode, 401);
    assert.match(expired.body, /revoked or expired/);
    assert.equal(json<{ id: string; state: string }[]>(await call(h, 'GET', '/v1/tokens', admin), 200).find((t) => t.id === made.id)?.state, 'expired');

    const other = json<{ id: string; token: string }>(await call(h, 'POST', '/v1/tokens', admin, { role: 'operator' }), 201);
    assert.equal((await call(h, 'POST', `/v1/tokens/${other.id}/revoke`, ROOT)).statusCode, 404, "another tenant's admin cannot see it");
    json(await call(h, 'POST', `/v1/tokens/${other.id}/revoke`, admin), 200);
    assert.equal((await call(h, 'GET', '/v1/devices', other.token)).statusCode, 401);
    assert.equal((await call(h, 'POST', '/v1/tokens', admin, { role: 'viewer', expires: 'soon' })).statusCode, 400);
  });

  test("tenants: only the server operator creates them; a tenant's admin sees its own", async () => {
    assert.equal((await call(h, 'POST', '/v1/tenants', admin, { name: 'evil' })).statusCode, 403);
    assert.equal((await call(h, 'POST', '/v1/tenants', ROOT, { name: 'acme' })).statusCode, 409);
    assert.deepEqual(json<{ name: string }[]>(await call(h, 'GET', '/v1/tenants', admin), 200).map((t) => t.name), ['acme']);
    assert.deepEqual(json<{ name: string }[]>(await call(h, 'GET', '/v1/tenants', ROOT), 200).map((t) => t.name), ['acme', 'default']);
  });
});
