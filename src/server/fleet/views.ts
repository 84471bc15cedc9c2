import type { DesiredComponent } from '../../protocol/messages.ts';
import type { DeviceView, DriftEntry } from '../../protocol/resources.ts';
import { analyseDevice } from '../drift/drift.ts';
import type { Presence } from '../presence.ts';
import type { ComponentRecord, DesiredRecord, DeviceRecord, Store } from '../store/store.ts';

export type FleetClock = { now: () => number; offlineAfterMs: number };

/** Devices as operators see them, with desired against actual per component, and the drift. */
export async function fleetView(store: Store, presence: Presence, clock: FleetClock, only?: (d: DeviceRecord) => boolean): Promise<{ devices: DeviceView[]; drift: DriftEntry[] }> {
  const devices = (await store.listDevices()).filter((d) => !only || only(d));
  const desired = new Map((await store.listDesired()).map((d) => [d.device, d]));
  const reported = groupBy(await store.listComponents(), (c) => c.device);
  const out: DeviceView[] = [];
  const drift: DriftEntry[] = [];
  for (const device of devices) {
    const analysis = viewOf(device, desired.get(device.name), reported.get(device.name) ?? [], presence, clock);
    out.push(analysis.view);
    drift.push(...analysis.drift);
  }
  return { devices: out, drift };
}

export function viewOf(device: DeviceRecord, desired: DesiredRecord | undefined, reported: ComponentRecord[], presence: Presence, clock: FleetClock): { view: DeviceView; drift: DriftEntry[] } {
  const lastSeenMs = presence.lastSeenMs(device.name, device.lastSeen);
  const online = device.status === 'accepted' && lastSeenMs !== null && clock.now() - lastSeenMs <= clock.offlineAfterMs;
  const wanted: DesiredComponent[] = desired?.document.payload.components ?? [];
  const analysis = analyseDevice({
    name: device.name,
    site: device.site,
    online,
    lastSeen: lastSeenMs === null ? null : new Date(lastSeenMs).toISOString(),
    generation: desired?.generation ?? 0,
    issuedAt: desired?.issuedAt ?? null,
    appliedGeneration: device.appliedGeneration,
    desired: device.status === 'accepted' ? wanted : [],
    reported,
  });
  const view: DeviceView = {
    name: device.name,
    site: device.site,
    labels: device.labels,
    status: device.status,
    online,
    lastSeen: lastSeenMs === null ? null : new Date(lastSeenMs).toISOString(),
    enrolledAt: device.enrolledAt,
    facts: device.facts,
    generation: desired?.generation ?? 0,
    appliedGeneration: device.appliedGeneration,
    components: analysis.components,
  };
  return { view, drift: analysis.drift };
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}
