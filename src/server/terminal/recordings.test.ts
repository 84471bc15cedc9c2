import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Kysely } from 'kysely';
import { startTestPostgres, type TestPostgres } from '../../../test/support/postgres.ts';
import { migrateToLatest } from '../store/migrate.ts';
import { openPostgres } from '../store/postgres.ts';
import type { Database } from '../store/schema.ts';
import { openSqlite } from '../store/sqlite.ts';
import { createDatabaseRecordings } from './database-recordings.ts';
import { createRecordings, type Recordings } from './recordings.ts';

// One contract for session recordings, kept in files (one server) or in the database (replicas on PostgreSQL).

let postgres: TestPostgres;
before(async () => {
  postgres = await startTestPostgres();
});
after(() => postgres?.stop());

async function migrated(db: Kysely<Database>): Promise<Kysely<Database>> {
  await migrateToLatest(db);
  return db;
}

const kinds: [string, (now: () => number) => Promise<{ recordings: Recordings; close(): Promise<void> }>][] = [
  [
    'files',
    async (now) => {
      const dir = mkdtempSync(join(tmpdir(), 'driftless-recordings-'));
      return { recordings: createRecordings(dir, now), close: async () => rmSync(dir, { recursive: true, force: true }) };
    },
  ],
  ['the database (SQLite)', async (now) => { const db = await migrated(openSqlite(':memory:')); return { recordings: createDatabaseRecordings(db, now), close: () => db.destroy() }; }],
  ['the database (PostgreSQL)', async (now) => { const db = await migrated(openPostgres(await postgres.createDatabase())); return { recordings: createDatabaseRecordings(db, now), close: () => db.destroy() }; }],
];

for (const [kind, open] of kinds) {
  describe(`session recordings in ${kind}`, () => {
    test('a session reads back as asciicast v2: its header, output (a character split across chunks whole), resizes; listed newest first with its size', async () => {
      let clock = Date.parse('2026-03-01T10:00:00.000Z');
      const { recordings, close } = await open(() => clock);
      try {
        const first = recordings.start({ kind: 'terminal', tenant: 'acme', device: 'pos-1', actor: 'token:ops', cols: 80, rows: 24 });
        clock += 1500;
        const euro = Buffer.from('price: 5€\n');
        first.output(euro.subarray(0, 9));
        first.output(euro.subarray(9));
        first.resize(120, 40);
        clock += 250;
        first.output(Buffer.from('x'.repeat(100_000)));
        await first.close(0);
        clock += 60_000;
        const second = recordings.start({ kind: 'exec', tenant: 'acme', device: 'pos-2', actor: 'token:ops', cols: 80, rows: 24, command: ['uptime'] });
        await second.close(0);

        const text = await recordings.read(first.id);
        assert.ok(text);
        const [header, ...events] = text.trimEnd().split('\n').map((l) => JSON.parse(l) as unknown);
        assert.deepEqual((header as { driftless: unknown }).driftless, { kind: 'terminal', tenant: 'acme', device: 'pos-1', actor: 'token:ops', startedAt: '2026-03-01T10:00:00.000Z' });
        // The euro sign's bytes were split between two chunks: it is written whole, with the second.
        assert.deepEqual(events.slice(0, 3), [[1.5, 'o', 'price: 5'], [1.5, 'o', '€\n'], [1.5, 'r', '120x40']]);
        assert.deepEqual(events[3], [1.75, 'o', 'x'.repeat(100_000)]);
        assert.equal(events.length, 4);

        const listed = await recordings.list();
        assert.deepEqual(listed.map((r) => [r.id, r.kind, r.device]), [[second.id, 'exec', 'pos-2'], [first.id, 'terminal', 'pos-1']]);
        assert.equal(listed[1]!.bytes, Buffer.byteLength(text));
        assert.deepEqual(listed[0]!.command, ['uptime']);
        assert.equal(await recordings.read('00000000-0000-4000-8000-000000000000'), null);
        assert.equal(await recordings.read('../../etc/passwd'), null);
      } finally {
        await close();
      }
    });
  });
}
