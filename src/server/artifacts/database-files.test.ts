import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Kysely } from 'kysely';
import { startTestPostgres, type TestPostgres } from '../../../test/support/postgres.ts';
import { sha256Hex } from '../../protocol/canonical.ts';
import { migrateToLatest } from '../store/migrate.ts';
import { openPostgres } from '../store/postgres.ts';
import type { Database } from '../store/schema.ts';
import { openSqlite } from '../store/sqlite.ts';
import { createDatabaseArtifactFiles } from './database-files.ts';

// Artifact bytes in the database, on both engines (replicas need it on PostgreSQL; SQLite shows the same code is engine-neutral).

async function* chunks(parts: Buffer[], failAfter = Infinity): AsyncGenerator<Uint8Array> {
  for (const [i, part] of parts.entries()) {
    if (i >= failAfter) throw new Error('connection reset');
    yield part;
  }
}

async function readAll(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(Buffer.from(part));
  return Buffer.concat(parts);
}

let postgres: TestPostgres;
before(async () => {
  postgres = await startTestPostgres();
});
after(() => postgres?.stop());

const engines: [string, () => Promise<Kysely<Database>>][] = [
  ['SQLite', async () => openSqlite(':memory:')],
  ['PostgreSQL', async () => openPostgres(await postgres.createDatabase())],
];

for (const [engine, open] of engines) {
  describe(`artifact bytes in the database (${engine})`, () => {
    let db: Kysely<Database>;
    let clock = Date.parse('2026-01-01T00:00:00Z');
    before(async () => {
      db = await open();
      await migrateToLatest(db);
    });
    after(() => db?.destroy());
    const rows = async () => (await db.selectFrom('file_chunks').select(['key', 'n']).orderBy('key').orderBy('n').execute()).map((r) => `${r.key}#${r.n}`);

    test('an upload of several pieces, in chunks of any size, reads back whole with its size', async () => {
      const files = createDatabaseArtifactFiles(db, () => clock);
      const bytes = randomBytes(2.5 * 1024 * 1024);
      const parts = [bytes.subarray(0, 7), bytes.subarray(7, 1_500_000), bytes.subarray(1_500_000)];
      const { sha256, size } = await files.receive(chunks(parts), { maxBytes: 10 * 1024 * 1024, expectedBytes: bytes.length });
      assert.equal(sha256, sha256Hex(bytes));
      assert.equal(size, bytes.length);
      const opened = await files.open(sha256);
      assert.equal(opened?.size, bytes.length);
      assert.ok((await readAll(opened!.stream)).equals(bytes));
      assert.equal((await rows()).filter((r) => r.startsWith(sha256)).length, 3, 'three pieces of at most 1 MiB');

      // The same bytes again: one copy kept, no stray pieces.
      await files.receive(chunks([bytes]), { maxBytes: 10 * 1024 * 1024 });
      assert.deepEqual(await rows(), [`${sha256}#0`, `${sha256}#1`, `${sha256}#2`]);
      await files.remove(sha256);
      assert.deepEqual(await rows(), []);
      assert.equal(await files.open(sha256), null);
    });

    test('a failed, short or oversized upload leaves nothing; an upload abandoned an hour ago is swept, one under way is not', async () => {
      const files = createDatabaseArtifactFiles(db, () => clock);
      await assert.rejects(files.receive(chunks([randomBytes(100), randomBytes(100)], 1), { maxBytes: 1e6 }), /upload failed: connection reset/);
      await assert.rejects(files.receive(chunks([randomBytes(100)]), { maxBytes: 1e6, expectedBytes: 200 }), /cut short: 100 of 200/);
      await assert.rejects(files.receive(chunks([randomBytes(2 * 1024 * 1024)]), { maxBytes: 1024 * 1024 }), /larger than 1048576 bytes/);
      assert.deepEqual(await rows(), []);

      const old = `upload:${String(clock - 2 * 3600_000).padStart(15, '0')}:crashed`;
      const recent = `upload:${String(clock - 60_000).padStart(15, '0')}:under-way`;
      await db.insertInto('file_chunks').values([{ key: old, n: 0, data: Buffer.from('half') }, { key: recent, n: 0, data: Buffer.from('half') }]).execute();
      const { sha256 } = await files.receive(chunks([Buffer.from('small')]), { maxBytes: 100 });
      assert.deepEqual(await rows(), [`${sha256}#0`, `${recent}#0`].sort());
      clock += 2 * 3600_000;
      await files.receive(chunks([Buffer.from('small')]), { maxBytes: 100 });
      assert.deepEqual(await rows(), [`${sha256}#0`]);
      await files.remove(sha256);
    });

    test('names that are not digests are refused', async () => {
      const files = createDatabaseArtifactFiles(db, () => clock);
      await assert.rejects(files.open('upload:1:x'), /not a SHA-256 digest/);
      await assert.rejects(files.remove('%'), /not a SHA-256 digest/);
    });
  });
}
