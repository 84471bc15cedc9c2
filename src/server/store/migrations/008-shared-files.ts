import type { Kysely } from 'kysely';
import { isPostgres } from '../postgres.ts';

/**
 * Files every server replica must see (uploaded artifacts, session recordings), kept in the
 * database in pieces when the store is PostgreSQL: `key` names the file (an artifact's digest, a
 * recording's id, or a temporary upload's name), `n` orders its pieces. On SQLite the one server
 * keeps them in its data directory and the table stays empty.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('file_chunks')
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('n', 'integer', (c) => c.notNull())
    .addColumn('data', isPostgres(db) ? 'bytea' : 'blob', (c) => c.notNull())
    .addPrimaryKeyConstraint('file_chunks_pk', ['key', 'n'])
    .execute();
}
