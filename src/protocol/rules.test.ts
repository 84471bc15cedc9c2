import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Component, DeploymentSpec } from './resources.ts';
import { deploymentProblems, resourceProblems } from './rules.ts';

function spec(components: Component[], strategy?: DeploymentSpec['strategy']): DeploymentSpec {
  return { selector: {}, template: { version: '1', components }, ...(strategy ? { strategy } : {}) };
}
const fields = (s: DeploymentSpec) => deploymentProblems(s).map((p) => `${p.field}: ${p.message}`);

describe('deploymentProblems', () => {
  test('a sound spec has none', () => {
    assert.deepEqual(
      fields(spec([{ name: 'a', image: 'x', ports: ['8080:80', '53/udp'], health: { http: { port: 80 } } }, { name: 'b', command: ['/bin/b'] }], { waves: [{ devices: 1 }, { percent: 100 }] })),
      [],
    );
  });
  test('a component needs image or command', () => {
    assert.deepEqual(fields(spec([{ name: 'a' }])), ['spec.template.components[0]: needs "image" (a container) or "command" (a native process)']);
  });
  test('an agent component is the release alone, once per template', () => {
    const sha = 'a'.repeat(64);
    assert.deepEqual(fields(spec([{ name: 'agent', agent: { artifact: sha } }])), []);
    assert.deepEqual(fields(spec([{ name: 'agent', agent: { artifact: sha }, image: 'x', health: { running: { seconds: 1 } } }])), [
      'spec.template.components[0].image: an "agent" component has no "image", "health"',
    ]);
    assert.deepEqual(fields(spec([{ name: 'a', agent: { artifact: sha } }, { name: 'b', agent: { artifact: sha } }])), [
      'spec.template.components[1].agent: a template has at most one "agent" component',
    ]);
  });
  test('component names are unique within a template', () => {
    assert.deepEqual(fields(spec([{ name: 'a', image: 'x' }, { name: 'a', image: 'y' }])), ['spec.template.components[1].name: component "a" appears twice']);
  });
  test('one probe at most', () => {
    assert.deepEqual(fields(spec([{ name: 'a', image: 'x', health: { http: { port: 80 }, tcp: { port: 81 } } }])), ['spec.template.components[0].health: has http and tcp; choose one probe']);
    assert.deepEqual(fields(spec([{ name: 'a', image: 'x', health: { timeoutSeconds: 5 } }])), [], 'timing alone is not a probe');
  });
  test('ports within 1-65535, host and container both', () => {
    assert.deepEqual(fields(spec([{ name: 'a', image: 'x', ports: ['0:80', '80:70000/tcp', '65535:1'] }])), [
      'spec.template.components[0].ports[0]: "0:80" has a port outside 1-65535',
      'spec.template.components[0].ports[1]: "80:70000/tcp" has a port outside 1-65535',
    ]);
  });
  test('a wave gives exactly one of devices or percent', () => {
    assert.deepEqual(fields(spec([{ name: 'a', image: 'x' }], { waves: [{ bake: '1m' }, { devices: 1, percent: 5 }, { percent: 5 }] })), [
      'spec.strategy.waves[0]: give exactly one of "devices" or "percent"',
      'spec.strategy.waves[1]: give exactly one of "devices" or "percent"',
    ]);
  });
  test('problems carry their path as well as the field text', () => {
    const [problem] = deploymentProblems(spec([{ name: 'a' }]));
    assert.deepEqual(problem?.path, ['spec', 'template', 'components', '0']);
  });
});

describe('resourceProblems', () => {
  test('applies the deployment rules to Deployments only', () => {
    assert.equal(resourceProblems({ apiVersion: 'driftless/v1', kind: 'Deployment', metadata: { name: 'd' }, spec: spec([{ name: 'a' }]) }).length, 1);
    assert.deepEqual(resourceProblems({ apiVersion: 'driftless/v1', kind: 'Site', metadata: { name: 's' } }), []);
    assert.deepEqual(resourceProblems({ apiVersion: 'driftless/v1', kind: 'Device', metadata: { name: 'd' } }), []);
  });
});
