import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { canonicalJson, contentHash, sha256Hex } from './canonical.ts';

/** The same value with every object's keys in another order (reversed, or rotated by `shift`). */
function reorder(value: unknown, shift: number): unknown {
  if (Array.isArray(value)) return value.map((item) => reorder(item, shift));
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value);
    const rotated = entries.length === 0 ? entries : [...entries.slice(shift % entries.length), ...entries.slice(0, shift % entries.length)].reverse();
    const out: Record<string, unknown> = {};
    for (const [key, member] of rotated) Object.defineProperty(out, key, { value: reorder(member, shift), enumerable: true, writable: true, configurable: true });
    return out;
  }
  return value;
}

describe('canonicalJson', () => {
  test('sorts keys at every depth and keeps array order', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [3, 1, { z: 0, y: 1 }], c: null } }), '{"a":{"c":null,"d":[3,1,{"y":1,"z":0}]},"b":1}');
  });

  test('drops undefined members, writes undefined array items as null, like JSON', () => {
    assert.equal(canonicalJson({ a: undefined, b: [undefined, 1] }), '{"b":[null,1]}');
    assert.equal(canonicalJson({ a: undefined }), canonicalJson({}));
  });

  test('refuses non-finite numbers instead of writing null', () => {
    assert.throws(() => canonicalJson({ a: Number.NaN }), TypeError);
    assert.throws(() => canonicalJson([Number.POSITIVE_INFINITY]), TypeError);
  });

  test('handles keys that look special', () => {
    const tricky = JSON.parse('{"__proto__":{"x":1},"constructor":2,"":3}') as unknown;
    assert.equal(canonicalJson(tricky), '{"":3,"__proto__":{"x":1},"constructor":2}');
  });

  test('contentHash is the SHA-256 of the canonical JSON', () => {
    assert.equal(contentHash({ b: 2, a: 1 }), sha256Hex('{"a":1,"b":2}'));
    assert.match(contentHash([]), /^[0-9a-f]{64}$/);
    assert.notEqual(contentHash({ a: 1 }), contentHash({ a: '1' }));
  });

  test('property: key order never changes the bytes or the hash', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.nat(7), (value, shift) => {
        const other = reorder(value, shift + 1);
        assert.equal(canonicalJson(other), canonicalJson(value));
        assert.equal(contentHash(other), contentHash(value));
      }),
      { numRuns: 300 },
    );
  });

  test('property: canonical JSON is valid JSON of the same value, and a fixed point', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = canonicalJson(value);
        assert.equal(canonicalJson(JSON.parse(text)), text);
        assert.equal(text, JSON.stringify(JSON.parse(text)), 'parse + stringify keeps the sorted order');
      }),
      { numRuns: 300 },
    );
  });

  test('property: values that differ give different canonical JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.jsonValue(), (a, b) => {
        fc.pre(JSON.stringify(a) !== JSON.stringify(b));
        const same = canonicalJson(a) === canonicalJson(b);
        // Only key order (or -0 against 0) can make two different texts the same value.
        if (same) assert.equal(canonicalJson(JSON.parse(JSON.stringify(a))), canonicalJson(JSON.parse(JSON.stringify(b))));
      }),
      { numRuns: 200 },
    );
  });
});
