import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { migrateToLatest } from './migrate.ts';
import { openSqlite } from './sqlite.ts';
import { createSqlStore } from './store.ts';
import { describeStoreContract, device } from './store-contract.ts';

const root = mkdtempSync(join(tmpdir(), 'driftless-store-'));
after(() => rmSync(root, { recursive: true, force: true }));
let count = 0;

async function openFile(path: string) {
  const db = openSqlite(path);
  await migrateToLatest(db);
  return { db, store: createSqlStore(db) };
}

describeStoreContract('SQLite (file)', async () => {
  const { db, store } = await openFile(join(root, `contract-${++count}.db`));
  return { store, close: () => db.destroy() };
});

describe('SQLite store', () => {
  test('committed data survives closing and reopening the file; migrating again is a no-op', async () => {
    const path = join(root, 'reopen.db');
    const first = await openFile(path);
    await first.store.transaction(async (tx) => {
      await tx.insertDevice(device('pos-01'));
      await tx.recordEvents('pos-01', '2025-01-01T00:00:00.000Z', [{ seq: 1, at: '2025-01-01T00:00:00.000Z', type: 'committed', message: 'ok' }]);
    });
    await first.db.destroy();

    const second = await openFile(path);
    assert.deepEqual(await second.store.getDevice('pos-01'), device('pos-01'));
    assert.equal((await second.store.listEvents('pos-01', 10)).length, 1);
    await second.db.destroy();
  });

  test('an in-memory database runs the same migrations', async () => {
    const db = openSqlite(':memory:');
    await migrateToLatest(db);
    const store = createSqlStore(db);
    await store.setMeta('a', 'b');
    assert.equal(await store.getMeta('a'), 'b');
    await db.destroy();
  });
});
