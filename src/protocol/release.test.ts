import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { DesiredComponent } from './messages.ts';
import { componentReleaseProblem, componentSpecHash, releaseKeyRing, releaseStatementOf, signedReleaseOf, signRelease, templateReleaseProblem, type SignedRelease } from './release.ts';
import type { Template } from './resources.ts';
import { generateKeyPair, loadPrivateKey } from './signing.ts';
import { isValid } from './validate.ts';

const releasePair = generateKeyPair();
const releaseKey = loadPrivateKey(releasePair.privateKey);
const ring = releaseKeyRing([releasePair.publicKey]);
const otherPair = generateKeyPair();

const template: Template = {
  version: '2.4.1',
  components: [
    { name: 'pos', image: 'registry.example/pos@sha256:' + 'a'.repeat(64), ports: ['8080:8080'], env: { MODE: 'production' } },
    { name: 'sidecar', version: '0.9', command: ['/opt/sidecar'] },
  ],
};
const NOW = Date.parse('2025-06-01T00:00:00.000Z');

function signedTemplate(t: Template = template, expires?: string, by = { key: releaseKey, pub: releasePair.publicKey }): Template {
  return { ...t, release: signRelease(by.key, by.pub, 'pos', t, expires) };
}

/** The components a device is told to run for this template, as the server computes them. */
function desiredOf(t: Template, revision = 1): DesiredComponent[] {
  return t.components.map((c) => ({ ...c, deployment: 'pos', revision, version: c.version ?? t.version }));
}

const problemOf = (c: DesiredComponent, releases: SignedRelease[], now: number | null = NOW) => componentReleaseProblem(c, releases, ring, now)?.code ?? 'ok';

describe('release statements', () => {
  test('name every component with its effective version and a spec hash; the release field is not part of it', () => {
    const statement = releaseStatementOf('pos', template);
    assert.deepEqual(statement.components.map((c) => [c.name, c.version]), [['pos', '2.4.1'], ['sidecar', '0.9']]);
    assert.deepEqual(releaseStatementOf('pos', signedTemplate()), statement);
  });

  test('the spec hash is the same for the template component and the desired component the server derives', () => {
    for (const [i, c] of desiredOf(template, 7).entries()) assert.equal(componentSpecHash(c), componentSpecHash(template.components[i]!));
  });

  test('a signed template yields a release the device accepts for each of its components', () => {
    const signed = signedReleaseOf('pos', signedTemplate())!;
    for (const c of desiredOf(template)) assert.equal(problemOf(c, [signed]), 'ok');
    assert.equal(signedReleaseOf('pos', template), null, 'an unsigned template has no release');
  });

  test('what a stolen online key cannot do: run an unreleased component', () => {
    const signed = signedReleaseOf('pos', signedTemplate())!;
    const [pos] = desiredOf(template);
    assert.equal(problemOf({ ...pos!, image: 'evil.example/pos:latest' }, [signed]), 'release-mismatch');
    assert.equal(problemOf({ ...pos!, env: { MODE: 'production', LD_PRELOAD: '/tmp/x.so' } }, [signed]), 'release-mismatch');
    assert.equal(problemOf({ ...pos!, version: '9.9.9' }, [signed]), 'release-mismatch', 'a relabelled version');
    assert.equal(problemOf({ ...pos!, name: 'other' }, [signed]), 'release-mismatch', 'a component the release does not name');
    assert.equal(problemOf(pos!, []), 'release-unsigned', 'no release at all');
    assert.equal(problemOf({ ...pos!, deployment: 'elsewhere' }, [signed]), 'release-unsigned', 'a release of another deployment');
    // An invented release: a statement the thief writes and signs with a key of its own, or with none that verifies.
    const invented = signedReleaseOf('pos', signedTemplate({ ...template, components: [{ ...template.components[0]!, image: 'evil' }] }, undefined, { key: loadPrivateKey(otherPair.privateKey), pub: otherPair.publicKey }))!;
    assert.equal(problemOf({ ...pos!, image: 'evil' }, [invented]), 'release-unsigned');
    const relabelled = { ...invented, keyId: signed.keyId };
    assert.equal(problemOf({ ...pos!, image: 'evil' }, [relabelled]), 'release-unsigned');
    assert.match(componentReleaseProblem({ ...pos!, image: 'evil' }, [relabelled], ring, NOW)!.message, /not signed by a release key/);
  });

  test('an expired release is refused for installation, not for what already runs (now = null)', () => {
    const signed = signedReleaseOf('pos', signedTemplate(template, '2025-05-01T00:00:00.000Z'))!;
    const [pos] = desiredOf(template);
    assert.equal(problemOf(pos!, [signed]), 'release-expired');
    assert.equal(problemOf(pos!, [signed], null), 'ok');
  });

  test('an agent component is bound to its artifact by digest, whatever version it reports', () => {
    const sha = 'b'.repeat(64);
    const agentTemplate: Template = { version: '7', components: [{ name: 'agent', agent: { artifact: sha } }] };
    const signed = signedReleaseOf('pos', signedTemplate(agentTemplate))!;
    const artifact = { name: 'driftless-agent', version: '0.2.0', sha256: sha, size: 1, signature: 'c2ln' };
    const desired: DesiredComponent = { name: 'agent', agent: { artifact: sha }, deployment: 'pos', revision: 1, version: '0.2.0', artifact };
    assert.equal(problemOf(desired, [signed]), 'ok');
    assert.equal(problemOf({ ...desired, artifact: { ...artifact, sha256: 'c'.repeat(64) } }, [signed]), 'release-mismatch');
    assert.equal(problemOf({ ...desired, agent: { artifact: 'c'.repeat(64) }, artifact: { ...artifact, sha256: 'c'.repeat(64) } }, [signed]), 'release-mismatch');
  });

  test('the server checks a template when it is applied', () => {
    assert.equal(templateReleaseProblem('pos', template, ring, NOW)?.code, 'release-unsigned');
    assert.equal(templateReleaseProblem('pos', signedTemplate(), ring, NOW), null);
    const edited = { ...signedTemplate(), version: '2.4.2' };
    assert.equal(templateReleaseProblem('pos', edited, ring, NOW)?.code, 'release-unsigned', 'changed after signing');
    assert.equal(templateReleaseProblem('other', signedTemplate(), ring, NOW)?.code, 'release-unsigned', 'signed for another deployment');
    assert.equal(templateReleaseProblem('pos', signedTemplate(template, '2025-05-01T00:00:00.000Z'), ring, NOW)?.code, 'release-expired');
  });

  test('property: any change to a released component is refused', () => {
    const signed = signedReleaseOf('pos', signedTemplate())!;
    const [pos] = desiredOf(template);
    const field = fc.constantFrom('image', 'command', 'env', 'ports', 'volumes', 'workingDir', 'health', 'version', 'name', 'agent');
    const value = fc.oneof(fc.string({ minLength: 1 }), fc.array(fc.string({ minLength: 1 }), { minLength: 1, maxLength: 2 }), fc.dictionary(fc.stringMatching(/^[A-Z]{1,3}$/), fc.string(), { minKeys: 1, maxKeys: 2 }));
    fc.assert(
      fc.property(field, value, (key, v) => {
        const changed = { ...pos!, [key]: v } as DesiredComponent;
        // What reaches this check passed the schema first (agent/sync/verify.ts).
        fc.pre(JSON.stringify(changed) !== JSON.stringify(pos) && isValid(DesiredComponent, changed));
        assert.notEqual(problemOf(changed, [signed]), 'ok', `accepted ${key} = ${JSON.stringify(v)}`);
      }),
      { numRuns: 300 },
    );
  });
});
