import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DriftlessError } from './errors.ts';
import { DeviceEvent, EnrollRequest, StatusReport } from './messages.ts';
import { Component, DeploymentResource, Labels, SiteResource, Strategy } from './resources.ts';
import { isValid, parseAs, pathToField, problems } from './validate.ts';

/** The one-line message parseAs throws, or "ok". */
function messageOf(schema: Parameters<typeof parseAs>[0], value: unknown): string {
  try {
    parseAs(schema, value, 'request body');
    return 'ok';
  } catch (error) {
    assert.ok(error instanceof DriftlessError, `threw ${String(error)}`);
    assert.equal(error.code, 'invalid-input');
    assert.equal(error.status, 400);
    return error.message;
  }
}

const deployment = {
  apiVersion: 'driftless/v1',
  kind: 'Deployment',
  metadata: { name: 'pos' },
  spec: { selector: { matchLabels: { tier: 'store' } }, template: { version: '2.4.1', components: [{ name: 'pos', image: 'registry.example/pos:2.4.1' }] } },
};

describe('validate', () => {
  test('a valid value is returned as is', () => {
    assert.equal(parseAs(DeploymentResource, deployment, 'x'), deployment);
    assert.equal(isValid(DeploymentResource, deployment), true);
  });

  const cases: [string, Parameters<typeof parseAs>[0], unknown, string][] = [
    ['unknown field, nested', DeploymentResource, { ...deployment, spec: { ...deployment.spec, template: { ...deployment.spec.template, components: [{ name: 'pos', imagee: 'x' }] } } }, 'request body: spec.template.components[0].imagee: unknown field "imagee"'],
    ['unknown top-level field', Component, { name: 'a', extra: 1 }, 'request body: extra: unknown field "extra"'],
    ['missing field', DeploymentResource, { ...deployment, metadata: {} }, 'request body: metadata.name: missing required field "name"'],
    ['missing field at the top', Component, {}, 'request body: name: missing required field "name"'],
    ['wrong type', Component, { name: 5 }, 'request body: name: expected string'],
    ['wrong type in an array', Component, { name: 'a', ports: [8080] }, 'request body: ports[0]: expected string'],
    ['union of literals', Strategy, { onFailure: 'explode' }, 'request body: onFailure: must be one of "rollback", "pause"'],
    ['literal', SiteResource, { apiVersion: 'v2', kind: 'Site', metadata: { name: 's' } }, 'request body: apiVersion: must be "driftless/v1", not "v2"'],
    ['pattern with a description', Component, { name: 'a', ports: ['80:80:80'] }, 'request body: ports[0]: must be host:container, as Docker and Compose write it'],
    ['pattern without a description', Strategy, { waves: [{ bake: '10x' }] }, 'request body: waves[0].bake: does not match ^[0-9]+(s|m|h)$'],
    ['number bounds', Component, { name: 'a', health: { http: { port: 0 } } }, 'request body: health.http.port: expected integer to be greater or equal to 1'],
    ['event type union', DeviceEvent, { seq: 1, at: '2025-01-01T00:00:00Z', type: 'nope', message: 'x' }, 'request body: type: must be one of "committed", "reverted", "local-change", "desired-state-refused", "start-failed", "health-check-failed", "restarted", "agent-update-failed", "agent-updated"'],
    ['date-time format', DeviceEvent, { seq: 1, at: '2025-13-45T00:00:00Z', type: 'committed', message: 'x' }, "request body: at: expected string to match 'date-time' format"],
    ['not an object at all', EnrollRequest, null, 'request body: (document): expected object'],
    ['label key not matching its pattern', Labels, { 'bad key!': 'x' }, 'request body: bad key!: key "bad key!" does not match ^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$'],
    ['env name not matching its pattern', Component, { name: 'a', command: ['x'], env: { '1BAD': 'x' } }, 'request body: env.1BAD: key "1BAD" does not match ^[A-Za-z_][A-Za-z0-9_]*$'],
    ['label value of the wrong type', Labels, { tier: 1 }, 'request body: tier: expected string'],
  ];
  for (const [name, schema, value, message] of cases) {
    test(`names the field: ${name}`, () => assert.equal(messageOf(schema, value), message));
  }

  test('valid label keys and env names pass', () => {
    assert.equal(isValid(Labels, { tier: 'store', 'example.com/role': 'edge', a: '' }), true);
    assert.equal(isValid(Component, { name: 'a', command: ['x'], env: { _X: '1', PATH_2: 'y' } }), true);
  });

  test('problems lists several, up to the limit', () => {
    const found = problems(Strategy, { onFailure: 'explode', extra: 1, waves: 3 }, 5);
    assert.deepEqual(found.map((p) => p.field).sort(), ['extra', 'onFailure', 'waves']);
    assert.equal(problems(Strategy, { onFailure: 'explode', extra: 1, waves: 3 }, 1).length, 1);
    assert.deepEqual(problems(Strategy, {}), []);
  });

  test('status reports refuse more than the cap of events', () => {
    const event = { seq: 1, at: '2025-01-01T00:00:00Z', type: 'committed', message: 'x' };
    const report = { generation: 1, reportedAt: '2025-01-01T00:00:00Z', components: [], events: Array.from({ length: 1001 }, (_, i) => ({ ...event, seq: i + 1 })) };
    assert.match(messageOf(StatusReport, report), /^request body: events: /);
  });

  test('pathToField writes indexes in brackets and escapes nothing else', () => {
    assert.equal(pathToField(['spec', 'template', 'components', 0, 'image']), 'spec.template.components[0].image');
    assert.equal(pathToField(['resources', '3', 'kind']), 'resources[3].kind');
    assert.equal(pathToField([]), '(document)');
    assert.equal(pathToField([0]), '[0]');
  });

  test('JSON-pointer escapes in paths are undone (~1 is "/", ~0 is "~")', () => {
    const [problem] = problems(Labels, { 'a/b': 5 });
    assert.deepEqual(problem?.path, ['a/b']);
    assert.equal(problem?.field, 'a/b');
  });
});
