import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DriftlessError } from '../protocol/errors.ts';
import { parseManifest } from '../protocol/manifest.ts';
import { releaseKeyRing, templateReleaseProblem } from '../protocol/release.ts';
import type { DeploymentResource } from '../protocol/resources.ts';
import { generateKeyPair } from '../protocol/signing.ts';
import { releaseExpiry, signManifest } from './release-command.ts';

const pair = generateKeyPair();
const ring = releaseKeyRing([pair.publicKey]);
const NOW = Date.parse('2025-06-01T00:00:00.000Z');

const manifest = `# the point-of-sale release
apiVersion: driftless/v1
kind: Deployment
metadata: { name: pos }
spec:
  selector: { matchLabels: { tier: store } }
  template:
    version: "2.4.1"   # keep in step with the image
    components:
      - name: pos
        image: registry.example/pos:2.4.1
---
apiVersion: driftless/v1
kind: Site
metadata: { name: store-12 }
---
apiVersion: driftless/v1
kind: Deployment
metadata: { name: cam }
spec:
  selector: {}
  template: { version: "1", components: [ { name: cam, command: ["/opt/cam"] } ] }
`;

const deployments = (text: string) => parseManifest(text, 'm.yaml').filter((r): r is DeploymentResource => r.kind === 'Deployment');

describe('driftless release sign', () => {
  test('signs every Deployment in place, keeps comments and the other resources, and the server accepts the result', () => {
    const { text, signed } = signManifest(manifest, 'm.yaml', pair.privateKey, undefined);
    assert.deepEqual(signed, [{ name: 'pos', version: '2.4.1' }, { name: 'cam', version: '1' }]);
    assert.match(text, /# keep in step with the image/);
    assert.equal(parseManifest(text, 'm.yaml').length, 3);
    for (const d of deployments(text)) assert.equal(templateReleaseProblem(d.metadata.name, d.spec.template, ring, NOW), null);
  });

  test('signing again replaces the signature; an edit after signing is caught by the server', () => {
    const once = signManifest(manifest, 'm.yaml', pair.privateKey, '2025-09-01T00:00:00.000Z').text;
    const twice = signManifest(once, 'm.yaml', pair.privateKey, undefined).text;
    const [pos] = deployments(twice);
    assert.equal(pos?.spec.template.release?.expires, undefined);
    const edited = twice.replace('registry.example/pos:2.4.1', 'evil.example/pos:latest');
    const [tampered] = deployments(edited);
    assert.equal(templateReleaseProblem('pos', tampered!.spec.template, ring, NOW)?.code, 'release-unsigned');
  });

  test('refuses a manifest with no Deployment, a bad key, and a bad expiry, in one line each', () => {
    const site = 'apiVersion: driftless/v1\nkind: Site\nmetadata: { name: s }\n';
    assert.throws(() => signManifest(site, 's.yaml', pair.privateKey, undefined), /s\.yaml: no Deployment to sign/);
    assert.throws(() => signManifest(manifest, 'm.yaml', 'bm90IGEga2V5', undefined), /--key: not an Ed25519 private key/);
    assert.throws(() => releaseExpiry('soon', NOW), (e: unknown) => e instanceof DriftlessError && /--expires: "soon"/.test(e.message));
    assert.throws(() => releaseExpiry('2020-01-01T00:00:00Z', NOW), /in the past/);
    assert.equal(releaseExpiry('30d', NOW), '2025-07-01T00:00:00.000Z');
  });
});
