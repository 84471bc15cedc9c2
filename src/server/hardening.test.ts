import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { generateKeyPair, loadPrivateKey, sessionChallenge, signText } from '../protocol/signing.ts';
import { loggableUrl, scrubSecrets, type ServerLogger } from './log-redaction.ts';
import type { AuthLimitConfig } from './rate-limit.ts';
import { startInProcessServer, type InProcessServer } from '../../test/support/in-process-server.ts';

// Shaped as the server makes them, so the scrubbing of free text is exercised as well as the field paths.
const ADMIN = `dla_${randomBytes(24).toString('base64url')}`;
const VIEWER = `dla_${randomBytes(24).toString('base64url')}`;
const ENROLL = `dle_${randomBytes(24).toString('base64url')}`;
const START = Date.parse('2025-06-01T12:00:00.000Z');

type Hardened = InProcessServer;

async function hardened(opts: { logger?: ServerLogger; authLimits?: AuthLimitConfig; breakStore?: boolean } = {}): Promise<Hardened> {
  // A store that breaks on listing devices: a 500 path, to show that even its log line holds no secret.
  // Wrapped all the way down: a store view made from it (one tenant's, say) breaks the same way.
  const broken = <T extends object>(target: T): T =>
    new Proxy(target, {
      get(object, property, receiver) {
        if (property === 'listDevices') return async () => Promise.reject(new Error(`database is locked (query by ${ADMIN})`));
        const value = Reflect.get(object, property, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          const result = (value as (...a: unknown[]) => unknown).apply(object, args);
          return result !== null && typeof result === 'object' && !(result instanceof Promise) ? broken(result) : result;
        };
      },
    });
  return startInProcessServer({
    start: START,
    tokens: { [ADMIN]: 'admin', [VIEWER]: 'viewer' },
    enrollToken: ENROLL,
    ...(opts.breakStore ? { serve: broken } : {}),
    ...(opts.logger === undefined ? {} : { logger: opts.logger }),
    ...(opts.authLimits === undefined ? {} : { authLimits: opts.authLimits }),
  });
}

const auth = (token: string) => ({ authorization: `Bearer ${token}` });

function enrollBody(name: string, token = ENROLL, keys = generateKeyPair()) {
  return { token, name, publicKey: keys.publicKey };
}

function sessionBody(name: string, privateKey: string, atMs: number) {
  const timestamp = new Date(atMs).toISOString();
  return { device: name, timestamp, signature: signText(loadPrivateKey(privateKey), sessionChallenge(name, timestamp)) };
}

describe('secure headers', () => {
  test('every answer, success or error, JSON or text, carries them; a token is never cached', async () => {
    const h = await hardened();
    try {
      const sample = [
        await h.app.inject({ method: 'GET', url: '/healthz' }),
        await h.app.inject({ method: 'GET', url: '/v1/openapi.json' }),
        await h.app.inject({ method: 'GET', url: '/v1/devices', headers: auth(VIEWER) }),
        await h.app.inject({ method: 'GET', url: '/v1/devices' }),
        await h.app.inject({ method: 'GET', url: '/metrics', headers: auth(VIEWER) }),
        await h.app.inject({ method: 'GET', url: '/v1/no-such-route' }),
        await h.app.inject({ method: 'POST', url: '/v1/enroll', payload: '{bad json', headers: { 'content-type': 'application/json' } }),
        await h.app.inject({ method: 'GET', url: '/v1/devices/%E0%A4%A' }),
      ];
      const created = await h.app.inject({ method: 'POST', url: '/v1/tokens', headers: auth(ADMIN), payload: { role: 'viewer' } });
      assert.equal(created.statusCode, 201);
      for (const reply of [...sample, created]) {
        const where = `${reply.statusCode} ${reply.body.slice(0, 80)}`;
        assert.equal(reply.headers['x-content-type-options'], 'nosniff', where);
        assert.equal(reply.headers['x-frame-options'], 'DENY', where);
        assert.equal(reply.headers['referrer-policy'], 'no-referrer', where);
        assert.equal(reply.headers['content-security-policy'], "default-src 'none'; frame-ancestors 'none'", where);
        assert.equal(reply.headers['strict-transport-security'], undefined, 'no HSTS over plain HTTP');
      }
      assert.equal(created.headers['cache-control'], 'no-store');
      assert.equal(sample[2]!.headers['cache-control'], 'no-store');
    } finally {
      await h.close();
    }
  });
});

describe('rate of authentication attempts', () => {
  const tight: AuthLimitConfig = { perSource: { capacity: 30, refillPerSecond: 1 }, perIdentity: { capacity: 3, refillPerSecond: 0.1 }, attemptCost: 1, failureCost: 5 };

  test('wrong enrollment tokens run dry: 429 busy with Retry-After, then the clock lets the right one through', async () => {
    const h = await hardened({ authLimits: tight });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) statuses.push((await h.app.inject({ method: 'POST', url: '/v1/enroll', payload: enrollBody(`guess-${i}`, `wrong-${i}`) })).statusCode);
      assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429, 429, 429], 'five failures (six each) use a burst of thirty');
      const refused = await h.app.inject({ method: 'POST', url: '/v1/enroll', payload: enrollBody('pos-01') });
      assert.equal(refused.statusCode, 429, 'the right token waits too: the source is refused before any work');
      assert.equal((refused.json() as { error: { code: string } }).error.code, 'busy');
      assert.match(String(refused.headers['retry-after']), /^\d+$/);
      assert.match(refused.body, /too many authentication attempts/);
      h.clock.ms += Number(refused.headers['retry-after']) * 1000;
      assert.equal((await h.app.inject({ method: 'POST', url: '/v1/enroll', payload: enrollBody('pos-01') })).statusCode, 201);
      assert.equal(await h.store.getDevice('guess-0'), null);
    } finally {
      await h.close();
    }
  });

  test('bad device signatures are limited per device name, whatever the source; other devices go on', async () => {
    const h = await hardened({ authLimits: { ...tight, perSource: { capacity: 1000, refillPerSecond: 100 } } });
    try {
      const keys = generateKeyPair();
      assert.equal((await h.app.inject({ method: 'POST', url: '/v1/enroll', payload: enrollBody('pos-01', ENROLL, keys) })).statusCode, 201);
      const other = generateKeyPair();
      assert.equal((await h.app.inject({ method: 'POST', url: '/v1/enroll', payload: enrollBody('pos-02', ENROLL, other) })).statusCode, 201);
      const forged = generateKeyPair().privateKey;
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const reply = await h.app.inject({ method: 'POST', url: '/v1/device/session', payload: sessionBody('pos-01', forged, h.clock.ms), remoteAddress: `10.9.0.${i}` });
        statuses.push(reply.statusCode);
      }
      assert.deepEqual(statuses, [401, 401, 401, 429, 429]);
      assert.equal((await h.app.inject({ method: 'POST', url: '/v1/device/session', payload: sessionBody('pos-02', other.privateKey, h.clock.ms) })).statusCode, 200);
      h.clock.ms += 10_000;
      assert.equal((await h.app.inject({ method: 'POST', url: '/v1/device/session', payload: sessionBody('pos-01', keys.privateKey, h.clock.ms) })).statusCode, 200);
    } finally {
      await h.close();
    }
  });

  test('unknown API tokens are limited per source; good tokens cost nothing', async () => {
    const h = await hardened({ authLimits: tight });
    try {
      for (let i = 0; i < 100; i++) assert.equal((await h.app.inject({ method: 'GET', url: '/v1/sites', headers: auth(VIEWER) })).statusCode, 200);
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) statuses.push((await h.app.inject({ method: 'GET', url: '/v1/sites', headers: auth(`dla_guess${i}`) })).statusCode);
      assert.deepEqual(statuses, [401, 401, 401, 401, 401, 401, 429, 429]);
      assert.equal((await h.app.inject({ method: 'GET', url: '/v1/sites', headers: auth(VIEWER), remoteAddress: '10.1.1.1' })).statusCode, 200, 'another source is not affected');
      assert.equal((await h.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'a public route needs no credential and is not limited');
    } finally {
      await h.close();
    }
  });
});

describe('no secret in a log line', () => {
  test('tokens, sessions and keys never reach the log, on success, failure or a 500', async () => {
    let log = '';
    const h = await hardened({ logger: { stream: { write: (line: string) => (log += line) } }, breakStore: true });
    try {
      const keys = generateKeyPair();
      const secrets = [ADMIN, VIEWER, ENROLL, keys.privateKey];
      assert.equal((await h.app.inject({ method: 'POST', url: '/v1/enroll', payload: enrollBody('pos-01', ENROLL, keys) })).statusCode, 201);
      const session = await h.app.inject({ method: 'POST', url: '/v1/device/session', payload: sessionBody('pos-01', keys.privateKey, h.clock.ms) });
      const deviceToken = (session.json() as { token: string }).token;
      secrets.push(deviceToken);
      const created = await h.app.inject({ method: 'POST', url: '/v1/tokens', headers: auth(ADMIN), payload: { role: 'operator' } });
      secrets.push((created.json() as { token: string }).token);
      const calls = [
        { method: 'GET', url: '/v1/device/desired-state', headers: auth(deviceToken) },
        { method: 'GET', url: `/v1/device/desired-state?token=${deviceToken}`, headers: auth(`${deviceToken}x`) },
        { method: 'GET', url: '/v1/sites', headers: auth(VIEWER) },
        { method: 'GET', url: `/v1/sites?access_token=${ADMIN}`, headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN}`).toString('base64')}` } },
        { method: 'POST', url: '/v1/enroll', payload: enrollBody('pos-02', `${ENROLL}-wrong`) },
        { method: 'POST', url: '/v1/enroll', payload: `{"token":"${ENROLL}","privateKey":"${keys.privateKey}"` },
        { method: 'POST', url: '/v1/apply', headers: auth(ADMIN), payload: { resources: [{ token: ADMIN }] } },
        { method: 'GET', url: '/v1/devices', headers: auth(ADMIN) },
      ] as const;
      for (const c of calls) await h.app.inject({ ...c, headers: { 'content-type': 'application/json', ...('headers' in c ? c.headers : {}) } });
      assert.equal((await h.app.inject({ method: 'GET', url: '/v1/devices', headers: auth(ADMIN) })).statusCode, 500, 'the broken store gives a 500');
      h.app.log.info({ req: { headers: { authorization: `Bearer ${ADMIN}` } }, enrollToken: ENROLL, nested: { privateKey: keys.privateKey } }, `a careless line with ${VIEWER}`);
      if (process.env.SHOW_LOG) process.stderr.write(log);
      assert.match(log, /"statusCode":500/, 'the log was written');
      assert.match(log, /database is locked/, 'the error is logged, scrubbed');
      assert.match(log, /\/v1\/sites\?access_token=\[redacted\]/);
      for (const secret of secrets) assert.ok(!log.includes(secret), `a secret reached the log: ${secret.slice(0, 12)}…`);
      // Parts of keys would do harm too: no 24-character run of any secret appears.
      for (const secret of secrets) for (let i = 0; i + 24 <= secret.length; i += 12) assert.ok(!log.includes(secret.slice(i, i + 24)), 'a piece of a secret reached the log');
    } finally {
      await h.close();
    }
  });

  test('scrubbing free text and URLs', () => {
    assert.equal(scrubSecrets(`token ${ADMIN} and ${ENROLL}`), 'token dla_[redacted] and dle_[redacted]');
    assert.equal(scrubSecrets('authorization: Bearer abc.def'), 'authorization: Bearer [redacted]');
    assert.equal(scrubSecrets('-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----'), 'PRIVATE KEY [redacted]');
    assert.equal(loggableUrl('/v1/logs/pos-01?since=2025&token=abc'), '/v1/logs/pos-01?since=2025&token=[redacted]');
    assert.equal(loggableUrl('/v1/devices'), '/v1/devices');
  });
});
