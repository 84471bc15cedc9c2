/**
 * bench/ingest: how fast device telemetry goes into the store, on SQLite (the embedded default, a
 * file with WAL and synchronous commits, as the server opens it) and on PostgreSQL (a throwaway
 * server with fsync on). The store's own path (recordTelemetry: dedup against the device's mark,
 * multi-row inserts, the mark updated), one transaction per group of device batches as the
 * server's group commit writes them, is set beside a bare baseline measured in the same run: the
 * same rows as plain multi-row INSERTs into a table of the same shape, same transactions. The
 * product's target is 250,000 rows/s into SQLite.
 *
 *   node bench/ingest.ts [devices=200] [records per device=1000] [devices per transaction=50]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql, type Kysely } from 'kysely';
import type { TelemetryRecord } from '../src/protocol/messages.ts';
import { migrateToLatest } from '../src/server/store/migrate.ts';
import { openPostgres } from '../src/server/store/postgres.ts';
import type { Database } from '../src/server/store/schema.ts';
import { openSqlite } from '../src/server/store/sqlite.ts';
import { createSqlStore } from '../src/server/store/store.ts';
import { startTestPostgres } from '../test/support/postgres.ts';

const [DEVICES = 200, RECORDS = 1000, GROUP = 50] = process.argv.slice(2).map(Number);
const TARGET_SQLITE = 250_000;
const say = (text: string) => process.stdout.write(`${text}\n`);
const AT = '2026-01-01T00:00:00.000Z';
const names = Array.from({ length: DEVICES }, (_, i) => `dev-${String(i).padStart(5, '0')}`);

/** Each device's batch: mostly log lines, every tenth a metric, as an agent uploads them. */
function batch(): TelemetryRecord[] {
  return Array.from({ length: RECORDS }, (_, i): TelemetryRecord =>
    i % 10 === 9
      ? { seq: i + 1, at: AT, kind: 'metric', name: 'cpu_percent', value: i % 100 }
      : { seq: i + 1, at: AT, kind: 'log', component: 'pos.pos', line: `2026-01-01 00:00:00 INFO request ${i} served in ${i % 97} ms` },
  );
}

async function throughStore(db: Kysely<Database>): Promise<number> {
  const store = createSqlStore(db);
  for (const name of names) {
    await store.insertDevice({ name, site: null, labels: {}, facts: {}, publicKey: 'k', status: 'accepted', enrolledAt: AT, lastSeen: null, appliedGeneration: 0 });
  }
  const records = batch();
  const started = performance.now();
  for (let i = 0; i < names.length; i += GROUP) {
    await store.transaction(async (tx) => {
      for (const name of names.slice(i, i + GROUP)) await tx.recordTelemetry(name, AT, records, 0);
    });
  }
  return (DEVICES * RECORDS) / ((performance.now() - started) / 1000);
}

async function bare(db: Kysely<Database>): Promise<number> {
  await sql`create table bare_logs (device text not null, seq integer not null, at text not null, component text not null, line text not null, primary key (device, seq))`.execute(db);
  await sql`create table bare_metrics (device text not null, seq integer not null, at text not null, component text not null, name text not null, value double precision not null, primary key (device, seq))`.execute(db);
  const records = batch();
  const started = performance.now();
  for (let i = 0; i < names.length; i += GROUP) {
    await db.transaction().execute(async (tx) => {
      for (const device of names.slice(i, i + GROUP)) {
        const logs = records.flatMap((r) => (r.kind === 'log' ? [{ device, seq: r.seq, at: r.at, component: r.component, line: r.line }] : []));
        const metrics = records.flatMap((r) => (r.kind === 'metric' ? [{ device, seq: r.seq, at: r.at, component: '', name: r.name, value: r.value }] : []));
        const loose = tx as unknown as Kysely<Record<string, Record<string, unknown>>>;
        for (let j = 0; j < logs.length; j += 400) await loose.insertInto('bare_logs').values(logs.slice(j, j + 400)).execute();
        for (let j = 0; j < metrics.length; j += 400) await loose.insertInto('bare_metrics').values(metrics.slice(j, j + 400)).execute();
      }
    });
  }
  return (DEVICES * RECORDS) / ((performance.now() - started) / 1000);
}

const rate = (n: number) => `${Math.round(n).toLocaleString('en-US')} rows/s`;

async function engine(label: string, open: () => Promise<{ db: Kysely<Database>; close(): Promise<void> }>): Promise<number> {
  const store = await open();
  const baseline = await open();
  try {
    await migrateToLatest(store.db);
    const ours = await throughStore(store.db);
    const theirs = await bare(baseline.db);
    say(`${label}: ${rate(ours)} through the store; bare multi-row INSERT ${rate(theirs)}; ratio ${(ours / theirs).toFixed(2)}`);
    return ours;
  } finally {
    await store.close();
    await baseline.close();
  }
}

say(`ingest: ${DEVICES} devices × ${RECORDS} records (logs and metrics), ${GROUP} devices' batches per transaction`);
const dir = mkdtempSync(join(tmpdir(), 'driftless-bench-ingest-'));
let files = 0;
const sqlite = await engine('SQLite (WAL, synchronous=FULL)', async () => {
  const db = openSqlite(join(dir, `ingest-${files++}.db`));
  return { db, close: () => db.destroy() };
});
say(`  target ${rate(TARGET_SQLITE)} into SQLite: ${sqlite >= TARGET_SQLITE ? 'met' : 'NOT met'}`);
const postgres = await startTestPostgres({ durable: true });
try {
  await engine('PostgreSQL (fsync on)', async () => {
    const db = openPostgres(await postgres.createDatabase());
    return { db, close: () => db.destroy() };
  });
} finally {
  await postgres.stop();
  rmSync(dir, { recursive: true, force: true });
}
