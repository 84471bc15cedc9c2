import type { DesiredComponent } from '../../protocol/messages.ts';
import type { DriftReason } from '../../protocol/resources.ts';
import { readJson, writeJson, type Storage } from '../storage/storage.ts';

/** A spec the agent has run, identified by the hash of the component as desired. */
export type SpecRecord = { specHash: string; component: DesiredComponent };
export type Failure = { reason: DriftReason; detail: string; at: string };

/**
 * What the agent knows of one component, kept durably: its last known good spec (committed after
 * its health check passed), the attempt in progress, and the specs that failed and must not be
 * tried again until the desired state changes.
 */
export type LedgerEntry = {
  committed: SpecRecord | null;
  attempt: (SpecRecord & { startedAt: string }) | null;
  failed: Record<string, Failure>;
};

export type Ledger = Record<string, LedgerEntry>;

export const emptyEntry = (): LedgerEntry => ({ committed: null, attempt: null, failed: {} });

const FILE = 'ledger.json';
const isLedger = (value: unknown): value is Ledger => value !== null && typeof value === 'object' && !Array.isArray(value);

export type LedgerStore = {
  get(): Ledger;
  /** Applies a change and makes it durable before returning. */
  update(key: string, change: (entry: LedgerEntry) => LedgerEntry | null): void;
};

export function createLedgerStore(storage: Storage): LedgerStore {
  let ledger: Ledger = readJson(storage, FILE, isLedger) ?? {};
  return {
    get: () => ledger,
    update(key, change) {
      const next = { ...ledger };
      const entry = change(ledger[key] ?? emptyEntry());
      if (entry) next[key] = entry;
      else delete next[key];
      writeJson(storage, FILE, next);
      ledger = next;
    },
  };
}
