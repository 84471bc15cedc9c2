import { chainEntry, createChainVerifier, type AuditEntry, type ChainVerdict } from '../../protocol/audit-chain.ts';
import { canonicalJson } from '../../protocol/canonical.ts';
import { DriftlessError } from '../../protocol/errors.ts';
import { createGroupCommit } from '../group-commit.ts';
import type { AuditQuery, Store } from '../store/store.ts';

/** Something that happened, as a caller describes it; the log adds when, the entry number and the hashes. */
export type AuditEvent = {
  tenant: string;
  /** `token:<id>`, `device:<name>`, `enroll-token:<id>`, or `anonymous`. Never a secret. */
  actor: string;
  role?: string | null;
  /** `apply`, `rollout.pause`, `terminal.open`, `exec`, … */
  action: string;
  target?: string | null;
  sourceIp?: string | null;
  /** The HTTP status of the outcome (default 200: a session outside HTTP, its outcome in `detail`), and the error code of a failure. */
  status?: number;
  error?: string | null;
  /** Names, numbers, ids (a terminal recording's id): never a body or a secret. */
  detail?: Record<string, unknown>;
};

/** Filters as the API takes them: `outcome` is ok, failed, denied, a status (403) or an error code (conflict); `action` ending in `*` is a prefix. */
export type AuditFilter = { since?: string; until?: string; actor?: string; action?: string; outcome?: string; after?: number; limit?: number };

export type AuditLog = {
  /**
   * Appends to the tenant's chain; resolves once the entry is durable. Appends are serialized
   * and written in group commits. Never call it inside a store transaction: it writes in its own.
   */
  record(event: AuditEvent): Promise<AuditEntry>;
  /** Entries in chain order; `next` is the cursor (`after`) for the next page, null at the end. */
  list(tenant: string, filter: AuditFilter): Promise<{ entries: AuditEntry[]; next: number | null }>;
  /** Walks the tenant's whole chain against its stored head. */
  verify(tenant: string): Promise<ChainVerdict>;
  /** Settles once every entry submitted so far is written (or failed): what the server waits for before it closes its store. */
  idle(): Promise<void>;
};

export const MAX_AUDIT_PAGE = 1000;
const VERIFY_PAGE = 1000;

export function createAuditLog(deps: { store: Store; now: () => number; maxQueue?: number }): AuditLog {
  const { store, now } = deps;
  // One writer: appends queue in order and each batch is one transaction (a few fsyncs for many
  // entries). Each append reads the head inside the batch's transaction, so entries of one batch
  // chain onto each other and a rolled-back batch leaves no trace.
  const writer = createGroupCommit<AuditEvent, AuditEntry>(
    store,
    {
      async write(tx, event) {
        const { head, lastSeq } = await tx.getAuditAnchor(event.tenant);
        // A chain whose rows were changed by hand still takes new entries (after the highest number
        // present, so no key collides); verify names the damage.
        const prev = head ? { seq: Math.max(head.seq, lastSeq), hash: head.hash } : lastSeq > 0 ? { seq: lastSeq, hash: '' } : null;
        const entry = chainEntry(
          {
            tenant: event.tenant,
            at: new Date(now()).toISOString(),
            actor: event.actor,
            role: event.role ?? null,
            action: event.action,
            target: event.target ?? null,
            sourceIp: event.sourceIp ?? null,
            status: event.status ?? 200,
            error: event.error ?? null,
            detail: event.detail ?? {},
          },
          prev,
        );
        await tx.appendAudit(entry);
        return entry;
      },
    },
    { maxQueue: deps.maxQueue ?? 20_000 },
  );

  const pending = new Set<Promise<void>>();
  return {
    record(event) {
      // Refused alone, before it could fail a whole batch of other entries.
      if (typeof event.tenant !== 'string' || !event.tenant || typeof event.action !== 'string' || !event.action) {
        return Promise.reject(new DriftlessError('internal', 'an audit event needs a tenant and an action'));
      }
      const written = writer.submit(normalize(event));
      const settled = written.then(
        () => undefined,
        () => undefined,
      );
      pending.add(settled);
      void settled.finally(() => pending.delete(settled));
      return written;
    },

    async idle() {
      while (pending.size > 0) await Promise.all([...pending]);
    },

    async list(tenant, filter) {
      const limit = filter.limit ?? MAX_AUDIT_PAGE;
      const entries = await store.listAudit(tenant, { ...auditQuery(filter), limit });
      return { entries, next: entries.length === limit ? entries.at(-1)!.seq : null };
    },

    async verify(tenant) {
      // The head and the highest number are read together; entries appended after that are not walked.
      const anchor = await store.transaction((tx) => tx.getAuditAnchor(tenant));
      const through = anchor.head ? anchor.head.seq : anchor.lastSeq;
      const verifier = createChainVerifier(tenant);
      let after = 0;
      for (;;) {
        const page = await store.listAudit(tenant, { after, through, limit: VERIFY_PAGE });
        for (const entry of page) if (verifier.push(entry)) return verifier.finish(anchor);
        if (page.length < VERIFY_PAGE) break;
        after = page.at(-1)!.seq;
      }
      return verifier.finish(anchor);
    },
  };
}

/**
 * Fits an event to the entry's schema (an export must verify offline against it): long strings
 * clipped, and the detail as it reads back from its canonical JSON, so what is hashed is what is
 * stored.
 */
function normalize(event: AuditEvent): AuditEvent {
  const clip = (value: string | null | undefined, max: number) => (typeof value === 'string' ? value.slice(0, max) : null);
  let detail: Record<string, unknown>;
  try {
    const copy: unknown = JSON.parse(canonicalJson(event.detail ?? {}));
    detail = copy !== null && typeof copy === 'object' && !Array.isArray(copy) ? (copy as Record<string, unknown>) : { value: copy };
  } catch {
    detail = { unrecordable: true };
  }
  const status = Number.isInteger(event.status) && event.status! >= 0 && event.status! <= 999 ? event.status! : 200;
  return {
    tenant: event.tenant.slice(0, 253),
    actor: clip(event.actor, 300) || 'anonymous',
    role: clip(event.role, 40),
    action: event.action.slice(0, 300),
    target: clip(event.target, 300),
    sourceIp: clip(event.sourceIp, 100),
    status,
    error: clip(event.error, 100),
    detail,
  };
}

/** The API's filters as store filters; a filter that cannot mean anything is refused, not ignored. */
export function auditQuery(filter: AuditFilter): Omit<AuditQuery, 'limit'> {
  const q: Omit<AuditQuery, 'limit'> = {};
  if (filter.after !== undefined) q.after = filter.after;
  for (const key of ['since', 'until'] as const) {
    const value = filter[key];
    if (value === undefined) continue;
    const ms = Date.parse(value);
    if (Number.isNaN(ms)) throw new DriftlessError('invalid-input', `${key}: "${value}" is not a time (use ISO 8601, e.g. 2025-06-01T12:00:00Z)`);
    q[key] = new Date(ms).toISOString();
  }
  if (filter.actor !== undefined) q.actor = filter.actor;
  if (filter.action !== undefined) {
    if (filter.action.endsWith('*')) q.actionPrefix = filter.action.slice(0, -1);
    else q.action = filter.action;
  }
  const outcome = filter.outcome;
  if (outcome === 'ok') q.maxStatus = 399;
  else if (outcome === 'failed') q.minStatus = 400;
  else if (outcome === 'denied') q.statuses = [401, 403];
  else if (outcome !== undefined && /^[1-5][0-9][0-9]$/.test(outcome)) q.statuses = [Number(outcome)];
  else if (outcome !== undefined && /^[a-z][a-z-]*$/.test(outcome)) q.error = outcome;
  else if (outcome !== undefined) throw new DriftlessError('invalid-input', `outcome: "${outcome}" is not ok, failed, denied, a status (403) or an error code (conflict)`);
  return q;
}
