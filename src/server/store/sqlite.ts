import { DatabaseSync } from 'node:sqlite';
import { Kysely, SqliteDialect, type SqliteDatabase } from 'kysely';
import type { Database } from './schema.ts';
import { storable } from './storable.ts';

/**
 * Kysely over Node's built-in `node:sqlite`: the embedded default store, no native dependency.
 * Kysely asks for better-sqlite3's shape; a statement is a reader when it returns columns.
 */
function adapt(db: DatabaseSync): SqliteDatabase {
  return {
    close: () => db.close(),
    prepare(sql) {
      const statement = db.prepare(sql);
      const params = (values: ReadonlyArray<unknown>) => values.map(storable) as (string | number | bigint | null | Uint8Array)[];
      return {
        reader: statement.columns().length > 0,
        all: (values) => statement.all(...params(values)),
        run: (values) => statement.run(...params(values)),
        iterate: (values) => statement.iterate(...params(values)),
      };
    },
  };
}

export function openSqlite(path: string): Kysely<Database> {
  const db = new DatabaseSync(path);
  // WAL keeps readers off the writer's back; FULL sync makes a commit durable before it is acknowledged.
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;');
  return new Kysely<Database>({ dialect: new SqliteDialect({ database: adapt(db) }) });
}
