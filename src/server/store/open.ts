import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import type { Kysely } from 'kysely';
import type { Database } from './schema.ts';
import { migrateToLatest } from './migrate.ts';
import { assertNoServerRunning, openPostgres, SERVER_APPLICATION } from './postgres.ts';
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

/**
 * One server process per SQLite file: a file beside the database naming the server's process (its
 * pid and start time, so a pid reused after a reboot is not mistaken for it). One left by a
 * process that has ended (a crash, a power cut) is taken over: the server comes back by itself.
 */
function holdFileLock(path: string): { release(): Promise<void> } {
  const me = processIdentity(process.pid);
  const claim = () => {
    const fd = openSync(path, 'wx', 0o600);
    writeSync(fd, `${me}\n`);
    closeSync(fd);
  };
  try {
    claim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const holder = readFileSync(path, 'utf8').trim();
    const pid = Number.parseInt(holder, 10);
    if (pid > 0 && processIdentity(pid) === holder) {
      throw new Error(`another driftless server (pid ${pid}) is already using this database`);
    }
    rmSync(path, { force: true });
    claim();
  }
  return {
    async release() {
      try {
        if (readFileSync(path, 'utf8').trim() === me) rmSync(path, { force: true });
      } catch {
        // Already gone.
      }
    },
  };
}

/** "PID STARTTIME" of a running process (Linux's /proc), "PID" where there is no /proc; null when it is not running. */
function processIdentity(pid: number): string | null {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return null;
  }
  try {
    // Field 22 of /proc/PID/stat, counted after the command name (which may hold spaces) closes.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return `${pid} ${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]}`;
  } catch {
    return String(pid);
  }
}

/**
 * Opens and migrates the store's database; `where` names it for people (no password). `use` says
 * who opens it: a `server` (on SQLite the only one: a second is refused naming the first; on
 * PostgreSQL one of any number of replicas), or `maintenance` that needs every server stopped.
 * `close` lets the database (and its lock) go.
 */
export type OpenDatabase = { db: Kysely<Database>; where: string; close(): Promise<void> };

export async function openDatabase(target: DatabaseTarget, opts: { use?: 'server' | 'maintenance'; onIdleError?: (error: Error) => void } = {}): Promise<OpenDatabase> {
  const where = target.kind === 'postgres' ? redactPassword(target.url) : target.path;
  let lock: { release(): Promise<void> } | null = null;
  let db: Kysely<Database> | null = null;
  try {
    if (target.kind === 'sqlite' && opts.use) lock = holdFileLock(`${target.path}.server.pid`);
    if (target.kind === 'postgres' && opts.use === 'maintenance') await assertNoServerRunning(target.url);
    db =
      target.kind === 'postgres'
        ? openPostgres(target.url, { ...(opts.use === 'server' ? { applicationName: SERVER_APPLICATION } : {}), ...(opts.onIdleError ? { onIdleError: opts.onIdleError } : {}) })
        : openSqlite(target.path);
    await migrateToLatest(db);
  } catch (error) {
    await db?.destroy().catch(() => undefined);
    await lock?.release();
    throw new Error(`database ${where}: ${(error as Error).message}`);
  }
  const opened = db;
  return {
    db: opened,
    where,
    async close() {
      await opened.destroy();
      await lock?.release();
    },
  };
}
