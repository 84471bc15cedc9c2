import { Type, type Static } from '@sinclair/typebox';
import { canonicalJson, sha256Hex } from './canonical.ts';

/**
 * The audit trail as a hash chain: each entry's hash covers its own fields and the hash of the
 * entry before it, so editing, deleting, inserting or reordering any entry breaks the chain at
 * that entry. One chain per tenant, numbered 1, 2, 3, … without gaps: a tenant's export holds its
 * whole chain and nobody else's, and verifies on its own, offline. The verifier lives here, in
 * protocol/, because the CLI checks exported files with it, without the server.
 */
const Hex64 = Type.String({ pattern: '^[0-9a-f]{64}$' });
const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()]);

export const AuditEntry = Type.Object(
  {
    /** Position in the tenant's chain, from 1. */
    seq: Type.Integer({ minimum: 1 }),
    tenant: Type.String({ minLength: 1, maxLength: 253 }),
    /** When the server recorded it (ISO 8601, UTC). */
    at: Type.String({ minLength: 1, maxLength: 40 }),
    /** Who: `token:<id>`, `device:<name>`, `enroll-token:<id>`, or `anonymous`. Never a secret. */
    actor: Type.String({ minLength: 1, maxLength: 300 }),
    role: Nullable(Type.String({ maxLength: 40 })),
    /** What: `apply`, `rollout.pause`, `token.create`, … or `METHOD /route/:pattern` for a route with no name yet. */
    action: Type.String({ minLength: 1, maxLength: 300 }),
    /** On what: the resource, device or rollout named. */
    target: Nullable(Type.String({ maxLength: 300 })),
    /** From where: the caller's address. */
    sourceIp: Nullable(Type.String({ maxLength: 100 })),
    /** The outcome: the HTTP status answered and, for a failure, its error code. */
    status: Type.Integer({ minimum: 0, maximum: 999 }),
    error: Nullable(Type.String({ maxLength: 100 })),
    /** Names and numbers only (resources changed, a recording id); never a request body or a secret. */
    detail: Type.Record(Type.String(), Type.Unknown()),
    prevHash: Hex64,
    hash: Hex64,
  },
  { additionalProperties: false },
);
export type AuditEntry = Static<typeof AuditEntry>;
export type AuditFields = Omit<AuditEntry, 'hash'>;

/** The `prevHash` of a chain's first entry. */
export const GENESIS_HASH = '0'.repeat(64);

/** The hash of an entry: SHA-256 over the canonical JSON of its fields (hash excluded), behind a domain tag. */
export function auditEntryHash(entry: AuditFields): string {
  const { seq, tenant, at, actor, role, action, target, sourceIp, status, error, detail, prevHash } = entry;
  return sha256Hex(`driftless-audit-v1\n${canonicalJson({ seq, tenant, at, actor, role, action, target, sourceIp, status, error, detail, prevHash })}`);
}

/** Links fields to the chain after `prev` (null: the chain's first entry). */
export function chainEntry(fields: Omit<AuditFields, 'seq' | 'prevHash'>, prev: { seq: number; hash: string } | null): AuditEntry {
  const linked: AuditFields = { ...fields, seq: (prev?.seq ?? 0) + 1, prevHash: prev?.hash ?? GENESIS_HASH };
  return { ...linked, hash: auditEntryHash(linked) };
}

export type ChainBreak = { seq: number; reason: string };
/** What the store says about the chain's end: the head written with every append, and the highest entry number present. */
export type ChainAnchor = { head: { seq: number; hash: string } | null; lastSeq: number };
export type ChainVerdict = { ok: boolean; entries: number; head: { seq: number; hash: string } | null; firstBroken?: ChainBreak };

export type ChainVerifier = {
  /** Checks the next entry in order; returns the first break found so far (then everything after is ignored). */
  push(entry: AuditEntry): ChainBreak | null;
  /** The verdict; with an anchor, a truncated tail or an entry added past the head is a break too. */
  finish(anchor?: ChainAnchor): ChainVerdict;
};

/**
 * Walks a chain entry by entry (so a long one is checked in pages, in constant memory). The first
 * broken entry is named by its number and what is wrong with it: missing (a gap), out of place
 * (reordered), edited (its content does not match its hash), or not linked to the one before (an
 * earlier entry was replaced with a recomputed hash).
 */
export function createChainVerifier(tenant?: string): ChainVerifier {
  let expectedSeq = 1;
  let prev = GENESIS_HASH;
  let count = 0;
  let chainTenant = tenant;
  let broken: ChainBreak | null = null;
  const stop = (b: ChainBreak) => (broken = b);
  return {
    push(entry) {
      if (broken) return broken;
      if (entry.seq !== expectedSeq) {
        return stop({
          seq: expectedSeq,
          reason:
            entry.seq > expectedSeq
              ? `entry ${expectedSeq} is missing: the next entry is ${entry.seq} (deleted or reordered)`
              : `entry ${expectedSeq} is out of place: entry ${entry.seq} is found where it should be (reordered or duplicated)`,
        });
      }
      chainTenant ??= entry.tenant;
      if (entry.tenant !== chainTenant) return stop({ seq: entry.seq, reason: `entry ${entry.seq} belongs to tenant "${entry.tenant}", not "${chainTenant}" (edited)` });
      let recomputed: string;
      try {
        recomputed = auditEntryHash(entry);
      } catch {
        return stop({ seq: entry.seq, reason: `entry ${entry.seq} cannot be hashed (edited)` });
      }
      if (recomputed !== entry.hash) return stop({ seq: entry.seq, reason: `entry ${entry.seq} does not match its hash (edited)` });
      if (entry.prevHash !== prev) {
        return stop({
          seq: entry.seq,
          reason: entry.seq === 1 ? 'entry 1 does not start the chain (replaced)' : `entry ${entry.seq} does not link to entry ${entry.seq - 1} (entry ${entry.seq - 1} was replaced, or this one was)`,
        });
      }
      prev = entry.hash;
      expectedSeq++;
      count++;
      return null;
    },
    finish(anchor) {
      const last = count === 0 ? null : { seq: expectedSeq - 1, hash: prev };
      const verdict = (firstBroken?: ChainBreak): ChainVerdict => ({ ok: !firstBroken, entries: count, head: last, ...(firstBroken ? { firstBroken } : {}) });
      if (broken) return verdict(broken);
      if (!anchor) return verdict();
      const { head, lastSeq } = anchor;
      if (!head) return verdict(count > 0 || lastSeq > 0 ? { seq: Math.max(1, expectedSeq - 1), reason: 'the chain head record is missing (deleted)' } : undefined);
      if (head.seq > expectedSeq - 1) return verdict({ seq: expectedSeq, reason: `entry ${expectedSeq} is missing: the chain head records ${head.seq} entries (deleted)` });
      if (head.seq === expectedSeq - 1 && head.hash !== prev) return verdict({ seq: head.seq, reason: `entry ${head.seq} is not the entry the chain head records (replaced)` });
      if (lastSeq > head.seq) return verdict({ seq: head.seq + 1, reason: `entry ${head.seq + 1} is past the chain head (added by hand)` });
      return verdict();
    },
  };
}

/** Verifies a whole chain held in memory (an export, a test). */
export function verifyAuditChain(entries: Iterable<AuditEntry>, anchor?: ChainAnchor, tenant?: string): ChainVerdict {
  const verifier = createChainVerifier(tenant);
  for (const entry of entries) if (verifier.push(entry)) break;
  return verifier.finish(anchor);
}
