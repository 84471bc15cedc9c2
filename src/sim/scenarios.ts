import type { DesiredComponent } from '../protocol/messages.ts';
import type { FakeOutcome } from '../agent/drivers/fake/fake-driver.ts';
import type { SimDevice, SimFleet } from './fleet.ts';
import { unitHash } from './random.ts';

/**
 * Fault drills as data. Each row says what the fake runtimes do with which version on which
 * devices, and which links are cut, slow or lossy; benches, tests and the demo share them.
 * Durations are scenario time (the fleet's `timeScale` shrinks them alike).
 */
export type LinkFault = { online?: boolean; delayMs?: number; lossRatio?: number };

export type Scenario = {
  name: string;
  /** What an operator should see happen, in words. */
  description: string;
  behaviour: (device: SimDevice, component: DesiredComponent) => FakeOutcome;
  /** The link fault of a device, or null for a good link. */
  link: (device: SimDevice) => LinkFault | null;
};

const fine = (): FakeOutcome => ({});
const goodLinks = (): LinkFault | null => null;

/** How long after start a bad version crashes unless a row says otherwise: well inside the 3 s default health check. */
export const CRASH_AFTER_MS = 500;

/** Is this device among the `fraction` chosen for a fault? Stable per name and salt, so runs and callers agree. */
export function chosen(device: SimDevice, fraction: number, salt: string): boolean {
  return unitHash(`${salt}:${device.name}`) < fraction;
}

export function goodRelease(): Scenario {
  return { name: 'good-release', description: 'every version runs and stays up', behaviour: fine, link: goodLinks };
}

/** The July 2024 shape: `version` crashes shortly after start everywhere; every device must return to its last good version by itself. */
export function badRelease(version: string, crashAfterMs = CRASH_AFTER_MS): Scenario {
  return {
    name: 'bad-release',
    description: `version ${version} exits with code 1 ${crashAfterMs} ms after start on every device; each device reverts on its own`,
    behaviour: (_device, component) => (component.version === version ? { crashAfterMs } : {}),
    link: goodLinks,
  };
}

/** `version` crashes only on one hardware model (`arm64/rpi4`, say): healthy elsewhere, reverted there. */
export function badOnHardware(hardware: string, version: string, crashAfterMs = CRASH_AFTER_MS): Scenario {
  return {
    name: 'bad-on-hardware',
    description: `version ${version} exits with code 1 ${crashAfterMs} ms after start on ${hardware} only`,
    behaviour: (device, component) => (component.version === version && device.labels.hardware === hardware ? { crashAfterMs } : {}),
    link: goodLinks,
  };
}

/**
 * `version` passes its health check and crashes `delayMs` after each start: the device-side gate
 * cannot see it, only the restarts that follow (local-change events) and the rollout's health gates can.
 */
export function slowFailure(version: string, delayMs: number): Scenario {
  return {
    name: 'slow-failure',
    description: `version ${version} passes its health check, then exits with code 1 ${delayMs} ms after each start`,
    behaviour: (_device, component) => (component.version === version ? { crashAfterMs: delayMs } : {}),
    link: goodLinks,
  };
}

/** `version` cannot be downloaded (a missing tag, a registry outage): the old version keeps running, no downtime. */
export function downloadFails(version: string): Scenario {
  return {
    name: 'download-fails',
    description: `fetching version ${version} fails on every device; the running version stays`,
    behaviour: (_device, component) => (component.version === version ? { download: 'fail' } : {}),
    link: goodLinks,
  };
}

/** A `fraction` of devices on slow links that lose some requests (cellular backhaul, say). */
export function flakyLinks(fraction: number, fault: { delayMs?: number; lossRatio?: number } = {}): Scenario {
  const link: LinkFault = { delayMs: fault.delayMs ?? 2_000, lossRatio: fault.lossRatio ?? 0.2 };
  return {
    name: 'flaky-links',
    description: `${Math.round(fraction * 100)}% of devices wait ${link.delayMs} ms per request and lose ${Math.round(link.lossRatio! * 100)}% of them`,
    behaviour: fine,
    link: (device) => (chosen(device, fraction, 'flaky') ? link : null),
  };
}

/** A `fraction` of devices whose link is down: they keep running what they trusted, and the server reports them offline. */
export function offline(fraction: number): Scenario {
  return {
    name: 'offline',
    description: `${Math.round(fraction * 100)}% of devices lose their link`,
    behaviour: fine,
    link: (device) => (chosen(device, fraction, 'offline') ? { online: false } : null),
  };
}

/** Several drills at once: runtime outcomes and link faults merge, later rows winning where they disagree. */
export function combine(...scenarios: readonly Scenario[]): Scenario {
  return {
    name: scenarios.map((s) => s.name).join('+'),
    description: scenarios.map((s) => s.description).join('; '),
    behaviour: (device, component) => Object.assign({}, ...scenarios.map((s) => s.behaviour(device, component))) as FakeOutcome,
    link(device) {
      const faults = scenarios.map((s) => s.link(device)).filter((f): f is LinkFault => f !== null);
      return faults.length === 0 ? null : (Object.assign({}, ...faults) as LinkFault);
    },
  };
}

/**
 * Puts a scenario's link faults on a fleet; every other device gets a good link back. Returns the
 * devices faulted. Apply it after `start()`: a device cut off before it enrolled waits to enroll.
 */
export function applyLinkFaults(fleet: SimFleet, scenario: Scenario): SimDevice[] {
  const faulted: SimDevice[] = [];
  for (const device of fleet.devices) {
    const fault = scenario.link(device);
    fleet.setOnline(device.name, fault?.online ?? true);
    fleet.setLinkDelay(device.name, fault?.delayMs ?? 0);
    fleet.setLinkLoss(device.name, fault?.lossRatio ?? 0);
    if (fault) faulted.push(device);
  }
  return faulted;
}
