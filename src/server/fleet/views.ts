import type { DesiredComponent } from '../../protocol/messages.ts';
import type { DeviceView, DriftEntry } from '../../protocol/resources.ts';
import { analyseDevice, type HeldBack } from '../drift/drift.ts';
import { machineOf } from '../rollout/rollout-engine.ts';
import type { Presence } from '../presence.ts';
import { groupBy, type ComponentRecord, type DesiredRecord, type DeviceRecord, type Store } from '../store/store.ts';

export type FleetClock = { now: () => number; offlineAfterMs: number };

/** Devices analysed between two turns of the event loop. */
const ANALYSIS_SLICE = 500;

/** Devices as operators see them, with desired against actual per component, and the drift. */
export async function fleetView(store: Store, presence: Presence, clock: FleetClock, only?: (d: DeviceRecord) => boolean): Promise<{ devices: DeviceView[]; drift: DriftEntry[] }> {
  const devices = (await store.listDevices()).filter((d) => !only || only(d));
  const desired = new Map((await store.listDesired()).map((d) => [d.device, d]));
  const reported = groupBy(await store.listComponents(), (c) => c.device);
  const held = await rolloutHolds(store);
  const out: DeviceView[] = [];
  const drift: DriftEntry[] = [];
  for (const [i, device] of devices.entries()) {
    // A large fleet takes a while: other requests (device polls above all) get their turn between slices.
    if (i % ANALYSIS_SLICE === ANALYSIS_SLICE - 1) await new Promise((resolve) => setImmediate(resolve));
    const analysis = viewOf(device, desired.get(device.name), reported.get(device.name) ?? [], presence, clock, held(device.name));
    out.push(analysis.view);
    drift.push(...analysis.drift);
  }
  return { devices: out, drift };
}

export function viewOf(
  device: DeviceRecord,
  desired: DesiredRecord | undefined,
  reported: ComponentRecord[],
  presence: Presence,
  clock: FleetClock,
  held: HeldBack[] = [],
): { view: DeviceView; drift: DriftEntry[] } {
  const lastSeenMs = presence.lastSeenMs(device.name, device.lastSeen);
  const online = presence.isOnline(device, clock.now(), clock.offlineAfterMs);
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
    held,
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

/**
 * For each device, the Deployments whose newest revision its rollout has not given it, and why:
 * a device still waiting for its wave, for its maintenance window, or held back by a halted rollout.
 */
export async function rolloutHolds(store: Store): Promise<(device: string) => HeldBack[]> {
  const waitingForWindow = new Map<string, HeldBack[]>();
  const unfinished: HeldBack[] = [];
  for (const deployment of await store.listDeployments()) {
    if (deployment.targetRevision === deployment.revision) continue;
    const rollout = await store.getRollout(`${deployment.name}-${deployment.revision}`);
    const machine = rollout ? machineOf(rollout) : null;
    if (!rollout || !machine) continue;
    const base = { deployment: deployment.name, revision: deployment.revision, version: deployment.spec.template.version };
    for (const [device, slot] of Object.entries(machine.slots)) {
      if (slot.status !== 'waiting-window') continue;
      const hold: HeldBack = { ...base, reason: 'waiting-for-window', detail: `in wave ${slot.wave + 1}, waiting for its site's maintenance window`, since: rollout.updatedAt };
      waitingForWindow.set(device, [...(waitingForWindow.get(device) ?? []), hold]);
    }
    const detail = `rollout ${rollout.name} is ${rollout.state}${rollout.reason ? ` (${rollout.reason})` : ''}`;
    unfinished.push({ ...base, reason: 'held-by-rollout', detail, since: rollout.createdAt });
  }
  return (device) => {
    const own = waitingForWindow.get(device) ?? [];
    return [...own, ...unfinished.filter((h) => !own.some((o) => o.deployment === h.deployment))];
  };
}
