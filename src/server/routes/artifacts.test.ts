import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { artifactProblem, type ArtifactRef } from '../../protocol/artifacts.ts';
import { sha256Hex } from '../../protocol/canonical.ts';
import type { SignedDesiredState } from '../../protocol/messages.ts';
import { generateKeyPair, loadPrivateKey, loadPublicKey, sessionChallenge, signText } from '../../protocol/signing.ts';
import { assembleServer } from '../assemble.ts';
import { hashToken } from '../auth/tokens.ts';
import { migrateToLatest } from '../store/migrate.ts';
import { openSqlite } from '../store/sqlite.ts';
import { createSqlStore, type Store } from '../store/store.ts';
import { createArtifactFiles } from '../artifacts/artifact-files.ts';

const OPERATOR = 'operator-token';
const VIEWER = 'viewer-token';
const ENROLL = 'enroll-token';

describe('artifact routes', () => {
  let app: FastifyInstance;
  let store: Store;
  let dir: string;
  let close: () => Promise<void>;
  const signing = generateKeyPair();
  const serverKey = loadPublicKey(signing.publicKey);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'driftless-artifacts-'));
    const db = openSqlite(':memory:');
    await migrateToLatest(db);
    store = createSqlStore(db);
    const at = new Date().toISOString();
    for (const [token, role] of [[OPERATOR, 'operator'], [VIEWER, 'viewer']] as const) {
      await store.insertApiToken({ id: role, tokenHash: hashToken(token), role, description: role, createdAt: at, expiresAt: null, revokedAt: null });
    }
    await store.insertEnrollToken({ id: 'e', tokenHash: hashToken(ENROLL), description: '', createdAt: at, expiresAt: null, revokedAt: null });
    ({ app } = await assembleServer({ store, now: Date.now, signing, sessionSecret: randomBytes(32), pollSeconds: 30, isOnline: () => true, artifactFiles: createArtifactFiles(join(dir, 'artifacts')) }));
    await app.ready();
    close = async () => {
      await app.close();
      await db.destroy();
    };
  });
  after(async () => {
    await close();
    rmSync(dir, { recursive: true, force: true });
  });

  const push = (bytes: Buffer, name: string, version: string, token = OPERATOR) =>
    app.inject({ method: 'POST', url: `/v1/artifacts?name=${name}&version=${version}`, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' }, payload: bytes });
  const stored = () => readdirSync(join(dir, 'artifacts')).sort();

  test('an upload is named by its digest and signed over name, version, digest and size', async () => {
    const bytes = randomBytes(5000);
    const reply = await push(bytes, 'driftless-agent', '0.2.0');
    assert.equal(reply.statusCode, 201, reply.body);
    const ref = reply.json<ArtifactRef>();
    assert.equal(ref.sha256, sha256Hex(bytes));
    assert.equal(ref.size, 5000);
    assert.equal(artifactProblem(ref, bytes, serverKey), null, 'a device holding the server key accepts it');
    assert.match(artifactProblem({ ...ref, version: '9.9.9' }, bytes, serverKey) ?? '', /signature does not verify/, 'the signature covers the version');
    assert.match(artifactProblem(ref, Buffer.concat([bytes.subarray(1), Buffer.from('x')]), serverKey) ?? '', /SHA-256/);
    assert.ok(stored().includes(ref.sha256));

    assert.equal((await push(bytes, 'driftless-agent', '0.2.0')).statusCode, 200, 'the same upload again is harmless');
    const list = await app.inject({ method: 'GET', url: '/v1/artifacts', headers: { authorization: `Bearer ${VIEWER}` } });
    assert.deepEqual(list.json<ArtifactRef[]>().map((a) => a.sha256), [ref.sha256]);
  });

  test('refusals: a viewer, a missing query, other bytes under a taken version, taken bytes under another name', async () => {
    const before = stored();
    assert.equal((await push(randomBytes(10), 'x', '1', VIEWER)).statusCode, 403);
    const noVersion = await app.inject({ method: 'POST', url: '/v1/artifacts?name=x', headers: { authorization: `Bearer ${OPERATOR}`, 'content-type': 'application/octet-stream' }, payload: randomBytes(10) });
    assert.equal(noVersion.statusCode, 400);
    assert.match(noVersion.body, /version/);
    const first = randomBytes(64);
    assert.equal((await push(first, 'relabel', '1.0')).statusCode, 201);
    const taken = await push(randomBytes(64), 'relabel', '1.0');
    assert.equal(taken.statusCode, 409);
    assert.match(taken.body, /already exists with other bytes/);
    assert.equal((await push(first, 'relabel', '2.0')).statusCode, 409);
    assert.deepEqual(stored(), [...before, sha256Hex(first)].sort(), 'a refused upload leaves no file');
  });

  test('a cut-off upload leaves nothing behind', async () => {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    const before = stored();
    await new Promise<void>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/v1/artifacts?name=cut&version=1', headers: { authorization: `Bearer ${OPERATOR}`, 'content-type': 'application/octet-stream', 'content-length': '100000' } });
      req.on('error', () => resolve());
      req.on('response', () => resolve());
      req.write(randomBytes(1000), () => setTimeout(() => req.destroy(), 100));
    });
    // The server notices the reset on its own schedule.
    for (let i = 0; i < 50 && stored().length !== before.length; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(stored(), before);
    assert.equal((await store.listArtifacts()).some((a) => a.name === 'cut'), false);
  });

  test('a device downloads by digest; a Deployment naming an unknown artifact is refused by field', async () => {
    const bytes = randomBytes(3000);
    const ref = (await push(bytes, 'driftless-agent', '0.3.0')).json<ArtifactRef>();
    const keys = generateKeyPair();
    assert.equal((await app.inject({ method: 'POST', url: '/v1/enroll', payload: { token: ENROLL, name: 'pos-01', labels: { tier: 'store' }, publicKey: keys.publicKey } })).statusCode, 201);
    const timestamp = new Date().toISOString();
    const session = await app.inject({ method: 'POST', url: '/v1/device/session', payload: { device: 'pos-01', timestamp, signature: signText(loadPrivateKey(keys.privateKey), sessionChallenge('pos-01', timestamp)) } });
    const device = { authorization: `Bearer ${session.json<{ token: string }>().token}` };
    const download = await app.inject({ method: 'GET', url: `/v1/device/artifacts/${ref.sha256}`, headers: device });
    assert.equal(download.statusCode, 200);
    assert.deepEqual(download.rawPayload, bytes);
    assert.equal((await app.inject({ method: 'GET', url: `/v1/device/artifacts/${'0'.repeat(64)}`, headers: device })).statusCode, 404);
    assert.equal((await app.inject({ method: 'GET', url: `/v1/device/artifacts/${ref.sha256}`, headers: { authorization: `Bearer ${VIEWER}` } })).statusCode, 401, 'devices only');

    const deployment = (artifact: string, version?: string) => ({
      resources: [{ apiVersion: 'driftless/v1', kind: 'Deployment', metadata: { name: 'fleet-agent' }, spec: { selector: { matchLabels: { tier: 'store' } }, template: { version: '1', components: [{ name: 'agent', ...(version ? { version } : {}), agent: { artifact } }] } } }],
    });
    const apply = (body: unknown) => app.inject({ method: 'POST', url: '/v1/apply', headers: { authorization: `Bearer ${OPERATOR}` }, payload: body as object });
    const unknown = await apply(deployment('f'.repeat(64)));
    assert.equal(unknown.statusCode, 400);
    assert.match(unknown.body, /spec\.template\.components\[0\]\.agent\.artifact: no artifact f{64} was uploaded/);
    const mismatch = await apply(deployment(ref.sha256, '0.4.0'));
    assert.equal(mismatch.statusCode, 400);
    assert.match(mismatch.json<{ error: { message: string } }>().error.message, /components\[0\]\.version: "0.4.0" differs from the artifact's version "0.3.0"/);
    assert.equal((await apply(deployment(ref.sha256))).statusCode, 200);
    const desired = await app.inject({ method: 'GET', url: '/v1/device/desired-state', headers: device });
    const [component] = desired.json<SignedDesiredState>().payload.components;
    assert.deepEqual(component?.artifact, { name: 'driftless-agent', version: '0.3.0', sha256: ref.sha256, size: 3000, signature: ref.signature });
    assert.equal(component?.version, '0.3.0');
  });
});
