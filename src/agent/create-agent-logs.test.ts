import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { generateKeyPair, loadPrivateKey } from '../protocol/signing.ts';
import { createAgent, type Agent } from './create-agent.ts';
import { createMemoryStorage } from './storage/memory-storage.ts';
import { createServerClient, type Transport } from './sync/client.ts';

/**
 * The agent's log never holds its enrollment token or its private key: not in its own lines, and
 * not when a server (buggy or hostile) echoes them back in an error message the agent logs.
 */

const TOKEN = 'dle_abcdefghijklmnopqrstuvwxyz012345';
const SERVER_KEY = generateKeyPair().publicKey;

const json = (status: number, body: unknown, headers: Record<string, string> = {}) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });

function agentWith(script: (path: string, privateKey: string | null) => Response | Promise<Response>): { agent: Agent; lines: string[] } {
  const lines: string[] = [];
  let agent: Agent | null = null;
  const transport: Transport = async (url) => script(new URL(url).pathname, agent?.identity()?.privateKey ?? null);
  const client = createServerClient({
    serverUrl: 'http://driftless.invalid',
    device: 'pos-01',
    privateKey: () => {
      const identity = agent?.identity();
      return identity ? loadPrivateKey(identity.privateKey) : null;
    },
    now: () => Date.now(),
    transport,
  });
  agent = createAgent({
    dataDir: 'mem:pos-01',
    storage: createMemoryStorage(),
    serverUrl: 'http://driftless.invalid',
    enrollToken: TOKEN,
    name: 'pos-01',
    drivers: {},
    client,
    facts: () => ({ hostname: 'pos-01' }),
    hostMetrics: null,
    pollSeconds: 60,
    telemetrySeconds: 60,
    backoff: { baseMs: 1, capMs: 5, jitter: false },
    log: (line) => lines.push(line),
  });
  return { agent, lines };
}

function assertClean(lines: readonly string[], secrets: readonly string[]): void {
  assert.ok(lines.length > 0);
  for (const line of lines) for (const secret of secrets) assert.ok(!line.includes(secret), `a secret in the agent's log: ${line.slice(0, 120)}`);
}

describe('agent log lines hold no secret', () => {
  test('a busy, then unreachable, then refusing server that echoes the token and the key', async () => {
    let enrollCalls = 0;
    let sessionCalls = 0;
    const { agent, lines } = agentWith((path, privateKey) => {
      if (path === '/v1/enroll') {
        enrollCalls++;
        if (enrollCalls === 1) return json(429, { error: { code: 'busy', message: `busy; your token ${TOKEN} waits` } }, { 'retry-after': '0' });
        if (enrollCalls === 2) throw new TypeError('fetch failed', { cause: new Error(`socket closed after token=${TOKEN}`) });
        return json(201, { device: 'pos-01', serverKey: SERVER_KEY, pollSeconds: 60 });
      }
      if (path === '/v1/device/session') {
        sessionCalls++;
        if (sessionCalls === 1) return json(401, { error: { code: 'unauthorized', message: `bad signature for key ${privateKey}` } });
        return json(200, { token: 'session', expiresAt: new Date(Date.now() + 3_600_000).toISOString() });
      }
      if (path === '/v1/device/desired-state') return new Response(null, { status: 304 });
      return json(200, { ackedSeq: 0 });
    });
    try {
      await agent.start();
      await agent.sync().catch(() => undefined);
      await agent.sync().catch(() => undefined);
    } finally {
      await agent.stop();
    }
    const privateKey = agent.identity()!.privateKey;
    assert.ok(enrollCalls >= 3 && sessionCalls >= 1);
    assert.ok(lines.some((line) => line.includes('retrying enrollment') && line.includes('[redacted]')), lines.join('\n'));
    assert.ok(lines.some((line) => line.includes('bad signature for key [redacted]')), lines.join('\n'));
    assertClean(lines, [TOKEN, privateKey, privateKey.slice(20, 60)]);
  });

  test('a refused enrollment: the error the agent stops with names no token either', async () => {
    const { agent, lines } = agentWith(() => json(401, { error: { code: 'unauthorized', message: `enrollment token ${TOKEN} is not valid` } }));
    const error = await agent.start().then(
      () => assert.fail('enrollment should be refused'),
      (e: unknown) => e as Error,
    );
    await agent.stop();
    assert.match(error.message, /enrollment refused: enrollment token \[redacted\] is not valid/);
    lines.push(error.message);
    assertClean(lines, [TOKEN]);
  });
});
