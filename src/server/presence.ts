import type { Store } from './store/store.ts';

/**
 * When each device last spoke to the server. Polls only touch memory; `flush()` writes what
 * changed in one transaction (a group commit), so an unchanged poll costs no database write.
 */
export type Presence = {
  saw(device: string, atMs: number): void;
  lastSeenMs(device: string, stored: string | null): number | null;
  /** Online: accepted, and heard from within `offlineAfterMs`. */
  isOnline(device: { name: string; lastSeen: string | null; status: string }, nowMs: number, offlineAfterMs: number): boolean;
  flush(): Promise<void>;
};

export function createPresence(store: Store): Presence {
  const latest = new Map<string, number>();
  const dirty = new Set<string>();
  return {
    saw(device, atMs) {
      latest.set(device, atMs);
      dirty.add(device);
    },
    lastSeenMs(device, stored) {
      const inMemory = latest.get(device);
      const fromStore = stored ? Date.parse(stored) : null;
      if (inMemory === undefined) return fromStore;
      return fromStore === null ? inMemory : Math.max(inMemory, fromStore);
    },
    isOnline(device, nowMs, offlineAfterMs) {
      const seen = this.lastSeenMs(device.name, device.lastSeen);
      return device.status === 'accepted' && seen !== null && nowMs - seen <= offlineAfterMs;
    },
    async flush() {
      if (dirty.size === 0) return;
      const batch = new Map<string, string>();
      for (const device of dirty) batch.set(device, new Date(latest.get(device)!).toISOString());
      dirty.clear();
      try {
        await store.transaction((tx) => tx.recordLastSeen(batch));
      } catch (error) {
        for (const device of batch.keys()) dirty.add(device);
        throw error;
      }
    },
  };
}
