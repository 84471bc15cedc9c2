import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createAgent } from '../agent/create-agent.ts';
import { DriftlessError } from '../protocol/errors.ts';
import { startServer, type RunningServer } from '../server/server.ts';
import { caTransport } from './agent-command.ts';
import { createApi } from './api-client.ts';
import { resolveConnection } from './config.ts';
import { tlsOption } from './server-command.ts';

/** A real TLS server in process: the CLI and the agent trust it with --ca, fail clearly without. */

const ADMIN = 'tls-admin-token';
const ENROLL = 'tls-enroll-token';

describe('a TLS server in process', () => {
  const dir = mkdtempSync(join(tmpdir(), 'driftless-tls-'));
  let server: RunningServer;
  /** Another server's certificate and key: a certificate the clients were not told to trust. */
  const other = { cert: join(dir, 'other', 'tls', 'server.crt'), key: join(dir, 'other', 'tls', 'server.key') };
  before(async () => {
    server = await startServer({ dataDir: join(dir, 'server'), host: '127.0.0.1', port: 0, adminToken: ADMIN, enrollToken: ENROLL, tls: 'self-signed' });
    await (await startServer({ dataDir: join(dir, 'other'), host: '127.0.0.1', port: 0, tls: 'self-signed' })).close();
  });

  test('--tls-cert and --tls-key: both or neither, readable, of the right kind, and a matching pair', () => {
    const cert = server.tls!.certFile!;
    const key = join(dir, 'server', 'tls', 'server.key');
    assert.deepEqual(tlsOption({}), {});
    assert.deepEqual(tlsOption({ tls: true }), { tls: 'self-signed' });
    assert.deepEqual(tlsOption({ tlsCert: cert, tlsKey: key }), { tls: { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') } });
    assert.throws(() => tlsOption({ tlsCert: cert }), /--tls-cert and --tls-key go together/);
    assert.throws(() => tlsOption({ tlsCert: join(dir, 'none.crt'), tlsKey: key }), /--tls-cert: cannot read ".*none\.crt": ENOENT/);
    assert.throws(() => tlsOption({ tlsCert: key, tlsKey: key }), /--tls-cert: ".*server\.key" is not a PEM file of the right kind/);
    assert.throws(() => tlsOption({ tlsCert: cert, tlsKey: other.key }), /--tls-cert\/--tls-key: .*(mismatch|values)/i);
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('serves https with the certificate it made and keeps in its data directory, with HSTS', async () => {
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(server.tls?.created);
    assert.ok(server.tls.certFile && existsSync(server.tls.certFile));
    assert.equal(new X509Certificate(readFileSync(server.tls.certFile)).fingerprint256, server.tls.fingerprint256);
    const reply = await server.app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(reply.headers['strict-transport-security'], 'max-age=31536000');
  });

  test('the CLI with --ca succeeds; without it, one clear error naming the certificate problem', async () => {
    const ca = server.tls!.certFile!;
    const devices = await createApi(resolveConnection({ server: server.url, token: ADMIN, ca }, {})).get<unknown[]>('/v1/devices');
    assert.deepEqual(devices, []);
    assert.deepEqual(await createApi(resolveConnection({ server: server.url, token: ADMIN }, { DRIFTLESS_CA: ca })).get('/v1/devices'), [], 'DRIFTLESS_CA works too');
    const refused = await createApi({ server: server.url, token: ADMIN }).get('/v1/devices').then(
      () => assert.fail('an untrusted certificate was accepted'),
      (e: unknown) => e as DriftlessError,
    );
    assert.ok(refused instanceof DriftlessError);
    assert.equal(refused.code, 'unavailable');
    assert.match(refused.message, /DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate: the server's TLS certificate is not trusted; pass --ca FILE/);
    assert.throws(() => createApi({ server: server.url, token: ADMIN, ca: join(dir, 'missing.pem') }), /--ca: cannot read ".*missing\.pem": ENOENT/);
  });

  test('trusting another certificate is no trust in this one', async () => {
    await assert.rejects(createApi({ server: server.url, token: ADMIN, ca: other.cert }).get('/v1/devices'), /not trusted|unknown authority/);
  });

  test('plain HTTP to the TLS port fails clearly', async () => {
    const plain = server.url.replace('https://', 'http://');
    await assert.rejects(createApi({ server: plain, token: ADMIN }).get('/v1/devices'), (error: unknown) => {
      assert.ok(error instanceof DriftlessError);
      assert.match(error.message, /use an https:\/\/ URL/);
      return true;
    });
  });

  test('an agent with --ca enrolls over TLS; without it, enrollment is refused naming the certificate', async () => {
    const lines: string[] = [];
    const agentOf = (name: string, ca: string | undefined) =>
      createAgent({
        log: (line) => lines.push(line),
        dataDir: join(dir, name),
        serverUrl: server.url,
        enrollToken: ENROLL,
        name,
        drivers: {},
        hostMetrics: null,
        pollSeconds: 60,
        telemetrySeconds: 60,
        backoff: { baseMs: 1, capMs: 5, jitter: false },
        ...caTransport(ca),
      });
    const trusting = agentOf('tls-agent-1', server.tls!.certFile!);
    try {
      await trusting.start();
      await trusting.sync();
      assert.ok(trusting.identity()?.serverKey, 'enrolled and pinned the server key');
    } finally {
      await trusting.stop();
    }
    // Unreachable is worth waiting for (the operator may fix the trust), so the agent retries and says why.
    const untrusting = agentOf('tls-agent-2', undefined);
    const started = untrusting.start().catch(() => undefined);
    for (let i = 0; i < 100 && !lines.some((line) => line.includes('DEPTH_ZERO_SELF_SIGNED_CERT')); i++) await new Promise((resolve) => setTimeout(resolve, 20));
    await untrusting.stop();
    await started;
    assert.ok(lines.some((line) => /DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate: .*--ca FILE.*retrying enrollment/.test(line)), lines.join('\n'));
  });

  test('a restart keeps the certificate', async () => {
    const again = await startServer({ dataDir: join(dir, 'restart'), host: '127.0.0.1', port: 0, tls: 'self-signed' });
    const fingerprint = again.tls!.fingerprint256;
    await again.close();
    const third = await startServer({ dataDir: join(dir, 'restart'), host: '127.0.0.1', port: 0, tls: 'self-signed' });
    try {
      assert.equal(third.tls?.created, false);
      assert.equal(third.tls?.fingerprint256, fingerprint);
    } finally {
      await third.close();
    }
  });
});
