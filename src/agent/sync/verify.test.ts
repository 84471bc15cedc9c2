import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { canonicalJson, contentHash } from '../../protocol/canonical.ts';
import type { DesiredState, SignedDesiredState } from '../../protocol/messages.ts';
import { generateKeyPair, keyId, loadPrivateKey, loadPublicKey, signValue } from '../../protocol/signing.ts';
import { verifyDesiredState, type Refusal, type Trusted } from './verify.ts';

const serverPair = generateKeyPair();
const server = { key: loadPublicKey(serverPair.publicKey), keyId: keyId(serverPair.publicKey), privateKey: loadPrivateKey(serverPair.privateKey) };
const pinned = { key: server.key, keyId: server.keyId };
const otherPair = generateKeyPair();
const other = { keyId: keyId(otherPair.publicKey), privateKey: loadPrivateKey(otherPair.privateKey) };

const DEVICE = 'pos-01';

function state(change: Partial<DesiredState> = {}): DesiredState {
  return {
    device: DEVICE,
    generation: 3,
    issuedAt: '2025-01-01T00:00:00.000Z',
    components: [{ name: 'pos', deployment: 'pos', revision: 2, version: '2.4.1', image: 'registry.example/pos:2.4.1', ports: ['8080:8080'], env: { MODE: 'production' } }],
    ...change,
  };
}

function signed(payload: DesiredState, by: { keyId: string; privateKey: KeyObject } = server): SignedDesiredState {
  return { payload, keyId: by.keyId, signature: signValue(by.privateKey, payload) };
}

function trustedOf(payload: DesiredState): Trusted {
  return { state: payload, contentHash: contentHash(payload) };
}

function refusalOf(result: ReturnType<typeof verifyDesiredState>): Refusal['code'] | 'ok' {
  return result.ok ? 'ok' : result.refusal.code;
}

describe('verifyDesiredState', () => {
  test('a valid document signed by the pinned key is trusted, and changed', () => {
    const doc = signed(state());
    const result = verifyDesiredState(doc, pinned, DEVICE, null);
    assert.ok(result.ok);
    assert.equal(result.changed, true);
    assert.deepEqual(result.trusted.state, doc.payload);
    assert.equal(result.trusted.contentHash, contentHash(doc.payload));
  });

  test('a newer generation replaces what is trusted', () => {
    const result = verifyDesiredState(signed(state({ generation: 4 })), pinned, DEVICE, trustedOf(state()));
    assert.ok(result.ok);
    assert.equal(result.changed, true);
    assert.equal(result.trusted.state.generation, 4);
  });

  test('the same document again is trusted and unchanged, even re-serialised with other key order', () => {
    const current = trustedOf(state());
    const doc = signed(state());
    const reordered = JSON.parse(JSON.stringify({ signature: doc.signature, keyId: doc.keyId, payload: JSON.parse(canonicalJson(doc.payload)) })) as unknown;
    for (const candidate of [doc, reordered]) {
      const result = verifyDesiredState(candidate, pinned, DEVICE, current);
      assert.ok(result.ok);
      assert.equal(result.changed, false);
      assert.equal(result.trusted, current);
    }
  });

  test('a tampered payload is refused as bad-signature', () => {
    const doc = signed(state());
    const tampered = { ...doc, payload: { ...doc.payload, components: [{ ...doc.payload.components[0]!, image: 'evil.example/pos:latest' }] } };
    assert.equal(refusalOf(verifyDesiredState(tampered, pinned, DEVICE, null)), 'bad-signature');
  });

  test('an unsigned document is refused as unsigned', () => {
    assert.equal(refusalOf(verifyDesiredState({ payload: state(), keyId: server.keyId }, pinned, DEVICE, null)), 'unsigned');
    assert.equal(refusalOf(verifyDesiredState(state(), pinned, DEVICE, null)), 'unsigned', 'a bare payload carries no signature');
  });

  test('signed by another key: unknown-key when it says so, bad-signature when it claims the pinned key id', () => {
    const foreign = signed(state(), other);
    assert.equal(refusalOf(verifyDesiredState(foreign, pinned, DEVICE, null)), 'unknown-key');
    const impostor = { ...foreign, keyId: server.keyId };
    assert.equal(refusalOf(verifyDesiredState(impostor, pinned, DEVICE, null)), 'bad-signature');
  });

  test('a document for another device is refused, even when properly signed', () => {
    assert.equal(refusalOf(verifyDesiredState(signed(state({ device: 'pos-02' })), pinned, DEVICE, null)), 'wrong-device');
  });

  test('an older generation is refused (replay / rollback attack)', () => {
    const result = verifyDesiredState(signed(state({ generation: 2 })), pinned, DEVICE, trustedOf(state({ generation: 3 })));
    assert.equal(refusalOf(result), 'older-generation');
    assert.ok(!result.ok && /generation 2 is older than the trusted generation 3/.test(result.refusal.message));
  });

  test('the same generation with different content is refused', () => {
    const current = trustedOf(state());
    const sameGenOther = signed(state({ components: [{ name: 'pos', deployment: 'pos', revision: 3, version: '2.4.2', image: 'registry.example/pos:2.4.2' }] }));
    assert.equal(refusalOf(verifyDesiredState(sameGenOther, pinned, DEVICE, current)), 'replayed-generation');
  });

  test('empty components are refused without removeAll, accepted with it', () => {
    assert.equal(refusalOf(verifyDesiredState(signed(state({ components: [] })), pinned, DEVICE, null)), 'empty-without-intent');
    assert.equal(refusalOf(verifyDesiredState(signed(state({ components: [], removeAll: false })), pinned, DEVICE, null)), 'empty-without-intent');
    const accepted = verifyDesiredState(signed(state({ components: [], removeAll: true })), pinned, DEVICE, trustedOf(state({ generation: 2 })));
    assert.ok(accepted.ok);
    assert.deepEqual(accepted.trusted.state.components, []);
  });

  test('malformed documents are refused as malformed, naming the field', () => {
    const doc = signed(state());
    const cases: [unknown, RegExp][] = [
      [null, /document/],
      ['a string', /document/],
      [{ ...doc, payload: { ...doc.payload, generation: 0 } }, /payload\.generation/],
      [{ ...doc, payload: { ...doc.payload, generation: '4' } }, /payload\.generation/],
      [{ ...doc, payload: { ...doc.payload, components: [{ name: 'Bad Name', deployment: 'pos', revision: 1, version: '1' }] } }, /payload\.components\[0\]\.name/],
      [{ ...doc, payload: { ...doc.payload, extra: true } }, /unknown field "extra"/],
      [{ ...doc, extra: true }, /unknown field "extra"/],
      [{ ...doc, signature: 'not base64!' }, /signature/],
    ];
    for (const [input, field] of cases) {
      const result = verifyDesiredState(input, pinned, DEVICE, null);
      assert.equal(refusalOf(result), 'malformed', `${JSON.stringify(input)?.slice(0, 80)} should be malformed`);
      assert.ok(!result.ok && field.test(result.refusal.message), `message "${!result.ok ? result.refusal.message : ''}" should match ${field}`);
    }
  });

  test('a member named "__proto__" smuggled into a signed payload is refused (regression)', () => {
    const doc = signed(state());
    const text = JSON.stringify(doc).replace('"env":{', '"env":{"__proto__":"injected",');
    const smuggled = JSON.parse(text) as unknown;
    assert.equal(refusalOf(verifyDesiredState(smuggled, pinned, DEVICE, null)), 'bad-signature');
  });

  test('property: any change to a signed payload is refused', () => {
    const doc = signed(state());
    // Paths into the payload, and replacement values of every JSON kind.
    const paths: (string | number)[][] = [
      ['device'],
      ['generation'],
      ['issuedAt'],
      ['removeAll'],
      ['components', 0, 'name'],
      ['components', 0, 'version'],
      ['components', 0, 'revision'],
      ['components', 0, 'image'],
      ['components', 0, 'ports', 0],
      ['components', 0, 'env', 'MODE'],
      ['components', 0, 'env', 'NEW'],
      ['components', 0, 'command'],
      ['components', 1],
    ];
    const jsonValue = fc.oneof(
      fc.string(),
      fc.integer({ min: -5, max: 1e6 }),
      fc.boolean(),
      fc.constant(null),
      fc.constantFrom('pos-01', 'pos-02', '2.4.2', 'registry.example/pos:latest', 4, 3, 2),
      fc.array(fc.string(), { maxLength: 2 }),
      fc.dictionary(fc.string({ maxLength: 3 }), fc.string({ maxLength: 3 }), { maxKeys: 2 }),
    );
    fc.assert(
      fc.property(fc.constantFrom(...paths), jsonValue, fc.boolean(), (path, value, drop) => {
        const payload = structuredClone(doc.payload) as unknown as Record<string, unknown>;
        let node: Record<string | number, unknown> = payload;
        for (const part of path.slice(0, -1)) node = node[part] as Record<string | number, unknown>;
        const last = path.at(-1)!;
        if (drop) delete node[last];
        else node[last] = value;
        fc.pre(canonicalJson(payload) !== canonicalJson(doc.payload)); // a no-op is not a mutation
        const result = verifyDesiredState({ ...doc, payload }, pinned, DEVICE, null);
        assert.equal(result.ok, false, `accepted a payload changed at ${path.join('.')}`);
      }),
      { numRuns: 500 },
    );
  });
});
