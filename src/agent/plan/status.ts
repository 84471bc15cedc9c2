import type { ComponentStatus, DesiredComponent } from '../../protocol/messages.ts';
import { instanceKey, runtimeOf, type RuntimeKind } from '../drivers/driver.ts';
import { emptyEntry, type Ledger } from '../ledger/ledger.ts';
import { specHashOf, type ObservedInstance } from './plan.ts';

/**
 * Pure: the state of each desired component as the device reports it. `healthy` only ever means
 * the desired spec is committed and running; a failed spec with a good one running is `reverted`.
 */
export function componentStatuses(
  desired: readonly DesiredComponent[],
  instances: readonly ObservedInstance[],
  ledger: Ledger,
  unavailable: readonly RuntimeKind[],
  since: (key: string, state: string) => string,
): ComponentStatus[] {
  const byKey = new Map(instances.map((i) => [i.key, i]));
  // The agent's own component is reported by slots/self-update.ts.
  return desired.filter((component) => !component.agent).map((component) => {
    const key = instanceKey(component.deployment, component.name);
    const hash = specHashOf(component);
    const entry = ledger[key] ?? emptyEntry();
    const instance = byKey.get(key);
    const runningVersion = instance?.running ? instance.version : null;
    const base = { name: component.name, deployment: component.deployment, desiredVersion: component.version, desiredRevision: component.revision, version: runningVersion };
    const status = (state: ComponentStatus['state'], reason: string | null, detail: string | null): ComponentStatus => ({
      ...base,
      state,
      reason,
      detail,
      since: since(key, `${state}:${reason}:${hash}`),
    });

    if (unavailable.includes(runtimeOf(component))) {
      return status('unknown', 'start-failed', `the ${runtimeOf(component)} runtime cannot be reached`);
    }
    const failure = entry.failed[hash];
    if (failure) {
      const good = entry.committed;
      if (good && instance?.running && instance.specHash === good.specHash) {
        return status('reverted', failure.reason, `${failure.detail}; reverted to version ${good.component.version}`);
      }
      return status('failed', failure.reason, failure.detail);
    }
    if (entry.committed?.specHash === hash) {
      if (instance?.running && instance.specHash === hash) return status('healthy', null, null);
      return status('applying', 'local-change', instance ? 'stopped; starting it again' : 'missing; creating it again');
    }
    if (entry.attempt?.specHash === hash) return status('applying', 'applying', `applying version ${component.version}`);
    return status('pending', null, null);
  });
}
