import type { ComponentStatus, DesiredComponent } from '../../protocol/messages.ts';
import { driftReasons, type DeviceComponentView, type DriftEntry, type DriftReason } from '../../protocol/resources.ts';

/** What the server knows of one device, enough to compare desired with actual. */
export type DeviceSnapshot = {
  name: string;
  site: string | null;
  online: boolean;
  lastSeen: string | null;
  /** The generation the server issued, and when. */
  generation: number;
  issuedAt: string | null;
  /** The generation the device last reported it trusted. */
  appliedGeneration: number;
  desired: readonly DesiredComponent[];
  reported: readonly ComponentStatus[];
  /** Deployments whose newest revision a rollout has not (yet) given this device, and why. */
  held?: readonly HeldBack[];
};

/** A device kept on an older revision by a rollout: not reached yet, waiting for its window, or halted. */
export type HeldBack = { deployment: string; revision: number; version: string; reason: 'held-by-rollout' | 'waiting-for-window'; detail: string; since: string | null };

export type DeviceAnalysis = { components: DeviceComponentView[]; drift: DriftEntry[] };

const keyOf = (c: { deployment: string; name: string }) => `${c.deployment}\u0000${c.name}`;
const isReason = (value: string | null): value is DriftReason => value !== null && (driftReasons as readonly string[]).includes(value);

/**
 * Desired against actual for one device: the component table `get devices` shows and one drift
 * entry for every component that is not running its desired version healthily, with the reason.
 * Pure, so the whole decision table is tested without a server.
 */
export function analyseDevice(device: DeviceSnapshot): DeviceAnalysis {
  const reported = new Map(device.reported.map((c) => [keyOf(c), c]));
  const components: DeviceComponentView[] = [];
  const drift: DriftEntry[] = [];
  const behind = device.appliedGeneration < device.generation;

  for (const want of device.desired) {
    const have = reported.get(keyOf(want));
    reported.delete(keyOf(want));
    const caughtUp = have !== undefined && have.desiredVersion === want.version;
    const view: DeviceComponentView = {
      name: want.name,
      deployment: want.deployment,
      desiredVersion: want.version,
      version: have?.version ?? null,
      state: caughtUp ? have.state : device.online ? 'pending' : 'unknown',
      reason: caughtUp ? have.reason : null,
      detail: caughtUp ? have.detail : null,
      since: have?.since ?? device.issuedAt,
    };
    components.push(view);
    const inLine = caughtUp && have.state === 'healthy' && have.version === want.version;
    if (inLine) continue;
    drift.push({
      device: device.name,
      site: device.site,
      component: want.name,
      deployment: want.deployment,
      desiredVersion: want.version,
      version: view.version,
      ...explain(device, want.version, caughtUp ? have : undefined, behind),
    });
  }

  // In line with what it was told, but not yet on its Deployment's newest revision: held by a rollout.
  for (const held of device.held ?? []) {
    for (const want of device.desired) {
      if (want.deployment !== held.deployment || want.revision >= held.revision) continue;
      if (drift.some((e) => e.deployment === want.deployment && e.component === want.name)) continue;
      const view = components.find((c) => c.deployment === want.deployment && c.name === want.name)!;
      drift.push({
        device: device.name,
        site: device.site,
        component: view.name,
        deployment: view.deployment,
        desiredVersion: held.version,
        version: view.version,
        reason: held.reason,
        detail: held.detail,
        since: held.since,
      });
    }
  }

  // Whatever the device still reports but should no longer run is drift until it is gone.
  for (const have of reported.values()) {
    components.push({ ...have, desiredVersion: null });
    drift.push({
      device: device.name,
      site: device.site,
      component: have.name,
      deployment: have.deployment,
      desiredVersion: null,
      version: have.version,
      reason: device.online ? 'applying' : 'offline',
      detail: device.online ? 'still reported by the device; it is to be removed' : offlineDetail(device),
      since: device.online ? device.issuedAt : device.lastSeen,
    });
  }
  return { components, drift };
}

function offlineDetail(device: DeviceSnapshot): string {
  return device.lastSeen ? `offline since ${device.lastSeen}` : 'has never contacted the server';
}

function explain(
  device: DeviceSnapshot,
  desiredVersion: string,
  have: ComponentStatus | undefined,
  behind: boolean,
): { reason: DriftReason; detail: string; since: string | null } {
  if (!device.online) return { reason: 'offline', detail: offlineDetail(device), since: device.lastSeen };
  if (!have) {
    const detail = behind
      ? `has not yet applied generation ${device.generation} (last applied ${device.appliedGeneration})`
      : `version ${desiredVersion} not reported yet`;
    return { reason: 'applying', detail, since: device.issuedAt };
  }
  switch (have.state) {
    case 'reverted':
      return { reason: 'reverted', detail: have.detail ?? `version ${desiredVersion} was reverted`, since: have.since };
    case 'failed':
      return { reason: isReason(have.reason) ? have.reason : 'start-failed', detail: have.detail ?? 'failed', since: have.since };
    case 'healthy':
      return { reason: 'local-change', detail: `runs ${have.version ?? 'nothing'} instead of ${desiredVersion}`, since: have.since };
    default:
      return { reason: isReason(have.reason) ? have.reason : 'applying', detail: have.detail ?? `applying version ${desiredVersion}`, since: have.since };
  }
}

/** A one-line summary of drift by reason: "3 of 500 devices drifted: 2 reverted, 1 offline". */
export function summariseDrift(entries: readonly DriftEntry[], deviceCount: number): string {
  if (entries.length === 0) return `no drift: all ${deviceCount} devices run their desired state`;
  const devices = new Set(entries.map((e) => e.device)).size;
  const byReason = new Map<string, number>();
  for (const e of entries) byReason.set(e.reason, (byReason.get(e.reason) ?? 0) + 1);
  const parts = [...byReason].sort((a, b) => b[1] - a[1]).map(([reason, n]) => `${n} ${reason}`);
  return `${devices} of ${deviceCount} devices drifted: ${parts.join(', ')}`;
}
