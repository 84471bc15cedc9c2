import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import WebSocket from 'ws';
import type { ChainVerdict } from '../../src/protocol/audit-chain.ts';
import { run } from '../support/child.ts';
import { assertBusybox, componentOf, createFleet, DRIFTLESS, everyDevice, sleeperManifest, type Fleet, uniqueTag } from '../support/fleet.ts';
import { startTestPostgres, type TestPostgres } from '../support/postgres.ts';
import { waitFor } from '../support/wait.ts';

// `driftless server --database postgres://…` against a real PostgreSQL server: agents enrol and
// roll out through it; a server killed and started again on a new, empty data directory finds the
// whole fleet, its keys and the audit chain in the database, and its devices go on trusting it; a
// second server on the same database works as a replica beside it.

const tag = uniqueTag();
const names = [1, 2].map((i) => `pg-${tag}-${i}`);
const tier = `pg-${tag}`;
const DEPLOYMENT = `app-${tag}`;

describe('the server on PostgreSQL', { timeout: 180_000 }, () => {
  let postgres: TestPostgres;
  let database: string;
  let fleet: Fleet;
  let listen: string;

  before(async () => {
    assertBusybox();
    postgres = await startTestPostgres();
    database = await postgres.createDatabase();
    fleet = createFleet('postgres');
    fleet.own(...names);
  });
  after(async () => {
    await fleet?.cleanup();
    await postgres?.stop();
  });

  const rows = async (text: string) => {
    const client = new pg.Client({ connectionString: database });
    await client.connect();
    try {
      return (await client.query(text)).rows as Record<string, unknown>[];
    } finally {
      await client.end();
    }
  };

  it('serves a fleet whose state is in PostgreSQL, not in its data directory', async () => {
    const server = await fleet.startServer({ dataDir: join(fleet.dir, 'server-a'), extraArgs: ['--database', database] });
    listen = `127.0.0.1:${server.port}`;
    assert.match(server.child.stderr(), new RegExp(`store postgres://driftless@127\\.0\\.0\\.1:\\d+/db_\\d+`));
    for (const name of names) fleet.startAgent({ name, site: `pg-site-${tag}`, labels: { tier } });
    await fleet.waitForDevices('both agents to enrol', (ds) => names.every((n) => ds.some((d) => d.name === n && d.online)));
    await fleet.apply('v1.yaml', sleeperManifest(DEPLOYMENT, tier, '1.0.0'));
    await fleet.waitForDevices('version 1.0.0 healthy on both', everyDevice(names, 'app', (c) => c.version === '1.0.0' && c.state === 'healthy'));

    assert.equal(existsSync(join(server.dataDir, 'driftless.db')), false, 'no SQLite file beside a PostgreSQL store');
    const devices = await rows(`select name, status from devices where name like 'pg-${tag}-%' order by name`);
    assert.deepEqual(devices, names.map((name) => ({ name, status: 'accepted' })));
    await waitFor('the rollout complete in the database', () => rows(`select state from rollouts where deployment = '${DEPLOYMENT}'`), (r) => r[0]?.state === 'complete');
  });

  it('killed and started on a new data directory, it finds the fleet, keys and audit chain in the database', async () => {
    await fleet.server!.kill();
    // The same address (the agents know it), nothing in the new data directory: all the state is in PostgreSQL.
    await fleet.startServer({ listen, dataDir: join(fleet.dir, 'server-b'), extraArgs: ['--database', database, '--resync-interval', '600'] });
    assert.doesNotMatch(fleet.server!.child.stderr(), /admin token|enrollment token:/i, 'no new credentials on a second start');
    await fleet.waitForDevices('both agents back online', (ds) => names.every((n) => ds.some((d) => d.name === n && d.online)));

    // The devices pinned the server's signing key at enrolment: they take a new release only if it is the same key.
    await fleet.apply('v2.yaml', sleeperManifest(DEPLOYMENT, tier, '2.0.0'));
    const devices = await fleet.waitForDevices('version 2.0.0 healthy on both', everyDevice(names, 'app', (c) => c.version === '2.0.0' && c.state === 'healthy'));
    for (const name of names) assert.equal(componentOf(devices.find((d) => d.name === name), 'app')?.desiredVersion, '2.0.0');

    const verdict = (await fleet.api('/v1/audit/verify')).body as ChainVerdict;
    assert.equal(verdict.ok, true, JSON.stringify(verdict));
    const applies = await rows(`select count(*)::int as n from audit_log where action = 'apply'`);
    assert.ok(Number(applies[0]!.n) >= 2, `both applies audited: ${JSON.stringify(applies)}`);
  });

  it('a second server on the same database is a replica: devices of either converge, a revocation holds on both, and the lead moves when its holder dies', async () => {
    const a = fleet.server!;
    // b re-reads on its own only every 10 minutes: what it learns below, it learns from a's word (and a from b's).
    const b = await fleet.startServer({ dataDir: join(fleet.dir, 'server-c'), extraArgs: ['--database', database, '--resync-interval', '600'] });
    // From here the CLI and the API go through b; the first two agents still talk to a.
    const third = `pg-${tag}-3`;
    fleet.own(third);
    const agent3 = fleet.startAgent({ name: third, site: `pg-site-${tag}`, labels: { tier }, serverUrl: b.url });
    const all = [...names, third];
    await fleet.waitForDevices('the third agent enrolled through b', (ds) => ds.some((d) => d.name === third && d.online));

    // Applied through b: a serves the new documents to its agents (announced, read back from the database).
    await fleet.apply('v3.yaml', sleeperManifest(DEPLOYMENT, tier, '3.0.0'));
    await fleet.waitForDevices('version 3.0.0 healthy on every device, whichever replica it talks to', everyDevice(all, 'app', (c) => c.version === '3.0.0' && c.state === 'healthy'));
    await waitFor('the rollout of 3.0.0 complete (ticked by the replica that leads)', () => rows(`select state from rollouts where deployment = '${DEPLOYMENT}' and revision = 3`), (r) => r[0]?.state === 'complete');

    // Exec and a terminal for a device connected to a, asked of b: b passes them on, a opens and records them.
    const exec = await fleet.cli(['exec', names[0]!, '--', 'sh', '-c', 'echo relayed-$((6*7))']);
    assert.equal(exec.code, 0, exec.stderr);
    assert.match(exec.stdout, /relayed-42/);
    const output = await browserTerminal(`${b.url.replace(/^http/, 'ws')}/v1/devices/${names[1]}/terminal?cols=80&rows=24`, fleet.adminToken, 'echo hi-$((6*7)); exit 3\n');
    assert.match(output.text, /hi-42/);
    assert.equal(output.exitCode, 3);
    // a recorded it, in the database: b lists and reads it.
    const recordings = (await fleet.api('/v1/recordings')).body as { id: string; kind: string; device: string }[];
    const recording = recordings.find((r) => r.device === names[1] && r.kind === 'terminal');
    assert.ok(recording, `the session is listed through b: ${JSON.stringify(recordings)}`);
    assert.match((await fleet.api(`/v1/recordings/${recording.id}`)).text, /hi-42/);
    assert.equal(existsSync(join(a.dataDir, 'recordings')), false, 'not in a data directory');

    // An artifact uploaded through a is kept in the database, where b reads it too.
    const bytes = Buffer.from(`agent bundle ${tag}\n`.repeat(1000));
    const upload = await fetch(`${a.url}/v1/artifacts?name=bundle-${tag}&version=1.0.0`, {
      method: 'POST',
      headers: { authorization: `Bearer ${fleet.adminToken}`, 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    assert.equal(upload.status, 201, await upload.clone().text());
    const { sha256 } = (await upload.json()) as { sha256: string };
    const [stored] = await rows(`select sum(length(data))::int as bytes from file_chunks where key = '${sha256}'`);
    assert.equal(stored?.bytes, bytes.length);
    assert.equal(existsSync(join(a.dataDir, 'artifacts', sha256)), false, 'not in the data directory of the replica that took it');
    assert.ok(((await fleet.api('/v1/artifacts')).body as { sha256: string }[]).some((x) => x.sha256 === sha256), 'listed through b');

    // Revoked through a: b refuses the device on its very next request.
    const revoke = await fetch(`${a.url}/v1/devices/${third}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${fleet.adminToken}` } });
    assert.equal(revoke.status, 200, await revoke.text());
    await agent3.child.waitForStderr(/revoked/, { timeoutMs: 30_000 });

    // The replica that led (a, the older) dies; b takes over the rollout ticks: a new release completes through b alone.
    await a.kill();
    await fleet.apply('v4.yaml', sleeperManifest(DEPLOYMENT, `${tier}-none`, '4.0.0'));
    await waitFor('a rollout completed with only b running', () => rows(`select state from rollouts where deployment = '${DEPLOYMENT}' and revision = 4`), (r) => r[0]?.state === 'complete', { timeoutMs: 60_000 });

    // Key rotation needs every server stopped: refused while b runs, naming why.
    const rotate = await run(DRIFTLESS, ['server', 'rotate-key', '--data', join(fleet.dir, 'server-c'), '--database', database], { cwd: fleet.dir, env: fleet.env, timeoutMs: 30_000 });
    assert.notEqual(rotate.code, 0);
    assert.match(rotate.stderr, /^driftless: database postgres:\/\/driftless@127\.0\.0\.1:\d+\/db_\d+: a driftless server is running on this database \(\d+ connections?\): stop every server replica first\n$/);
  });

  it('a database URL it cannot use, or an address in use, is one clear error, and nothing starts', async () => {
    const attempt = (url: string, at = '127.0.0.1:0') => run(DRIFTLESS, ['server', '--data', join(fleet.dir, 'bad'), '--listen', at, '--database', url], { cwd: fleet.dir, env: fleet.env, timeoutMs: 30_000 });
    const cases: [string, RegExp][] = [
      ['mysql://root@localhost/fleet', /^driftless: --database: "mysql:" databases are not supported; use postgres:\/\/… or sqlite:PATH\n$/],
      ['postgres://', /^driftless: --database: "postgres:\/\/" is not a PostgreSQL URL/],
      // Nothing listens on port 1; the password never shows.
      ['postgres://fleet:s3cret@127.0.0.1:1/fleet', /^driftless: database postgres:\/\/fleet:\*\*\*@127\.0\.0\.1:1\/fleet: .*ECONNREFUSED.*\n$/],
    ];
    for (const [url, expected] of cases) {
      const result = await attempt(url);
      assert.notEqual(result.code, 0, url);
      assert.match(result.stderr, expected, url);
      assert.doesNotMatch(result.stderr, /s3cret|\n\s+at /, 'no password, no stack trace');
    }
    assert.equal(existsSync(join(fleet.dir, 'bad', 'driftless.db')), false);

    // The running server's address, on a database of its own: refused, and the process ends (no timer keeps it up).
    const busy = await attempt(await postgres.createDatabase(), new URL(fleet.url).host);
    assert.notEqual(busy.code, 0);
    assert.match(busy.stderr, /EADDRINUSE/);
  });
});

/** A terminal as the dashboard opens it (token as a subprotocol): types `input`, collects the output until the exit. */
function browserTerminal(url: string, token: string, input: string): Promise<{ text: string; exitCode: number | null }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, ['driftless.terminal', `driftless.bearer.${token}`]);
    let text = '';
    const timer = setTimeout(() => {
      socket.terminate();
      reject(new Error(`no exit from the terminal; output so far: ${JSON.stringify(text)}`));
    }, 30_000);
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as { type: string; data?: string; exitCode?: number; message?: string };
      if (frame.type === 'opened') socket.send(JSON.stringify({ type: 'input', data: Buffer.from(input).toString('base64') }));
      else if (frame.type === 'output') text += Buffer.from(frame.data ?? '', 'base64').toString('utf8');
      else if (frame.type === 'exit' || frame.type === 'error') {
        clearTimeout(timer);
        socket.close();
        if (frame.type === 'error') reject(new Error(`terminal error: ${frame.message}`));
        else resolve({ text, exitCode: frame.exitCode ?? null });
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}
