import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { AuditEntry, ChainVerdict } from '../../protocol/audit-chain.ts';
import { generateKeyPair, loadPrivateKey, sessionChallenge, signText } from '../../protocol/signing.ts';
import { assembleServer } from '../assemble.ts';
import { hashToken } from '../auth/tokens.ts';
import { migrateToLatest } from '../store/migrate.ts';
import { openSqlite } from '../store/sqlite.ts';
import { createSqlStore } from '../store/store.ts';
import type { AuditLog } from './audit-log.ts';

const ADMIN = 'audit-admin-secret';
const OPERATOR = 'audit-operator-secret';
const VIEWER = 'audit-viewer-secret';
const REVOKED = 'audit-revoked-secret';
const ENROLL = 'audit-enroll-secret';
const WRONG = 'never-issued-secret';
const START = Date.parse('2025-06-01T12:00:00.000Z');

const deployment = (version: string) => ({
  apiVersion: 'driftless/v1',
  kind: 'Deployment',
  metadata: { name: 'pos' },
  spec: { selector: { matchLabels: { tier: 'store' } }, template: { version, components: [{ name: 'pos', image: `registry.example/pos:${version}` }] }, strategy: { waves: [{ percent: 100 }] } },
});

describe('audit trail through the API', () => {
  const dir = mkdtempSync(join(tmpdir(), 'driftless-audit-'));
  const file = join(dir, 'driftless.db');
  let app: FastifyInstance;
  let audit: AuditLog;
  let close: () => Promise<void>;
  let createdToken = '';
  let deviceSession = '';
  const clock = { ms: START };

  const call = (method: 'GET' | 'POST', url: string, token?: string, body?: unknown): Promise<LightMyRequestResponse> =>
    app.inject({ method, url, headers: token ? { authorization: `Bearer ${token}` } : {}, ...(body === undefined ? {} : { payload: body as object }) });
  const list = async (query = ''): Promise<AuditEntry[]> => {
    const reply = await call('GET', `/v1/audit${query}`, ADMIN);
    assert.equal(reply.statusCode, 200, reply.body);
    return (reply.json() as { entries: AuditEntry[] }).entries;
  };
  const verify = async (): Promise<ChainVerdict> => {
    const reply = await call('GET', '/v1/audit/verify', ADMIN);
    assert.equal(reply.statusCode, 200, reply.body);
    return reply.json() as ChainVerdict;
  };
  /** Changes the database as someone with the file would: another connection, plain SQL. */
  const byHand = (statement: string, ...params: (string | number)[]) => {
    const db = new DatabaseSync(file);
    try {
      db.prepare(statement).run(...params);
    } finally {
      db.close();
    }
  };

  /** Keeps a row as it is, to put it back after a test has deleted it. */
  const saveRow = (seq: number) => {
    const db = new DatabaseSync(file);
    const row = db.prepare('SELECT * FROM audit_log WHERE seq = ?').get(seq) as Record<string, string | number | null>;
    db.close();
    return () => {
      const columns = Object.keys(row);
      byHand(`INSERT INTO audit_log (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`, ...(Object.values(row) as (string | number)[]));
    };
  };

  before(async () => {
    const db = openSqlite(file);
    await migrateToLatest(db);
    const store = createSqlStore(db);
    const nowIso = new Date(START).toISOString();
    for (const [secret, id, role, revokedAt] of [
      [ADMIN, 'admin', 'admin', null],
      [OPERATOR, 'operator', 'operator', null],
      [VIEWER, 'viewer', 'viewer', null],
      [REVOKED, 'revoked', 'admin', nowIso],
    ] as const) {
      await store.insertApiToken({ id, tokenHash: hashToken(secret), role, description: id, createdAt: nowIso, expiresAt: null, revokedAt });
    }
    await store.insertEnrollToken({ id: 'bootstrap', tokenHash: hashToken(ENROLL), description: 'bootstrap', createdAt: nowIso, expiresAt: null, revokedAt: null });
    const assembled = await assembleServer({ store, now: () => clock.ms, signing: generateKeyPair(), sessionSecret: randomBytes(32), pollSeconds: 30, isOnline: () => true });
    ({ app, audit } = assembled);
    await app.ready();
    close = async () => {
      await app.close();
      await db.destroy();
    };

    // What operators, devices and intruders do; each call's outcome is what the trail must say.
    assert.equal((await call('POST', '/v1/apply', OPERATOR, { resources: [deployment('1.0.0')] })).statusCode, 200);
    const created = await call('POST', '/v1/tokens', ADMIN, { role: 'viewer' });
    assert.equal(created.statusCode, 201, created.body);
    createdToken = (created.json() as { token: string }).token;
    assert.equal((await call('GET', '/v1/devices', WRONG)).statusCode, 401);
    assert.equal((await call('GET', '/v1/devices', REVOKED)).statusCode, 401);
    assert.equal((await call('POST', '/v1/apply', VIEWER, { resources: [deployment('2.0.0')] })).statusCode, 403);
    assert.equal((await call('POST', '/v1/rollouts/nope/pause', OPERATOR)).statusCode, 404);
    const keys = generateKeyPair();
    assert.equal((await call('POST', '/v1/enroll', undefined, { token: WRONG, name: 'pos-01', publicKey: keys.publicKey })).statusCode, 401);
    const enrolled = await call('POST', '/v1/enroll', undefined, { token: ENROLL, name: 'pos-01', labels: { tier: 'store' }, publicKey: keys.publicKey });
    assert.equal(enrolled.statusCode, 201, enrolled.body);
    const timestamp = new Date(clock.ms).toISOString();
    const session = await call('POST', '/v1/device/session', undefined, { device: 'pos-01', timestamp, signature: signText(loadPrivateKey(keys.privateKey), sessionChallenge('pos-01', timestamp)) });
    assert.equal(session.statusCode, 200, session.body);
    deviceSession = (session.json() as { token: string }).token;
    // The devices' hot path, reads and successful sessions are not audited.
    const first = await call('GET', '/v1/device/desired-state', deviceSession);
    assert.equal((await app.inject({ method: 'GET', url: '/v1/device/desired-state', headers: { authorization: `Bearer ${deviceSession}`, 'if-none-match': String(first.headers.etag) } })).statusCode, 304);
    assert.equal((await call('GET', '/v1/devices', VIEWER)).statusCode, 200);
    // A terminal session is recorded by the relay itself.
    await audit.record({ tenant: 'default', actor: 'token:operator', action: 'terminal.open', target: 'device:pos-01', detail: { recording: 'rec-1' } });
    // Refusals are answered before their entries are written.
    await audit.idle();
  });
  after(async () => {
    await close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('lists who did what, to what, from where, and how it ended', async () => {
    const entries = await list();
    const summary = entries.map((e) => [e.seq, e.actor, e.action, e.target, e.status, e.error]);
    assert.deepEqual(summary, [
      [1, 'token:operator', 'apply', 'Deployment/pos', 200, null],
      [2, 'token:admin', 'token.create', summary[1]![3], 201, null],
      [3, 'unknown-token', 'GET /v1/devices', null, 401, 'unauthorized'],
      [4, 'token:revoked', 'GET /v1/devices', null, 401, 'unauthorized'],
      // Refused before its body was read: the trail cannot say what it would have changed.
      [5, 'token:viewer', 'apply', null, 403, 'forbidden'],
      [6, 'token:operator', 'rollout.pause', 'nope', 404, 'not-found'],
      [7, 'anonymous', 'device.enroll', 'pos-01', 401, 'unauthorized'],
      [8, 'enroll-token:bootstrap', 'device.enroll', 'pos-01', 201, null],
      [9, 'token:operator', 'terminal.open', 'device:pos-01', 200, null],
    ]);
    assert.match(String(summary[1]![3]), /^token:[0-9a-f-]{36}$/);
    assert.deepEqual(entries[0]!.detail, { resources: ['Deployment/pos'] });
    assert.equal(entries[0]!.role, 'operator');
    assert.equal(entries[7]!.detail.decision, 'accepted');
    assert.equal(entries[8]!.detail.recording, 'rec-1');
    for (const e of entries.slice(0, 8)) assert.equal(e.sourceIp, '127.0.0.1');
    for (const e of entries) assert.equal(e.at, new Date(START).toISOString());
  });

  test('filters by actor, action prefix, outcome and time, and pages', async () => {
    assert.deepEqual((await list('?actor=token:operator')).map((e) => e.seq), [1, 6, 9]);
    assert.deepEqual((await list('?action=device.*')).map((e) => e.seq), [7, 8]);
    assert.deepEqual((await list('?outcome=denied')).map((e) => e.seq), [3, 4, 5, 7]);
    assert.deepEqual((await list('?outcome=ok')).map((e) => e.seq), [1, 2, 8, 9]);
    assert.deepEqual((await list('?outcome=not-found')).map((e) => e.seq), [6]);
    assert.deepEqual(await list('?since=2025-06-02T00:00:00Z'), []);
    const page = (await call('GET', '/v1/audit?limit=4&after=2', ADMIN)).json() as { entries: AuditEntry[]; next: number | null };
    assert.deepEqual([page.entries.map((e) => e.seq), page.next], [[3, 4, 5, 6], 6]);
    assert.equal((await call('GET', '/v1/audit?outcome=%25%25', ADMIN)).statusCode, 400);
    assert.equal((await call('GET', '/v1/audit?since=yesterday', ADMIN)).statusCode, 400);
  });

  test('is for admins only (and a refusal is itself recorded)', async () => {
    assert.equal((await call('GET', '/v1/audit', OPERATOR)).statusCode, 403);
    assert.equal((await call('GET', '/v1/audit/verify', VIEWER)).statusCode, 403);
    await audit.idle();
    const denied = await list('?action=GET /v1/audit*');
    assert.deepEqual(denied.map((e) => [e.actor, e.action, e.status]), [
      ['token:operator', 'GET /v1/audit', 403],
      ['token:viewer', 'GET /v1/audit/verify', 403],
    ]);
  });

  test('never holds a secret', () => {
    const db = new DatabaseSync(file, { readOnly: true });
    const rows = JSON.stringify(db.prepare('SELECT * FROM audit_log').all());
    db.close();
    for (const secret of [ADMIN, OPERATOR, VIEWER, REVOKED, ENROLL, WRONG, createdToken, deviceSession]) {
      assert.ok(secret.length > 0);
      assert.equal(rows.includes(secret), false, `a secret is in the audit log: ${secret.slice(0, 6)}…`);
    }
  });

  test('verify passes on the untouched chain, and names the entry edited or deleted by hand', async () => {
    const intact = await verify();
    assert.equal(intact.ok, true);
    assert.equal(intact.entries, intact.head!.seq);

    byHand(`UPDATE audit_log SET actor = 'token:someone-else' WHERE seq = 5`);
    let verdict = await verify();
    assert.equal(verdict.ok, false);
    assert.equal(verdict.firstBroken?.seq, 5);
    assert.match(verdict.firstBroken!.reason, /edited/);
    byHand(`UPDATE audit_log SET actor = 'token:viewer' WHERE seq = 5`);
    assert.equal((await verify()).ok, true);

    byHand(`UPDATE audit_log SET detail = '{"resources":["Deployment/other"]}' WHERE seq = 1`);
    assert.equal((await verify()).firstBroken?.seq, 1);
    byHand(`UPDATE audit_log SET detail = '{"resources":["Deployment/pos"]}' WHERE seq = 1`);

    const restore = saveRow(3);
    byHand('DELETE FROM audit_log WHERE seq = 3');
    verdict = await verify();
    assert.deepEqual(verdict.firstBroken?.seq, 3);
    assert.match(verdict.firstBroken!.reason, /entry 3 is missing/);
    restore();
    assert.equal((await verify()).ok, true);
  });

  test('deleting the newest entry is caught by the chain head; the chain goes on after repair', async () => {
    const { head } = await verify();
    const restore = saveRow(head!.seq);
    byHand('DELETE FROM audit_log WHERE seq = ?', head!.seq);
    const verdict = await verify();
    assert.equal(verdict.ok, false);
    assert.equal(verdict.firstBroken?.seq, head!.seq);
    assert.match(verdict.firstBroken!.reason, /missing: the chain head records/);
    restore();
    assert.equal((await call('POST', '/v1/apply', OPERATOR, { resources: [deployment('1.0.1')] })).statusCode, 200);
    const after = await verify();
    assert.deepEqual([after.ok, after.entries], [true, head!.seq + 1]);
  });
});
