import pg from 'pg';
import { Kysely, PostgresAdapter, PostgresDialect, type PostgresPool, type PostgresPoolClient } from 'kysely';
import type { Database } from './schema.ts';
import { storable } from './storable.ts';

/**
 * Kysely over PostgreSQL (`pg`): the store for a large fleet and for several server replicas. Same
 * migrations and queries as SQLite; what differs between the two engines is kept to this file, the
 * transaction retry below and the few migration steps that ask `isPostgres`.
 */

const INT8 = 20;
const NUMERIC = 1700;

/**
 * Counts and bigint columns come back from pg as strings (they may exceed 2^53); every such value
 * the store keeps (row ids, sizes, counts) is far below that, so they are read as numbers, as SQLite
 * gives them.
 */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8 || oid === NUMERIC ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

export function openPostgres(url: string, opts: { maxConnections?: number; applicationName?: string; onIdleError?: (error: Error) => void } = {}): Kysely<Database> {
  // A database that cannot be reached fails a query within 10 s rather than holding it (and every write queued behind it) for TCP's own timeout.
  const pool = new pg.Pool({ connectionString: url, max: opts.maxConnections ?? 10, types, application_name: opts.applicationName ?? 'driftless', connectionTimeoutMillis: 10_000 });
  // A connection that dies while idle (the database restarted) is dropped from the pool and replaced
  // on the next query; without a listener its error would end the process.
  pool.on('error', (error) => opts.onIdleError?.(error));
  // Every statement's parameters pass through storable() on their way in, as on SQLite (sqlite.ts).
  const storing: PostgresPool = {
    connect: async () => {
      const client = await pool.connect();
      return {
        query: ((text: string, params: readonly unknown[]) => client.query(text, params.map(storable))) as unknown as PostgresPoolClient['query'],
        release: () => client.release(),
      };
    },
    end: () => pool.end(),
  };
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool: storing }) });
}

export function isPostgres<DB>(db: Kysely<DB>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/**
 * PostgreSQL runs transactions side by side; the store's read-then-write steps (the audit chain's
 * next link, a desired-state generation, an enrollment token's uses) rely on seeing none of another
 * transaction's work, so they run SERIALIZABLE, and a transaction the database aborted for a
 * conflict (40001) or a deadlock (40P01) is run again from the start, a few times, after a short
 * random pause. SQLite has one writer at a time and never reports these codes.
 */
export async function retryConflicts<T>(run: () => Promise<T>, opts: { attempts?: number; random?: () => number } = {}): Promise<T> {
  const attempts = opts.attempts ?? 8;
  const random = opts.random ?? Math.random;
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (error) {
      if (attempt >= attempts || !isConflict(error)) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.round(random() * 5 * 2 ** attempt)));
    }
  }
}

function isConflict(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '40001' || code === '40P01';
}

/** The name server replicas give their connections, so that maintenance can see whether any is running. */
export const SERVER_APPLICATION = 'driftless server';

/**
 * For maintenance that must run with every server stopped (`server rotate-key`: the replicas keep
 * their signing key in memory): refused while any replica is connected to this database.
 */
export async function assertNoServerRunning(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, application_name: 'driftless maintenance', connectionTimeoutMillis: 10_000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const { rows } = await client.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()',
      [SERVER_APPLICATION],
    );
    const n = rows[0]?.n ?? 0;
    if (n > 0) throw new Error(`a driftless server is running on this database (${n} connection${n === 1 ? '' : 's'}): stop every server replica first`);
  } finally {
    await client.end().catch(() => undefined);
  }
}
