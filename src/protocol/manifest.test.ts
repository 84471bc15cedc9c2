import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { DriftlessError } from './errors.ts';
import { parseManifest } from './manifest.ts';
import type { SiteResource } from './resources.ts';

const DEPLOYMENT = `apiVersion: driftless/v1
kind: Deployment
metadata:
  name: pos
spec:
  selector: { matchLabels: { tier: store } }
  template:
    version: "2.4.1"
    components:
      - name: pos
        image: registry.example/pos:2.4.1
        ports: ["8080:8080"]
        env: { MODE: production }
        health: { http: { port: 8080, path: /healthz }, timeoutSeconds: 60 }
  strategy:
    waves: [ { devices: 1 }, { percent: 5, bake: 10m }, { percent: 100 } ]
    maxFailurePercent: 2
    onFailure: rollback
`;
const SITE = `apiVersion: driftless/v1
kind: Site
metadata: { name: store-12, labels: { region: eu } }
spec: { timeZone: Europe/Amsterdam }
`;

/** The one-line error parseManifest throws, or a failure when it returns. */
function errorOf(text: string, file = 'pos.yaml'): string {
  try {
    parseManifest(text, file);
  } catch (error) {
    assert.ok(error instanceof DriftlessError, `threw ${String(error)}`);
    assert.equal(error.code, 'invalid-input');
    return error.message;
  }
  assert.fail('expected an error');
}

describe('parseManifest', () => {
  test('reads a Deployment as the product spec writes it', () => {
    const [resource, ...rest] = parseManifest(DEPLOYMENT, 'pos.yaml');
    assert.equal(rest.length, 0);
    assert.equal(resource?.kind, 'Deployment');
    assert.ok(resource?.kind === 'Deployment');
    assert.equal(resource.spec.template.components[0]?.image, 'registry.example/pos:2.4.1');
    assert.deepEqual(resource.spec.strategy?.waves?.[1], { percent: 5, bake: '10m' });
  });

  test('reads several documents, in order, skipping empty ones (leading, between, trailing separators, comments)', () => {
    const text = `---\n# a comment only\n---\n${DEPLOYMENT}---\n\n---\n${SITE}---\n`;
    assert.deepEqual(parseManifest(text, 'all.yaml').map((r) => `${r.kind}/${r.metadata.name}`), ['Deployment/pos', 'Site/store-12']);
  });

  test('an empty file or one with only comments holds no resources', () => {
    assert.deepEqual(parseManifest('', 'x.yaml'), []);
    assert.deepEqual(parseManifest('# nothing here\n', 'x.yaml'), []);
    assert.deepEqual(parseManifest('---\n', 'x.yaml'), []);
  });

  const errors: [string, string, string][] = [
    ['unknown field: its own line', DEPLOYMENT.replace('        image:', '        imagee:'), 'pos.yaml:11: spec.template.components[0].imagee: unknown field "imagee"'],
    ['missing field: the line of its parent', DEPLOYMENT.replace('    version: "2.4.1"\n', ''), 'pos.yaml:7: spec.template.version: missing required field "version"'],
    ['wrong type', DEPLOYMENT.replace('version: "2.4.1"', 'version: 2.4'), 'pos.yaml:8: spec.template.version: expected string'],
    ['pattern', DEPLOYMENT.replace('name: pos\nspec', 'name: POS\nspec'), 'pos.yaml:4: metadata.name: must be lower-case letters, digits, "-" and ".", 1 to 63 characters, starting and ending alphanumeric'],
    ['union literal', DEPLOYMENT.replace('onFailure: rollback', 'onFailure: panic'), 'pos.yaml:18: spec.strategy.onFailure: must be one of "rollback", "pause"'],
    ['wrong apiVersion', DEPLOYMENT.replace('driftless/v1', 'driftless/v2'), 'pos.yaml:1: apiVersion: must be "driftless/v1", not "driftless/v2"'],
    ['unknown kind', DEPLOYMENT.replace('kind: Deployment', 'kind: Deploymnet'), 'pos.yaml:2: kind: must be one of Deployment, Site, Device, not "Deploymnet"'],
    ['missing kind', DEPLOYMENT.replace('kind: Deployment\n', ''), 'pos.yaml:1: kind: must be one of Deployment, Site, Device'],
    ['rule: neither image nor command', DEPLOYMENT.replace('        image: registry.example/pos:2.4.1\n', ''), 'pos.yaml:10: spec.template.components[0]: needs "image" (a container) or "command" (a native process)'],
    ['rule: port out of range', DEPLOYMENT.replace('"8080:8080"', '"99999:8080"'), 'pos.yaml:12: spec.template.components[0].ports[0]: "99999:8080" has a port outside 1-65535'],
    ['rule: wave with both devices and percent', DEPLOYMENT.replace('{ devices: 1 }', '{ devices: 1, percent: 5 }'), 'pos.yaml:16: spec.strategy.waves[0]: give exactly one of "devices" or "percent"'],
    ['label key', SITE.replace('region: eu', '"bad key": eu'), 'pos.yaml:3: metadata.labels.bad key: key "bad key" does not match ^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$'],
    ['not a mapping', '- a\n- b\n', 'pos.yaml:1: a resource must be a mapping with apiVersion, kind, metadata and spec'],
    ['a scalar document', 'hello\n', 'pos.yaml:1: a resource must be a mapping with apiVersion, kind, metadata and spec'],
    ['YAML syntax error: the line of the error', `${SITE}extra: [1, 2\nmore: x\n`, 'pos.yaml:6: YAML: Flow sequence in block collection must be sufficiently indented and end with a ]'],
    ['duplicate key', `${SITE}kind: Site\n`, 'pos.yaml:5: YAML: Map keys must be unique'],
    ['unresolved alias', `${SITE.replace('region: eu', 'region: *nowhere')}`, 'pos.yaml:1: YAML: Unresolved alias (the anchor must be set before the alias): nowhere'],
  ];
  for (const [name, text, message] of errors) {
    test(`error names file, line and field: ${name}`, () => assert.equal(errorOf(text), message));
  }

  test('an error in a later document carries its line in the whole file', () => {
    const text = `${SITE}---\n${DEPLOYMENT.replace('        image:', '        imagee:')}`;
    const offset = SITE.split('\n').length; // SITE's lines plus the separator
    assert.equal(errorOf(text, 'all.yaml'), `all.yaml:${11 + offset}: spec.template.components[0].imagee: unknown field "imagee"`);
  });

  test('nothing partial: one bad document fails the whole file', () => {
    assert.throws(() => parseManifest(`${SITE}---\nkind: Nope\n`, 'x.yaml'), DriftlessError);
  });

  test('an alias bomb is refused, not expanded', () => {
    const bomb = `a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [${Array(10).fill('*a').join(', ')}]\nc: &c [${Array(10).fill('*b').join(', ')}]\nd: [${Array(100).fill('*c').join(', ')}]\n`;
    assert.match(errorOf(bomb), /^pos\.yaml:1: YAML: Excessive alias count/);
  });

  test('property: a valid Site written as YAML reads back the same', () => {
    const name = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
    const labelKey = fc.stringMatching(/^[A-Za-z0-9]([A-Za-z0-9._-]{0,8}[A-Za-z0-9])?$/);
    const site = fc.record(
      {
        apiVersion: fc.constant('driftless/v1' as const),
        kind: fc.constant('Site' as const),
        metadata: fc.record({ name, labels: fc.dictionary(labelKey, fc.string({ maxLength: 20 }), { maxKeys: 3, noNullPrototype: true }) }, { requiredKeys: ['name'], noNullPrototype: true }),
        spec: fc.record({ timeZone: fc.constantFrom('UTC', 'Europe/Amsterdam'), region: fc.string({ minLength: 1, maxLength: 10 }) }, { requiredKeys: [], noNullPrototype: true }),
      },
      { requiredKeys: ['apiVersion', 'kind', 'metadata'], noNullPrototype: true },
    );
    fc.assert(
      fc.property(fc.array(site, { minLength: 1, maxLength: 3 }), (sites: SiteResource[]) => {
        const text = sites.map((s) => stringify(s)).join('---\n');
        assert.deepEqual(parseManifest(text, 'sites.yaml'), sites);
      }),
      { numRuns: 200 },
    );
  });

  test('fuzz: any text either reads as resources or is refused as invalid-input, never anything else', () => {
    const token = fc.constantFrom(
      'apiVersion: driftless/v1\n', 'kind: Deployment\n', 'kind: Site\n', 'kind: Device\n', 'metadata:\n', '  name: x\n', 'metadata: { name: a }\n',
      'spec:\n', '  template:\n', '    components:\n', '      - name: c\n', '        image: i\n', '---\n', '...\n', '&a ', '*a', '*b', '&b [*a, *a]\n',
      '[', ']', '{', '}', ': ', '- ', '  ', '\t', '\n', '!!binary ', '!!int ', '!!set ', '!foo ', '? ', '"', "'", '#', '|\n', '>-\n', '%YAML 1.2\n',
      '%TAG ! tag:x,2000:\n', '__proto__: ', 'constructor: ', '~', 'null', '0x1F', '1e400', '-.inf', '.nan', '2001-12-14', '\u0000', '\uFEFF', '\r\n', '<<: *a\n',
    );
    const text = fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 100 }), fc.array(token, { maxLength: 40 }).map((parts) => parts.join('')));
    fc.assert(
      fc.property(text, (input) => {
        try {
          const resources = parseManifest(input, 'fuzz.yaml');
          assert.ok(Array.isArray(resources));
          for (const r of resources) assert.ok(['Deployment', 'Site', 'Device'].includes(r.kind));
        } catch (error) {
          if (!(error instanceof DriftlessError)) throw new Error(`not a DriftlessError for ${JSON.stringify(input)}: ${String(error)}`);
          assert.equal(error.code, 'invalid-input');
          assert.match(error.message, /^fuzz\.yaml:\d+: /);
          assert.ok(!error.message.includes('\n'), 'one line');
        }
      }),
      { numRuns: 2000 },
    );
  });
});
