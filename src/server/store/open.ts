import type { Kysely } from 'kysely';
import type { Database } from './schema.ts';
import { migrateToLatest } from './migrate.ts';
import { openPostgres } from './postgres.ts';
import { openSqlite } from './sqlite.ts';

/** The schemes `--database` accepts, and where each leads. */
export type DatabaseTarget = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string };

/**
 * `--database URL`: none is the data directory's SQLite file; `sqlite:PATH` another SQLite file;
 * `postgres://` or `postgresql://` a PostgreSQL server (libpq's URL form, with `?sslmode=` and
 * friends). Anything else is refused naming the scheme.
 */
export function parseDatabaseUrl(url: string | undefined, defaultSqlitePath: string): DatabaseTarget {
  if (url === undefined || url === '') return { kind: 'sqlite', path: defaultSqlitePath };
  if (/^postgres(ql)?:\/\//i.test(url)) {
    try {
      const parsed = new URL(url);
      if (!parsed.hostname && !parsed.searchParams.get('host')) throw new Error('no host');
    } catch {
      throw new Error(`--database: "${redactPassword(url)}" is not a PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)`);
    }
    return { kind: 'postgres', url };
  }
  if (/^sqlite:/i.test(url)) {
    const path = url.replace(/^sqlite:(\/\/)?/i, '');
    if (!path) throw new Error('--database: "sqlite:" needs a file path (sqlite:/var/lib/driftless/driftless.db)');
    return { kind: 'sqlite', path };
  }
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1];
  throw new Error(
    scheme
      ? `--database: "${scheme}:" databases are not supported; use postgres://… or sqlite:PATH`
      : `--database: "${url}" is not a database URL; use postgres://USER:PASSWORD@HOST:PORT/DATABASE or sqlite:PATH`,
  );
}

/** A database URL fit for a log line or an error: its password replaced. */
export function redactPassword(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*:)[^@]*@/i, '$1***@');
}

/** Opens and migrates the store's database; `where` names it for people (no password). */
export async function openDatabase(target: DatabaseTarget, opts: { onIdleError?: (error: Error) => void } = {}): Promise<{ db: Kysely<Database>; where: string }> {
  const db = target.kind === 'postgres' ? openPostgres(target.url, opts.onIdleError ? { onIdleError: opts.onIdleError } : {}) : openSqlite(target.path);
  const where = target.kind === 'postgres' ? redactPassword(target.url) : target.path;
  try {
    await migrateToLatest(db);
  } catch (error) {
    await db.destroy().catch(() => undefined);
    throw new Error(`database ${where}: ${(error as Error).message}`);
  }
  return { db, where };
}
