import type { Kysely } from 'kysely';

/** What a device ran before a rollout gave it a revision, so a rollback returns it there (and not to nothing). */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('device_releases').addColumn('previous_revision', 'integer').execute();
}
