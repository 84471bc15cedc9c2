import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import type { ComponentStatus } from '../../protocol/messages.ts';
import type { DeploymentResource, SiteResource, Strategy } from '../../protocol/resources.ts';
import { desiredComponentsFor } from '../desired/compute.ts';
import { applyResources } from '../fleet/apply.ts';
import { rolloutHolds } from '../fleet/views.ts';
import { migrateToLatest } from '../store/migrate.ts';
import { openSqlite } from '../store/sqlite.ts';
import { createSqlStore, type DeviceRecord, type Store } from '../store/store.ts';
import type { MachineState } from './machine.ts';
import { createRolloutEngine, machineOf, verdictOn, type RolloutEngine } from './rollout-engine.ts';

// The rollout engine on a real SQLite store: devices inserted through the store, their reports
// recorded as the status route records them, and the clock passed in as numbers.

const T0 = Date.parse('2025-06-02T10:00:00.000Z'); // a Monday
const iso = (ms: number) => new Date(ms).toISOString();
const SECOND = 1000;

type World = {
  store: Store;
  engine: RolloutEngine;
  offline: Set<string>;
  now: number;
  close(): Promise<void>;
};

let world: World;

async function openWorld(): Promise<World> {
  const db = openSqlite(':memory:');
  await migrateToLatest(db);
  const store = createSqlStore(db);
  const offline = new Set<string>();
  return { store, engine: createRolloutEngine({ isOnline: (d) => !offline.has(d.name) }), offline, now: T0, close: () => db.destroy() };
}

function deviceRecord(name: string, change: Partial<DeviceRecord> = {}): DeviceRecord {
  return { name, site: 'store-1', labels: { tier: 'store' }, facts: { arch: 'x64' }, publicKey: `key-${name}`, status: 'accepted', enrolledAt: iso(T0), lastSeen: iso(T0), appliedGeneration: 0, ...change };
}

function deploymentResource(version: string, strategy: Strategy, name = 'web'): DeploymentResource {
  return {
    apiVersion: 'driftless/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: { selector: { matchLabels: { tier: 'store' } }, template: { version, components: [{ name: 'web', image: `registry.example/web:${version}` }] }, strategy },
  };
}

const ALL_AT_ONCE: Strategy = { waves: [{ percent: 100 }] };
const CANARY: Strategy = { waves: [{ devices: 1 }, { percent: 50 }, { percent: 100 }], maxFailurePercent: 0, onFailure: 'rollback', updateTimeout: '5m' };

async function apply(w: World, ...resources: (DeploymentResource | SiteResource)[]) {
  return w.store.transaction((tx) => applyResources(tx, w.engine, resources, iso(w.now)));
}

async function tick(w: World, at: number = w.now + 2 * SECOND): Promise<string[]> {
  w.now = at;
  return w.store.transaction((tx) => w.engine.tick(tx, at));
}

/** What the device reports, as the agent would: each component with the revision it was told. */
async function report(w: World, device: string, revision: number, version: string, state: ComponentStatus['state'] = 'healthy', detail: string | null = null) {
  const component: ComponentStatus = {
    name: 'web',
    deployment: 'web',
    desiredVersion: version,
    desiredRevision: revision,
    version: state === 'healthy' ? version : null,
    state,
    reason: state === 'healthy' ? null : 'health-check-failed',
    detail,
    since: iso(w.now),
  };
  await w.store.recordStatus(device, 1, iso(w.now), iso(w.now), [component]);
}

/** The revision each device is to run now, as the desired-state computation sees it. */
async function desiredRevisions(w: World): Promise<Record<string, number | null>> {
  const targets = await w.engine.targets(w.store);
  const out: Record<string, number | null> = {};
  for (const d of await w.store.listDevices()) out[d.name] = desiredComponentsFor(d, targets).find((c) => c.deployment === 'web')?.revision ?? null;
  return out;
}

async function machine(w: World, rollout: string): Promise<MachineState> {
  const record = await w.store.getRollout(rollout);
  assert.ok(record, `rollout ${rollout} exists`);
  return machineOf(record)!;
}

const fleet = Array.from({ length: 8 }, (_, i) => `pos-${i + 1}`);

/** 8 devices on revision 1, healthy: the starting point of most tests. */
async function stableOnRevision1(w: World, strategy: Strategy = CANARY): Promise<void> {
  for (const name of fleet) await w.store.insertDevice(deviceRecord(name, { site: `store-${(Number(name.split('-')[1]) % 4) + 1}` }));
  await apply(w, deploymentResource('1', { ...ALL_AT_ONCE }));
  for (const name of fleet) await report(w, name, 1, '1');
  await tick(w);
  const deployment = await w.store.getDeployment('web');
  assert.equal(deployment?.targetRevision, 1, 'revision 1 is stable');
  assert.equal((await w.store.getRollout('web-1'))?.state, 'complete');
  // The strategy for what follows.
  const resource = deploymentResource('1', strategy);
  await apply(w, resource);
}

beforeEach(async () => {
  world = await openWorld();
});
afterEach(async () => {
  await world.close();
});

describe('rollout engine on SQLite', () => {
  test('the first revision goes out, completes, and becomes the stable revision with no releases left', async () => {
    for (const name of fleet) await world.store.insertDevice(deviceRecord(name));
    const [outcome] = await apply(world, deploymentResource('1', { waves: [{ devices: 2 }, { percent: 100 }] }));
    assert.equal(outcome?.revision, 1);
    const released = await world.store.listReleases('web');
    assert.equal(released.length, 2, 'the first wave is released in the same transaction as the apply');
    assert.ok(released.every((r) => r.revision === 1 && r.rollout === 'web-1' && r.releasedAt === iso(T0)));
    const desired = await desiredRevisions(world);
    assert.deepEqual(Object.values(desired).filter((r) => r === 1).length, 2);
    assert.deepEqual(Object.values(desired).filter((r) => r === null).length, 6, 'with no stable revision yet, the others run nothing of it');

    for (const r of released) await report(world, r.device, 1, '1');
    const touched = await tick(world);
    assert.equal(touched.length, 6, 'the second wave');
    for (const name of fleet) await report(world, name, 1, '1');
    await tick(world);
    assert.equal((await world.store.getDeployment('web'))?.targetRevision, 1);
    assert.deepEqual(await world.store.listReleases('web'), []);
    assert.deepEqual(new Set(Object.values(await desiredRevisions(world))), new Set([1]));
    const rollout = await world.store.getRollout('web-1');
    assert.equal(rollout?.state, 'complete');
    assert.equal(rollout?.fromRevision, null);
  });

  test('wave by wave: the canary, then 50%, then everyone; unreleased devices keep the stable revision until their wave', async () => {
    await stableOnRevision1(world);
    await apply(world, deploymentResource('2', CANARY));
    const rollout = await world.store.getRollout('web-2');
    assert.equal(rollout?.state, 'progressing');
    assert.equal(rollout?.fromRevision, 1);

    const wave1 = (await world.store.listReleases('web')).map((r) => r.device);
    assert.equal(wave1.length, 1);
    let desired = await desiredRevisions(world);
    assert.equal(desired[wave1[0]!], 2, 'the canary gets revision 2');
    assert.equal(Object.values(desired).filter((r) => r === 1).length, 7, 'the others keep revision 1');
    assert.match((await machine(world, 'web-2')).slots[wave1[0]!]!.why, /^canary: first in region|^canary: first at site/);

    // Nothing moves until the canary reports: a tick with no news releases nobody.
    assert.deepEqual(await tick(world), []);
    assert.match((await world.store.getRollout('web-2'))?.reason ?? '', /wave 1: 0 of 1 healthy, 1 updating/);

    await report(world, wave1[0]!, 2, '2');
    const wave2 = await tick(world);
    assert.equal(wave2.length, 3, 'ceil(50% of 8) - 1');
    desired = await desiredRevisions(world);
    assert.equal(Object.values(desired).filter((r) => r === 2).length, 4);
    for (const d of wave2) await report(world, d, 2, '2');
    const wave3 = await tick(world);
    assert.equal(wave3.length, 4);
    assert.deepEqual(new Set([...wave1, ...wave2, ...wave3]), new Set(fleet));
    assert.deepEqual(
      (await world.store.getRollout('web-2'))?.waves.map((w) => [w.devices, w.updated, w.state]),
      [
        [1, 1, 'complete'],
        [3, 3, 'complete'],
        [4, 0, 'progressing'],
      ],
    );

    for (const d of wave3) await report(world, d, 2, '2');
    const completed = await tick(world);
    assert.deepEqual(new Set(completed), new Set(fleet), 'completing touches every released device (its release row goes)');
    assert.equal((await world.store.getDeployment('web'))?.targetRevision, 2);
    assert.deepEqual(await world.store.listReleases('web'), []);
    assert.deepEqual(new Set(Object.values(await desiredRevisions(world))), new Set([2]));
    const done = await world.store.getRollout('web-2');
    assert.equal(done?.state, 'complete');
    assert.equal(done?.reason, null);
    assert.ok(done?.waves.every((w) => w.state === 'complete'));
    assert.equal((await world.store.listIncidents()).length, 0, 'no incident for a good release');
  });

  test('a canary relabelled out of the selector before its verdict leaves the rollout: no halt, its release goes, another canary takes its place', async () => {
    await stableOnRevision1(world);
    await apply(world, deploymentResource('2', CANARY));
    const [canary] = (await world.store.listReleases('web')).map((r) => r.device) as [string];
    await world.store.updateDevice(canary, { labels: { tier: 'lab' } });
    const touched = await tick(world);
    assert.ok(touched.includes(canary), 'its desired state is recomputed');
    const releases = await world.store.listReleases('web');
    assert.equal(releases.length, 1, 'one canary again');
    const [standIn] = releases.map((r) => r.device) as [string];
    assert.notEqual(standIn, canary);
    assert.equal((await desiredRevisions(world))[canary], null, 'no longer selected: runs nothing of the Deployment');
    assert.equal((await desiredRevisions(world))[standIn], 2);
    assert.deepEqual((await machine(world, 'web-2')).timeline.map((t) => t.message).slice(-2), [
      `${canary} left the rollout before its verdict: it is no longer selected`,
      '1 device took the place of devices that left in wave 1',
    ]);
    // Nothing passes the canary's gate until the stand-in reports healthy.
    assert.equal((await tick(world)).length, 0);
    await report(world, standIn, 2, '2');
    assert.equal((await tick(world)).length, 3, 'then the second wave goes out');
    const rollout = await world.store.getRollout('web-2');
    assert.equal(rollout?.state, 'progressing', rollout?.reason ?? '');
    assert.equal((await world.store.listIncidents()).length, 0);
  });

  test('a failed canary: halted, reverted, an incident with a timeline, resolved once the canary runs revision 1 again', async () => {
    await stableOnRevision1(world);
    await apply(world, deploymentResource('2', CANARY));
    const [canary] = (await world.store.listReleases('web')).map((r) => r.device) as [string];
    const others = fleet.filter((d) => d !== canary);

    world.now += 5 * SECOND;
    await report(world, canary, 2, '2', 'reverted', 'health check failed: HTTP 404 from /healthz; reverted to version 1');
    const touched = await tick(world);
    assert.deepEqual(touched, [canary], 'the canary goes back');
    assert.deepEqual(await world.store.listReleases('web'), [], 'its release row is gone');
    const desired = await desiredRevisions(world);
    for (const name of fleet) assert.equal(desired[name], 1, `${name} is to run revision 1`);

    const halted = await world.store.getRollout('web-2');
    assert.equal(halted?.state, 'halted', 'rolling back shows as halted until the devices are back');
    assert.match(halted?.reason ?? '', /^halted: 1 of 1 devices in wave 1 failed \(100\.0% > 0%\); rolling back$/);
    const incident = await world.store.getIncident('web-2-incident');
    assert.ok(incident);
    assert.equal(incident.state, 'open');
    assert.equal(incident.rollout, 'web-2');
    assert.equal(incident.deployment, 'web');
    assert.match(incident.title, /^Rollout web-2 halted: /);
    const messages = incident.timeline.map((t) => t.message);
    assert.ok(messages.some((m) => /^rollout of revision 2 started \(from revision 1\)$/.test(m)), messages.join('\n'));
    assert.ok(messages.some((m) => /^wave 1 of 3 started: 1 device$/.test(m)), messages.join('\n'));
    assert.ok(messages.includes(`${canary} failed: web: health check failed: HTTP 404 from /healthz; reverted to version 1`), messages.join('\n'));
    assert.ok(messages.some((m) => m.startsWith('threshold crossed: 1 of 1 devices in wave 1 failed')), messages.join('\n'));
    assert.ok(incident.timeline.every((t) => /^\d{4}-\d\d-\d\dT/.test(t.at)));
    assert.equal(incident.timeline.find((t) => t.message.startsWith('threshold crossed'))?.at, iso(world.now), 'the crossing is stamped with the tick that saw it');

    // Still waiting for the canary to report revision 1.
    await tick(world);
    assert.equal((await world.store.getRollout('web-2'))?.state, 'halted');
    await report(world, canary, 1, '1');
    await tick(world);
    const rolledBack = await world.store.getRollout('web-2');
    assert.equal(rolledBack?.state, 'rolled-back');
    assert.match(rolledBack?.reason ?? '', /; rolled back$/);
    const resolved = await world.store.getIncident('web-2-incident');
    assert.equal(resolved?.state, 'resolved');
    assert.equal(resolved?.closedAt, iso(world.now));
    assert.ok(resolved?.timeline.some((t) => t.message === 'rollback done: 1 of 1 devices recovered on the previous revision'));
    assert.equal((await world.store.getDeployment('web'))?.targetRevision, 1, 'revision 1 stays the stable one');

    const m = await machine(world, 'web-2');
    for (const d of others) assert.equal(m.slots[d], undefined, `${d} was never part of the rollout`);
    // And a later tick changes nothing: the rollout is over.
    const before = await world.store.getRollout('web-2');
    await tick(world, world.now + 3_600_000);
    assert.deepEqual(await world.store.getRollout('web-2'), before);
  });

  test('a new revision while one runs supersedes it; the devices it reached do not stay on the unfinished revision', async () => {
    await stableOnRevision1(world);
    await apply(world, deploymentResource('2', CANARY));
    const [canary2] = (await world.store.listReleases('web')).map((r) => r.device) as [string];
    await report(world, canary2, 2, '2');
    await tick(world);
    const wave2 = (await world.store.listReleases('web')).map((r) => r.device);
    assert.equal(wave2.length, 4);

    world.now += 10 * SECOND;
    await apply(world, deploymentResource('3', CANARY));
    const superseded = await world.store.getRollout('web-2');
    assert.equal(superseded?.state, 'superseded');
    assert.equal(superseded?.reason, 'superseded by revision 3');
    assert.equal((await machine(world, 'web-2')).phase, 'superseded');
    const current = await world.store.getRollout('web-3');
    assert.equal(current?.state, 'progressing');
    assert.equal(current?.fromRevision, 1, 'it starts from the stable revision, not the unfinished one');

    const desired = await desiredRevisions(world);
    assert.ok(Object.values(desired).every((r) => r === 1 || r === 3), `no device left on the superseded revision 2: ${JSON.stringify(desired)}`);
    assert.equal(Object.values(desired).filter((r) => r === 3).length, 1, 'revision 3 starts with its own canary');

    // The superseded rollout is never advanced again.
    const before = await world.store.getRollout('web-2');
    for (const d of fleet) await report(world, d, 2, '2');
    await tick(world);
    assert.deepEqual(await world.store.getRollout('web-2'), before);

    // Revision 3 fails and rolls back: everyone is on revision 1.
    const [canary3] = (await world.store.listReleases('web')).map((r) => r.device) as [string];
    await report(world, canary3, 3, '3', 'failed', 'crashed');
    await tick(world);
    assert.deepEqual(new Set(Object.values(await desiredRevisions(world))), new Set([1]));
  });

  test('a halted rollout superseded by a fixed revision: its incident is resolved, its timeline ending with the supersession', async () => {
    const paused: Strategy = { ...CANARY, onFailure: 'pause' };
    await stableOnRevision1(world, paused);
    await apply(world, deploymentResource('2', paused));
    const [canary] = (await world.store.listReleases('web')).map((r) => r.device) as [string];
    await report(world, canary, 2, '2', 'failed', 'crashed');
    await tick(world);
    assert.equal((await world.store.getRollout('web-2'))?.state, 'halted');
    assert.equal((await world.store.getIncident('web-2-incident'))?.state, 'open');

    world.now += 60 * SECOND;
    await apply(world, deploymentResource('3', paused));
    const incident = await world.store.getIncident('web-2-incident');
    assert.equal(incident?.state, 'resolved');
    assert.equal(incident?.closedAt, iso(world.now));
    assert.equal(incident?.timeline.at(-1)?.message, 'superseded by revision 3');
    assert.equal((await world.store.listIncidents()).filter((i) => i.state === 'open').length, 0);
  });

  test("a Deployment's first revision superseded mid-rollout: devices keep what they run, and a rollback returns them to it, not to nothing", async () => {
    for (const name of fleet) await world.store.insertDevice(deviceRecord(name));
    await apply(world, deploymentResource('1', CANARY));
    const [canary1] = (await world.store.listReleases('web')).map((r) => r.device) as [string];
    await report(world, canary1, 1, '1');
    await tick(world);
    const onRevision1 = (await world.store.listReleases('web')).map((r) => r.device);
    assert.equal(onRevision1.length, 4, 'the canary and the 50% wave run revision 1; there is no stable revision yet');
    for (const name of onRevision1) await report(world, name, 1, '1');

    world.now += 10 * SECOND;
    await apply(world, deploymentResource('2', CANARY));
    assert.equal((await world.store.getRollout('web-2'))?.fromRevision, null);
    const desired = await desiredRevisions(world);
    for (const name of onRevision1) assert.ok(desired[name] === 1 || desired[name] === 2, `${name} keeps revision 1 (or got 2): ${desired[name]}`);

    // Revision 2's canary fails: the rollout rolls back, and every device is back where it was.
    const canary2 = (await world.store.listReleases('web')).find((r) => r.revision === 2)!.device;
    await report(world, canary2, 2, '2', 'failed', 'crashed');
    await tick(world);
    assert.equal((await world.store.getRollout('web-2'))?.state, 'halted');
    const after = await desiredRevisions(world);
    for (const name of fleet) assert.equal(after[name], onRevision1.includes(name) ? 1 : null, `${name} is back on what it ran before revision 2`);
    if (onRevision1.includes(canary2)) await report(world, canary2, 1, '1');
    else await world.store.recordStatus(canary2, 1, iso(world.now), iso(world.now), []);
    await tick(world);
    assert.equal((await world.store.getRollout('web-2'))?.state, 'rolled-back');
  });

  test('an engine restart mid-rollout continues where it was: nothing released twice, nothing skipped', async () => {
    await stableOnRevision1(world);
    await apply(world, deploymentResource('2', CANARY));
    const [canary] = await world.store.listReleases('web');
    await report(world, canary!.device, 2, '2');

    // A new engine, as after a server restart, on the same store.
    world.engine = createRolloutEngine({ isOnline: () => true });
    const wave2 = await tick(world);
    assert.equal(wave2.length, 3);
    const releases = await world.store.listReleases('web');
    assert.equal(releases.find((r) => r.device === canary!.device)?.releasedAt, canary!.releasedAt, 'the canary was not released again');

    world.engine = createRolloutEngine({ isOnline: () => true });
    assert.deepEqual(await tick(world), [], 'the second wave is not released again while it updates');
    for (const d of wave2) await report(world, d, 2, '2');
    world.engine = createRolloutEngine({ isOnline: () => true });
    assert.equal((await tick(world)).length, 4);
    const m = await machine(world, 'web-2');
    assert.deepEqual([0, 1, 2].map((w) => Object.values(m.slots).filter((s) => s.wave === w).length), [1, 3, 4]);
  });

  test('a crash inside a tick (the transaction does not commit) loses nothing and repeats nothing', async () => {
    await stableOnRevision1(world);
    await apply(world, deploymentResource('2', CANARY));
    const [canary] = await world.store.listReleases('web');
    await report(world, canary!.device, 2, '2');
    const before = await world.store.getRollout('web-2');
    await assert.rejects(
      world.store.transaction(async (tx) => {
        const touched = await world.engine.tick(tx, world.now + SECOND);
        assert.equal(touched.length, 3);
        throw new Error('power cut before commit');
      }),
      /power cut/,
    );
    assert.deepEqual(await world.store.getRollout('web-2'), before, 'the stored rollout is as it was');
    assert.equal((await world.store.listReleases('web')).length, 1);
    const wave2 = await tick(world, world.now + 2 * SECOND);
    assert.equal(wave2.length, 3, 'the next tick releases the second wave, once');
    assert.equal((await world.store.listReleases('web')).length, 4);
  });

  test('a site maintenance window holds its devices, in the site time zone; drift says waiting-for-window, then they go out', async () => {
    await stableOnRevision1(world, { waves: [{ percent: 100 }] });
    // store-2's window: 02:00-04:00 in New York (06:00-08:00 UTC in June). T0 is 10:00 UTC.
    await apply(world, { apiVersion: 'driftless/v1', kind: 'Site', metadata: { name: 'store-2' }, spec: { timeZone: 'America/New_York', maintenanceWindows: [{ start: '02:00', duration: '2h' }] } });
    const atStore2 = fleet.filter((_, i) => ((i + 1) % 4) + 1 === 2);
    assert.ok(atStore2.length > 0);
    await apply(world, deploymentResource('2', { waves: [{ percent: 100 }] }));
    const released = (await world.store.listReleases('web')).map((r) => r.device);
    assert.deepEqual(new Set(released), new Set(fleet.filter((d) => !atStore2.includes(d))));
    const m = await machine(world, 'web-2');
    for (const d of atStore2) assert.equal(m.slots[d]?.status, 'waiting-window');

    for (const d of released) await report(world, d, 2, '2');
    await tick(world);
    const rollout = await world.store.getRollout('web-2');
    assert.equal(rollout?.state, 'progressing');
    assert.equal(rollout?.reason, `wave 1: ${released.length} of 8 healthy, ${atStore2.length} waiting for their maintenance window`);

    const held = await rolloutHolds(world.store);
    for (const d of atStore2) assert.deepEqual(held(d).map((h) => [h.reason, h.revision, h.version]), [['waiting-for-window', 2, '2']]);
    assert.match(held(atStore2[0]!)[0]!.detail, /waiting for its site's maintenance window/);

    // 06:30 UTC the next day is 02:30 in New York.
    const inWindow = Date.parse('2025-06-03T06:30:00.000Z');
    const touched = await tick(world, inWindow);
    assert.deepEqual(new Set(touched), new Set(atStore2));
    for (const d of atStore2) await report(world, d, 2, '2');
    await tick(world, inWindow + SECOND);
    assert.equal((await world.store.getRollout('web-2'))?.state, 'complete');
  });

  test('held-by-rollout: devices not reached yet by an unfinished rollout say so', async () => {
    await stableOnRevision1(world);
    await apply(world, deploymentResource('2', CANARY));
    const [canary] = (await world.store.listReleases('web')).map((r) => r.device) as [string];
    const held = await rolloutHolds(world.store);
    const other = fleet.find((d) => d !== canary)!;
    assert.deepEqual(held(other).map((h) => [h.deployment, h.reason, h.revision, h.version]), [['web', 'held-by-rollout', 2, '2']]);
    assert.match(held(other)[0]!.detail, /^rollout web-2 is progressing/);
  });

  test('an offline device: its wave says offline, and it fails after the update timeout', async () => {
    await stableOnRevision1(world);
    for (const d of fleet) world.offline.add(d);
    await apply(world, deploymentResource('2', CANARY));
    const [release] = await world.store.listReleases('web');
    const canary = release!.device;
    await tick(world);
    assert.equal((await world.store.getRollout('web-2'))?.reason, 'wave 1: 0 of 1 healthy, 1 offline');
    await tick(world, Date.parse(release!.releasedAt) + 5 * 60 * SECOND - 1);
    assert.equal((await machine(world, 'web-2')).slots[canary]?.status, 'released', 'never taken for a success, not failed before the timeout');
    await tick(world, Date.parse(release!.releasedAt) + 5 * 60 * SECOND);
    const m = await machine(world, 'web-2');
    assert.equal(m.slots[canary]?.status, 'reverted');
    assert.match((await world.store.getRollout('web-2'))?.reason ?? '', /halted: 1 of 1 devices in wave 1 failed/);
    assert.ok(m.timeline.some((t) => t.message === `${canary} failed: no healthy report within 300s of the release (offline)`), JSON.stringify(m.timeline));
  });

  test('operator commands through the engine: pause holds the next wave, resume releases it, abort reverts', async () => {
    await stableOnRevision1(world);
    await apply(world, deploymentResource('2', CANARY));
    const [canary] = (await world.store.listReleases('web')).map((r) => r.device) as [string];
    await world.store.transaction((tx) => world.engine.command(tx, 'web-2', { kind: 'pause' }, world.now + SECOND));
    assert.equal((await world.store.getRollout('web-2'))?.state, 'paused');
    await report(world, canary, 2, '2');
    assert.deepEqual(await tick(world), []);
    const resumed = await world.store.transaction((tx) => world.engine.command(tx, 'web-2', { kind: 'resume' }, world.now + SECOND));
    assert.equal(resumed.length, 3);
    const aborted = await world.store.transaction((tx) => world.engine.command(tx, 'web-2', { kind: 'abort', by: 'operator' }, world.now + 2 * SECOND));
    assert.equal(aborted.length, 4);
    assert.deepEqual(await world.store.listReleases('web'), []);
    assert.equal((await world.store.getRollout('web-2'))?.reason, 'aborted by operator');
    assert.deepEqual(await world.store.transaction((tx) => world.engine.command(tx, 'no-such-rollout', { kind: 'pause' }, world.now)), []);
  });

  test('a device that enrols while the last wave runs joins it', async () => {
    await stableOnRevision1(world, { waves: [{ devices: 1 }, { percent: 100 }] });
    await apply(world, deploymentResource('2', { waves: [{ devices: 1 }, { percent: 100 }] }));
    const [canary] = (await world.store.listReleases('web')).map((r) => r.device) as [string];
    await report(world, canary, 2, '2');
    await tick(world);
    await world.store.insertDevice(deviceRecord('pos-late'));
    const touched = await tick(world);
    assert.deepEqual(touched, ['pos-late']);
    assert.equal((await desiredRevisions(world))['pos-late'], 2);
  });
});

describe('verdictOn', () => {
  const c = (change: Partial<ComponentStatus>): ComponentStatus => ({ name: 'a', deployment: 'web', desiredVersion: '2', desiredRevision: 2, version: '2', state: 'healthy', reason: null, detail: null, since: '2025-06-02T10:00:00.000Z', ...change });
  test('healthy only when every component of the revision is healthy; failed when any failed or reverted; reports of other revisions do not count', () => {
    assert.deepEqual(verdictOn([c({}), c({ name: 'b' })], 2, 2), { verdict: 'healthy', detail: null });
    assert.deepEqual(verdictOn([c({})], 2, 2), { verdict: 'pending', detail: null }, 'one of two components reported');
    assert.deepEqual(verdictOn([c({}), c({ name: 'b', state: 'applying' })], 2, 2), { verdict: 'pending', detail: null });
    assert.deepEqual(verdictOn([c({ name: 'b', state: 'reverted', detail: 'HTTP 404' })], 2, 2), { verdict: 'failed', detail: 'b: HTTP 404' });
    assert.deepEqual(verdictOn([c({ state: 'failed', reason: 'download-failed', detail: null })], 2, 1), { verdict: 'failed', detail: 'a: download-failed' });
    assert.deepEqual(verdictOn([c({ desiredRevision: 1 })], 2, 1), { verdict: 'pending', detail: null }, 'healthy on the old revision is no verdict on the new one');
    assert.deepEqual(verdictOn([c({ desiredRevision: 1, state: 'failed' })], 2, 1), { verdict: 'pending', detail: null });
  });
});
