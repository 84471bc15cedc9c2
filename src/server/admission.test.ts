import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { DriftlessError } from '../protocol/errors.ts';
import type { StatusReport } from '../protocol/messages.ts';
import { generateKeyPair, loadPrivateKey, sessionChallenge, signText, type KeyPairText } from '../protocol/signing.ts';
import { createAdmission, type AdmissionConfig, type Release } from './admission.ts';
import { assembleServer } from './assemble.ts';
import { hashToken } from './auth/tokens.ts';
import { migrateToLatest } from './store/migrate.ts';
import { openSqlite } from './store/sqlite.ts';
import { createSqlStore, type Store } from './store/store.ts';

/** A clock for queue deadlines that moves only when the test says so. */
function manualTimers() {
  let nowMs = 0;
  const timers = new Set<{ at: number; fn: () => void }>();
  return {
    schedule(fn: () => void, ms: number) {
      const timer = { at: nowMs + ms, fn };
      timers.add(timer);
      return () => void timers.delete(timer);
    },
    advance(ms: number) {
      nowMs += ms;
      for (const timer of [...timers].filter((t) => t.at <= nowMs)) {
        timers.delete(timer);
        timer.fn();
      }
    },
    pending: () => timers.size,
  };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('admission (pure)', () => {
  test('runs at most maxInFlight, queues up to maxQueue in order, refuses the rest at once with a jittered Retry-After', async () => {
    const timers = manualTimers();
    const rolls = [0, 0.5, 0.999];
    let roll = 0;
    const admission = createAdmission({ maxInFlight: 2, maxQueue: 3, retryAfterMs: 4_000, random: () => rolls[roll++ % rolls.length]!, schedule: timers.schedule });
    const order: number[] = [];
    const entries = Array.from({ length: 8 }, (_, i) => admission.enter().then((release) => (order.push(i), release)));
    const outcomes = await Promise.allSettled(entries.slice(5));
    for (const outcome of outcomes) {
      assert.equal(outcome.status, 'rejected');
      const error = (outcome as PromiseRejectedResult).reason as DriftlessError;
      assert.equal(error.code, 'busy');
      assert.ok(error.retryAfterMs! >= 4_000 && error.retryAfterMs! < 8_000, `retry after ${error.retryAfterMs}`);
    }
    assert.deepEqual(new Set(outcomes.map((o) => ((o as PromiseRejectedResult).reason as DriftlessError).retryAfterMs)).size, 3, 'the refused are told different times');
    await settle();
    assert.deepEqual(order, [0, 1]);
    assert.deepEqual({ ...admission.stats(), admitted: undefined }, { inFlight: 2, queued: 3, refused: 3, peakInFlight: 2, peakQueued: 3, admitted: undefined });

    const first = await entries[0]!;
    first();
    first(); // a second release gives nothing back twice
    await settle();
    assert.deepEqual(order, [0, 1, 2]);
    assert.equal(admission.stats().inFlight, 2);
    for (const i of [1, 2]) (await entries[i]!)();
    await settle();
    for (const i of [3, 4]) (await entries[i]!)();
    assert.deepEqual(order, [0, 1, 2, 3, 4], 'first come, first served');
    assert.deepEqual({ ...admission.stats() }, { inFlight: 0, queued: 0, admitted: 5, refused: 3, peakInFlight: 2, peakQueued: 3 });
    assert.equal(timers.pending(), 0, 'no deadline left behind');
  });

  test('a request that waits past maxWaitMs is refused as busy and leaves the queue', async () => {
    const timers = manualTimers();
    const admission = createAdmission({ maxInFlight: 1, maxQueue: 5, retryAfterMs: 1_000, maxWaitMs: 2_000, random: () => 0, schedule: timers.schedule });
    const held = await admission.enter();
    const waiting = admission.enter();
    timers.advance(1_999);
    assert.equal(admission.stats().queued, 1);
    timers.advance(1);
    await assert.rejects(waiting, (e: unknown) => e instanceof DriftlessError && e.code === 'busy' && /waited 2s/.test(e.message));
    assert.equal(admission.stats().queued, 0);
    held();
    assert.equal(admission.stats().inFlight, 0, 'the timed-out request never got the slot');
  });

  test('a caller that goes away while queued gives up its place; one already gone is not queued', async () => {
    const timers = manualTimers();
    const admission = createAdmission({ maxInFlight: 1, maxQueue: 5, retryAfterMs: 1_000, schedule: timers.schedule });
    const held = await admission.enter();
    const leaving = new AbortController();
    const abandoned = admission.enter(leaving.signal);
    const staying = admission.enter();
    leaving.abort(new Error('client hung up'));
    await assert.rejects(abandoned, /client hung up/);
    await assert.rejects(admission.enter(AbortSignal.abort(new Error('gone already'))), /gone already/);
    assert.equal(admission.stats().queued, 1);
    held();
    const release: Release = await staying;
    assert.equal(admission.stats().inFlight, 1);
    release();
    assert.equal(timers.pending(), 0);
  });

  test('nonsense limits are refused', () => {
    assert.throws(() => createAdmission({ maxInFlight: 0, maxQueue: 1, retryAfterMs: 1 }), RangeError);
  });
});

// ---- over HTTP, through buildApp ----

const ENROLL = 'enroll-token';
const ADMIN = 'admin-token';
const START = Date.parse('2025-06-01T12:00:00.000Z');

type Harness = {
  app: FastifyInstance;
  store: Store;
  /** While held, every store transaction waits: the costly requests in flight stay in flight. */
  hold(): void;
  letGo(): void;
  tick(): Promise<void>;
  close(): Promise<void>;
};

async function harness(admission: AdmissionConfig): Promise<Harness> {
  const db = openSqlite(':memory:');
  await migrateToLatest(db);
  const real = createSqlStore(db);
  const at = new Date(START).toISOString();
  await real.insertEnrollToken({ id: 'bootstrap', tokenHash: hashToken(ENROLL), description: '', createdAt: at, expiresAt: null, revokedAt: null });
  await real.insertApiToken({ id: 'admin', tokenHash: hashToken(ADMIN), role: 'admin', description: '', createdAt: at, expiresAt: null, revokedAt: null });
  let gate: { promise: Promise<void>; open: () => void } | null = null;
  const store: Store = {
    ...real,
    transaction: async (work) => {
      await gate?.promise;
      return real.transaction(work);
    },
  };
  const { app, tickRollouts } = await assembleServer({ store, now: () => START, signing: generateKeyPair(), sessionSecret: randomBytes(32), pollSeconds: 30, isOnline: () => true, admission });
  await app.ready();
  return {
    app,
    store: real,
    hold() {
      let open = () => undefined as void;
      const promise = new Promise<void>((resolve) => (open = resolve));
      gate = { promise, open };
    },
    letGo() {
      gate?.open();
      gate = null;
    },
    tick: tickRollouts,
    async close() {
      await app.close();
      await db.destroy();
    },
  };
}

type Device = { name: string; keys: KeyPairText; token: string; etag: string };

function sessionBody(name: string, keys: KeyPairText) {
  const timestamp = new Date(START).toISOString();
  return { device: name, timestamp, signature: signText(loadPrivateKey(keys.privateKey), sessionChallenge(name, timestamp)) };
}

/** Enrolls devices one by one (never over the limit), with a Deployment so each has a desired state. */
async function fleet(h: Harness, count: number): Promise<Device[]> {
  const applied = await h.app.inject({
    method: 'POST',
    url: '/v1/apply',
    headers: { authorization: `Bearer ${ADMIN}` },
    payload: { resources: [{ apiVersion: 'driftless/v1', kind: 'Deployment', metadata: { name: 'pos' }, spec: { selector: { matchLabels: { tier: 'store' } }, template: { version: '1', components: [{ name: 'pos', command: ['/opt/pos'] }] }, strategy: { waves: [{ percent: 100 }] } } }] },
  });
  assert.equal(applied.statusCode, 200, applied.body);
  const devices: Device[] = [];
  for (let i = 0; i < count; i++) {
    const name = `dev-${i}`;
    const keys = generateKeyPair();
    const enrolled = await h.app.inject({ method: 'POST', url: '/v1/enroll', payload: { token: ENROLL, name, labels: { tier: 'store' }, publicKey: keys.publicKey } });
    assert.equal(enrolled.statusCode, 201, enrolled.body);
    const session = await h.app.inject({ method: 'POST', url: '/v1/device/session', payload: sessionBody(name, keys) });
    assert.equal(session.statusCode, 200, session.body);
    devices.push({ name, keys, token: (session.json() as { token: string }).token, etag: '' });
  }
  await h.tick();
  return devices;
}

const report = (generation: number): StatusReport => ({
  generation,
  reportedAt: new Date(START).toISOString(),
  components: [{ name: 'pos', deployment: 'pos', desiredVersion: '1', version: '1', state: 'healthy', reason: null, detail: null, since: new Date(START).toISOString() }],
  events: [],
});

/** Sends at once: an inject not yet awaited is not yet dispatched, and these tests depend on arrival order. */
const postStatus = async (h: Harness, d: Device, generation: number) =>
  await h.app.inject({ method: 'POST', url: '/v1/device/status', headers: { authorization: `Bearer ${d.token}` }, payload: report(generation) });

function assertBusy(reply: LightMyRequestResponse, retryAfterMs: number): void {
  assert.equal(reply.statusCode, 429, reply.body);
  assert.equal((reply.json() as { error: { code: string } }).error.code, 'busy');
  const seconds = Number(reply.headers['retry-after']);
  assert.ok(seconds >= retryAfterMs / 1000 && seconds <= (2 * retryAfterMs) / 1000, `Retry-After: ${reply.headers['retry-after']}`);
}

describe('admission (over the device API)', () => {
  test('past the limit a status report is refused with 429 and Retry-After and nothing of it is written; the admitted are all written', async () => {
    const config: AdmissionConfig = { maxInFlight: 2, maxQueue: 3, retryAfterMs: 5_000 };
    const h = await harness(config);
    try {
      const devices = await fleet(h, 12);
      h.hold();
      const replies = devices.map((d) => postStatus(h, d, 7));
      // The refused are answered while the admitted are still waiting on the store.
      const refused: LightMyRequestResponse[] = [];
      for (const reply of replies.slice(config.maxInFlight + config.maxQueue)) refused.push(await reply);
      for (const reply of refused) assertBusy(reply, config.retryAfterMs);
      h.letGo();
      const admitted = await Promise.all(replies.slice(0, config.maxInFlight + config.maxQueue));
      for (const reply of admitted) assert.equal(reply.statusCode, 200, reply.body);
      for (const [i, d] of devices.entries()) {
        const written = (await h.store.listComponents(d.name)).length;
        assert.equal(written, i < config.maxInFlight + config.maxQueue ? 1 : 0, `${d.name}: ${written} component rows`);
        assert.equal((await h.store.getDevice(d.name))?.appliedGeneration, i < config.maxInFlight + config.maxQueue ? 7 : 0);
      }
      // Once the storm passed, a refused device is served again.
      assert.equal((await postStatus(h, devices.at(-1)!, 7)).statusCode, 200);
    } finally {
      h.letGo();
      await h.close();
    }
  });

  test('while every slot is taken, a 304 poll is still answered; a full document, a session and an enrollment are refused', async () => {
    const config: AdmissionConfig = { maxInFlight: 1, maxQueue: 1, retryAfterMs: 2_000 };
    const h = await harness(config);
    try {
      const [a, b, c, d] = await fleet(h, 4);
      const first = await h.app.inject({ method: 'GET', url: '/v1/device/desired-state', headers: { authorization: `Bearer ${a!.token}` } });
      assert.equal(first.statusCode, 200, first.body);
      const etag = String(first.headers.etag);
      h.hold();
      const held = [postStatus(h, b!, 1), postStatus(h, c!, 1)];
      const unchanged = await h.app.inject({ method: 'GET', url: '/v1/device/desired-state', headers: { authorization: `Bearer ${a!.token}`, 'if-none-match': etag } });
      assert.equal(unchanged.statusCode, 304, 'the cheap path never waits for a turn');
      const full = await h.app.inject({ method: 'GET', url: '/v1/device/desired-state', headers: { authorization: `Bearer ${d!.token}` } });
      assertBusy(full, config.retryAfterMs);
      assert.equal(full.headers.etag, undefined, 'a refusal carries no document tag');
      assertBusy(await h.app.inject({ method: 'POST', url: '/v1/device/session', payload: sessionBody(d!.name, d!.keys) }), config.retryAfterMs);
      const late = generateKeyPair();
      assertBusy(await h.app.inject({ method: 'POST', url: '/v1/enroll', payload: { token: ENROLL, name: 'late', labels: {}, publicKey: late.publicKey } }), config.retryAfterMs);
      assert.equal(await h.store.getDevice('late'), null, 'a refused enrollment enrolls nobody');
      h.letGo();
      for (const reply of await Promise.all(held)) assert.equal(reply.statusCode, 200, reply.body);
      assert.equal((await h.app.inject({ method: 'GET', url: '/v1/device/desired-state', headers: { authorization: `Bearer ${d!.token}` } })).statusCode, 200);
    } finally {
      h.letGo();
      await h.close();
    }
  });

  test('a device without a session is refused for that, without taking a turn', async () => {
    const h = await harness({ maxInFlight: 1, maxQueue: 0, retryAfterMs: 1_000 });
    try {
      const [a] = await fleet(h, 1);
      h.hold();
      const held = postStatus(h, a!, 1);
      const anonymous = await h.app.inject({ method: 'POST', url: '/v1/device/status', payload: report(1) });
      assert.equal(anonymous.statusCode, 401, anonymous.body);
      h.letGo();
      assert.equal((await held).statusCode, 200);
    } finally {
      h.letGo();
      await h.close();
    }
  });
});
