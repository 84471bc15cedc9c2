import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { createAgent, type Agent } from '../agent/create-agent.ts';
import { createMemoryStorage } from '../agent/storage/memory-storage.ts';
import type { Backoff } from '../agent/sync/backoff.ts';
import { createServerClient, type Transport } from '../agent/sync/client.ts';
import { generateKeyPair, loadPrivateKey } from '../protocol/signing.ts';
import { createRandom } from './random.ts';

/**
 * A fleet returning after an outage, on a virtual clock: real agents (createAgent with the real
 * sync client and its contact gate) against a scripted server that is up, down (connection
 * refused) or busy (429 with Retry-After). Timers and Date are mocked, so five minutes of outage
 * take no five minutes, and every request is stamped with the virtual time it was made.
 */

const START = Date.parse('2025-06-01T12:00:00.000Z');
const SERVER = 'http://driftless.invalid';
const SERVER_KEY = generateKeyPair().publicKey;
const STEP_MS = 250;

type Mode = { kind: 'up' } | { kind: 'down' } | { kind: 'busy'; retryAfterSeconds: number };
type Contact = { device: string; at: number; path: string; answer: number | 'refused' };

function scriptedServer() {
  const state = { mode: { kind: 'up' } as Mode, contacts: [] as Contact[] };
  const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
  const transport = (device: string): Transport => async (url) => {
    const path = new URL(url).pathname;
    const at = Date.now();
    const mode = state.mode;
    if (mode.kind === 'down') {
      state.contacts.push({ device, at, path, answer: 'refused' });
      throw new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
    }
    // Enrollment happens before the drill; the drill is about what comes after.
    if (path === '/v1/enroll') return json(201, { device, serverKey: SERVER_KEY, pollSeconds: 60 });
    if (mode.kind === 'busy') {
      state.contacts.push({ device, at, path, answer: 429 });
      return json(429, { error: { code: 'busy', message: 'the server is busy' } }, { 'retry-after': String(mode.retryAfterSeconds) });
    }
    state.contacts.push({ device, at, path, answer: path === '/v1/device/desired-state' ? 304 : 200 });
    if (path === '/v1/device/session') return json(200, { token: `session-${device}`, expiresAt: new Date(at + 3_600_000).toISOString() });
    if (path === '/v1/device/desired-state') return new Response(null, { status: 304 });
    return json(200, { ackedSeq: 0 });
  };
  return { state, transport };
}

type Fleet = { agents: Agent[]; server: ReturnType<typeof scriptedServer> };

async function startFleet(count: number, backoff: Backoff, seed: number): Promise<Fleet> {
  const server = scriptedServer();
  const random = createRandom(seed);
  const agents: Agent[] = [];
  for (let i = 0; i < count; i++) {
    const name = `dev-${String(i).padStart(4, '0')}`;
    let agent: Agent | null = null;
    const client = createServerClient({
      serverUrl: SERVER,
      device: name,
      privateKey: () => {
        const identity = agent?.identity();
        return identity ? loadPrivateKey(identity.privateKey) : null;
      },
      now: () => Date.now(),
      transport: server.transport(name),
    });
    agent = createAgent({
      dataDir: `sim:${name}`,
      storage: createMemoryStorage(),
      serverUrl: SERVER,
      enrollToken: 'enroll',
      name,
      drivers: {},
      client,
      facts: () => ({ hostname: name }),
      hostMetrics: null,
      now: () => Date.now(),
      pollSeconds: 60,
      // Telemetry has nothing to send here; a slow cadence keeps the virtual minutes cheap.
      telemetrySeconds: 30,
      backoff,
      random: () => random.next(),
    });
    agents.push(agent);
  }
  // All at once, in lock step: the worst case for a storm.
  await Promise.all(agents.map((agent) => agent.start()));
  return { agents, server };
}

/** Moves the virtual clock, letting every agent's pass that falls due run to its next wait. */
async function advance(ms: number): Promise<void> {
  for (let moved = 0; moved < ms; moved += STEP_MS) {
    mock.timers.tick(STEP_MS);
    for (let i = 0; i < 4; i++) await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Each device's first contact at or after `since`, in virtual ms after it. */
function firstContactsAfter(contacts: Contact[], since: number): Map<string, number> {
  const first = new Map<string, number>();
  for (const c of contacts) if (c.at >= since && !first.has(c.device)) first.set(c.device, c.at - since);
  return first;
}

function busiestSecond(offsets: Iterable<number>): number {
  const perSecond = new Map<number, number>();
  for (const ms of offsets) perSecond.set(Math.floor(ms / 1000), (perSecond.get(Math.floor(ms / 1000)) ?? 0) + 1);
  return Math.max(...perSecond.values());
}

describe('a fleet returning after an outage', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: START }));
  afterEach(() => mock.timers.reset());

  const DEVICES = 1000;
  const OUTAGE_MS = 3 * 60_000;

  async function returnAfterOutage(backoff: Backoff): Promise<Map<string, number>> {
    const fleet = await startFleet(DEVICES, backoff, 7);
    try {
      await advance(10_000);
      fleet.server.state.mode = { kind: 'down' };
      await advance(OUTAGE_MS);
      fleet.server.state.mode = { kind: 'up' };
      const back = Date.now();
      await advance(2 * 60_000);
      return firstContactsAfter(fleet.server.state.contacts, back);
    } finally {
      await Promise.all(fleet.agents.map((agent) => agent.stop()));
    }
  }

  // Todo until a failed poll is retried when the back-off allows: today `pull()` stamps lastPollMs before
  // fetching, so a failed poll waits a whole poll interval whatever the back-off says, and a fleet in lock
  // step before the outage returns in lock step (all 1,000 in the same second), jitter or not.
  test('with jittered back-off the first attempts after the return are spread; in lock step without it', { timeout: 180_000 }, async () => {
    const jittered = await returnAfterOutage({ baseMs: 1_000, capMs: 60_000, jitter: true });
    const lockStep = await returnAfterOutage({ baseMs: 1_000, capMs: 1_000, jitter: false });
    assert.equal(jittered.size, DEVICES, 'every device came back');
    assert.equal(lockStep.size, DEVICES, 'every device came back');
    const jitteredPeak = busiestSecond(jittered.values());
    const lockStepPeak = busiestSecond(lockStep.values());
    // Spread over the back-off ceiling, the busiest second holds only a few percent of the fleet.
    assert.ok(jitteredPeak <= DEVICES / 10, `with jitter, ${jitteredPeak} of ${DEVICES} devices came back in the same second`);
    assert.ok(lockStepPeak > DEVICES / 2, `without jitter, the busiest second held only ${lockStepPeak}: not the lock step this test contrasts with`);
  });

  test('a server answering 429 with Retry-After is not contacted again by that device before it', { timeout: 120_000 }, async () => {
    const fleet = await startFleet(200, { baseMs: 1_000, capMs: 60_000, jitter: true }, 11);
    try {
      await advance(10_000);
      fleet.server.state.mode = { kind: 'busy', retryAfterSeconds: 120 };
      await advance(90_000);
      fleet.server.state.mode = { kind: 'up' };
      await advance(4 * 60_000);
      const byDevice = new Map<string, Contact[]>();
      for (const c of fleet.server.state.contacts) byDevice.set(c.device, [...(byDevice.get(c.device) ?? []), c]);
      let refusals = 0;
      for (const [device, contacts] of byDevice) {
        for (const [i, c] of contacts.entries()) {
          if (c.answer !== 429) continue;
          refusals++;
          const next = contacts[i + 1];
          if (next) assert.ok(next.at - c.at >= 120_000, `${device} came back ${(next.at - c.at) / 1000}s after a 429 that said 120s`);
        }
      }
      assert.ok(refusals >= 200, `the busy server refused ${refusals} requests: every device should have met it`);
      assert.ok([...byDevice.values()].every((contacts) => contacts.at(-1)!.answer !== 429), 'every device got through once the server had room');
    } finally {
      await Promise.all(fleet.agents.map((agent) => agent.stop()));
    }
  });
});
