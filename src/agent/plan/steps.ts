import type { RuntimeKind } from '../drivers/driver.ts';
import type { SpecRecord } from '../ledger/ledger.ts';

/**
 * The step vocabulary of the reconcile loop, defined once as a keyed map. The planner returns
 * these; the executors are a table with one entry per action, so none can be forgotten.
 */
export type StepPayloads = {
  /** Record, durably, that a new spec is being tried; done before anything risky. */
  'begin-attempt': { key: string; spec: SpecRecord };
  /** Fetch what a new spec needs (its image) while the old version still runs. */
  prepare: { key: string; runtime: RuntimeKind; spec: SpecRecord };
  /** Create and start an instance of a spec. `attempt` is true for a spec not yet committed. */
  create: { key: string; runtime: RuntimeKind; spec: SpecRecord; attempt: boolean; localChange: string | null };
  /** Start a stopped instance again (someone or something stopped it). */
  start: { key: string; runtime: RuntimeKind; localChange: string };
  /** Stop and delete an instance the agent created. Volumes are never deleted. */
  remove: { key: string; runtime: RuntimeKind; why: string };
  /** Wait for the attempted spec's health check, then commit it or mark it failed. */
  verify: { key: string; runtime: RuntimeKind; spec: SpecRecord; previous: SpecRecord | null };
  /** Drop failures of specs no longer desired, so a version desired again later is tried again. */
  'clear-failures': { key: string; keep: string };
  /** Drop the ledger entry of a component that is no longer desired and no longer runs. */
  forget: { key: string };
};

export type StepAction = keyof StepPayloads;
export type Step = { [A in StepAction]: { action: A } & StepPayloads[A] }[StepAction];
export type StepOf<A extends StepAction> = Extract<Step, { action: A }>;

