import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestPostgres, type TestPostgres } from '../../../test/support/postgres.ts';
import { migrateToLatest } from './migrate.ts';
import { openPostgres } from './postgres.ts';
import { createSqlStore } from './store.ts';
import { describeStoreContract, device } from './store-contract.ts';

/**
 * The store on a real PostgreSQL server (Debian's package, a throwaway cluster): the same contract
 * as SQLite, plus what only a server with concurrent connections can get wrong.
 */
let server: TestPostgres;
const TEMPLATE = 'driftless_migrated';

before(async () => {
  server = await startTestPostgres();
  // Migrated once; each test gets a copy of it (CREATE DATABASE … TEMPLATE is a file copy).
  await server.query(`create database ${TEMPLATE}`);
  const db = openPostgres(server.url.replace(/\/postgres$/, `/${TEMPLATE}`));
  await migrateToLatest(db);
  await db.destroy();
});
after(() => server?.stop());

async function freshStore() {
  const db = openPostgres(await server.createDatabase(TEMPLATE));
  return { db, store: createSqlStore(db) };
}

describeStoreContract('PostgreSQL', async () => {
  const { db, store } = await freshStore();
  return { store, close: () => db.destroy() };
});

describe('PostgreSQL store', () => {
  test('migrations run on an empty database and a second run is a no-op', async () => {
    const url = await server.createDatabase();
    const db = openPostgres(url);
    try {
      await migrateToLatest(db);
      await migrateToLatest(db);
      const tables = await db.introspection.getTables();
      for (const name of ['devices', 'rollouts', 'audit_log', 'status_history', 'tenants']) assert.ok(tables.some((t) => t.name === name), name);
      const store = createSqlStore(db);
      assert.deepEqual((await store.listTenants()).map((t) => t.name), ['default']);
    } finally {
      await db.destroy();
    }
  });

  test('committed data is there for a new connection pool (another server process would see it)', async () => {
    const url = await server.createDatabase(TEMPLATE);
    const first = openPostgres(url);
    await createSqlStore(first).transaction(async (tx) => {
      await tx.insertDevice(device('pos-01'));
      await tx.recordStatus('pos-01', 3, '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z', []);
    });
    await first.destroy();
    const second = openPostgres(url);
    try {
      const store = createSqlStore(second);
      assert.deepEqual(await store.getDevice('pos-01'), { ...device('pos-01'), appliedGeneration: 3 });
      const history = await store.listStatusHistory('pos-01', 10);
      assert.equal(history.length, 1);
      assert.equal(typeof history[0]!.generation, 'number');
    } finally {
      await second.destroy();
    }
  });

  test('concurrent read-then-write transactions lose no update: conflicts are retried, not committed over', async () => {
    const { db, store } = await freshStore();
    try {
      await store.setMeta('counter', '0');
      const writers = 16;
      await Promise.all(
        Array.from({ length: writers }, () =>
          store.transaction(async (tx) => {
            const value = Number(await tx.getMeta('counter'));
            // Give every other transaction the chance to read the same value before this one writes.
            await new Promise((resolve) => setTimeout(resolve, 5));
            await tx.setMeta('counter', String(value + 1));
          }),
        ),
      );
      assert.equal(await store.getMeta('counter'), String(writers));
    } finally {
      await db.destroy();
    }
  });

  test('two stores on the same database (two server replicas) take an enrollment token\'s last use only once', async () => {
    const url = await server.createDatabase(TEMPLATE);
    const [a, b] = [openPostgres(url), openPostgres(url)];
    try {
      const token = { id: 't1', tokenHash: 'h1', description: 'site', createdAt: '2025-01-01T00:00:00.000Z', expiresAt: null, revokedAt: null, maxUses: 1 };
      await createSqlStore(a).insertEnrollToken(token);
      const take = (db: typeof a) => createSqlStore(db).transaction((tx) => tx.useEnrollToken('t1'));
      const results = await Promise.all([take(a), take(b), take(a), take(b)]);
      assert.equal(results.filter(Boolean).length, 1, `exactly one use taken: ${JSON.stringify(results)}`);
    } finally {
      await Promise.all([a.destroy(), b.destroy()]);
    }
  });
});
