import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { DriftlessError } from '../../protocol/errors.ts';
import type { ComponentStatus } from '../../protocol/messages.ts';
import type { DeploymentResource, Strategy } from '../../protocol/resources.ts';
import { applyResources } from '../fleet/apply.ts';
import { migrateToLatest } from '../store/migrate.ts';
import { openSqlite } from '../store/sqlite.ts';
import { createSqlStore, type DeviceRecord, type Store } from '../store/store.ts';
import { rollbackDeployment } from './rollback.ts';
import { createRolloutEngine, machineOf, type RolloutEngine } from './rollout-engine.ts';

// `rollback deployment NAME [--to-revision N]` on a real SQLite store.

const T0 = Date.parse('2025-06-02T10:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
const devices = ['pos-1', 'pos-2', 'pos-3', 'pos-4'];
const CANARY: Strategy = { waves: [{ devices: 1 }, { percent: 100 }], maxFailurePercent: 0 };

let store: Store;
let engine: RolloutEngine;
let close: () => Promise<void>;
let now = T0;

function resource(version: string, strategy: Strategy = CANARY): DeploymentResource {
  return {
    apiVersion: 'driftless/v1',
    kind: 'Deployment',
    metadata: { name: 'web' },
    spec: { selector: { matchLabels: { tier: 'store' } }, template: { version, components: [{ name: 'web', image: `registry.example/web:${version}` }] }, strategy },
  };
}

const apply = (version: string, strategy?: Strategy) => store.transaction((tx) => applyResources(tx, engine, [resource(version, strategy)], iso((now += 1000))));
const tick = () => store.transaction((tx) => engine.tick(tx, (now += 1000)));
const rollback = (toRevision?: number) => store.transaction((tx) => rollbackDeployment(tx, engine, 'web', toRevision, (now += 1000)));

async function reportAll(revision: number, version: string): Promise<void> {
  for (const d of devices) {
    const c: ComponentStatus = { name: 'web', deployment: 'web', desiredVersion: version, desiredRevision: revision, version, state: 'healthy', reason: null, detail: null, since: iso(now) };
    await store.recordStatus(d, 1, iso(now), iso(now), [c]);
  }
}

/** Applies a version and drives its rollout to completion, every device healthy. */
async function rollOut(version: string): Promise<number> {
  const [outcome] = await apply(version);
  const revision = outcome!.revision!;
  for (let i = 0; i < 5 && (await store.getDeployment('web'))!.targetRevision !== revision; i++) {
    await reportAll(revision, version);
    await tick();
  }
  assert.equal((await store.getDeployment('web'))!.targetRevision, revision, `revision ${revision} completed`);
  return revision;
}

function isError(code: string, message: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof DriftlessError, `a DriftlessError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  };
}

beforeEach(async () => {
  const db = openSqlite(':memory:');
  await migrateToLatest(db);
  store = createSqlStore(db);
  engine = createRolloutEngine({ isOnline: () => true });
  close = () => db.destroy();
  now = T0;
  for (const name of devices) {
    const d: DeviceRecord = { name, site: `site-${name}`, labels: { tier: 'store' }, facts: {}, publicKey: `k-${name}`, status: 'accepted', enrolledAt: iso(T0), lastSeen: iso(T0), appliedGeneration: 0 };
    await store.insertDevice(d);
  }
});
afterEach(async () => close());

describe('rollbackDeployment', () => {
  test('while a rollout runs, rolling back aborts it: the devices it reached go straight back', async () => {
    await rollOut('1');
    await apply('2');
    const reached = (await store.listReleases('web')).map((r) => r.device);
    assert.equal(reached.length, 1);
    const outcome = await rollback();
    assert.deepEqual(outcome, { action: 'aborted', revision: 1, rollout: 'web-2', devices: reached });
    assert.deepEqual(await store.listReleases('web'), []);
    const rollout = await store.getRollout('web-2');
    assert.equal(machineOf(rollout!)!.phase, 'rolling-back');
    assert.equal(rollout?.reason, 'aborted by rollback');
    const deployment = await store.getDeployment('web');
    assert.equal(deployment?.revision, 2, 'no new revision');
    assert.equal(deployment?.targetRevision, 1);
  });

  test('naming the revision the running rollout came from aborts it, too', async () => {
    await rollOut('1');
    await apply('2');
    assert.equal((await rollback(1)).action, 'aborted');
  });

  test('a halted rollout (onFailure: pause) is aborted the same way', async () => {
    await rollOut('1');
    await apply('2', { ...CANARY, onFailure: 'pause' });
    const [canary] = await store.listReleases('web');
    const c: ComponentStatus = { name: 'web', deployment: 'web', desiredVersion: '2', desiredRevision: 2, version: null, state: 'failed', reason: 'health-check-failed', detail: 'HTTP 404', since: iso(now) };
    await store.recordStatus(canary!.device, 2, iso(now), iso(now), [c]);
    await tick();
    assert.equal((await store.getRollout('web-2'))?.state, 'halted');
    assert.deepEqual(await store.listReleases('web').then((rs) => rs.map((r) => r.device)), [canary!.device], 'pause: nothing reverted yet');
    const outcome = await rollback();
    assert.equal(outcome.action, 'aborted');
    assert.deepEqual(await store.listReleases('web'), []);
  });

  test('with nothing running, the revision before the stable one becomes a new revision and rolls out in waves', async () => {
    await rollOut('1');
    await rollOut('2');
    const outcome = await rollback();
    assert.deepEqual(outcome, { action: 'released', revision: 3, rollout: 'web-3', devices: 'all' });
    const deployment = await store.getDeployment('web');
    assert.equal(deployment?.revision, 3);
    assert.equal(deployment?.targetRevision, 2, 'not stable until its rollout completes');
    assert.equal(deployment?.spec.template.version, '1');
    const [r1, r3] = [await store.getRevision('web', 1), await store.getRevision('web', 3)];
    assert.deepEqual(r3?.template, r1?.template);
    assert.equal(r3?.templateHash, r1?.templateHash);
    const rollout = await store.getRollout('web-3');
    assert.equal(rollout?.fromRevision, 2);
    assert.equal(rollout?.state, 'progressing');
    assert.equal((await store.listReleases('web')).length, 1, 'a rollback goes out wave by wave like any change: canary first');
    // And it completes like any rollout.
    for (let i = 0; i < 3; i++) {
      await reportAll(3, '1');
      await tick();
    }
    assert.equal((await store.getDeployment('web'))?.targetRevision, 3);
  });

  test('--to-revision picks any earlier revision', async () => {
    await rollOut('1');
    await rollOut('2');
    await rollOut('3');
    const outcome = await rollback(1);
    assert.equal(outcome.action, 'released');
    assert.equal(outcome.revision, 4);
    assert.equal((await store.getDeployment('web'))?.spec.template.version, '1');
  });

  test('rolling back to another revision while a rollout runs supersedes it', async () => {
    await rollOut('1');
    await rollOut('2');
    await apply('3');
    const outcome = await rollback(1);
    assert.equal(outcome.action, 'released');
    assert.equal(outcome.revision, 4);
    assert.equal((await store.getRollout('web-3'))?.state, 'superseded');
    assert.equal((await store.getRollout('web-4'))?.fromRevision, 2);
  });

  test('errors: unknown deployment and revision are not-found; nothing to go back to is a conflict; nothing changes', async () => {
    await assert.rejects(store.transaction((tx) => rollbackDeployment(tx, engine, 'nope', undefined, now)), isError('not-found', /deployment "nope" not found/));
    await rollOut('1');
    await assert.rejects(rollback(), isError('conflict', /deployment "web" has no revision before 1 to roll back to/));
    await assert.rejects(rollback(7), isError('not-found', /deployment "web" has no revision 7 \(revisions: 1\)/));
    const deployment = await store.getDeployment('web');
    assert.equal(deployment?.revision, 1);
    assert.equal((await store.listRollouts('web')).length, 1);
  });
});
