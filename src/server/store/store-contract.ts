import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import type { ComponentStatus, DeviceEvent, SignedDesiredState } from '../../protocol/messages.ts';
import type { DeploymentRecord, DeviceRecord, RevisionRecord, RolloutRecord, SiteRecord, Store } from './store.ts';

/**
 * The Store's contract, written once and run on every supported database (SQLite here; the
 * PostgreSQL suite calls it with its own factory). Each test gets a fresh, migrated, empty store.
 */
export type OpenStore = () => Promise<{ store: Store; close(): Promise<void> }>;

const T0 = '2025-01-01T00:00:00.000Z';
const T1 = '2025-01-01T00:01:00.000Z';
const T2 = '2025-01-01T00:02:00.000Z';

export function device(name: string, change: Partial<DeviceRecord> = {}): DeviceRecord {
  return {
    name,
    site: 'store-12',
    labels: { tier: 'store' },
    facts: { cpus: 4, os: 'linux', arm: false },
    publicKey: `key-of-${name}`,
    status: 'accepted',
    enrolledAt: T0,
    lastSeen: null,
    appliedGeneration: 0,
    tenant: 'default',
    ...change,
  };
}

const template = { version: '2.4.1', components: [{ name: 'pos', image: 'registry.example/pos:2.4.1', env: { MODE: 'production' } }] };
const deployment = (change: Partial<DeploymentRecord> = {}): DeploymentRecord => ({
  name: 'pos',
  labels: { team: 'retail' },
  spec: { selector: { matchLabels: { tier: 'store' } }, template },
  revision: 1,
  targetRevision: 1,
  createdAt: T0,
  updatedAt: T0,
  ...change,
});
const revision = (n: number, change: Partial<RevisionRecord> = {}): RevisionRecord => ({ deployment: 'pos', revision: n, templateHash: `hash-${n}`, template, createdAt: T0, ...change });
const rollout = (name: string, change: Partial<RolloutRecord> = {}): RolloutRecord => ({
  name,
  deployment: 'pos',
  revision: 1,
  fromRevision: null,
  machine: null,
  state: 'progressing',
  reason: null,
  waves: [{ index: 0, devices: 3, updated: 1, failed: 0, state: 'progressing' }],
  createdAt: T0,
  updatedAt: T0,
  ...change,
});
const status = (name: string, change: Partial<ComponentStatus> = {}): ComponentStatus => ({
  name,
  deployment: 'pos',
  desiredVersion: '2.4.1',
  version: '2.4.1',
  state: 'healthy',
  reason: null,
  detail: null,
  since: T0,
  ...change,
});
const event = (seq: number, change: Partial<DeviceEvent> = {}): DeviceEvent => ({ seq, at: T0, type: 'committed', component: 'pos.pos', message: `event ${seq}`, ...change });
const signedDoc = (device: string, generation: number): SignedDesiredState => ({
  payload: { device, generation, issuedAt: T0, components: [{ name: 'pos', deployment: 'pos', revision: 1, version: '2.4.1', image: 'x' }] },
  keyId: 'abcdef0123456789',
  signature: 'c2lnbmF0dXJl',
});

export function describeStoreContract(engine: string, open: OpenStore): void {
  describe(`Store contract on ${engine}`, () => {
    let store: Store;
    let close: () => Promise<void>;
    beforeEach(async () => {
      ({ store, close } = await open());
    });
    afterEach(async () => {
      await close();
    });

    test('meta: absent, set, replaced', async () => {
      assert.equal(await store.getMeta('signing-key'), null);
      await store.setMeta('signing-key', 'a');
      await store.setMeta('signing-key', 'b');
      assert.equal(await store.getMeta('signing-key'), 'b');
    });

    test('API and enrollment tokens: found by hash only, counted', async () => {
      assert.equal(await store.countApiTokens(), 0);
      const token = { id: 't1', role: 'viewer', description: 'ci', createdAt: T0, expiresAt: T2, revokedAt: null };
      await store.insertApiToken({ ...token, tokenHash: 'h1' });
      await store.insertApiToken({ ...token, id: 't2', role: 'admin', expiresAt: null, tokenHash: 'h2' });
      assert.deepEqual(await store.findApiToken('h1'), { ...token, tenant: 'default' });
      assert.equal((await store.findApiToken('h2'))?.role, 'admin');
      assert.equal(await store.findApiToken('t1'), null, 'the id is not the hash');
      assert.equal(await store.countApiTokens(), 2);
      await assert.rejects(store.insertApiToken({ ...token, id: 't3', tokenHash: 'h1' }), 'a token hash is unique');

      await store.insertEnrollToken({ id: 'e1', description: 'bootstrap', createdAt: T0, expiresAt: null, revokedAt: T1, tokenHash: 'eh' });
      assert.deepEqual(await store.findEnrollToken('eh'), {
        id: 'e1',
        role: 'enroll',
        description: 'bootstrap',
        createdAt: T0,
        expiresAt: null,
        revokedAt: T1,
        tenant: 'default',
        site: null,
        maxUses: null,
        uses: 0,
        autoAccept: true,
      });
      assert.equal(await store.findEnrollToken('h1'), null, 'API tokens are not enrollment tokens');
      assert.equal(await store.findApiToken('eh'), null);
    });

    test('devices: insert, get, list by name, partial update', async () => {
      await store.insertDevice(device('pos-02'));
      await store.insertDevice(device('pos-01', { site: null, labels: {}, facts: {} }));
      assert.deepEqual(await store.getDevice('pos-02'), device('pos-02'));
      assert.equal(await store.getDevice('pos-03'), null);
      assert.deepEqual((await store.listDevices()).map((d) => d.name), ['pos-01', 'pos-02']);
      await assert.rejects(store.insertDevice(device('pos-01')), 'a device name is unique');

      await store.updateDevice('pos-02', { labels: { tier: 'kiosk' }, appliedGeneration: 4 });
      assert.deepEqual(await store.getDevice('pos-02'), device('pos-02', { labels: { tier: 'kiosk' }, appliedGeneration: 4 }));
      await store.updateDevice('pos-02', { site: null, status: 'revoked', facts: { cpus: 8 } });
      assert.deepEqual(await store.getDevice('pos-02'), device('pos-02', { labels: { tier: 'kiosk' }, appliedGeneration: 4, site: null, status: 'revoked', facts: { cpus: 8 } }));
      await store.updateDevice('pos-02', {});
      await store.updateDevice('nobody', { site: 'x' });
      assert.equal(await store.getDevice('nobody'), null, 'updating a missing device creates nothing');
    });

    test('recordLastSeen: many at once, and never moves backwards', async () => {
      await store.insertDevice(device('a'));
      await store.insertDevice(device('b', { lastSeen: T2 }));
      await store.recordLastSeen(new Map([['a', T1], ['b', T1], ['ghost', T1]]));
      assert.equal((await store.getDevice('a'))?.lastSeen, T1);
      assert.equal((await store.getDevice('b'))?.lastSeen, T2, 'an older sighting does not overwrite a newer one');
      await store.recordLastSeen(new Map([['a', T2]]));
      assert.equal((await store.getDevice('a'))?.lastSeen, T2);
      assert.equal(await store.getDevice('ghost'), null);
    });

    test('sites: put creates, put again updates but keeps createdAt', async () => {
      const site: SiteRecord = { name: 'store-12', labels: { region: 'eu' }, spec: { timeZone: 'Europe/Amsterdam', maintenanceWindows: [{ start: '02:00', duration: '2h' }] }, createdAt: T0, updatedAt: T0 };
      await store.putSite(site);
      await store.putSite({ ...site, name: 'store-01' });
      await store.putSite({ ...site, labels: { region: 'us' }, createdAt: T2, updatedAt: T1 });
      assert.deepEqual(await store.getSite('store-12'), { ...site, labels: { region: 'us' }, updatedAt: T1 });
      assert.deepEqual((await store.listSites()).map((s) => s.name), ['store-01', 'store-12']);
      assert.equal(await store.getSite('nowhere'), null);
    });

    test('deployments: put creates, put again updates but keeps createdAt', async () => {
      await store.putDeployment(deployment());
      await store.putDeployment(deployment({ name: 'cam' }));
      await store.putDeployment(deployment({ revision: 2, targetRevision: 2, labels: {}, createdAt: T2, updatedAt: T1 }));
      assert.deepEqual(await store.getDeployment('pos'), deployment({ revision: 2, targetRevision: 2, labels: {}, updatedAt: T1 }));
      assert.deepEqual((await store.listDeployments()).map((d) => d.name), ['cam', 'pos']);
      assert.equal(await store.getDeployment('none'), null);
    });

    test('revisions: immutable, listed in order', async () => {
      await store.insertRevision(revision(2));
      await store.insertRevision(revision(1));
      await store.insertRevision(revision(1, { deployment: 'cam' }));
      assert.deepEqual(await store.getRevision('pos', 2), revision(2));
      assert.equal(await store.getRevision('pos', 3), null);
      assert.deepEqual((await store.listRevisions('pos')).map((r) => r.revision), [1, 2]);
      await assert.rejects(store.insertRevision(revision(2, { templateHash: 'other' })), 'a revision is never overwritten');
      assert.equal((await store.getRevision('pos', 2))?.templateHash, 'hash-2');
    });

    test('rollouts: put, update, list (by deployment, oldest first)', async () => {
      await store.putRollout(rollout('pos-2', { revision: 2, createdAt: T1 }));
      await store.putRollout(rollout('pos-1'));
      await store.putRollout(rollout('cam-1', { deployment: 'cam', createdAt: T2 }));
      await store.putRollout(rollout('pos-1', { state: 'superseded', reason: 'superseded by revision 2', waves: [], updatedAt: T2, createdAt: T2, revision: 9 }));
      assert.deepEqual(await store.getRollout('pos-1'), rollout('pos-1', { state: 'superseded', reason: 'superseded by revision 2', waves: [], updatedAt: T2 }));
      assert.deepEqual((await store.listRollouts()).map((r) => r.name), ['pos-1', 'pos-2', 'cam-1']);
      assert.deepEqual((await store.listRollouts('pos')).map((r) => r.name), ['pos-1', 'pos-2']);
      assert.deepEqual(await store.listRollouts('none'), []);
      assert.equal(await store.getRollout('none'), null);
    });

    test('desired state: put replaces the device document', async () => {
      await store.putDesired({ device: 'pos-01', generation: 1, contentHash: 'h1', document: signedDoc('pos-01', 1), issuedAt: T0 });
      await store.putDesired({ device: 'pos-01', generation: 2, contentHash: 'h2', document: signedDoc('pos-01', 2), issuedAt: T1 });
      await store.putDesired({ device: 'pos-02', generation: 1, contentHash: 'h1', document: signedDoc('pos-02', 1), issuedAt: T0 });
      assert.deepEqual(await store.getDesired('pos-01'), { device: 'pos-01', generation: 2, contentHash: 'h2', document: signedDoc('pos-01', 2), issuedAt: T1 });
      assert.deepEqual((await store.listDesired()).map((d) => `${d.device}:${d.generation}`).sort(), ['pos-01:2', 'pos-02:1']);
      assert.deepEqual((await store.listDesiredGenerations()).map((d) => ({ ...d })).sort((a, b) => a.device.localeCompare(b.device)), [{ device: 'pos-01', generation: 2 }, { device: 'pos-02', generation: 1 }]);
      assert.equal(await store.getDesired('pos-03'), null);
    });

    test('recordStatus replaces the current components, appends history and records the applied generation', async () => {
      await store.insertDevice(device('pos-01'));
      await store.insertDevice(device('pos-02'));
      await store.recordStatus('pos-02', 1, T0, T0, [status('other')]);
      await store.recordStatus('pos-01', 1, T0, T0, [status('pos'), status('cam', { deployment: 'cam', state: 'failed', reason: 'health-check-failed', detail: 'HTTP 500', version: null })]);
      await store.recordStatus('pos-01', 2, T1, T2, [status('pos', { state: 'applying', reason: 'applying', version: '2.4.0', desiredVersion: '2.4.2', since: T1 })]);

      const current = await store.listComponents('pos-01');
      assert.deepEqual(current, [{ ...status('pos', { state: 'applying', reason: 'applying', version: '2.4.0', desiredVersion: '2.4.2', since: T1 }), device: 'pos-01', reportedAt: T1 }]);
      assert.deepEqual((await store.listComponents()).map((c) => `${c.device}/${c.deployment}/${c.name}`), ['pos-01/pos/pos', 'pos-02/pos/other']);

      const history = await store.listStatusHistory('pos-01', 10);
      assert.deepEqual(history.map((h) => [h.generation, h.reportedAt, h.components.length]), [[2, T1, 1], [1, T0, 2]], 'newest first');
      assert.equal((await store.listStatusHistory('pos-01', 1)).length, 1);
      assert.equal((await store.getDevice('pos-01'))?.appliedGeneration, 2);

      await store.recordStatus('pos-01', 3, T2, T2, []);
      assert.deepEqual(await store.listComponents('pos-01'), [], 'an empty report clears what was reported');
      assert.equal((await store.listStatusHistory('pos-01', 10)).length, 3);
    });

    test('recordEvents stores each (device, seq) once and returns how many were new', async () => {
      assert.equal(await store.recordEvents('pos-01', T0, [event(1), event(2, { component: undefined, type: 'desired-state-refused' })]), 2);
      assert.equal(await store.recordEvents('pos-01', T1, [event(2, { message: 'resent, changed' }), event(3)]), 1);
      assert.equal(await store.recordEvents('pos-01', T1, [event(1), event(2), event(3)]), 0);
      assert.equal(await store.recordEvents('pos-02', T1, [event(1)]), 1, 'sequence numbers are per device');
      assert.equal(await store.recordEvents('pos-02', T1, []), 0);

      const events = await store.listEvents('pos-01', 10);
      assert.deepEqual(events.map((e) => e.seq), [3, 2, 1], 'newest first');
      assert.deepEqual(events[1], { device: 'pos-01', seq: 2, at: T0, type: 'desired-state-refused', message: 'event 2', receivedAt: T0 }, 'the first delivery wins');
      assert.deepEqual(events[2], { ...event(1), device: 'pos-01', receivedAt: T0 });
      assert.deepEqual((await store.listEvents('pos-01', 2)).map((e) => e.seq), [3, 2]);
    });

    test('telemetry: fresh records stored once in order; a NUL in any text is kept as U+FFFD, on every engine', async () => {
      await store.insertDevice(device('pos-01'));
      const mark = await store.recordTelemetry(
        'pos-01',
        T1,
        [
          { seq: 2, at: T0, kind: 'metric', name: 'cpu_percent', value: 12.5 },
          { seq: 1, at: T0, kind: 'log', component: 'pos.pos', line: 'binary\u0000output \u00e9\u{1F600}' },
          { seq: 3, at: T0, kind: 'event', type: 'committed', component: 'pos.pos', message: 'ok\u0000' },
        ],
        0,
      );
      assert.deepEqual(mark, { seq: 3, dropped: 0 });
      assert.deepEqual((await store.listLogs('pos-01', { limit: 10 })).map((l) => ({ ...l })), [{ seq: 1, at: T0, component: 'pos.pos', line: 'binary\uFFFDoutput \u00e9\u{1F600}' }]);
      assert.deepEqual((await store.listEvents('pos-01', 10)).map((e) => e.message), ['ok\uFFFD']);
      assert.deepEqual((await store.listMetrics('pos-01', { limit: 10 })).map((m) => [m.name, m.value]), [['cpu_percent', 12.5]]);
      // Resent with a later record: only the new one is stored.
      assert.deepEqual(await store.recordTelemetry('pos-01', T2, [{ seq: 1, at: T0, kind: 'log', component: 'pos.pos', line: 'again' }, { seq: 4, at: T1, kind: 'log', component: 'pos.pos', line: 'four' }], 2), { seq: 4, dropped: 2 });
      assert.deepEqual((await store.listLogs('pos-01', { limit: 10 })).map((l) => l.line), ['binary\uFFFDoutput \u00e9\u{1F600}', 'four']);
    });

    test('artifacts: put keeps the first record of a digest, get and list read it back with its size as a number', async () => {
      const a = { sha256: 'a'.repeat(64), name: 'driftless-agent', version: '0.2.0', size: 3 * 2 ** 30, signature: 'c2ln', createdAt: T0 };
      await store.putArtifact(a);
      await store.putArtifact({ ...a, signature: 'b3RoZXI=', createdAt: T1 });
      await store.putArtifact({ ...a, sha256: 'b'.repeat(64), version: '0.3.0', createdAt: T2 });
      assert.deepEqual(await store.getArtifact(a.sha256), a);
      assert.equal(await store.getArtifact('c'.repeat(64)), null);
      assert.deepEqual((await store.listArtifacts()).map((x) => x.version), ['0.3.0', '0.2.0']);
    });

    test('a transaction commits all its writes', async () => {
      const result = await store.transaction(async (tx) => {
        await tx.insertDevice(device('pos-01'));
        await tx.setMeta('k', 'v');
        return 42;
      });
      assert.equal(result, 42);
      assert.ok(await store.getDevice('pos-01'));
      assert.equal(await store.getMeta('k'), 'v');
    });

    test('a transaction that throws writes nothing, and the error reaches the caller', async () => {
      await store.insertDevice(device('pos-01'));
      const boom = new Error('boom');
      await assert.rejects(
        store.transaction(async (tx) => {
          await tx.insertDevice(device('pos-02'));
          await tx.updateDevice('pos-01', { labels: { changed: 'yes' } });
          await tx.recordStatus('pos-01', 5, T1, T1, [status('pos')]);
          await tx.recordEvents('pos-01', T1, [event(1)]);
          await tx.putSite({ name: 's', labels: {}, spec: {}, createdAt: T0, updatedAt: T0 });
          throw boom;
        }),
        (error) => error === boom,
      );
      assert.equal(await store.getDevice('pos-02'), null);
      assert.deepEqual(await store.getDevice('pos-01'), device('pos-01'));
      assert.deepEqual(await store.listComponents(), []);
      assert.deepEqual(await store.listStatusHistory('pos-01', 10), []);
      assert.deepEqual(await store.listEvents('pos-01', 10), []);
      assert.equal(await store.getSite('s'), null);
    });

    test('a database error inside a transaction rolls back the earlier writes too', async () => {
      await store.insertRevision(revision(1));
      await assert.rejects(
        store.transaction(async (tx) => {
          await tx.putDeployment(deployment({ revision: 2 }));
          await tx.insertRevision(revision(1)); // duplicate key
        }),
      );
      assert.equal(await store.getDeployment('pos'), null);
    });

    test('transaction() on a transaction store joins it: an error rolls back the whole', async () => {
      await assert.rejects(
        store.transaction(async (tx) => {
          await tx.transaction(async (inner) => inner.setMeta('inner', '1'));
          await tx.setMeta('outer', '1');
          throw new Error('late failure');
        }),
        /late failure/,
      );
      assert.equal(await store.getMeta('inner'), null);
      assert.equal(await store.getMeta('outer'), null);
    });

    test('the transaction store sees its own writes before commit', async () => {
      await store.transaction(async (tx) => {
        await tx.insertDevice(device('pos-01'));
        assert.ok(await tx.getDevice('pos-01'));
        assert.equal((await tx.listDevices()).length, 1);
      });
    });

    test('tenants: a view sees only its tenant; names chosen by operators are per tenant, device names server-wide', async () => {
      assert.deepEqual((await store.listTenants()).map((t) => t.name), ['default']);
      await store.insertTenant({ name: 'acme', createdAt: T0 });
      const own = store.forTenant('default');
      const acme = store.forTenant('acme');
      assert.equal(acme.tenant, 'acme');
      assert.deepEqual((await acme.listTenants()).map((t) => t.name), ['acme']);
      assert.equal(await acme.getTenant('default'), null, 'another tenant reads as absent');

      for (const view of [own, acme]) {
        await view.putSite({ name: 'store-12', labels: { owner: view.tenant! }, spec: {}, createdAt: T0, updatedAt: T0 });
        await view.putDeployment(deployment({ labels: { owner: view.tenant! } }));
        await view.insertRevision(revision(1));
        await view.putRollout(rollout('pos-1', { reason: view.tenant! }));
        await view.putIncident({ id: 'pos-1-incident', rollout: 'pos-1', deployment: 'pos', state: 'open', title: view.tenant!, timeline: [], openedAt: T0, closedAt: null });
      }
      assert.deepEqual((await acme.getSite('store-12'))?.labels, { owner: 'acme' });
      assert.deepEqual((await own.getSite('store-12'))?.labels, { owner: 'default' });
      assert.deepEqual((await acme.getDeployment('pos'))?.labels, { owner: 'acme' });
      assert.equal((await acme.getRollout('pos-1'))?.reason, 'acme');
      assert.equal((await own.getIncident('pos-1-incident'))?.title, 'default');
      assert.equal((await acme.listSites()).length, 1);
      assert.equal((await store.listSites()).length, 2, 'the server-wide view sees both');

      await acme.insertDevice(device('kiosk-01'));
      await own.insertDevice(device('pos-01'));
      await assert.rejects(acme.insertDevice(device('pos-01')), 'a device name is unique server-wide');
      assert.equal(await own.getDevice('kiosk-01'), null);
      assert.deepEqual((await acme.listDevices()).map((d) => d.name), ['kiosk-01']);
      assert.equal(await own.deviceTenant('kiosk-01'), 'acme', 'where a device belongs is known server-wide');
      await own.updateDevice('kiosk-01', { status: 'revoked' });
      assert.equal((await acme.getDevice('kiosk-01'))?.status, 'accepted', "a tenant cannot change another's device");

      await store.recordStatus('kiosk-01', 1, T1, T1, [status('pos')]);
      await store.recordEvents('kiosk-01', T1, [event(1)]);
      await store.putDesired({ device: 'kiosk-01', generation: 1, contentHash: 'h', document: signedDoc('kiosk-01', 1), issuedAt: T1 });
      assert.equal((await acme.listComponents()).length, 1);
      assert.equal((await own.listComponents()).length, 0);
      assert.equal((await own.listComponents('kiosk-01')).length, 0);
      assert.equal((await own.listEvents('kiosk-01', 10)).length, 0);
      assert.equal(await own.getDesired('kiosk-01'), null);
      assert.equal((await own.listDesired()).length, 0);
      assert.equal((await acme.listDesired()).length, 1);
      assert.equal(await own.getTelemetryMark('kiosk-01'), null);

      await acme.insertApiToken({ id: 'a1', tokenHash: 'ah', role: 'admin', description: '', createdAt: T0, expiresAt: null, revokedAt: null, tenant: 'default' });
      assert.equal((await store.findApiToken('ah'))?.tenant, 'acme', "a view's writes land in its tenant, whatever the record says");
      assert.equal(await own.countApiTokens(), 0);
      assert.equal(await own.revokeApiToken('a1', T1), false);
      assert.equal(await acme.revokeApiToken('a1', T1), true);
      assert.equal((await acme.listApiTokens())[0]?.revokedAt, T1);
    });

    test('enrollment tokens: tenant, site, a use limit taken one at a time; unaccepted devices listed', async () => {
      await store.insertTenant({ name: 'acme', createdAt: T0 });
      const acme = store.forTenant('acme');
      await acme.insertEnrollToken({ id: 'e1', tokenHash: 'eh', description: '', createdAt: T0, expiresAt: null, revokedAt: null, site: 'dock-3', maxUses: 2, autoAccept: false });
      const found = await store.findEnrollToken('eh');
      assert.deepEqual([found?.tenant, found?.site, found?.maxUses, found?.uses, found?.autoAccept], ['acme', 'dock-3', 2, 0, false]);
      assert.equal(await store.forTenant('default').useEnrollToken('e1'), false, "another tenant's token is not there");
      assert.equal(await acme.useEnrollToken('e1'), true);
      assert.equal(await acme.useEnrollToken('e1'), true);
      assert.equal(await acme.useEnrollToken('e1'), false, 'used up');
      assert.equal((await acme.listEnrollTokens())[0]?.uses, 2);
      assert.equal(await acme.revokeEnrollToken('e1', T1), true);

      await acme.insertDevice(device('kiosk-01', { status: 'pending' }));
      await store.insertDevice(device('pos-01', { status: 'revoked' }));
      await store.insertDevice(device('pos-02'));
      assert.deepEqual((await store.listUnacceptedDevices()).sort((a, b) => (a.name < b.name ? -1 : 1)), [
        { name: 'kiosk-01', status: 'pending' },
        { name: 'pos-01', status: 'revoked' },
      ]);
      assert.deepEqual(await acme.listUnacceptedDevices(), [{ name: 'kiosk-01', status: 'pending' }]);
    });
  });
}
