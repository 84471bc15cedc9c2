import type { Kysely } from 'kysely';

/**
 * The audit trail: one hash chain per tenant (audit-chain.ts in protocol/), numbered from 1 in
 * each. `audit_heads` keeps each chain's last entry, written in the same transaction as the entry,
 * so deleting the newest entries (which no hash link would betray) is caught as well.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('audit_log')
    .addColumn('tenant', 'text', (c) => c.notNull())
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('at', 'text', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('role', 'text')
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('target', 'text')
    .addColumn('source_ip', 'text')
    .addColumn('status', 'integer', (c) => c.notNull())
    .addColumn('error', 'text')
    .addColumn('detail', 'text', (c) => c.notNull())
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('audit_log_pk', ['tenant', 'seq'])
    .execute();
  await db.schema.createIndex('audit_log_at').on('audit_log').columns(['tenant', 'at']).execute();
  await db.schema
    .createTable('audit_heads')
    .addColumn('tenant', 'text', (c) => c.primaryKey())
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();
}
