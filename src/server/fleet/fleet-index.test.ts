import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { createPresence, type Presence } from '../presence.ts';
import { migrateToLatest } from '../store/migrate.ts';
import { openSqlite } from '../store/sqlite.ts';
import { createSqlStore, type DeviceRecord, type Store } from '../store/store.ts';
import { createFleetIndex, type FleetIndex, type FleetSnapshot } from './fleet-index.ts';

// The shared fleet snapshot over a real in-memory SQLite store: how long it is kept, by which
// clocks, that one build serves every caller meanwhile, that a stale one answers while its
// successor is built, and that a failed one is not kept.

const START = Date.parse('2025-06-02T10:00:00.000Z');
const MAX_AGE = 1000;

function deviceRecord(name: string, opts: Partial<DeviceRecord> = {}): DeviceRecord {
  const nowIso = new Date(START).toISOString();
  return { name, site: 'alpha', labels: {}, facts: {}, publicKey: `key-${name}`, status: 'accepted', enrolledAt: nowIso, lastSeen: nowIso, appliedGeneration: 0, ...opts };
}

/** The store, counting the builds that read it; `failNext` makes the next reads of devices fail; `gate` holds them until opened. */
type Counting = { store: Store; builds: () => number; failNext: (n: number) => void; hold: () => () => void };

function counting(inner: Store): Counting {
  let builds = 0;
  let failures = 0;
  let gate: Promise<void> | null = null;
  const store: Store = {
    ...inner,
    async listDevices() {
      builds += 1;
      if (gate) await gate;
      if (failures > 0) {
        failures -= 1;
        throw new Error('the database went away');
      }
      return inner.listDevices();
    },
  };
  return {
    store,
    builds: () => builds,
    failNext: (n) => void (failures = n),
    hold: () => {
      let open!: () => void;
      gate = new Promise<void>((resolve) => (open = resolve));
      return () => {
        gate = null;
        open();
      };
    },
  };
}

/** Lets builds running behind the answers finish. */
const settle = async () => {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
};

/** The snapshot that replaces `old` once its successor, being built behind it, is done. */
async function successorOf(fleet: FleetIndex, store: Store, old: FleetSnapshot): Promise<FleetSnapshot> {
  for (let i = 0; i < 100; i++) {
    await settle();
    const now = await fleet.snapshot(store, 'default');
    if (now !== old) return now;
  }
  throw new Error('the successor never replaced the old snapshot');
}

describe('createFleetIndex', () => {
  let db: ReturnType<typeof openSqlite>;
  let store: Store;
  let presence: Presence;
  let clocks: { mono: number; server: number };
  let c: Counting;
  const index = () => createFleetIndex({ presence, clock: { now: () => clocks.server, offlineAfterMs: 90_000 }, maxAgeMs: MAX_AGE, monotonic: () => clocks.mono });

  beforeEach(async () => {
    db = openSqlite(':memory:');
    await migrateToLatest(db);
    store = createSqlStore(db);
    presence = createPresence(store);
    clocks = { mono: 5_000, server: START };
    await store.putSite({ name: 'alpha', labels: { region: 'eu' }, spec: {} as never, createdAt: new Date(START).toISOString(), updatedAt: new Date(START).toISOString() });
    await store.insertDevice(deviceRecord('dev-1'));
    await store.insertDevice(deviceRecord('dev-2', { site: null, labels: { region: 'us' } }));
    await store.insertDevice(deviceRecord('dev-old', { lastSeen: new Date(START - 3_600_000).toISOString() }));
    await store.insertDevice(deviceRecord('dev-new', { status: 'pending', lastSeen: null }));
    c = counting(store);
  });
  afterEach(async () => db.destroy());

  test('the snapshot: every device of the store with its state and region, built at the server clock', async () => {
    const s = await index().snapshot(c.store, 'default');
    assert.equal(s.builtAt, START);
    const rows = Object.fromEntries(s.rows.map((r) => [r.view.name, { state: r.state, region: r.region, status: r.view.status }]));
    assert.deepEqual(rows, {
      'dev-1': { state: 'up-to-date', region: 'eu', status: 'accepted' },
      'dev-2': { state: 'up-to-date', region: 'us', status: 'accepted' },
      'dev-old': { state: 'offline', region: 'eu', status: 'accepted' },
      'dev-new': { state: 'offline', region: 'eu', status: 'pending' },
    });
    assert.deepEqual(s.sites.map((site) => site.name), ['alpha']);
    assert.deepEqual([s.deployments, s.rollouts, s.incidents], [[], [], []]);
  });

  test('a second call within maxAgeMs answers the same snapshot without reading the store', async () => {
    const fleet = index();
    const first = await fleet.snapshot(c.store, 'default');
    clocks.mono += MAX_AGE - 1;
    clocks.server += MAX_AGE - 1;
    await store.insertDevice(deviceRecord('dev-late'));
    const second = await fleet.snapshot(c.store, 'default');
    assert.equal(second, first, 'the very same object');
    assert.equal(c.builds(), 1);
    assert.ok(!second.rows.some((r) => r.view.name === 'dev-late'), 'the change waits for the next build');
  });

  test('past maxAgeMs (wall clock): the old snapshot answers at once while its successor is built, then the successor', async () => {
    const fleet = index();
    const first = await fleet.snapshot(c.store, 'default');
    await store.insertDevice(deviceRecord('dev-late'));
    clocks.mono += MAX_AGE;
    assert.equal(await fleet.snapshot(c.store, 'default'), first, 'no caller waits while there is one to show');
    assert.equal(await fleet.snapshot(c.store, 'default'), first);
    assert.equal(c.builds(), 1, 'the successor starts after the answers are sent');
    await settle();
    assert.equal(c.builds(), 2, 'one successor is built behind it, however many ask meanwhile');
    const second = await successorOf(fleet, c.store, first);
    assert.ok(second.rows.some((r) => r.view.name === 'dev-late'));
    assert.equal(c.builds(), 2);
    // And the successor is kept in its turn.
    assert.equal(await fleet.snapshot(c.store, 'default'), second);
    assert.equal(c.builds(), 2);
  });

  test('past maxStaleMs (5 × maxAgeMs by default), by either clock and either way, callers wait for a new build', async () => {
    const fleet = index();
    const first = await fleet.snapshot(c.store, 'default');
    clocks.mono += 5 * MAX_AGE;
    const second = await fleet.snapshot(c.store, 'default');
    assert.notEqual(second, first);
    assert.equal(c.builds(), 2);
    clocks.server += 5 * MAX_AGE;
    const third = await fleet.snapshot(c.store, 'default');
    assert.equal(third.builtAt, START + 5 * MAX_AGE, 'built now, by the server clock');
    clocks.server -= 5 * MAX_AGE;
    const fourth = await fleet.snapshot(c.store, 'default');
    assert.equal(fourth.builtAt, START);
    assert.equal(c.builds(), 4);
  });

  test('a device going offline by the server clock shows once the snapshot is rebuilt', async () => {
    const fleet = index();
    assert.equal((await fleet.snapshot(c.store, 'default')).rows.find((r) => r.view.name === 'dev-1')!.state, 'up-to-date');
    clocks.server += 2 * 90_000;
    assert.equal((await fleet.snapshot(c.store, 'default')).rows.find((r) => r.view.name === 'dev-1')!.state, 'offline');
  });

  test('maxAgeMs 0: every call builds afresh', async () => {
    const fleet = createFleetIndex({ presence, clock: { now: () => clocks.server, offlineAfterMs: 90_000 }, maxAgeMs: 0, monotonic: () => clocks.mono });
    const a = await fleet.snapshot(c.store, 'default');
    const b = await fleet.snapshot(c.store, 'default');
    assert.notEqual(a, b);
    assert.equal(c.builds(), 2);
  });

  test('concurrent calls share one build', async () => {
    const fleet = index();
    const open = c.hold();
    const calls = [fleet.snapshot(c.store, 'default'), fleet.snapshot(c.store, 'default')];
    // Still building (held at the store): a third caller joins the same build.
    calls.push(fleet.snapshot(c.store, 'default'));
    await settle();
    assert.equal(c.builds(), 1);
    open();
    const [a, b, d] = await Promise.all(calls);
    assert.equal(a, b);
    assert.equal(a, d);
    assert.equal(c.builds(), 1);
  });

  test('a failing build is not kept: its callers all see the error, the next call builds again', async () => {
    const fleet = index();
    c.failNext(1);
    const open = c.hold();
    const calls = [fleet.snapshot(c.store, 'default'), fleet.snapshot(c.store, 'default')];
    open();
    for (const call of calls) await assert.rejects(call, /the database went away/);
    assert.equal(c.builds(), 1, 'both callers shared the failed build');
    // No clock moved: only dropping the failure lets this call build.
    const s = await fleet.snapshot(c.store, 'default');
    assert.equal(c.builds(), 2);
    assert.equal(s.rows.length, 4);
    assert.equal(await fleet.snapshot(c.store, 'default'), s, 'the good build is kept');
    assert.equal(c.builds(), 2);
  });

  test('a failing successor leaves the old snapshot answering; the next call tries again', async () => {
    const fleet = index();
    const first = await fleet.snapshot(c.store, 'default');
    clocks.mono += MAX_AGE;
    c.failNext(1);
    assert.equal(await fleet.snapshot(c.store, 'default'), first);
    await settle();
    assert.equal(c.builds(), 2);
    assert.equal(await fleet.snapshot(c.store, 'default'), first, 'still the last good one');
    await settle();
    assert.equal(c.builds(), 3, 'and a new successor is on its way');
    const next = await successorOf(fleet, c.store, first);
    assert.notEqual(next, first);
    assert.equal(c.builds(), 3);
  });

  test('tenants are separate: each its own build, cache and devices', async () => {
    for (const tenant of ['north', 'south']) {
      await store.insertTenant({ name: tenant, createdAt: new Date(START).toISOString() });
      await store.forTenant(tenant).insertDevice(deviceRecord(`${tenant}-dev`, { site: null }));
    }
    const fleet = index();
    const north = await fleet.snapshot(c.store.forTenant('north'), 'north');
    const south = await fleet.snapshot(c.store.forTenant('south'), 'south');
    assert.notEqual(north, south);
    assert.deepEqual(north.rows.map((r) => r.view.name), ['north-dev']);
    assert.deepEqual(south.rows.map((r) => r.view.name), ['south-dev']);
    // Each kept under its own tenant.
    assert.equal(await fleet.snapshot(c.store.forTenant('north'), 'north'), north);
    assert.equal(await fleet.snapshot(c.store.forTenant('south'), 'south'), south);
    const all: FleetSnapshot = await fleet.snapshot(c.store, 'default');
    assert.ok(all !== north && all !== south);
  });
});
