import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import type { AuditEntry } from '../../src/protocol/audit-chain.ts';
import { createFleet, uniqueTag, type Fleet } from '../support/fleet.ts';

// `driftless audit` against a real server process: list, filter, export, verify, and a hand edit
// or deletion in the SQLite file (while the server runs, and while it is stopped) caught by
// `audit verify`, which exits non-zero naming the first broken entry.

const tag = uniqueTag();
const manifest = `apiVersion: driftless/v1
kind: Deployment
metadata:
  name: audited-${tag}
spec:
  selector: { matchLabels: { tier: audit-${tag} } }
  template:
    version: "1"
    components:
      - name: web
        image: localhost/driftless-web:1
`;

describe('driftless audit', () => {
  let fleet: Fleet;
  let viewerSecret = '';
  const dbFile = () => join(fleet.server!.dataDir, 'driftless.db');
  /** A change made with the database file in hand, not through the server (WAL: safe beside the running server). */
  const byHand = (statement: string) => {
    const db = new DatabaseSync(dbFile());
    try {
      db.exec('PRAGMA busy_timeout = 5000');
      db.prepare(statement).run();
    } finally {
      db.close();
    }
  };

  before(async () => {
    fleet = createFleet('audit');
    await fleet.startServer();
    await fleet.apply('deployment.yaml', manifest);
    const created = await fleet.cliJson<{ token: string }>(['token', 'create', '--role', 'viewer', '-o', 'json']);
    viewerSecret = created.token;
    assert.equal((await fleet.api('/v1/devices', { token: 'not-a-real-token' })).status, 401);
    assert.equal((await fleet.api('/v1/apply', { method: 'POST', token: viewerSecret, headers: { 'content-type': 'application/json' }, body: '{"resources":[{}]}' })).status, 403);
  });
  after(async () => {
    await fleet?.cleanup();
  });

  it('lists, filters and prints JSON', async () => {
    const entries = await fleet.cliJson<AuditEntry[]>(['audit', '-o', 'json']);
    const actions = entries.map((e) => `${e.action} ${e.status}`);
    assert.deepEqual(actions, ['apply 200', 'token.create 201', 'GET /v1/devices 401', 'apply 403'], JSON.stringify(entries, null, 2));
    assert.match(entries[0]!.actor, /^token:[0-9a-f-]{36}$/);
    assert.equal(entries[0]!.target, `Deployment/audited-${tag}`);
    assert.equal(entries[0]!.sourceIp, '127.0.0.1');
    assert.equal(entries[2]!.actor, 'unknown-token');

    const table = await fleet.cli(['audit']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^SEQ\s+TIME\s+ACTOR\s+ACTION\s+TARGET\s+SOURCE\s+OUTCOME/);
    assert.match(table.stdout, /apply\s+-\s+127\.0\.0\.1\s+403 forbidden/);

    assert.deepEqual((await fleet.cliJson<AuditEntry[]>(['audit', '--action', 'token.*', '-o', 'json'])).map((e) => e.action), ['token.create']);
    assert.deepEqual((await fleet.cliJson<AuditEntry[]>(['audit', '--outcome', 'denied', '--since', '1h', '-o', 'json'])).map((e) => e.status), [401, 403]);
    const bad = await fleet.cli(['audit', '--since', 'last-tuesday']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--since: "last-tuesday" is neither a duration/);
  });

  it('exports a chain that verifies offline, and catches an edited export', async () => {
    const file = join(fleet.dir, 'audit.jsonl');
    const exported = await fleet.cli(['audit', '--export', file]);
    assert.equal(exported.code, 0, exported.stderr);
    assert.match(exported.stdout, /exported 4 audit entries/);
    const text = readFileSync(file, 'utf8');
    for (const secret of [fleet.adminToken, viewerSecret, 'not-a-real-token']) assert.equal(text.includes(secret), false, 'a secret in the audit export');

    const offline = await fleet.cli(['audit', 'verify', '--file', file], { raw: true });
    assert.equal(offline.code, 0, offline.stderr);
    assert.match(offline.stdout, /intact: 4 entries; head: entry 4, sha256 [0-9a-f]{64}/);

    const lines = text.trimEnd().split('\n');
    lines[1] = lines[1]!.replace('"status":201', '"status":200');
    writeFileSync(file, `${lines.join('\n')}\n`);
    const edited = await fleet.cli(['audit', 'verify', '--file', file], { raw: true });
    assert.equal(edited.code, 1);
    assert.match(edited.stderr, /broken at entry 2: entry 2 does not match its hash \(edited\)/);

    writeFileSync(file, `${[lines[0], ...lines.slice(2)].join('\n')}\n`);
    const deleted = await fleet.cli(['audit', 'verify', '--file', file], { raw: true });
    assert.equal(deleted.code, 1);
    assert.match(deleted.stderr, /broken at entry 2: entry 2 is missing/);
  });

  it('verifies the server chain, and names the row edited by hand', async () => {
    const intact = await fleet.cli(['audit', 'verify']);
    assert.equal(intact.code, 0, intact.stderr);
    assert.match(intact.stdout, /audit chain intact: \d+ entries/);

    byHand(`UPDATE audit_log SET target = 'Deployment/innocent' WHERE seq = 1`);
    const edited = await fleet.cli(['audit', 'verify']);
    assert.equal(edited.code, 1, edited.stdout);
    assert.match(edited.stderr, /audit chain is broken at entry 1: entry 1 does not match its hash \(edited\)/);
    const json = await fleet.cli(['audit', 'verify', '-o', 'json']);
    assert.equal(json.code, 1);
    assert.deepEqual((JSON.parse(json.stdout) as { ok: boolean; firstBroken: { seq: number } }).firstBroken.seq, 1);
    byHand(`UPDATE audit_log SET target = 'Deployment/audited-${tag}' WHERE seq = 1`);
    assert.equal((await fleet.cli(['audit', 'verify'])).code, 0);
  });

  it('names the row deleted while the server was stopped', async () => {
    const dataDir = fleet.server!.dataDir;
    await fleet.server!.stop();
    byHand('DELETE FROM audit_log WHERE seq = 3');
    await fleet.startServer({ dataDir });
    const deleted = await fleet.cli(['audit', 'verify']);
    assert.equal(deleted.code, 1, deleted.stdout);
    assert.match(deleted.stderr, /broken at entry 3: entry 3 is missing: the next entry is 4/);
  });
});
