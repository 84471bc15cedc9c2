import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DesiredComponent } from '../../protocol/messages.ts';
import { instanceKey } from '../drivers/driver.ts';
import { emptyEntry, type Ledger, type LedgerEntry, type SpecRecord } from '../ledger/ledger.ts';
import { specRecord, type ObservedInstance } from './plan.ts';
import { componentStatuses } from './status.ts';
import type { RuntimeKind } from '../drivers/driver.ts';

function component(overrides: Partial<DesiredComponent> = {}): DesiredComponent {
  return { name: 'web', deployment: 'shop', revision: 1, version: '1', command: ['/opt/web'], ...overrides };
}

function observed(spec: SpecRecord, running = true): ObservedInstance {
  const c = spec.component;
  return {
    key: instanceKey(c.deployment, c.name),
    specHash: spec.specHash,
    deployment: c.deployment,
    component: c.name,
    version: c.version,
    running,
    exitCode: running ? null : 1,
    startedAt: null,
    ports: {},
    runtime: c.image ? 'container' : 'process',
  };
}

const v1 = specRecord(component());
const v2 = specRecord(component({ version: '2', revision: 2, command: ['/opt/web', '--two'] }));
const KEY = 'shop.web';
const failedV2 = { reason: 'health-check-failed' as const, detail: 'version 2: HTTP 500 from /healthz', at: '2025-01-01T00:00:00.000Z' };
const at = (change: Partial<LedgerEntry>): Ledger => ({ [KEY]: { ...emptyEntry(), ...change } });

function statusOf(desired: DesiredComponent, instances: ObservedInstance[], ledger: Ledger, unavailable: RuntimeKind[] = []) {
  const stamps: string[] = [];
  const [status] = componentStatuses([desired], instances, ledger, unavailable, (key, state) => {
    stamps.push(`${key}|${state}`);
    return '2025-01-02T03:04:05.000Z';
  });
  assert.ok(status);
  return { ...status, stamps };
}

describe('componentStatuses', () => {
  test('healthy only when the desired spec is committed and running', () => {
    const s = statusOf(v1.component, [observed(v1)], at({ committed: v1 }));
    assert.equal(s.state, 'healthy');
    assert.equal(s.reason, null);
    assert.equal(s.version, '1');
    assert.equal(s.desiredVersion, '1');
    assert.equal(s.since, '2025-01-02T03:04:05.000Z');
  });

  test('running the desired spec but not yet committed is applying, not healthy', () => {
    const s = statusOf(v2.component, [observed(v2)], at({ committed: v1, attempt: { ...v2, startedAt: '2025-01-01T00:00:00.000Z' } }));
    assert.equal(s.state, 'applying');
    assert.equal(s.reason, 'applying');
    assert.equal(s.version, '2');
  });

  test('reverted: the desired spec failed and the last known good runs, with the failure reason', () => {
    const s = statusOf(v2.component, [observed(v1)], at({ committed: v1, failed: { [v2.specHash]: failedV2 } }));
    assert.equal(s.state, 'reverted');
    assert.equal(s.reason, 'health-check-failed');
    assert.equal(s.version, '1');
    assert.equal(s.desiredVersion, '2');
    assert.match(s.detail ?? '', /HTTP 500.*reverted to version 1/);
  });

  test('failed: the desired spec failed and nothing good runs (no earlier version, or it is not back yet)', () => {
    const none = statusOf(v2.component, [], at({ failed: { [v2.specHash]: failedV2 } }));
    assert.equal(none.state, 'failed');
    assert.equal(none.reason, 'health-check-failed');
    assert.equal(none.version, null);
    const stillBad = statusOf(v2.component, [observed(v2)], at({ committed: v1, failed: { [v2.specHash]: failedV2 } }));
    assert.equal(stillBad.state, 'failed', 'the failed spec still runs: not reverted yet');
    const goodStopped = statusOf(v2.component, [observed(v1, false)], at({ committed: v1, failed: { [v2.specHash]: failedV2 } }));
    assert.equal(goodStopped.state, 'failed');
    assert.equal(goodStopped.version, null, 'a stopped instance runs no version');
  });

  test('applying with a local-change reason when the committed spec is stopped or missing', () => {
    const stopped = statusOf(v1.component, [observed(v1, false)], at({ committed: v1 }));
    assert.equal(stopped.state, 'applying');
    assert.equal(stopped.reason, 'local-change');
    assert.match(stopped.detail ?? '', /stopped/);
    const missing = statusOf(v1.component, [], at({ committed: v1 }));
    assert.equal(missing.state, 'applying');
    assert.equal(missing.reason, 'local-change');
    assert.match(missing.detail ?? '', /missing/);
  });

  test('pending: desired but not begun', () => {
    const fresh = statusOf(v2.component, [], {});
    assert.equal(fresh.state, 'pending');
    assert.equal(fresh.reason, null);
    const old = statusOf(v2.component, [observed(v1)], at({ committed: v1 }));
    assert.equal(old.state, 'pending');
    assert.equal(old.version, '1', 'version is what actually runs');
  });

  test('unknown when the runtime cannot be reached, whatever the ledger says', () => {
    const image = specRecord(component({ image: 'registry.example/web:1', command: undefined }));
    const s = statusOf(image.component, [], at({ committed: image }), ['container']);
    assert.equal(s.state, 'unknown');
    assert.match(s.detail ?? '', /container runtime/);
    const otherDown = statusOf(v1.component, [observed(v1)], at({ committed: v1 }), ['container']);
    assert.equal(otherDown.state, 'healthy', 'an unavailable container runtime does not affect a process component');
  });

  test('the since stamp is keyed by component and changes with state, reason and spec', () => {
    const healthy = statusOf(v1.component, [observed(v1)], at({ committed: v1 }));
    const stopped = statusOf(v1.component, [observed(v1, false)], at({ committed: v1 }));
    assert.equal(healthy.stamps.length, 1);
    assert.ok(healthy.stamps[0]?.startsWith(`${KEY}|`));
    assert.notEqual(healthy.stamps[0], stopped.stamps[0]);
    const nextRevision = statusOf({ ...v1.component, revision: 9 }, [observed(v1)], at({ committed: v1 }));
    assert.equal(nextRevision.state, 'healthy', 'a new revision number alone is the same spec');
    assert.equal(nextRevision.stamps[0], healthy.stamps[0]);
  });

  test('one status per desired component, in the desired order', () => {
    const a = component({ name: 'a' });
    const b = component({ name: 'b', deployment: 'other' });
    const out = componentStatuses([b, a], [], {}, [], () => '2025-01-01T00:00:00.000Z');
    assert.deepEqual(out.map((s) => `${s.deployment}/${s.name}`), ['other/b', 'shop/a']);
  });
});
