import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ComponentStatus, DesiredComponent } from '../../protocol/messages.ts';
import type { DriftEntry } from '../../protocol/resources.ts';
import { analyseDevice, summariseDrift, type DeviceSnapshot, type HeldBack } from './drift.ts';

const ISSUED = '2025-01-01T10:00:00.000Z';
const SEEN = '2025-01-01T09:00:00.000Z';
const SINCE = '2025-01-01T10:05:00.000Z';

const want: DesiredComponent = { name: 'pos', deployment: 'pos', revision: 2, version: '2.4.1', image: 'registry.example/pos:2.4.1' };

function report(change: Partial<ComponentStatus> = {}): ComponentStatus {
  return { name: 'pos', deployment: 'pos', desiredVersion: '2.4.1', version: '2.4.1', state: 'healthy', reason: null, detail: null, since: SINCE, ...change };
}

function device(change: Partial<DeviceSnapshot> = {}): DeviceSnapshot {
  return { name: 'pos-01', site: 'store-12', online: true, lastSeen: SEEN, generation: 5, issuedAt: ISSUED, appliedGeneration: 5, desired: [want], reported: [report()], ...change };
}

type Row = { name: string; device: DeviceSnapshot; reason: string | null; detail?: RegExp; since?: string | null; state?: string };

const rows: Row[] = [
  { name: 'healthy on the desired version: no drift', device: device(), reason: null, state: 'healthy' },
  { name: 'offline and never heard from', device: device({ online: false, lastSeen: null, reported: [] }), reason: 'offline', detail: /has never contacted the server/, since: null, state: 'unknown' },
  { name: 'offline since its last contact', device: device({ online: false, reported: [report({ desiredVersion: '2.4.0', version: '2.4.0' })] }), reason: 'offline', detail: new RegExp(`offline since ${SEEN}`), since: SEEN, state: 'unknown' },
  { name: 'offline but last reported healthy on the desired version: no drift', device: device({ online: false }), reason: null, state: 'healthy' },
  { name: 'online, behind: has not applied the new generation', device: device({ appliedGeneration: 4, reported: [] }), reason: 'applying', detail: /has not yet applied generation 5 \(last applied 4\)/, since: ISSUED, state: 'pending' },
  { name: 'online, caught up, nothing reported for it', device: device({ reported: [] }), reason: 'applying', detail: /version 2\.4\.1 not reported yet/, since: ISSUED, state: 'pending' },
  { name: 'online, still reporting the previous desired version', device: device({ appliedGeneration: 4, reported: [report({ desiredVersion: '2.4.0', version: '2.4.0' })] }), reason: 'applying', detail: /has not yet applied generation 5/, since: ISSUED, state: 'pending' },
  { name: 'applying the desired version', device: device({ reported: [report({ state: 'applying', reason: 'applying', detail: 'applying version 2.4.1', version: '2.4.0' })] }), reason: 'applying', detail: /applying version 2\.4\.1/, since: SINCE, state: 'applying' },
  { name: 'pending with no reason is applying', device: device({ reported: [report({ state: 'pending', version: null })] }), reason: 'applying', detail: /applying version 2\.4\.1/, state: 'pending' },
  { name: 'reverted to the last known good', device: device({ reported: [report({ state: 'reverted', reason: 'health-check-failed', detail: 'HTTP 500; reverted to version 2.4.0', version: '2.4.0' })] }), reason: 'reverted', detail: /reverted to version 2\.4\.0/, since: SINCE, state: 'reverted' },
  { name: 'failed, with the reason the device gave', device: device({ reported: [report({ state: 'failed', reason: 'health-check-failed', detail: 'HTTP 500 from /healthz', version: null })] }), reason: 'health-check-failed', detail: /HTTP 500/, state: 'failed' },
  { name: 'failed to download', device: device({ reported: [report({ state: 'failed', reason: 'download-failed', detail: 'manifest unknown', version: null })] }), reason: 'download-failed', detail: /manifest unknown/, state: 'failed' },
  { name: 'failed with a reason the server does not know: start-failed', device: device({ reported: [report({ state: 'failed', reason: 'gremlins', detail: null, version: null })] }), reason: 'start-failed', detail: /^failed$/, state: 'failed' },
  { name: 'a local change being repaired', device: device({ reported: [report({ state: 'applying', reason: 'local-change', detail: 'stopped; starting it again', version: null })] }), reason: 'local-change', detail: /stopped/, state: 'applying' },
  { name: 'healthy but running another version: local change', device: device({ reported: [report({ version: '2.3.0' })] }), reason: 'local-change', detail: /runs 2\.3\.0 instead of 2\.4\.1/, state: 'healthy' },
  { name: 'unknown runtime state', device: device({ reported: [report({ state: 'unknown', reason: 'start-failed', detail: 'the container runtime cannot be reached', version: null })] }), reason: 'start-failed', detail: /runtime/, state: 'unknown' },
];

describe('analyseDevice: one drift entry per component not running its desired version healthily', () => {
  for (const row of rows) {
    test(row.name, () => {
      const { components, drift } = analyseDevice(row.device);
      assert.equal(components.length, 1);
      if (row.state) assert.equal(components[0]?.state, row.state);
      if (row.reason === null) {
        assert.deepEqual(drift, []);
        return;
      }
      assert.equal(drift.length, 1);
      const [entry] = drift;
      assert.equal(entry?.reason, row.reason);
      assert.equal(entry?.device, 'pos-01');
      assert.equal(entry?.site, 'store-12');
      assert.equal(entry?.component, 'pos');
      assert.equal(entry?.deployment, 'pos');
      assert.equal(entry?.desiredVersion, '2.4.1');
      assert.equal(entry?.version, components[0]?.version, 'the drift entry shows what actually runs, like the component table');
      if (row.detail) assert.match(entry?.detail ?? '', row.detail);
      if (row.since !== undefined) assert.equal(entry?.since, row.since);
    });
  }

  test('a component the device reports but should no longer run is drift until it is gone', () => {
    const extra = report({ name: 'old', deployment: 'legacy', desiredVersion: '1.0', version: '1.0' });
    const online = analyseDevice(device({ reported: [report(), extra] }));
    assert.deepEqual(online.components.map((c) => `${c.deployment}/${c.name}:${c.desiredVersion}`), ['pos/pos:2.4.1', 'legacy/old:null']);
    assert.deepEqual(online.drift.map((d) => [d.component, d.deployment, d.desiredVersion, d.version, d.reason]), [['old', 'legacy', null, '1.0', 'applying']]);
    assert.match(online.drift[0]?.detail ?? '', /to be removed/);
    const offline = analyseDevice(device({ online: false, reported: [report(), extra] }));
    assert.equal(offline.drift[0]?.reason, 'offline');
    assert.equal(offline.drift[0]?.since, SEEN);
  });

  test('components are matched by deployment and name together', () => {
    const sameNameOtherDeployment = report({ deployment: 'other' });
    const { drift } = analyseDevice(device({ reported: [sameNameOtherDeployment] }));
    assert.deepEqual(drift.map((d) => `${d.deployment}:${d.reason}`).sort(), ['other:applying', 'pos:applying']);
  });

  test('nothing desired and nothing reported: no components, no drift', () => {
    assert.deepEqual(analyseDevice(device({ desired: [], reported: [] })), { components: [], drift: [] });
  });

  test('every reason it gives is one of the documented drift reasons', () => {
    const documented = ['offline', 'applying', 'health-check-failed', 'download-failed', 'start-failed', 'waiting-for-window', 'held-by-rollout', 'reverted', 'local-change', 'not-reported'];
    for (const row of rows) for (const entry of analyseDevice(row.device).drift) assert.ok(documented.includes(entry.reason), entry.reason);
  });
});

describe('summariseDrift', () => {
  const entry = (device: string, reason: string): DriftEntry => ({ device, site: null, component: 'c', deployment: 'd', desiredVersion: '1', version: null, reason, detail: '', since: null });

  test('no drift', () => {
    assert.equal(summariseDrift([], 500), 'no drift: all 500 devices run their desired state');
  });

  test('counts devices once and reasons by entry, most frequent first', () => {
    const entries = [entry('a', 'offline'), entry('a', 'offline'), entry('b', 'reverted'), entry('c', 'reverted'), entry('d', 'reverted')];
    assert.equal(summariseDrift(entries, 500), '4 of 500 devices drifted: 3 reverted, 2 offline');
  });
});

describe('analyseDevice: devices a rollout holds back', () => {
  // The device runs revision 1 (version 2.4.0) healthily, as it was told; revision 2 (2.4.1) is rolling out.
  const onOld: DesiredComponent = { ...want, revision: 1, version: '2.4.0' };
  const inLine = report({ desiredVersion: '2.4.0', version: '2.4.0' });
  const HELD_SINCE = '2025-01-01T09:30:00.000Z';
  const heldByRollout: HeldBack = { deployment: 'pos', revision: 2, version: '2.4.1', reason: 'held-by-rollout', detail: 'rollout pos-2 is progressing (wave 1 in progress)', since: HELD_SINCE };
  const waiting: HeldBack = { ...heldByRollout, reason: 'waiting-for-window', detail: "in wave 2, waiting for its site's maintenance window" };

  test('in line with what it was told but not yet on the newest revision: held-by-rollout, naming the version it waits for', () => {
    const { components, drift } = analyseDevice(device({ desired: [onOld], reported: [inLine], held: [heldByRollout] }));
    assert.equal(components[0]?.state, 'healthy', 'the component itself is fine');
    assert.equal(drift.length, 1);
    assert.deepEqual(drift[0], {
      device: 'pos-01',
      site: 'store-12',
      component: 'pos',
      deployment: 'pos',
      desiredVersion: '2.4.1',
      version: '2.4.0',
      reason: 'held-by-rollout',
      detail: 'rollout pos-2 is progressing (wave 1 in progress)',
      since: HELD_SINCE,
    });
  });

  test('waiting for its maintenance window', () => {
    const { drift } = analyseDevice(device({ desired: [onOld], reported: [inLine], held: [waiting] }));
    assert.deepEqual(drift.map((d) => [d.reason, d.desiredVersion, d.version]), [['waiting-for-window', '2.4.1', '2.4.0']]);
    assert.match(drift[0]!.detail, /maintenance window/);
  });

  test('a device already given the newest revision is not held', () => {
    const { drift } = analyseDevice(device({ held: [heldByRollout] }));
    assert.deepEqual(drift, []);
  });

  test('a hold for another deployment does not touch this one', () => {
    const { drift } = analyseDevice(device({ desired: [onOld], reported: [inLine], held: [{ ...heldByRollout, deployment: 'cam' }] }));
    assert.deepEqual(drift, []);
  });

  test('a device that drifts for its own reason keeps that reason: offline, reverted, applying come first', () => {
    const offline = analyseDevice(device({ online: false, desired: [onOld], reported: [report({ desiredVersion: '2.3.0', version: '2.3.0' })], held: [heldByRollout] }));
    assert.deepEqual(offline.drift.map((d) => d.reason), ['offline']);
    const reverted = analyseDevice(device({ desired: [onOld], reported: [report({ desiredVersion: '2.4.0', version: '2.3.0', state: 'reverted', detail: 'health check failed' })], held: [waiting] }));
    assert.deepEqual(reverted.drift.map((d) => d.reason), ['reverted']);
    const applying = analyseDevice(device({ appliedGeneration: 4, desired: [onOld], reported: [], held: [heldByRollout] }));
    assert.deepEqual(applying.drift.map((d) => d.reason), ['applying']);
  });

  test('one entry per component, even with several components held', () => {
    const second: DesiredComponent = { ...onOld, name: 'sidecar' };
    const { drift } = analyseDevice(device({ desired: [onOld, second], reported: [inLine, report({ name: 'sidecar', desiredVersion: '2.4.0', version: '2.4.0' })], held: [heldByRollout] }));
    assert.deepEqual(drift.map((d) => `${d.component}:${d.reason}`), ['pos:held-by-rollout', 'sidecar:held-by-rollout']);
  });

  test('the summary counts them by reason', () => {
    const entries = [
      ...analyseDevice(device({ name: 'a', desired: [onOld], reported: [inLine], held: [heldByRollout] })).drift,
      ...analyseDevice(device({ name: 'b', desired: [onOld], reported: [inLine], held: [waiting] })).drift,
      ...analyseDevice(device({ name: 'c', desired: [onOld], reported: [inLine], held: [waiting] })).drift,
    ];
    assert.equal(summariseDrift(entries, 10), '3 of 10 devices drifted: 2 waiting-for-window, 1 held-by-rollout');
  });
});
