import type { Store } from '../store/store.ts';

/** Where the server keeps the release public keys: a JSON array of SPKI (base64) in the meta table. */
const RELEASE_KEYS_META = 'release-keys';

export async function readReleaseKeys(store: Store): Promise<string[]> {
  const stored = await store.getMeta(RELEASE_KEYS_META);
  return stored ? (JSON.parse(stored) as string[]) : [];
}

/**
 * The release keys: the ones given now, kept in the store so that a restart without the flag keeps
 * them. Devices pin the first keys they see and ignore later changes (rotation is not supported
 * yet), so a changed set matters only to devices that never saw one.
 */
export async function settleReleaseKeys(store: Store, given: readonly string[] | undefined): Promise<string[]> {
  if (!given || given.length === 0) return readReleaseKeys(store);
  const keys = [...new Set(given)].sort();
  await store.setMeta(RELEASE_KEYS_META, JSON.stringify(keys));
  return keys;
}
