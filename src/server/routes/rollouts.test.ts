import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import type { ComponentStatus } from '../../protocol/messages.ts';
import type { RolloutView, Strategy } from '../../protocol/resources.ts';
import { startServer, type RunningServer } from '../server.ts';
import type { DeviceRecord, Store } from '../store/store.ts';
import { ok, refused as error, startInProcessServer, type InProcessServer } from '../../../test/support/in-process-server.ts';

// The rollout API in process (buildApp + inject, a clock the test moves), and the CLI's
// `rollout status -o json` and friends against a real server on a free port.

const OPERATOR = 'operator-token';
const VIEWER = 'viewer-token';
const START = Date.parse('2025-06-02T10:00:00.000Z');
const devices = ['pos-1', 'pos-2', 'pos-3', 'pos-4'];
const CANARY: Strategy = { waves: [{ devices: 1 }, { percent: 100 }], maxFailurePercent: 0, onFailure: 'rollback' };

type Harness = InProcessServer;
type Progress = { index: number; devices: number; updated: number; failed: number; waiting: number; offline: number };

async function harness(): Promise<Harness> {
  const h = await startInProcessServer({
    start: START,
    tokens: { [OPERATOR]: 'operator', [VIEWER]: 'viewer' },
    seed: async (store, nowIso) => {
      for (const name of devices) await store.insertDevice(deviceRecord(name, nowIso));
    },
  });
  // What the server's timer does: two seconds pass, the rollouts advance.
  return {
    ...h,
    async tick() {
      h.clock.ms += 2000;
      await h.tick();
    },
  };
}

function deviceRecord(name: string, nowIso: string): DeviceRecord {
  return { name, site: `site-${name}`, labels: { tier: 'store' }, facts: { arch: 'x64' }, publicKey: `key-${name}`, status: 'accepted', enrolledAt: nowIso, lastSeen: nowIso, appliedGeneration: 0 };
}

function deployment(version: string, strategy: Strategy = CANARY) {
  return {
    apiVersion: 'driftless/v1',
    kind: 'Deployment',
    metadata: { name: 'web' },
    spec: { selector: { matchLabels: { tier: 'store' } }, template: { version, components: [{ name: 'web', image: `registry.example/web:${version}` }] }, strategy },
  };
}

async function call(h: Harness, method: 'GET' | 'POST', url: string, opts: { token?: string; body?: unknown } = {}): Promise<LightMyRequestResponse> {
  return h.app.inject({ method, url, headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {}, ...(opts.body === undefined ? {} : { payload: opts.body as object }) });
}



async function report(store: Store, device: string, revision: number, version: string, state: ComponentStatus['state'] = 'healthy', detail: string | null = null) {
  const at = new Date().toISOString();
  await store.recordStatus(device, 1, at, at, [
    { name: 'web', deployment: 'web', desiredVersion: version, desiredRevision: revision, version: state === 'healthy' ? version : null, state, reason: state === 'healthy' ? null : 'health-check-failed', detail, since: at },
  ]);
}

/** The revision a device's signed desired state gives it now. */
async function desiredRevision(store: Store, device: string): Promise<number | null> {
  return (await store.getDesired(device))?.document.payload.components.find((c) => c.deployment === 'web')?.revision ?? null;
}

type Detail = RolloutView & {
  fromRevision: number | null;
  timeline: { at: string; message: string }[];
  devices: { device: string; wave: number; status: string; why: string; detail: string | null; releasedAt: string | null; doneAt: string | null }[];
  incident: { id: string; state: string; title: string } | null;
};

describe('rollout ticks', () => {
  test('each rollout advances in its own transaction: one whose record is broken is skipped, and the others go on', async () => {
    const h = await harness();
    try {
      const other = { ...deployment('1', { waves: [{ percent: 100 }] }), metadata: { name: 'kiosk' } };
      ok(await call(h, 'POST', '/v1/apply', { token: OPERATOR, body: { resources: [deployment('1', { waves: [{ percent: 100 }] }), other] } }));
      // The web rollout's stored state is damaged (a bad restore, a hand edit): ticking it throws.
      const web = (await h.store.getRollout('web-1'))!;
      await h.store.putRollout({ ...web, machine: { ...(web.machine as object), timeline: null } });
      for (const d of devices) {
        const at = new Date(h.clock.ms).toISOString();
        await h.store.recordStatus(d, 1, at, at, [
          { name: 'web', deployment: 'kiosk', desiredVersion: '1', desiredRevision: 1, version: '1', state: 'healthy', reason: null, detail: null, since: at },
        ]);
      }
      await h.tick();
      assert.equal((await h.store.getRollout('kiosk-1'))?.state, 'complete', 'the healthy rollout completed');
      assert.equal((await h.store.getDeployment('kiosk'))?.targetRevision, 1);
      assert.equal((await h.store.getRollout('web-1'))?.state, 'progressing', 'the broken one is left as it was');
      // And the next tick still runs (no tick left hanging).
      await h.tick();
    } finally {
      await h.close();
    }
  });
});

describe('rollout routes', () => {
  let h: Harness;
  let canary: string;

  /** Revision 1 everywhere, then revision 2 released to its canary. */
  beforeEach(async () => {
    h = await harness();
    ok(await call(h, 'POST', '/v1/apply', { token: OPERATOR, body: { resources: [deployment('1', { waves: [{ percent: 100 }] })] } }));
    for (const d of devices) await report(h.store, d, 1, '1');
    await h.tick();
    assert.equal((await h.store.getDeployment('web'))?.targetRevision, 1);
    ok(await call(h, 'POST', '/v1/apply', { token: OPERATOR, body: { resources: [deployment('2')] } }));
    const released = await h.store.listReleases('web');
    assert.equal(released.length, 1);
    canary = released[0]!.device;
  });
  afterEach(async () => h.close());

  test('GET /v1/rollouts lists them oldest first, filtered by deployment; viewers may read', async () => {
    const all = ok(await call(h, 'GET', '/v1/rollouts', { token: VIEWER })) as RolloutView[];
    assert.deepEqual(all.map((r) => [r.name, r.deployment, r.revision, r.state]), [['web-1', 'web', 1, 'complete'], ['web-2', 'web', 2, 'progressing']]);
    for (const r of all) assert.deepEqual(Object.keys(r).sort(), ['createdAt', 'deployment', 'name', 'reason', 'revision', 'state', 'updatedAt', 'waves']);
    assert.deepEqual(all[1]!.waves, [
      { index: 0, devices: 1, updated: 0, failed: 0, state: 'progressing' },
      { index: 1, devices: 3, updated: 0, failed: 0, state: 'pending' },
    ]);
    assert.deepEqual(ok(await call(h, 'GET', '/v1/rollouts?deployment=other', { token: VIEWER })), []);
    assert.equal((ok(await call(h, 'GET', '/v1/rollouts?deployment=web', { token: VIEWER })) as unknown[]).length, 2);
    error(await call(h, 'GET', '/v1/rollouts?state=halted', { token: VIEWER }), 400, 'invalid-input');
    error(await call(h, 'GET', '/v1/rollouts'), 401, 'unauthorized');
  });

  test('GET /v1/rollouts/:name: the timeline, every device with its wave, status and why; 404 for an unknown one', async () => {
    const r = ok(await call(h, 'GET', '/v1/rollouts/web-2', { token: VIEWER })) as Detail;
    assert.equal(r.name, 'web-2');
    assert.equal(r.fromRevision, 1);
    assert.equal(r.incident, null);
    assert.deepEqual(r.timeline.map((t) => t.message), ['rollout of revision 2 started (from revision 1)', 'wave 1 of 2 started: 1 device']);
    assert.deepEqual(r.timeline.map((t) => t.at), [new Date(START + 2000).toISOString(), new Date(START + 2000).toISOString()]);
    assert.equal(r.devices.length, 1);
    assert.deepEqual({ ...r.devices[0], why: undefined }, { device: canary, wave: 1, status: 'released', why: undefined, detail: null, releasedAt: new Date(START + 2000).toISOString(), doneAt: null });
    assert.match(r.devices[0]!.why, /^canary: first at site site-pos-\d, first on hardware x64$/);
    error(await call(h, 'GET', '/v1/rollouts/nope-9', { token: VIEWER }), 404, 'not-found', /rollout "nope-9" not found/);
  });

  test("GET /v1/rollouts/:name: each wave's progress; ?devices=failed|none lists fewer devices, never fewer counts", async () => {
    const r = ok(await call(h, 'GET', '/v1/rollouts/web-2', { token: VIEWER })) as Detail & { progress: Progress[] };
    assert.equal(r.progress.length, 1, 'only the canary has a slot so far');
    const [canaryWave] = r.progress;
    assert.deepEqual({ ...canaryWave, waiting: undefined, offline: undefined }, { index: 0, devices: 1, updated: 0, failed: 0, waiting: undefined, offline: undefined });
    assert.equal(canaryWave!.waiting + canaryWave!.offline, 1, 'released, no verdict yet');

    await report(h.store, canary, 2, '2', 'reverted', 'health check failed');
    await h.tick();
    const all = ok(await call(h, 'GET', '/v1/rollouts/web-2', { token: VIEWER })) as Detail & { progress: Progress[] };
    assert.deepEqual(all.progress[0], { index: 0, devices: 1, updated: 0, failed: 1, waiting: 0, offline: 0 });
    const failed = ok(await call(h, 'GET', '/v1/rollouts/web-2?devices=failed', { token: VIEWER })) as Detail & { progress: Progress[] };
    assert.deepEqual(failed.devices.map((d) => d.device), [canary]);
    const none = ok(await call(h, 'GET', '/v1/rollouts/web-2?devices=none', { token: VIEWER })) as Detail & { progress: Progress[] };
    assert.deepEqual(none.devices, []);
    assert.deepEqual(none.progress, all.progress, 'the counts do not depend on the list');
    error(await call(h, 'GET', '/v1/rollouts/web-2?devices=some', { token: VIEWER }), 400, 'invalid-input', /devices/);
  });

  test('pause, resume and abort need an operator; unknown rollouts are 404, unknown actions 400', async () => {
    error(await call(h, 'POST', '/v1/rollouts/web-2/pause', { token: VIEWER, body: {} }), 403, 'forbidden');
    error(await call(h, 'POST', '/v1/rollouts/web-2/pause', { body: {} }), 401, 'unauthorized');
    error(await call(h, 'POST', '/v1/rollouts/nope-2/pause', { token: OPERATOR, body: {} }), 404, 'not-found');
    error(await call(h, 'POST', '/v1/rollouts/web-2/explode', { token: OPERATOR, body: {} }), 400, 'invalid-input', /action/);
    assert.equal((ok(await call(h, 'GET', '/v1/rollouts/web-2', { token: VIEWER })) as Detail).state, 'progressing', 'refused calls changed nothing');

    const paused = ok(await call(h, 'POST', '/v1/rollouts/web-2/pause', { token: OPERATOR, body: {} })) as RolloutView;
    assert.equal(paused.state, 'paused');
    assert.equal(paused.reason, 'paused by operator');
    await report(h.store, canary, 2, '2');
    await h.tick();
    assert.equal((await h.store.listReleases('web')).length, 1, 'paused: the second wave waits');

    const resumed = ok(await call(h, 'POST', '/v1/rollouts/web-2/resume', { token: OPERATOR, body: {} })) as RolloutView;
    assert.equal(resumed.state, 'progressing');
    assert.equal((await h.store.listReleases('web')).length, 4, 'resume takes the next step at once');
    for (const d of devices) assert.equal(await desiredRevision(h.store, d), 2, `${d}'s signed desired state was republished with revision 2`);

    const aborted = ok(await call(h, 'POST', '/v1/rollouts/web-2/abort', { token: OPERATOR, body: {} })) as RolloutView;
    assert.equal(aborted.state, 'halted', 'rolling back shows as halted');
    assert.equal(aborted.reason, 'aborted by operator');
    assert.deepEqual(await h.store.listReleases('web'), []);
    for (const d of devices) assert.equal(await desiredRevision(h.store, d), 1, `${d} is sent back to revision 1`);
    const timeline = (ok(await call(h, 'GET', '/v1/rollouts/web-2', { token: VIEWER })) as Detail).timeline.map((t) => t.message);
    assert.ok(timeline.includes('paused by operator') && timeline.includes('aborted by operator; rolling back'), timeline.join('\n'));
  });

  test('a failed canary: the rollout shows its incident; the incident API and its Markdown tell the story', async () => {
    await report(h.store, canary, 2, '2', 'reverted', 'health check failed: HTTP 404 from /healthz');
    await h.tick();
    const r = ok(await call(h, 'GET', '/v1/rollouts/web-2', { token: VIEWER })) as Detail;
    assert.equal(r.state, 'halted');
    assert.deepEqual(r.incident && { id: r.incident.id, state: r.incident.state }, { id: 'web-2-incident', state: 'open' });
    assert.equal(r.devices[0]!.status, 'reverted');
    assert.equal(await desiredRevision(h.store, canary), 1);

    const incidents = ok(await call(h, 'GET', '/v1/incidents', { token: VIEWER })) as { id: string; state: string; timeline: unknown[] }[];
    assert.deepEqual(incidents.map((i) => [i.id, i.state]), [['web-2-incident', 'open']]);
    const incident = ok(await call(h, 'GET', '/v1/incidents/web-2-incident', { token: VIEWER })) as { timeline: { message: string }[]; rollout: string; title: string };
    assert.equal(incident.rollout, 'web-2');
    assert.ok(incident.timeline.some((t) => t.message === `${canary} failed: web: health check failed: HTTP 404 from /healthz`));

    const md = await call(h, 'GET', '/v1/incidents/web-2-incident/markdown', { token: VIEWER });
    assert.equal(md.statusCode, 200);
    assert.match(String(md.headers['content-type']), /^text\/markdown/);
    assert.match(md.body, /^# Rollout web-2 halted: /);
    assert.match(md.body, /- Rollout: web-2 \(revision 2, from revision 1\)/);
    assert.match(md.body, /- State: open/);
    assert.match(md.body, /## Timeline \(UTC\)/);
    assert.match(md.body, /\| 2025-06-02 10:00:04\.000 \| threshold crossed: 1 of 1 devices in wave 1 failed \(100\.0% > 0%\) \|/);
    assert.match(md.body, new RegExp(`\\| ${canary} failed: web: health check failed: HTTP 404 from /healthz \\|`));
    assert.match(md.body, /## Waves\n\n\| wave \| devices \| updated \| failed \| state \|/);
    assert.match(md.body, /\| 1 \| 1 \| 0 \| \d \| [a-z-]+ \|\n\| 2 \| 3 \| 0 \| 0 \| skipped \|/);

    await report(h.store, canary, 1, '1');
    await h.tick();
    assert.equal((ok(await call(h, 'GET', '/v1/incidents/web-2-incident', { token: VIEWER })) as { state: string }).state, 'resolved');
    const resolved = await call(h, 'GET', '/v1/incidents/web-2-incident/markdown', { token: VIEWER });
    assert.match(resolved.body, /- State: resolved/);
    assert.match(resolved.body, /rollback done: 1 of 1 devices recovered on the previous revision/);
    assert.equal((ok(await call(h, 'GET', '/v1/rollouts/web-2', { token: VIEWER })) as Detail).state, 'rolled-back');

    error(await call(h, 'GET', '/v1/incidents/nope', { token: VIEWER }), 404, 'not-found');
    error(await call(h, 'GET', '/v1/incidents/nope/markdown', { token: VIEWER }), 404, 'not-found');
  });

  test('a Site with a time zone no one knows is refused at apply: it would stop every rollout tick', async () => {
    const site = (timeZone: string) => ({ apiVersion: 'driftless/v1', kind: 'Site', metadata: { name: 'site-pos-1' }, spec: { timeZone, maintenanceWindows: [{ start: '02:00', duration: '2h' }] } });
    error(await call(h, 'POST', '/v1/apply', { token: OPERATOR, body: { resources: [site('Mars/Olympus_Mons')] } }), 400, 'invalid-input', /resources\[0\] \(Site site-pos-1\): spec\.timeZone: .*Mars\/Olympus_Mons/);
    assert.equal(await h.store.getSite('site-pos-1'), null);
    await h.tick();
    ok(await call(h, 'POST', '/v1/apply', { token: OPERATOR, body: { resources: [site('Asia/Kolkata')] } }));
    await h.tick();
  });

  test('POST /v1/deployments/:name/rollback: aborts the running rollout; later, releases an earlier revision; errors are 4xx', async () => {
    error(await call(h, 'POST', '/v1/deployments/web/rollback', { token: VIEWER, body: {} }), 403, 'forbidden');
    error(await call(h, 'POST', '/v1/deployments/nope/rollback', { token: OPERATOR, body: {} }), 404, 'not-found');
    error(await call(h, 'POST', '/v1/deployments/web/rollback', { token: OPERATOR, body: { toRevision: 0 } }), 400, 'invalid-input', /toRevision/);
    error(await call(h, 'POST', '/v1/deployments/web/rollback', { token: OPERATOR, body: { revision: 1 } }), 400, 'invalid-input');
    error(await call(h, 'POST', '/v1/deployments/web/rollback', { token: OPERATOR, body: { toRevision: 9 } }), 404, 'not-found', /no revision 9/);

    assert.deepEqual(ok(await call(h, 'POST', '/v1/deployments/web/rollback', { token: OPERATOR, body: {} })), { action: 'aborted', revision: 1, rollout: 'web-2' });
    assert.equal(await desiredRevision(h.store, canary), 1);
    await report(h.store, canary, 1, '1');
    await h.tick();
    assert.equal((await h.store.getRollout('web-2'))?.state, 'rolled-back');

    // Nothing runs now: rolling back means a new revision with revision... 1's template; but revision 1 is stable and the only earlier one is none.
    error(await call(h, 'POST', '/v1/deployments/web/rollback', { token: OPERATOR, body: {} }), 409, 'conflict');
    assert.deepEqual(ok(await call(h, 'POST', '/v1/deployments/web/rollback', { token: OPERATOR, body: { toRevision: 1 } })), { action: 'released', revision: 3, rollout: 'web-3' });
    assert.equal((await h.store.getDeployment('web'))?.spec.template.version, '1');
  });
});

// ---- The CLI against a real server ----

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const DRIFTLESS = join(ROOT, 'bin/driftless');

function cli(args: string[], server: RunningServer, token: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const env: NodeJS.ProcessEnv = { ...process.env, DRIFTLESS_CONFIG: join(tmpdir(), 'driftless-no-config.json') };
    delete env.DRIFTLESS_SERVER;
    delete env.DRIFTLESS_TOKEN;
    execFile(DRIFTLESS, [...args, '--server', server.url, '--token', token], { env, timeout: 60_000 }, (err, stdout, stderr) => {
      done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Polls the server (its rollout loop ticks on its own timer) until `done` holds; fails with the last state. */
async function waitFor<T>(what: string, observe: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  let last: T | undefined;
  for (let i = 0; i < 200; i++) {
    last = await observe();
    if (done(last)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
}

describe('rollout CLI against a real server', () => {
  const admin = `admin-${randomBytes(6).toString('hex')}`;
  let dir: string;
  let server: RunningServer;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'driftless-rollout-cli-'));
    server = await startServer({ dataDir: dir, host: '127.0.0.1', port: 0, adminToken: admin, enrollToken: 'enroll', tickMs: 100 });
    const nowIso = new Date().toISOString();
    for (const d of devices) await server.store.insertDevice(deviceRecord(d, nowIso));
    const apply = async (version: string, strategy?: Strategy) => {
      const r = await fetch(`${server.url}/v1/apply`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ resources: [deployment(version, strategy)] }) });
      assert.equal(r.status, 200, await r.text());
    };
    await apply('1', { waves: [{ percent: 100 }] });
    for (const d of devices) await report(server.store, d, 1, '1');
    await waitFor('revision 1 to complete', () => server.store.getDeployment('web'), (d) => d?.targetRevision === 1);
    await apply('2');
  });
  after(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('rollout status -o json prints exactly the documented shape, by rollout name or by deployment name', async () => {
    for (const name of ['web-2', 'web']) {
      const result = await cli(['rollout', 'status', name, '-o', 'json'], server, admin);
      assert.equal(result.code, 0, result.stderr);
      const status = JSON.parse(result.stdout) as Record<string, unknown>;
      assert.deepEqual(Object.keys(status), ['name', 'deployment', 'revision', 'state', 'waves', 'reason']);
      assert.equal(status.name, 'web-2');
      assert.equal(status.deployment, 'web');
      assert.equal(status.revision, 2);
      assert.equal(status.state, 'progressing');
      assert.ok(typeof status.reason === 'string' || status.reason === null);
      const waves = status.waves as Record<string, unknown>[];
      assert.equal(waves.length, 2);
      for (const w of waves) assert.deepEqual(Object.keys(w), ['index', 'devices', 'updated', 'failed', 'state']);
      assert.deepEqual(waves.map((w) => [w.index, w.devices]), [[0, 1], [1, 3]]);
    }
    const missing = await cli(['rollout', 'status', 'nope', '-o', 'json'], server, admin);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /no rollout or deployment named "nope"/);
    assert.equal(missing.stderr.trim().split('\n').length, 1, `one line: ${missing.stderr}`);
  });

  test('rollout status in words, describe rollout, pause and resume', async () => {
    const table = await cli(['rollout', 'status', 'web'], server, admin);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^rollout web-2 \(deployment web, revision 2\): progressing/);
    assert.match(table.stdout, /WAVE\s+DEVICES\s+UPDATED\s+FAILED\s+STATE/);

    const described = await cli(['describe', 'rollout', 'web-2'], server, admin);
    assert.equal(described.code, 0, described.stderr);
    assert.match(described.stdout, /Deployment:\s+web, revision 2 \(from revision 1\)/);
    assert.match(described.stdout, /Timeline:\n.*rollout of revision 2 started \(from revision 1\)/);
    assert.match(described.stdout, /canary: first at site/);

    const paused = await cli(['rollout', 'pause', 'web'], server, admin);
    assert.equal(paused.code, 0, paused.stderr);
    assert.match(paused.stdout, /^rollout web-2: paused — paused by operator$/m);
    const resumed = await cli(['rollout', 'resume', 'web-2'], server, admin);
    assert.match(resumed.stdout, /^rollout web-2: progressing/m);
  });

  test('a failed canary, seen through the CLI: halted, then rolled-back, with the incident as Markdown', async () => {
    const [canaryRelease] = await server.store.listReleases('web');
    assert.ok(canaryRelease, 'the canary is out');
    await report(server.store, canaryRelease.device, 2, '2', 'failed', 'health check failed: HTTP 404 from /healthz');
    await waitFor('the rollout to halt', () => server.store.getRollout('web-2'), (r) => r?.state === 'halted');
    const halted = JSON.parse((await cli(['rollout', 'status', 'web', '-o', 'json'], server, admin)).stdout) as { state: string; reason: string };
    assert.equal(halted.state, 'halted');
    assert.match(halted.reason, /^halted: 1 of 1 devices in wave 1 failed/);
    await report(server.store, canaryRelease.device, 1, '1');
    await waitFor('the rollback to finish', () => server.store.getRollout('web-2'), (r) => r?.state === 'rolled-back');
    const md = await cli(['rollout', 'incident', 'web'], server, admin);
    assert.equal(md.code, 0, md.stderr);
    assert.match(md.stdout, /^# Rollout web-2 halted/);
    assert.match(md.stdout, /rollback done: 1 of 1 devices recovered/);

    const rolledBack = await cli(['rollback', 'deployment', 'web', '--to-revision', '1'], server, admin);
    assert.equal(rolledBack.code, 0, rolledBack.stderr);
    assert.match(rolledBack.stdout, /^deployment\/web: rolling back as revision 3 \(rollout web-3\)$/m);
    const bad = await cli(['rollback', 'deployment', 'web', '--to-revision', 'two'], server, admin);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--to-revision: "two" is not a revision number/);
  });
});
