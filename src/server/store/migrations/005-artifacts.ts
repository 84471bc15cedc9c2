import type { Kysely } from 'kysely';

/**
 * Uploaded artifacts (agent releases, later OS bundles): their description and the server's
 * signature over it. The bytes live as files named by their SHA-256 under the data directory.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('artifacts')
    .addColumn('sha256', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('version', 'text', (c) => c.notNull())
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('signature', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('artifacts_name_version').unique().on('artifacts').columns(['name', 'version']).execute();
}
