import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, parseDatabaseUrl, redactPassword } from './open.ts';
import { retryConflicts } from './postgres.ts';

describe('--database', () => {
  test('none is the data directory\'s SQLite file; sqlite:PATH another file', () => {
    assert.deepEqual(parseDatabaseUrl(undefined, '/data/driftless.db'), { kind: 'sqlite', path: '/data/driftless.db' });
    assert.deepEqual(parseDatabaseUrl('', '/data/driftless.db'), { kind: 'sqlite', path: '/data/driftless.db' });
    assert.deepEqual(parseDatabaseUrl('sqlite:/var/lib/fleet.db', 'x'), { kind: 'sqlite', path: '/var/lib/fleet.db' });
    assert.deepEqual(parseDatabaseUrl('sqlite:///var/lib/fleet.db', 'x'), { kind: 'sqlite', path: '/var/lib/fleet.db' });
    assert.deepEqual(parseDatabaseUrl('sqlite:fleet.db', 'x'), { kind: 'sqlite', path: 'fleet.db' });
  });

  test('postgres:// and postgresql:// URLs, with a host in the authority or in ?host=', () => {
    for (const url of ['postgres://u:p@db.example:5432/fleet', 'postgresql://db.example/fleet?sslmode=require', 'postgres:///fleet?host=/run/postgresql']) {
      assert.deepEqual(parseDatabaseUrl(url, 'x'), { kind: 'postgres', url });
    }
  });

  test('anything else is refused naming what is wrong, never the password', () => {
    assert.throws(() => parseDatabaseUrl('mysql://root:pw@h/db', 'x'), /^Error: --database: "mysql:" databases are not supported; use postgres:\/\/… or sqlite:PATH$/);
    assert.throws(() => parseDatabaseUrl('fleet.db', 'x'), /--database: "fleet\.db" is not a database URL/);
    assert.throws(() => parseDatabaseUrl('sqlite:', 'x'), /"sqlite:" needs a file path/);
    assert.throws(() => parseDatabaseUrl('postgres://', 'x'), /is not a PostgreSQL URL/);
    assert.throws(
      () => parseDatabaseUrl('postgres://u:hunter2@/db', 'x'),
      (error: Error) => /not a PostgreSQL URL/.test(error.message) && !error.message.includes('hunter2'),
    );
  });

  test('a URL shown to people has its password replaced, and only that', () => {
    assert.equal(redactPassword('postgres://fleet:s3cr:et@db.example:5432/fleet'), 'postgres://fleet:***@db.example:5432/fleet');
    assert.equal(redactPassword('postgres://fleet@db.example/fleet'), 'postgres://fleet@db.example/fleet');
    assert.equal(redactPassword('sqlite:/data/x.db'), 'sqlite:/data/x.db');
  });
});

describe('retryConflicts', () => {
  const conflict = (code: string) => Object.assign(new Error(`could not serialize (${code})`), { code });

  test('runs again after a serialization failure or a deadlock, and returns the result', async () => {
    let calls = 0;
    const result = await retryConflicts(
      async () => {
        calls++;
        if (calls === 1) throw conflict('40001');
        if (calls === 2) throw conflict('40P01');
        return 'done';
      },
      { random: () => 0 },
    );
    assert.equal(result, 'done');
    assert.equal(calls, 3);
  });

  test('any other error reaches the caller at once', async () => {
    let calls = 0;
    await assert.rejects(
      retryConflicts(async () => {
        calls++;
        throw conflict('23505');
      }),
      /23505/,
    );
    assert.equal(calls, 1);
  });

  test('gives up after its attempts with the last conflict', async () => {
    let calls = 0;
    await assert.rejects(
      retryConflicts(
        async () => {
          calls++;
          throw conflict('40001');
        },
        { attempts: 4, random: () => 0 },
      ),
      /40001/,
    );
    assert.equal(calls, 4);
  });
});

describe('one server per SQLite database', () => {
  const dir = mkdtempSync(join(tmpdir(), 'driftless-open-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a second server on the same file is refused naming the first; after close it may start', async () => {
    const target = { kind: 'sqlite' as const, path: join(dir, 'a.db') };
    const first = await openDatabase(target, { use: 'server' });
    assert.match(readFileSync(`${target.path}.server.pid`, 'utf8'), new RegExp(`^${process.pid} \\d+\\n$`));
    await assert.rejects(openDatabase(target, { use: 'server' }), new RegExp(`^Error: database ${target.path}: another driftless server \\(pid ${process.pid}\\) is already using this database$`));
    // A reader that is not a server (tests, tools) is not held back.
    const reader = await openDatabase(target);
    await reader.close();
    await first.close();
    assert.equal(existsSync(`${target.path}.server.pid`), false);
    const again = await openDatabase(target, { use: 'server' });
    await again.close();
  });

  test('the file of a server that died (crash, power cut, pid since reused) is taken over', async () => {
    const target = { kind: 'sqlite' as const, path: join(dir, 'b.db') };
    const child = spawn(process.execPath, ['-e', '']);
    const deadPid = await new Promise<number>((resolve) => child.once('exit', () => resolve(child.pid!)));
    for (const stale of [`${deadPid} 12345\n`, `${process.pid} 1\n`, 'garbage\n', '']) {
      writeFileSync(`${target.path}.server.pid`, stale);
      const opened = await openDatabase(target, { use: 'server' });
      assert.match(readFileSync(`${target.path}.server.pid`, 'utf8'), new RegExp(`^${process.pid} `), JSON.stringify(stale));
      await opened.close();
    }
  });
});
