import type { DeviceEvent } from '../../protocol/messages.ts';
import { DriverError, type InstanceSpec, type RuntimeDriver, type RuntimeKind } from '../drivers/driver.ts';
import type { ProbeResult } from '../health/health.ts';
import type { ProbeTarget } from '../health/probe.ts';
import type { LedgerStore, SpecRecord } from '../ledger/ledger.ts';
import type { Step, StepAction, StepOf } from '../plan/steps.ts';
import type { HealthCheck } from '../../protocol/resources.ts';

export type ExecutorDeps = {
  drivers: Partial<Record<RuntimeKind, RuntimeDriver>>;
  ledger: LedgerStore;
  emit: (event: Omit<DeviceEvent, 'seq' | 'at'>) => void;
  waitForHealth: (check: HealthCheck | undefined, target: ProbeTarget, signal: AbortSignal) => Promise<ProbeResult>;
  nowIso: () => string;
  log: (message: string) => void;
};

/**
 * What an executor says about the rest of its component's steps: go on, or drop them because
 * the world is not what the plan assumed (an attempt just failed: removing the old version next
 * would only cause downtime). The component is planned again in the next round.
 */
export type StepOutcome = 'continue' | 'replan';
export type Executors = { [A in StepAction]: (step: StepOf<A>, signal: AbortSignal) => Promise<StepOutcome | void> };

/** One executor per step action. Each records its outcome durably before the next step runs. */
export function createExecutors(deps: ExecutorDeps): Executors {
  const driver = (runtime: RuntimeKind): RuntimeDriver => {
    const found = deps.drivers[runtime];
    if (!found) throw new DriverError('runtime-unavailable', `no ${runtime} runtime on this device`);
    return found;
  };

  /**
   * A version that cannot be fetched or started is a failed attempt, recorded so the next pass
   * returns to the last known good one. An unreachable runtime is transient: it is thrown, and
   * the loop retries with back-off without blaming the version.
   */
  const failAttempt = (key: string, spec: SpecRecord, error: unknown): void => {
    if (!(error instanceof DriverError) || error.reason === 'runtime-unavailable') throw error;
    const version = spec.component.version;
    const reason = error.reason === 'download-failed' ? 'download-failed' : 'start-failed';
    deps.ledger.update(key, (entry) => ({
      ...entry,
      attempt: null,
      failed: { ...entry.failed, [spec.specHash]: { reason, detail: `version ${version}: ${error.message}`, at: deps.nowIso() } },
    }));
    deps.emit({ type: 'start-failed', component: key, message: `version ${version}: ${error.message}` });
  };

  return {
    async 'begin-attempt'(step) {
      deps.ledger.update(step.key, (entry) => ({
        committed: entry.committed,
        attempt: { ...step.spec, startedAt: deps.nowIso() },
        // A new attempt starts a new story; a retried download starts with a clean slate too.
        failed: {},
      }));
      deps.log(`${step.key}: applying version ${step.spec.component.version}`);
    },

    async prepare(step) {
      const runtime = driver(step.runtime);
      if (!runtime.prepare) return;
      try {
        await runtime.prepare({ key: step.key, specHash: step.spec.specHash, component: step.spec.component });
      } catch (error) {
        failAttempt(step.key, step.spec, error);
        return 'replan';
      }
    },

    async create(step) {
      const spec: InstanceSpec = { key: step.key, specHash: step.spec.specHash, component: step.spec.component };
      try {
        await driver(step.runtime).create(spec);
      } catch (error) {
        if (!step.attempt) throw error;
        failAttempt(step.key, step.spec, error);
        return 'replan';
      }
      if (step.localChange) deps.emit({ type: 'local-change', component: step.key, message: step.localChange });
    },

    async start(step) {
      await driver(step.runtime).start(step.key);
      deps.emit({ type: 'local-change', component: step.key, message: step.localChange });
    },

    async remove(step) {
      await driver(step.runtime).remove(step.key);
      deps.log(`${step.key}: removed (${step.why})`);
    },

    async verify(step, signal) {
      const runtime = driver(step.runtime);
      const entry = deps.ledger.get()[step.key];
      if (entry?.failed[step.spec.specHash]) return; // the create step already recorded why it failed
      const result = await deps.waitForHealth(step.spec.component.health, probeTarget(runtime, step.key), signal);
      const version = step.spec.component.version;
      if (result.ok) {
        deps.ledger.update(step.key, () => ({ committed: step.spec, attempt: null, failed: {} }));
        deps.emit({ type: 'committed', component: step.key, message: `version ${version} passed its health check (${result.detail}) and is now last known good` });
        return;
      }
      deps.ledger.update(step.key, (e) => ({
        ...e,
        attempt: null,
        failed: { ...e.failed, [step.spec.specHash]: { reason: 'health-check-failed', detail: `version ${version}: ${result.detail}`, at: deps.nowIso() } },
      }));
      const back = step.previous ? `returning to version ${step.previous.component.version}` : 'no earlier version to return to';
      deps.emit({ type: 'reverted', component: step.key, message: `version ${version} failed its health check: ${result.detail}; ${back}` });
    },

    async 'clear-failures'(step) {
      deps.ledger.update(step.key, (entry) => ({ ...entry, failed: Object.fromEntries(Object.entries(entry.failed).filter(([hash]) => hash === step.keep)) }));
    },

    async forget(step) {
      deps.ledger.update(step.key, () => null);
    },
  };
}

/** Runs a plan's steps in order; a component whose step asked for a new plan has its remaining steps dropped. */
export async function applySteps(executors: Executors, steps: readonly Step[], signal: AbortSignal): Promise<void> {
  const dropped = new Set<string>();
  for (const step of steps) {
    if (signal.aborted) return;
    if (dropped.has(step.key)) continue;
    if ((await executeStep(executors, step, signal)) === 'replan') dropped.add(step.key);
  }
}

export async function executeStep(executors: Executors, step: Step, signal: AbortSignal): Promise<StepOutcome> {
  const run = executors[step.action] as (s: Step, signal: AbortSignal) => Promise<StepOutcome | void>;
  return (await run(step, signal)) ?? 'continue';
}

/** Where a health check reaches an instance: its published ports, its liveness, its exec. */
function probeTarget(driver: RuntimeDriver, key: string): ProbeTarget {
  let ports: Record<number, number> = {};
  const observe = async () => {
    const instance = (await driver.list()).find((i) => i.key === key);
    if (instance) ports = instance.ports;
    return instance;
  };
  return {
    address: (port) => ({ host: '127.0.0.1', port: ports[port] ?? port }),
    async isRunning() {
      const instance = await observe();
      return { running: instance?.running ?? false, exitCode: instance?.exitCode ?? null };
    },
    async exec(command, signal) {
      if (!driver.exec) throw new Error(`the ${driver.kind} runtime cannot run commands`);
      return driver.exec(key, command, signal);
    },
  };
}
