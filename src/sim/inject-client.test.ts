import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DriftlessError } from '../protocol/errors.ts';
import type { SignedDesiredState } from '../protocol/messages.ts';
import { generateKeyPair, loadPrivateKey } from '../protocol/signing.ts';
import { startServer, type RunningServer } from '../server/server.ts';
import { createInjectClient, createInjectTransport } from './inject-client.ts';
import { goodLink, withLink } from './link.ts';

const ADMIN = 'sim-admin-token';
const ENROLL = 'sim-enroll-token';

describe('inject client', () => {
  let dir: string;
  let server: RunningServer;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'driftless-inject-'));
    server = await startServer({ dataDir: dir, host: '127.0.0.1', port: 0, adminToken: ADMIN, enrollToken: ENROLL });
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const device = (name: string, wrap?: Parameters<typeof createInjectClient>[0]['wrap'], timeoutMs?: number) => {
    const keys = generateKeyPair();
    const privateKey = loadPrivateKey(keys.privateKey);
    const client = createInjectClient({ app: server.app, serverUrl: server.url, device: name, privateKey: () => privateKey, ...(wrap ? { wrap } : {}), ...(timeoutMs ? { timeoutMs } : {}) });
    return { keys, client };
  };

  test('enroll, session, conditional desired state and status go through the real routes and auth', async () => {
    const { keys, client } = device('inject-1');
    const enrolled = await client.enroll({ token: ENROLL, name: 'inject-1', site: 'site-001', labels: { tier: 'store' }, facts: { hardware: 'arm64/rpi4' }, publicKey: keys.publicKey });
    assert.equal(enrolled.device, 'inject-1');
    assert.ok(enrolled.serverKey.length > 0);

    const first = await client.fetchDesired(null);
    assert.equal(first.status, 200);
    if (first.status !== 200) return;
    assert.equal((first.document as SignedDesiredState).payload.device, 'inject-1');
    assert.match(first.etag ?? '', /^"g\d+-/);
    assert.deepEqual(await client.fetchDesired(first.etag), { status: 304 }, 'an unchanged state is a 304 with no body');

    const ack = await client.postStatus({
      generation: (first.document as SignedDesiredState).payload.generation,
      reportedAt: new Date().toISOString(),
      components: [],
      events: [{ seq: 1, at: new Date().toISOString(), type: 'committed', message: 'simulated' }],
    });
    assert.deepEqual(ack, { ackedSeq: 1 });

    const view = await server.app.inject({ method: 'GET', url: '/v1/devices/inject-1', headers: { authorization: `Bearer ${ADMIN}` } });
    const body = view.json() as { site: string; facts: Record<string, unknown>; events: { message: string }[] };
    assert.equal(body.site, 'site-001');
    assert.equal(body.facts['hardware'], 'arm64/rpi4');
    assert.deepEqual(body.events.map((e) => e.message), ['simulated']);
  });

  test('the server’s refusals arrive as the same error values as over TCP', async () => {
    const { keys, client } = device('inject-2');
    await assert.rejects(
      client.enroll({ token: 'wrong', name: 'inject-2', publicKey: keys.publicKey }),
      (e: unknown) => e instanceof DriftlessError && e.code === 'unauthorized' && /enrollment token/.test(e.message),
    );
    await assert.rejects(client.fetchDesired(null), (e: unknown) => e instanceof DriftlessError && e.code === 'unauthorized', 'an unknown device gets no session');
  });

  test('an in-process answer equals the answer over a socket', async () => {
    const inject = createInjectTransport(server.app);
    for (const [path, init] of [
      ['/healthz', {}],
      ['/v1/devices', { headers: { authorization: `Bearer ${ADMIN}` } }],
      ['/v1/devices?bogus=1', { headers: { authorization: `Bearer ${ADMIN}` } }],
      ['/v1/apply', { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: '{"resources":[{"kind":"Nope"}]}' }],
    ] as const) {
      const [overSocket, inProcess] = await Promise.all([fetch(`${server.url}${path}`, init), inject(`${server.url}${path}`, init)]);
      assert.equal(inProcess.status, overSocket.status, path);
      assert.equal(inProcess.headers.get('content-type'), overSocket.headers.get('content-type'), path);
      assert.deepEqual(await inProcess.json(), await overSocket.json(), path);
    }
  });

  test('a cut link is `unavailable` naming EHOSTUNREACH; a link slower than the deadline times out', async () => {
    const link = goodLink();
    const { keys, client } = device('inject-3', (t) => withLink(t, link, () => 0.5), 200);
    link.online = false;
    await assert.rejects(
      client.enroll({ token: ENROLL, name: 'inject-3', publicKey: keys.publicKey }),
      (e: unknown) => e instanceof DriftlessError && e.code === 'unavailable' && /unreachable: EHOSTUNREACH/.test(e.message),
    );
    link.online = true;
    link.delayMs = 5_000;
    await assert.rejects(
      client.enroll({ token: ENROLL, name: 'inject-3', publicKey: keys.publicKey }),
      (e: unknown) => e instanceof DriftlessError && e.code === 'unavailable' && /timed out/.test(e.message),
    );
    link.delayMs = 0;
    assert.equal((await client.enroll({ token: ENROLL, name: 'inject-3', publicKey: keys.publicKey })).device, 'inject-3');
  });

  test('a lossy link loses some requests before the server and some answers after it', async () => {
    const link = { ...goodLink(), lossRatio: 1 };
    let roll = 0.2;
    const { keys, client } = device('inject-4', (t) => withLink(t, link, () => roll));
    await assert.rejects(client.enroll({ token: ENROLL, name: 'inject-4', publicKey: keys.publicKey }), /ECONNRESET/);
    const before = await server.app.inject({ method: 'GET', url: '/v1/devices/inject-4', headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(before.statusCode, 404, 'lost on the way in: the server never saw it');
    roll = 0.7;
    await assert.rejects(client.enroll({ token: ENROLL, name: 'inject-4', publicKey: keys.publicKey }), /ECONNRESET/);
    const afterLoss = await server.app.inject({ method: 'GET', url: '/v1/devices/inject-4', headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(afterLoss.statusCode, 200, 'lost on the way back: the server enrolled it');
    link.lossRatio = 0;
    assert.equal((await client.enroll({ token: ENROLL, name: 'inject-4', publicKey: keys.publicKey })).device, 'inject-4', 'the retry with the same key is accepted');
  });
});
