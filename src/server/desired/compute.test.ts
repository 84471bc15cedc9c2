import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { DesiredComponent } from '../../protocol/messages.ts';
import type { Selector, Template } from '../../protocol/resources.ts';
import { desiredComponentsFor, desiredContentHash, desiredReleasesFor, nextDesiredState, type DeploymentTarget, type DeviceFacts } from './compute.ts';

function target(name: string, selector: Selector, template: Template, revision = 1, held: readonly string[] = []): DeploymentTarget {
  return { name, selector, releaseFor: (device) => (held.includes(device) ? null : { revision, template }) };
}

const pos: Template = { version: '2.4.1', components: [{ name: 'pos', image: 'registry.example/pos:2.4.1' }, { name: 'agent-sidecar', image: 'x', version: '0.9' }] };
const cam: Template = { version: '1.0', components: [{ name: 'cam', command: ['/opt/cam'] }] };
const store12: DeviceFacts = { name: 'pos-01', labels: { tier: 'store', region: 'eu' }, site: 'store-12' };

const keys = (components: readonly DesiredComponent[]) => components.map((c) => `${c.deployment}/${c.name}@${c.version}#${c.revision}`);

describe('desiredComponentsFor', () => {
  test('picks deployments by labels and by sites, and no others', () => {
    const deployments = [
      target('pos', { matchLabels: { tier: 'store' } }, pos),
      target('kiosk', { matchLabels: { tier: 'kiosk' } }, cam),
      target('cam', { sites: ['store-12'] }, cam),
      target('elsewhere', { sites: ['store-13'] }, cam),
    ];
    assert.deepEqual(keys(desiredComponentsFor(store12, deployments)), ['cam/cam@1.0#1', 'pos/agent-sidecar@0.9#1', 'pos/pos@2.4.1#1']);
  });

  test('a component without a version takes the template version; its own wins', () => {
    const [sidecar, main] = desiredComponentsFor(store12, [target('pos', {}, pos, 3)]);
    assert.equal(sidecar?.version, '0.9');
    assert.equal(main?.version, '2.4.1');
    assert.equal(main?.revision, 3);
    assert.equal(main?.image, 'registry.example/pos:2.4.1', 'the rest of the component is carried as is');
  });

  test("an agent component carries its artifact, resolved by the lookup, and the artifact's version", () => {
    const sha = 'b'.repeat(64);
    const ref = { name: 'driftless-agent', version: '0.2.0', sha256: sha, size: 10, signature: 'c2ln' };
    const agentTemplate: Template = { version: '7', components: [{ name: 'agent', agent: { artifact: sha } }] };
    const [resolved] = desiredComponentsFor(store12, [target('fleet-agent', {}, agentTemplate)], (s) => (s === sha ? ref : null));
    assert.deepEqual(resolved?.artifact, ref);
    assert.equal(resolved?.version, '0.2.0');
    const [unknown] = desiredComponentsFor(store12, [target('fleet-agent', {}, agentTemplate)]);
    assert.equal(unknown?.artifact, undefined, 'an unknown artifact is not invented; the device reports it cannot get it');
    assert.equal(unknown?.version, '7');
  });

  test('a device held back by the rollout gets nothing of that deployment', () => {
    assert.deepEqual(desiredComponentsFor(store12, [target('pos', {}, pos, 1, ['pos-01'])]), []);
  });

  test('the order is stable: by deployment, then component, whatever the input order', () => {
    const a = [target('b', {}, cam), target('a', {}, pos)];
    const b = [...a].reverse();
    assert.deepEqual(desiredComponentsFor(store12, a), desiredComponentsFor(store12, b));
    assert.deepEqual(keys(desiredComponentsFor(store12, a)), ['a/agent-sidecar@0.9#1', 'a/pos@2.4.1#1', 'b/cam@1.0#1']);
  });

  test('property: the result is sorted and independent of the order of deployments', () => {
    const names = fc.uniqueArray(fc.stringMatching(/^[a-z]{1,4}$/), { minLength: 0, maxLength: 5 });
    fc.assert(
      fc.property(names, fc.boolean(), (deploymentNames, flip) => {
        const deployments = deploymentNames.map((n, i) => target(n, i % 2 === 0 || flip ? {} : { sites: ['x'] }, i % 2 === 0 ? pos : cam));
        const forward = desiredComponentsFor(store12, deployments);
        assert.deepEqual(forward, desiredComponentsFor(store12, [...deployments].reverse()));
        const order = forward.map((c) => [c.deployment, c.name] as const);
        const sorted = [...order].sort((x, y) => (x[0] === y[0] ? (x[1] < y[1] ? -1 : 1) : x[0] < y[0] ? -1 : 1));
        assert.deepEqual(order, sorted);
      }),
    );
  });
});

describe('nextDesiredState', () => {
  const at = '2025-01-01T00:00:00.000Z';
  const components = desiredComponentsFor(store12, [target('pos', {}, pos)]);

  test('the first document is generation 1', () => {
    const next = nextDesiredState('pos-01', components, null, at);
    assert.ok(next);
    assert.deepEqual(next.state, { device: 'pos-01', generation: 1, issuedAt: at, components });
    assert.equal(next.contentHash, desiredContentHash(components));
  });

  test('nothing changed: no new document (issuedAt alone is not a change)', () => {
    const first = nextDesiredState('pos-01', components, null, at)!;
    assert.equal(nextDesiredState('pos-01', structuredClone(components), { generation: 1, contentHash: first.contentHash }, '2025-02-02T00:00:00.000Z'), null);
  });

  test('a change of content increments the generation by one', () => {
    const first = nextDesiredState('pos-01', components, null, at)!;
    const changed = components.map((c) => ({ ...c, revision: 2 }));
    const second = nextDesiredState('pos-01', changed, { generation: 7, contentHash: first.contentHash }, at);
    assert.equal(second?.state.generation, 8);
    assert.notEqual(second?.contentHash, first.contentHash);
  });

  test('an empty list says removeAll; a non-empty one does not', () => {
    const first = nextDesiredState('pos-01', components, null, at)!;
    const empty = nextDesiredState('pos-01', [], { generation: 1, contentHash: first.contentHash }, at);
    assert.equal(empty?.state.removeAll, true);
    assert.deepEqual(empty?.state.components, []);
    assert.equal('removeAll' in first.state, false);
    assert.equal(nextDesiredState('pos-01', [], null, at)?.state.removeAll, true);
  });

  test('property: over any sequence of changes the generation strictly increases, and only on a change', () => {
    const variants = [[], components, components.map((c) => ({ ...c, revision: 2 })), components.slice(0, 1), desiredComponentsFor(store12, [target('cam', {}, cam)])];
    fc.assert(
      fc.property(fc.array(fc.nat(variants.length - 1), { minLength: 1, maxLength: 30 }), (sequence) => {
        let previous = null as { generation: number; contentHash: string } | null;
        for (const index of sequence) {
          const wanted = variants[index]!;
          const next = nextDesiredState('pos-01', structuredClone(wanted), previous, at);
          const changed: boolean = previous === null || previous.contentHash !== desiredContentHash(wanted);
          assert.equal(next !== null, changed);
          if (!next) continue;
          assert.ok(next.state.generation > (previous?.generation ?? 0));
          assert.equal(next.state.generation, (previous?.generation ?? 0) + 1);
          previous = { generation: next.state.generation, contentHash: next.contentHash };
        }
      }),
    );
  });
});

describe('nextDesiredState: expiry, renewal and releases', () => {
  const at = '2025-01-01T00:00:00.000Z';
  const components = desiredComponentsFor(store12, [target('pos', {}, pos)]);
  const trust = { expiresAt: '2025-01-02T00:00:00.000Z', renewBefore: '2025-01-01T12:00:00.000Z' };

  test('a document carries its expiry; an unchanged one is re-issued (a new generation) only once it is due', () => {
    const first = nextDesiredState('pos-01', components, null, at, trust)!;
    assert.equal(first.state.expiresAt, trust.expiresAt);
    const previous = { generation: 1, contentHash: first.contentHash, expiresAt: first.state.expiresAt };
    assert.equal(nextDesiredState('pos-01', components, previous, at, trust), null, 'not due: expires after renewBefore');
    const due = nextDesiredState('pos-01', components, previous, at, { expiresAt: '2025-01-03T00:00:00.000Z', renewBefore: '2025-01-02T00:00:00.000Z' });
    assert.equal(due?.state.generation, 2);
    assert.deepEqual(due?.state.components, components);
    assert.ok(nextDesiredState('pos-01', components, { generation: 1, contentHash: first.contentHash }, at, trust), 'a document from before expiry existed is re-issued with one');
  });

  test('signed releases and release keys are part of the content; without them hashes are as before', () => {
    const signed: Template = { ...pos, release: { keyId: 'a'.repeat(16), signature: 'c2ln' } };
    const releases = desiredReleasesFor(store12, [target('pos', {}, signed), target('cam', {}, cam)]);
    assert.deepEqual(releases.map((r) => r.statement.deployment), ['pos'], 'an unsigned template contributes no release');
    const withReleases = nextDesiredState('pos-01', components, null, at, { releases, releaseKeys: ['a2V5'] })!;
    assert.deepEqual(withReleases.state.releases, releases);
    assert.deepEqual(withReleases.state.releaseKeys, ['a2V5']);
    assert.notEqual(withReleases.contentHash, desiredContentHash(components));
    assert.equal(desiredContentHash(components, { releases: [], releaseKeys: [] }), desiredContentHash(components));
  });
});
