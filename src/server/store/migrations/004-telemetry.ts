import type { Kysely } from 'kysely';

/**
 * Telemetry from devices: output lines and metrics, each numbered in the device's one telemetry
 * sequence. The device row keeps the high-water mark (everything at or below it is stored, so a
 * resent batch changes nothing) and the running total of records the device had to drop.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('devices').addColumn('telemetry_seq', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  await db.schema.alterTable('devices').addColumn('telemetry_dropped', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  await db.schema
    .createTable('device_logs')
    .addColumn('device', 'text', (c) => c.notNull())
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('at', 'text', (c) => c.notNull())
    .addColumn('component', 'text', (c) => c.notNull())
    .addColumn('line', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('device_logs_pk', ['device', 'seq'])
    .execute();
  await db.schema.createIndex('device_logs_at').on('device_logs').column('at').execute();
  await db.schema
    .createTable('device_metrics')
    .addColumn('device', 'text', (c) => c.notNull())
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('at', 'text', (c) => c.notNull())
    .addColumn('component', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('value', 'double precision', (c) => c.notNull())
    .addPrimaryKeyConstraint('device_metrics_pk', ['device', 'seq'])
    .execute();
  await db.schema.createIndex('device_metrics_at').on('device_metrics').column('at').execute();
}
