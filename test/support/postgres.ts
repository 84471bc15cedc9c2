import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/**
 * A throwaway PostgreSQL server for tests: Debian's `postgresql` package (installed by
 * scripts/setup-system.sh), its own data directory and port, started with initdb + postgres and
 * removed on stop. As root (CI) it runs as the `postgres` user, which initdb insists on.
 *
 * Durability settings are off (fsync, synchronous_commit) unless asked for: these tests check what
 * the store does on PostgreSQL, not the disk; SQLite's durability has its own tests.
 */
export type TestPostgres = {
  /** postgres://… of the server's `postgres` database. */
  url: string;
  /** A new, empty database on this server; its URL. With `template`, a copy of that database. */
  createDatabase(template?: string): Promise<string>;
  /** SQL as the superuser, on the `postgres` database. */
  query(text: string): Promise<pg.QueryResult>;
  stop(): Promise<void>;
};

const USER = 'driftless';

/** The newest installed PostgreSQL's programs: Debian keeps them under /usr/lib/postgresql/N/bin. */
export function postgresBinDir(): string | null {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (existsSync(join(root, v, 'bin', 'postgres'))) return join(root, v, 'bin');
  try {
    return execFileSync('sh', ['-c', 'dirname "$(command -v postgres)"']).toString().trim() || null;
  } catch {
    return null;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

function runAs(): { uid?: number; gid?: number; owner?: [number, number] } {
  if (process.getuid?.() !== 0) return {};
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid, gid, owner: [uid, gid] };
}

/** `durable`: fsync and synchronous commits on, as a production server runs (for benchmarks). */
export async function startTestPostgres(opts: { durable?: boolean } = {}): Promise<TestPostgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('PostgreSQL is not installed: run `bash scripts/setup-system.sh` (it installs Debian\'s postgresql)');
  const as = runAs();
  const dir = mkdtempSync(join(tmpdir(), 'driftless-pg-'));
  const data = join(dir, 'data');
  if (as.owner) chownSync(dir, ...as.owner);
  const ids = as.uid === undefined ? {} : { uid: as.uid, gid: as.gid! };
  execFileSync(join(bin, 'initdb'), ['-D', data, '-U', USER, '--auth=trust', '--locale=C', '--encoding=UTF8', '--no-sync'], { ...ids, stdio: 'pipe' });

  const port = await freePort();
  const server: ChildProcess = spawn(
    join(bin, 'postgres'),
    ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', ...(opts.durable ? [] : ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']), '-c', 'max_connections=200'],
    { ...ids, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  server.stderr!.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  const killOnExit = () => server.kill('SIGKILL');
  process.once('exit', killOnExit);

  const url = `postgres://${USER}@127.0.0.1:${port}/postgres`;
  const admin = new pg.Pool({ connectionString: url, max: 2 });
  admin.on('error', () => undefined);
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await admin.query('select 1');
      break;
    } catch (error) {
      if (server.exitCode !== null || Date.now() > deadline) {
        server.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`PostgreSQL did not start: ${(error as Error).message}\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  let databases = 0;
  return {
    url,
    async createDatabase(template) {
      const name = `db_${++databases}`;
      await admin.query(`create database ${name}${template ? ` template ${template}` : ''}`);
      return `postgres://${USER}@127.0.0.1:${port}/${name}`;
    },
    query: (text) => admin.query(text),
    async stop() {
      await admin.end().catch(() => undefined);
      // SIGINT: PostgreSQL's fast shutdown (ends sessions, no wait for clients).
      server.kill('SIGINT');
      const killed = setTimeout(() => server.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killed);
      process.removeListener('exit', killOnExit);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
