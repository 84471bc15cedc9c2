import { sql, type Kysely } from 'kysely';
import { isPostgres } from '../postgres.ts';

/**
 * Tenants: organizations with fully separated fleets. Every row of fleet data belongs to one
 * tenant; what existed before belongs to 'default'.
 *
 * Names an operator chooses (sites, deployments and their revisions, rollouts, incidents,
 * artifacts) are unique per tenant, so one tenant can never learn, from a conflict, that another
 * uses a name: those tables are rebuilt with the tenant in their primary key. Device names stay
 * unique server-wide (a device's name is its identity in session tokens, the desired-state cache and
 * every device-keyed table); a device's tenant is a column, and tokens belong to one tenant.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createTable('tenants').addColumn('name', 'text', (c) => c.primaryKey()).addColumn('created_at', 'text', (c) => c.notNull()).execute();
  await sql`insert into tenants (name, created_at) values ('default', ${new Date().toISOString()})`.execute(db);

  for (const table of ['api_tokens', 'enroll_tokens', 'devices', 'device_releases']) {
    await db.schema.alterTable(table).addColumn('tenant', 'text', (c) => c.notNull().defaultTo('default')).execute();
  }
  await db.schema.createIndex('devices_by_tenant').on('devices').columns(['tenant', 'name']).execute();
  await db.schema.createIndex('device_releases_by_tenant').on('device_releases').columns(['tenant', 'deployment']).execute();

  // Enrollment tokens: optionally bound to a site, limited in uses; a device joins pending unless the token auto-accepts.
  await db.schema.alterTable('enroll_tokens').addColumn('site', 'text').execute();
  await db.schema.alterTable('enroll_tokens').addColumn('max_uses', 'integer').execute();
  await db.schema.alterTable('enroll_tokens').addColumn('uses', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  await db.schema.alterTable('enroll_tokens').addColumn('auto_accept', 'integer', (c) => c.notNull().defaultTo(1)).execute();

  await rebuild(db, 'sites', ['name', 'labels', 'spec', 'created_at', 'updated_at'], (t) =>
    t
      .addColumn('tenant', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('labels', 'text', (c) => c.notNull())
      .addColumn('spec', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('sites_pk', ['tenant', 'name']),
  );
  await rebuild(db, 'deployments', ['name', 'labels', 'spec', 'revision', 'target_revision', 'created_at', 'updated_at'], (t) =>
    t
      .addColumn('tenant', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('labels', 'text', (c) => c.notNull())
      .addColumn('spec', 'text', (c) => c.notNull())
      .addColumn('revision', 'integer', (c) => c.notNull())
      .addColumn('target_revision', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('deployments_pk', ['tenant', 'name']),
  );
  await rebuild(db, 'deployment_revisions', ['deployment', 'revision', 'template_hash', 'template', 'created_at'], (t) =>
    t
      .addColumn('tenant', 'text', (c) => c.notNull())
      .addColumn('deployment', 'text', (c) => c.notNull())
      .addColumn('revision', 'integer', (c) => c.notNull())
      .addColumn('template_hash', 'text', (c) => c.notNull())
      .addColumn('template', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('deployment_revisions_pk', ['tenant', 'deployment', 'revision']),
  );
  await rebuild(db, 'rollouts', ['name', 'deployment', 'revision', 'state', 'reason', 'waves', 'created_at', 'updated_at', 'from_revision', 'machine'], (t) =>
    t
      .addColumn('tenant', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('deployment', 'text', (c) => c.notNull())
      .addColumn('revision', 'integer', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('reason', 'text')
      .addColumn('waves', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addColumn('from_revision', 'integer')
      .addColumn('machine', 'text')
      .addPrimaryKeyConstraint('rollouts_pk', ['tenant', 'name']),
  );
  await db.schema.createIndex('rollouts_by_deployment').on('rollouts').columns(['tenant', 'deployment', 'revision']).execute();
  await rebuild(db, 'incidents', ['id', 'rollout', 'deployment', 'state', 'title', 'timeline', 'opened_at', 'closed_at'], (t) =>
    t
      .addColumn('tenant', 'text', (c) => c.notNull())
      .addColumn('id', 'text', (c) => c.notNull())
      .addColumn('rollout', 'text', (c) => c.notNull())
      .addColumn('deployment', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('title', 'text', (c) => c.notNull())
      .addColumn('timeline', 'text', (c) => c.notNull())
      .addColumn('opened_at', 'text', (c) => c.notNull())
      .addColumn('closed_at', 'text')
      .addPrimaryKeyConstraint('incidents_pk', ['tenant', 'id']),
  );
  await db.schema.createIndex('incidents_by_rollout').on('incidents').columns(['tenant', 'rollout']).execute();
  await rebuild(db, 'artifacts', ['sha256', 'name', 'version', 'size', 'signature', 'created_at'], (t) =>
    t
      .addColumn('tenant', 'text', (c) => c.notNull())
      .addColumn('sha256', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('version', 'text', (c) => c.notNull())
      .addColumn('size', 'bigint', (c) => c.notNull())
      .addColumn('signature', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('artifacts_pk', ['tenant', 'sha256']),
  );
  await db.schema.createIndex('artifacts_name_version').unique().on('artifacts').columns(['tenant', 'name', 'version']).execute();
}

type TableBuilder = ReturnType<Kysely<unknown>['schema']['createTable']>;

/** A primary key cannot be changed in place in SQLite: a new table, the rows copied into 'default', the old one dropped. */
async function rebuild(db: Kysely<unknown>, table: string, columns: readonly string[], define: (t: TableBuilder) => TableBuilder): Promise<void> {
  const staging = `${table}_006`;
  if (isPostgres(db)) {
    // PostgreSQL names constraints per schema, not per table: the old primary key gives up its name first.
    const { rows } = await sql<{ conname: string }>`select conname from pg_constraint where conrelid = ${table}::regclass and contype = 'p'`.execute(db);
    for (const { conname } of rows) await sql`alter table ${sql.table(table)} rename constraint ${sql.ref(conname)} to ${sql.ref(`${table}_005_pk`)}`.execute(db);
  }
  await define(db.schema.createTable(staging)).execute();
  const list = sql.join(columns.map((c) => sql.ref(c)));
  await sql`insert into ${sql.table(staging)} (tenant, ${list}) select 'default', ${list} from ${sql.table(table)}`.execute(db);
  await db.schema.dropTable(table).execute();
  await db.schema.alterTable(staging).renameTo(table).execute();
}
