import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMemoryStorage } from './memory-storage.ts';
import { readJson, writeJson } from './storage.ts';

test('a name never written reads as absent', () => {
  assert.equal(createMemoryStorage().read('identity.json'), null);
});

test('a write replaces the whole text, and reads see the last one', () => {
  const storage = createMemoryStorage();
  storage.write('ledger.json', 'one');
  storage.write('ledger.json', 'two');
  assert.equal(storage.read('ledger.json'), 'two');
});

test('two storages share nothing, so two simulated agents keep their own state', () => {
  const a = createMemoryStorage();
  const b = createMemoryStorage();
  writeJson(a, 'identity.json', { name: 'dev-00001' });
  assert.deepEqual(readJson(a, 'identity.json', (v): v is { name: string } => typeof v === 'object' && v !== null), { name: 'dev-00001' });
  assert.equal(b.read('identity.json'), null);
});
