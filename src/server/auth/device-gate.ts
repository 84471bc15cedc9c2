import type { DeviceRecord, Store } from '../store/store.ts';

/**
 * The devices that must be refused although their session token is still valid: pending ones and
 * revoked ones. Kept in memory so the unchanged-state poll stays free of database reads, and
 * changed in the same breath as the store (accept, revoke), so a revoked device is refused on its
 * very next request, not when its session expires.
 */
export type DeviceGate = {
  /** Why the device may not act (its status), or null when it may. */
  refusal(device: string): Exclude<DeviceRecord['status'], 'accepted'> | null;
  set(device: string, status: DeviceRecord['status']): void;
  /** Loads the store's view (every tenant): on start, and to pick up changes made by another replica. */
  load(store: Store): Promise<void>;
};

export function createDeviceGate(): DeviceGate {
  let refused = new Map<string, Exclude<DeviceRecord['status'], 'accepted'>>();
  return {
    refusal: (device) => refused.get(device) ?? null,
    set(device, status) {
      if (status === 'accepted') refused.delete(device);
      else refused.set(device, status);
    },
    async load(store) {
      const next = new Map<string, Exclude<DeviceRecord['status'], 'accepted'>>();
      for (const { name, status } of await store.listUnacceptedDevices()) if (status !== 'accepted') next.set(name, status);
      refused = next;
    },
  };
}
