import { readJson, writeJson, type Storage } from '../storage/storage.ts';

/**
 * What the agent trusts beyond the document it runs, durable across restarts: the highest
 * generation it ever accepted (with that document's hash) and the release keys it pinned. Kept in
 * its own file, written after the document, so putting back an old `desired.json` cannot roll the
 * device back: the document is checked against this floor when the agent starts.
 */
export type TrustState = { generation: number; contentHash: string; releaseKeys: string[] };

const FILE = 'trust.json';

const isTrustState = (v: unknown): v is TrustState =>
  v !== null &&
  typeof v === 'object' &&
  Number.isInteger((v as TrustState).generation) &&
  typeof (v as TrustState).contentHash === 'string' &&
  Array.isArray((v as TrustState).releaseKeys) &&
  (v as TrustState).releaseKeys.every((k) => typeof k === 'string');

export function loadTrustState(storage: Storage): TrustState | null {
  return readJson(storage, FILE, isTrustState);
}

/** Raises the floor (never lowers it) and keeps pinned release keys; durable on return. */
export function saveTrustState(storage: Storage, previous: TrustState | null, next: TrustState): TrustState {
  const kept: TrustState = previous && previous.generation > next.generation ? { ...previous, releaseKeys: next.releaseKeys } : next;
  writeJson(storage, FILE, kept);
  return kept;
}
