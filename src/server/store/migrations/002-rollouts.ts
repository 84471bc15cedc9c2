import type { Kysely } from 'kysely';

/**
 * Progressive delivery: which revision the rollout engine released to which device, the engine's
 * persisted state per rollout, incidents, and the revision a device reports it was told to run.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('device_components').addColumn('desired_revision', 'integer').execute();
  await db.schema.alterTable('rollouts').addColumn('from_revision', 'integer').execute();
  await db.schema.alterTable('rollouts').addColumn('machine', 'text').execute();

  await db.schema
    .createTable('device_releases')
    .addColumn('deployment', 'text', (c) => c.notNull())
    .addColumn('device', 'text', (c) => c.notNull())
    .addColumn('revision', 'integer', (c) => c.notNull())
    .addColumn('rollout', 'text', (c) => c.notNull())
    .addColumn('released_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('device_releases_pk', ['deployment', 'device'])
    .execute();

  await db.schema
    .createTable('incidents')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('rollout', 'text', (c) => c.notNull())
    .addColumn('deployment', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('title', 'text', (c) => c.notNull())
    .addColumn('timeline', 'text', (c) => c.notNull())
    .addColumn('opened_at', 'text', (c) => c.notNull())
    .addColumn('closed_at', 'text')
    .execute();
  await db.schema.createIndex('incidents_by_rollout').on('incidents').column('rollout').execute();
}
