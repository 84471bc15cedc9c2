import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { auditEntryHash, chainEntry, GENESIS_HASH, verifyAuditChain, type AuditEntry, type ChainAnchor } from './audit-chain.ts';

const fieldsArb = fc.record({
  tenant: fc.constant('acme'),
  at: fc.integer({ min: 0, max: 4_000_000_000_000 }).map((ms) => new Date(ms).toISOString()),
  actor: fc.constantFrom('token:admin', 'token:ops', 'device:pos-01', 'anonymous'),
  role: fc.constantFrom(null, 'admin', 'operator'),
  action: fc.constantFrom('apply', 'token.create', 'rollout.pause', 'device.enroll'),
  target: fc.option(fc.string({ maxLength: 12 }), { nil: null }),
  sourceIp: fc.option(fc.ipV4(), { nil: null }),
  status: fc.constantFrom(200, 201, 401, 403, 409),
  error: fc.option(fc.constantFrom('unauthorized', 'forbidden', 'conflict'), { nil: null }),
  detail: fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean())),
});

function buildChain(fields: readonly Omit<AuditEntry, 'seq' | 'prevHash' | 'hash'>[]): AuditEntry[] {
  const chain: AuditEntry[] = [];
  for (const f of fields) chain.push(chainEntry(f, chain.at(-1) ?? null));
  return chain;
}
const anchorOf = (chain: readonly AuditEntry[]): ChainAnchor => ({ head: chain.length ? { seq: chain.at(-1)!.seq, hash: chain.at(-1)!.hash } : null, lastSeq: chain.at(-1)?.seq ?? 0 });

const chainArb = fc.array(fieldsArb, { minLength: 1, maxLength: 25 }).map(buildChain);

/** A different value for one field of an entry, of the same type (what an edit by hand in SQL does). */
function edited(entry: AuditEntry, field: keyof AuditEntry, salt: number): AuditEntry {
  const value = entry[field];
  let changed: unknown;
  if (field === 'detail') changed = { ...entry.detail, 'edited-by-hand': salt };
  else if (typeof value === 'number') changed = value + 1 + (salt % 5);
  else if (typeof value === 'string' && /^[0-9a-f]{64}$/.test(value)) changed = (value[0] === 'a' ? 'b' : 'a') + value.slice(1);
  else if (typeof value === 'string') changed = `${value}x`;
  else changed = `was-null-${salt}`;
  return { ...entry, [field]: changed } as AuditEntry;
}

const FIELDS: (keyof AuditEntry)[] = ['seq', 'tenant', 'at', 'actor', 'role', 'action', 'target', 'sourceIp', 'status', 'error', 'detail', 'prevHash', 'hash'];

describe('audit hash chain', () => {
  test('an intact chain verifies, and names its head', () => {
    fc.assert(
      fc.property(chainArb, (chain) => {
        const verdict = verifyAuditChain(chain, anchorOf(chain), 'acme');
        assert.deepEqual(verdict, { ok: true, entries: chain.length, head: { seq: chain.length, hash: chain.at(-1)!.hash } });
        assert.equal(chain[0]!.prevHash, GENESIS_HASH);
      }),
    );
  });

  test('the hash covers every field and does not depend on key order', () => {
    const [entry] = buildChain([{ tenant: 'acme', at: '2025-06-01T12:00:00.000Z', actor: 'token:a', role: 'admin', action: 'apply', target: 'Deployment/pos', sourceIp: '10.0.0.1', status: 200, error: null, detail: { b: 1, a: [1, 2] } }]);
    const reordered = Object.fromEntries(Object.entries(entry!).reverse()) as AuditEntry;
    assert.equal(auditEntryHash({ ...reordered, detail: { a: [1, 2], b: 1 } }), entry!.hash);
    for (const field of FIELDS.filter((f) => f !== 'hash')) assert.notEqual(auditEntryHash(edited(entry!, field, 1)), entry!.hash, field);
  });

  test('editing any field of any entry is detected at that entry', () => {
    fc.assert(
      fc.property(chainArb, fc.nat(), fc.constantFrom(...FIELDS), fc.nat(), (chain, i, field, salt) => {
        const at = i % chain.length;
        const tampered = chain.map((e, k) => (k === at ? edited(e, field, salt) : e));
        const verdict = verifyAuditChain(tampered, anchorOf(chain), 'acme');
        assert.equal(verdict.ok, false);
        assert.equal(verdict.firstBroken?.seq, at + 1, verdict.firstBroken?.reason);
      }),
    );
  });

  test('an edited entry whose hash was recomputed breaks the link of the next one (or the head)', () => {
    fc.assert(
      fc.property(chainArb, fc.nat(), (chain, i) => {
        const at = i % chain.length;
        const forged = { ...chain[at]!, actor: 'token:someone-else' };
        const tampered = chain.map((e, k) => (k === at ? { ...forged, hash: auditEntryHash(forged) } : e));
        const verdict = verifyAuditChain(tampered, anchorOf(chain), 'acme');
        assert.equal(verdict.ok, false);
        assert.equal(verdict.firstBroken?.seq, at === chain.length - 1 ? at + 1 : at + 2, verdict.firstBroken?.reason);
      }),
    );
  });

  test('deleting any entry is detected and names it, the newest included', () => {
    fc.assert(
      fc.property(chainArb, fc.nat(), (chain, i) => {
        const at = i % chain.length;
        const verdict = verifyAuditChain(chain.filter((_, k) => k !== at), anchorOf(chain), 'acme');
        assert.equal(verdict.ok, false);
        assert.equal(verdict.firstBroken?.seq, at + 1, verdict.firstBroken?.reason);
        assert.match(verdict.firstBroken!.reason, /missing/);
      }),
    );
  });

  test('swapping two entries is detected at the first of them', () => {
    fc.assert(
      fc.property(
        chainArb.filter((c) => c.length >= 2),
        fc.nat(),
        fc.nat(),
        (chain, a, b) => {
          const i = a % chain.length;
          const j = (i + 1 + (b % (chain.length - 1))) % chain.length;
          const swapped = [...chain];
          [swapped[i], swapped[j]] = [swapped[j]!, swapped[i]!];
          const verdict = verifyAuditChain(swapped, anchorOf(chain), 'acme');
          assert.equal(verdict.ok, false);
          assert.equal(verdict.firstBroken?.seq, Math.min(i, j) + 1, verdict.firstBroken?.reason);
        },
      ),
    );
  });

  test('an entry added past the head, or a missing head, is detected', () => {
    fc.assert(
      fc.property(chainArb, fieldsArb, (chain, extra) => {
        const longer = [...chain, chainEntry(extra, chain.at(-1)!)];
        const verdict = verifyAuditChain(longer.slice(0, chain.length), { ...anchorOf(chain), lastSeq: longer.length }, 'acme');
        assert.deepEqual(verdict.firstBroken?.seq, chain.length + 1);
        assert.equal(verifyAuditChain(chain, { head: null, lastSeq: chain.length }, 'acme').ok, false);
      }),
    );
  });

  test('without an anchor (an exported file), a truncated tail cannot be told apart, but everything else can', () => {
    const chain = buildChain([0, 1, 2].map((n) => ({ tenant: 'acme', at: new Date(n).toISOString(), actor: 'a', role: null, action: 'apply', target: null, sourceIp: null, status: 200, error: null, detail: {} })));
    assert.equal(verifyAuditChain(chain.slice(0, 2)).ok, true);
    assert.equal(verifyAuditChain(chain.slice(1)).firstBroken?.seq, 1);
    assert.equal(verifyAuditChain(chain, undefined, 'other').firstBroken?.seq, 1);
  });
});
