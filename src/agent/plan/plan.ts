import { contentHash } from '../../protocol/canonical.ts';
import type { DesiredComponent } from '../../protocol/messages.ts';
import { instanceKey, runtimeOf, type Instance, type RuntimeKind } from '../drivers/driver.ts';
import { emptyEntry, type Ledger, type SpecRecord } from '../ledger/ledger.ts';
import type { Step } from './steps.ts';

export type ObservedInstance = Instance & { runtime: RuntimeKind };

export type PlanInput = {
  /** The trusted desired components, or null before any desired state was trusted: then nothing is touched. */
  desired: readonly DesiredComponent[] | null;
  instances: readonly ObservedInstance[];
  ledger: Ledger;
  /** Runtimes that could not be observed this pass; nothing of theirs is planned. */
  unavailable: readonly RuntimeKind[];
  /** The time now; when given, a failed download is tried again after DOWNLOAD_RETRY_MS (links come back). */
  nowMs?: number;
};

/** A download that failed is retried after this long; a version that failed its health check is not. */
export const DOWNLOAD_RETRY_MS = 5 * 60 * 1000;

/** The identity of a component as desired. The revision number is left out: a new revision that does not change this component does not restart it. */
export function specHashOf(component: DesiredComponent): string {
  const { revision: _revision, ...spec } = component;
  return contentHash(spec);
}

export function specRecord(component: DesiredComponent): SpecRecord {
  return { specHash: specHashOf(component), component };
}

/**
 * Which spec a component should run now: the desired one, unless it failed, in which case the
 * last known good one (or nothing, when there never was one).
 */
export function targetOf(desired: SpecRecord, entry = emptyEntry(), nowMs?: number): SpecRecord | null {
  const failure = entry.failed[desired.specHash];
  if (!failure) return desired;
  if (failure.reason === 'download-failed' && nowMs !== undefined && nowMs - Date.parse(failure.at) >= DOWNLOAD_RETRY_MS) return desired;
  return entry.committed && entry.committed.specHash !== desired.specHash ? entry.committed : null;
}

/**
 * Pure: what to do to bring the device from what runs to what is desired. Returns the steps in
 * order; an empty plan means converged. Each pass is planned anew from observed state, so a crash
 * between any two steps is finished by the next pass.
 */
export function plan(input: PlanInput): Step[] {
  if (input.desired === null) return [];
  const steps: Step[] = [];
  const instances = new Map(input.instances.map((i) => [i.key, i]));
  const wanted = new Set<string>();

  for (const component of input.desired) {
    if (component.agent) continue; // the agent itself updates through its A/B slots (slots/self-update.ts), not a runtime
    const key = instanceKey(component.deployment, component.name);
    wanted.add(key);
    const runtime = runtimeOf(component);
    if (input.unavailable.includes(runtime)) continue;
    const desired = specRecord(component);
    const entry = input.ledger[key] ?? emptyEntry();
    const target = targetOf(desired, entry, input.nowMs);
    const running = instances.get(key);
    if (Object.keys(entry.failed).some((hash) => hash !== desired.specHash)) {
      steps.push({ action: 'clear-failures', key, keep: desired.specHash });
    }

    if (target === null) {
      if (running) steps.push({ action: 'remove', key, runtime: running.runtime, why: `version ${component.version} failed and there is no earlier version to return to` });
      continue;
    }
    const committed = entry.committed?.specHash === target.specHash;
    if (!committed) {
      if (entry.attempt?.specHash !== target.specHash) steps.push({ action: 'begin-attempt', key, spec: target });
      // An instance of the attempted spec that does not run was never started (the agent died
      // between create and start) or has exited: run it again before judging it, never fail it unseen.
      if (!running || running.specHash !== target.specHash || !running.running) {
        steps.push({ action: 'prepare', key, runtime, spec: target });
        if (running) steps.push({ action: 'remove', key, runtime: running.runtime, why: `replaced by version ${component.version}` });
        steps.push({ action: 'create', key, runtime, spec: target, attempt: true, localChange: null });
      }
      steps.push({ action: 'verify', key, runtime, spec: target, previous: entry.committed });
      continue;
    }
    // The target may be the last known good, which can run on another runtime than the desired spec.
    const targetRuntime = runtimeOf(target.component);
    if (!running) {
      const localChange = target.specHash === desired.specHash ? `${key} was missing; created it again` : null;
      steps.push({ action: 'create', key, runtime: targetRuntime, spec: target, attempt: false, localChange });
    } else if (running.specHash !== target.specHash) {
      steps.push({ action: 'remove', key, runtime: running.runtime, why: `returning to version ${target.component.version}` });
      steps.push({ action: 'create', key, runtime: targetRuntime, spec: target, attempt: false, localChange: null });
    } else if (!running.running) {
      const code = running.exitCode === null ? '' : ` (exit code ${running.exitCode})`;
      steps.push({ action: 'start', key, runtime: running.runtime, localChange: `${key} was stopped${code}; started it again` });
    }
  }

  // Prune only what the agent owns and no longer wants: its own instances, then their ledger entries.
  for (const instance of input.instances) {
    if (!wanted.has(instance.key) && !input.unavailable.includes(instance.runtime)) {
      steps.push({ action: 'remove', key: instance.key, runtime: instance.runtime, why: 'no longer desired' });
    }
  }
  for (const key of Object.keys(input.ledger)) {
    if (!wanted.has(key) && !instances.has(key)) steps.push({ action: 'forget', key });
  }
  return steps;
}
