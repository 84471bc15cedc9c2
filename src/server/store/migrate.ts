import { Migrator, type Kysely, type Migration } from 'kysely';
import type { Database } from './schema.ts';
import * as initial from './migrations/001-initial.ts';
import * as rollouts from './migrations/002-rollouts.ts';
import * as releasePrevious from './migrations/003-release-previous.ts';
import * as telemetry from './migrations/004-telemetry.ts';
import * as artifacts from './migrations/005-artifacts.ts';
import * as tenants from './migrations/006-tenants.ts';
import * as audit from './migrations/007-audit.ts';
import * as sharedFiles from './migrations/008-shared-files.ts';

/** Migrations are listed here explicitly, in order, so a bundle or single executable carries them. */
const migrations: Record<string, Migration> = {
  '001-initial': initial,
  '002-rollouts': rollouts,
  '003-release-previous': releasePrevious,
  '004-telemetry': telemetry,
  '005-artifacts': artifacts,
  '006-tenants': tenants,
  '007-audit': audit,
  '008-shared-files': sharedFiles,
};

/** Brings the store's schema to the newest migration; the migrations themselves are untyped (they describe the change). */
export async function migrateToLatest(db: Kysely<Database>): Promise<void> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}
