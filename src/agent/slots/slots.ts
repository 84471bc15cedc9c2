import { Type, type Static } from '@sinclair/typebox';

/**
 * A/B slots with commit-or-revert, as a bootloader's boot counter does it (U-Boot's `bootcount`,
 * `bootlimit` and `altbootcmd`): a new release is written to the slot that is neither running nor
 * committed, switched to as a *trial*, and kept only when it says it is healthy before its deadline
 * and within its boot attempts. Otherwise the committed slot boots again, by itself, and the failure
 * is remembered so the old release can report it.
 *
 * Pure: every function takes a state document and returns the next one. Whoever boots things (the
 * agent launcher today, a partition-switching backend for OS bundles later) persists the returned
 * state *before* acting on it, so a crash at any point boots either the committed slot or the trial
 * with one more attempt counted, never an unknown one.
 */

export const SLOT_NAMES = ['a', 'b'] as const;
export type SlotName = (typeof SLOT_NAMES)[number];

const SlotNameSchema = Type.Union(SLOT_NAMES.map((s) => Type.Literal(s)));
const SlotContent = Type.Object({ version: Type.String(), sha256: Type.String() });
export type SlotContent = Static<typeof SlotContent>;

const Trial = Type.Object({
  slot: SlotNameSchema,
  version: Type.String(),
  sha256: Type.String(),
  /** Boots of the trial so far, counted before each boot. */
  bootAttempts: Type.Integer({ minimum: 0 }),
  /** Epoch milliseconds by which the trial must have said it is healthy. */
  deadlineAt: Type.Number(),
  /** How the trial's last boot ended, for the failure's reason. */
  lastExit: Type.Optional(Type.String()),
});
export type Trial = Static<typeof Trial>;

const SlotFailure = Type.Object({
  /** Unique per failure, so the old release reports each one exactly once. */
  id: Type.String(),
  slot: SlotNameSchema,
  version: Type.String(),
  sha256: Type.String(),
  reason: Type.String(),
  at: Type.String(),
});
export type SlotFailure = Static<typeof SlotFailure>;

export const SlotsState = Type.Object({
  /** The slot that boots; null is the factory install (what the launcher itself came with). */
  active: Type.Union([SlotNameSchema, Type.Null()]),
  /** The last slot that proved healthy; null is the factory install. */
  committed: Type.Union([SlotNameSchema, Type.Null()]),
  trial: Type.Union([Trial, Type.Null()]),
  slots: Type.Object({ a: Type.Union([SlotContent, Type.Null()]), b: Type.Union([SlotContent, Type.Null()]) }),
  lastFailure: Type.Union([SlotFailure, Type.Null()]),
});
export type SlotsState = Static<typeof SlotsState>;

export function initialSlotsState(): SlotsState {
  return { active: null, committed: null, trial: null, slots: { a: null, b: null }, lastFailure: null };
}

/** Where a new release may be written: never the committed slot, and nowhere while a trial runs. */
export function installTarget(state: SlotsState): SlotName | null {
  if (state.trial) return null;
  return state.committed === 'a' ? 'b' : 'a';
}

/** A release was written to `slot` and verified: boot it as a trial that must prove itself by `nowMs + trialMs`. */
export function beginTrial(state: SlotsState, release: { slot: SlotName } & SlotContent, nowMs: number, trialMs: number): SlotsState {
  if (installTarget(state) !== release.slot) {
    throw new Error(`cannot try slot ${release.slot}: ${state.trial ? `slot ${state.trial.slot} is on trial` : `slot ${release.slot} is the committed one`}`);
  }
  const content = { version: release.version, sha256: release.sha256 };
  return {
    ...state,
    active: release.slot,
    trial: { slot: release.slot, ...content, bootAttempts: 0, deadlineAt: nowMs + trialMs },
    slots: { ...state.slots, [release.slot]: content },
  };
}

export type BootDecision = {
  /** Persist this before booting. */
  state: SlotsState;
  /** The slot to boot (null: the factory install). */
  boot: SlotName | null;
  /** Set when this decision gave up on a trial. */
  reverted: SlotFailure | null;
};

/**
 * Which slot to boot now. A trial boots while it has attempts and time left, with the attempt
 * counted in the returned state; past either, it is abandoned for the committed slot.
 */
export function bootDecision(state: SlotsState, nowMs: number, maxAttempts: number): BootDecision {
  const trial = state.trial;
  if (!trial) return { state, boot: state.active, reverted: null };
  if (trial.bootAttempts >= maxAttempts) {
    const how = trial.lastExit ? `: ${trial.lastExit}` : '';
    return reverted(revert(state, `failed to start ${trial.bootAttempts} time${trial.bootAttempts === 1 ? '' : 's'}${how}`, nowMs));
  }
  if (nowMs >= trial.deadlineAt) {
    return reverted(revert(state, `did not report healthy within its deadline${trial.lastExit ? ` (last boot: ${trial.lastExit})` : ''}`, nowMs));
  }
  const next = { ...state, trial: { ...trial, bootAttempts: trial.bootAttempts + 1 } };
  return { state: next, boot: trial.slot, reverted: null };
}

function reverted(state: SlotsState): BootDecision {
  return { state, boot: state.active, reverted: state.lastFailure };
}

/** The trial's last boot ended this way (exited, was killed); kept for the failure's reason. */
export function noteExit(state: SlotsState, slot: SlotName | null, how: string): SlotsState {
  if (!state.trial || state.trial.slot !== slot) return state;
  return { ...state, trial: { ...state.trial, lastExit: how } };
}

/** The trial in `slot` said it is healthy in time: it becomes the committed slot. Anything else changes nothing. */
export function commit(state: SlotsState, slot: SlotName | null, nowMs: number): SlotsState {
  const trial = state.trial;
  if (!trial || trial.slot !== slot || nowMs >= trial.deadlineAt) return state;
  return { ...state, active: trial.slot, committed: trial.slot, trial: null };
}

/** Abandons the trial: the committed slot is active again and the failure is recorded for reporting. */
export function revert(state: SlotsState, reason: string, nowMs: number): SlotsState {
  const trial = state.trial;
  if (!trial) return state;
  const at = new Date(nowMs).toISOString();
  return {
    ...state,
    active: state.committed,
    trial: null,
    lastFailure: { id: `${trial.slot}-${trial.sha256.slice(0, 12)}-${nowMs}`, slot: trial.slot, version: trial.version, sha256: trial.sha256, reason, at },
  };
}

/** What runs in `slot` according to the state (null for the factory install or an empty slot). */
export function contentOf(state: SlotsState, slot: SlotName | null): SlotContent | null {
  return slot === null ? null : state.slots[slot];
}
