import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DriftlessError } from '../protocol/errors.ts';
import type { StatusReport } from '../protocol/messages.ts';
import { createStatusWriter } from './status-writer.ts';
import { migrateToLatest } from './store/migrate.ts';
import { openSqlite } from './store/sqlite.ts';
import { createSqlStore, type Store } from './store/store.ts';

const AT = '2025-06-01T12:00:00.000Z';

async function storeWith(devices: { name: string; status: 'accepted' | 'revoked' }[]): Promise<Store> {
  const db = openSqlite(':memory:');
  await migrateToLatest(db);
  const store = createSqlStore(db);
  for (const d of devices) {
    await store.insertDevice({ name: d.name, site: null, labels: {}, facts: {}, publicKey: 'k', status: d.status, enrolledAt: AT, lastSeen: null, appliedGeneration: 0 });
  }
  return store;
}

const report = (generation: number, seq: number): StatusReport => ({
  generation,
  reportedAt: AT,
  components: [{ name: 'pos', deployment: 'pos', desiredVersion: '1', desiredRevision: 1, version: '1', state: 'healthy', reason: null, detail: null, since: AT }],
  events: [{ seq, at: AT, type: 'committed', message: 'ok' }],
});

/** Counts the transactions the writer opens, by wrapping the real store. */
function counting(store: Store): { store: Store; transactions: () => number } {
  let n = 0;
  return {
    store: { ...store, transaction: (work) => { n++; return store.transaction(work); } },
    transactions: () => n,
  };
}

describe('status writer (group commit)', () => {
  test('reports arriving together are written in few transactions, each acknowledged after its commit', async () => {
    const names = Array.from({ length: 50 }, (_, i) => `dev-${i}`);
    const real = await storeWith(names.map((name) => ({ name, status: 'accepted' })));
    const { store, transactions } = counting(real);
    const writer = createStatusWriter(store);
    await Promise.all(names.map((name, i) => writer.submit(name, report(i + 1, 1), AT)));
    assert.ok(transactions() <= 2, `50 concurrent reports took ${transactions()} transactions`);
    for (const [i, name] of names.entries()) {
      assert.equal((await real.getDevice(name))?.appliedGeneration, i + 1);
      assert.equal((await real.listComponents(name)).length, 1);
      assert.equal((await real.listEvents(name, 10)).length, 1);
    }
  });

  test('a report from a device that is not accepted is refused alone; the rest of its batch is written', async () => {
    const store = await storeWith([{ name: 'good', status: 'accepted' }, { name: 'gone', status: 'revoked' }]);
    const writer = createStatusWriter(store);
    const [good, gone, unknown] = await Promise.allSettled([writer.submit('good', report(3, 1), AT), writer.submit('gone', report(3, 1), AT), writer.submit('nobody', report(3, 1), AT)]);
    assert.equal(good.status, 'fulfilled');
    assert.equal(gone.status, 'rejected');
    assert.match(String((gone as PromiseRejectedResult).reason), /not accepted/);
    assert.equal(unknown.status, 'rejected');
    assert.equal((await store.getDevice('good'))?.appliedGeneration, 3);
    assert.deepEqual(await store.listComponents('gone'), []);
  });

  test('a batch whose transaction fails rejects every report in it and writes none of them', async () => {
    const real = await storeWith([{ name: 'a', status: 'accepted' }, { name: 'b', status: 'accepted' }]);
    const broken: Store = { ...real, transaction: (work) => real.transaction(async (tx) => work({ ...tx, recordEvents: async () => { throw new Error('disk full'); } })) };
    const writer = createStatusWriter(broken);
    const results = await Promise.allSettled([writer.submit('a', report(1, 1), AT), writer.submit('b', report(1, 1), AT)]);
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected']);
    assert.match(String((results[0] as PromiseRejectedResult).reason), /disk full/);
    assert.deepEqual(await real.listComponents(), []);
  });

  test('a database that cannot be reached fails the batch at once: no write is tried again alone', async () => {
    const real = await storeWith([{ name: 'a', status: 'accepted' }, { name: 'b', status: 'accepted' }, { name: 'c', status: 'accepted' }]);
    let transactions = 0;
    const down: Store = { ...real, transaction: async () => { transactions++; throw Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432'), { code: 'ECONNREFUSED' }); } };
    const writer = createStatusWriter(down);
    const results = await Promise.allSettled(['a', 'b', 'c'].map((name) => writer.submit(name, report(1, 1), AT)));
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected', 'rejected']);
    // a alone (it started the writer), then b and c together; tried again one by one they would have taken four.
    assert.equal(transactions, 2);
  });

  test('a report that cannot be written fails alone: the others of its batch are written once', async () => {
    const names = ['a', 'b', 'c', 'd'];
    const real = await storeWith(names.map((name) => ({ name, status: 'accepted' as const })));
    // Device c's write always breaks (think: a value the database refuses); its transaction rolls back whatever came before it.
    const poisoned: Store = {
      ...real,
      transaction: (work) =>
        real.transaction(async (tx) =>
          work({ ...tx, recordEvents: async (device, at, events) => (device === 'c' ? Promise.reject(new Error('refused by the database')) : tx.recordEvents(device, at, events)) }),
        ),
    };
    const writer = createStatusWriter(poisoned);
    const results = await Promise.allSettled(names.map((name) => writer.submit(name, report(7, 1), AT)));
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    assert.match(String((results[2] as PromiseRejectedResult).reason), /refused by the database/);
    for (const name of ['a', 'b', 'd']) {
      assert.equal((await real.getDevice(name))?.appliedGeneration, 7, name);
      assert.equal((await real.listEvents(name, 10)).length, 1, `${name}: its event stored once`);
      assert.equal((await real.listStatusHistory(name, 10)).length, 1, `${name}: one history row, not one per attempt`);
    }
    assert.equal((await real.getDevice('c'))?.appliedGeneration, 0);
  });

  test('past maxQueue a report is refused at once as busy, with a Retry-After, and nothing of it is written', async () => {
    const real = await storeWith(['a', 'b', 'c', 'd'].map((name) => ({ name, status: 'accepted' as const })));
    let open = () => undefined as void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const held: Store = { ...real, transaction: async (work) => { await gate; return real.transaction(work); } };
    const writer = createStatusWriter(held, { maxQueue: 2 });
    // The first report is being written (its transaction waits); two more wait for the next batch.
    const accepted = ['a', 'b', 'c'].map((name) => writer.submit(name, report(5, 1), AT));
    assert.equal(writer.depth(), 3);
    await assert.rejects(writer.submit('d', report(5, 1), AT), (e: unknown) => e instanceof DriftlessError && e.code === 'busy' && e.retryAfterMs !== null && e.retryAfterMs > 0);
    assert.equal(writer.depth(), 3, 'the refused report never entered the queue');
    open();
    await Promise.all(accepted);
    for (const name of ['a', 'b', 'c']) assert.equal((await real.getDevice(name))?.appliedGeneration, 5);
    assert.equal((await real.getDevice('d'))?.appliedGeneration, 0);
    assert.deepEqual(await real.listComponents('d'), []);
  });
});
