import { cumulativeTargets, orderForWave, type Candidate, type NormalStrategy } from './waves.ts';

/**
 * The rollout state machine: (state, observation, clock) -> (new state, actions). Pure: it reads
 * nothing and writes nothing, so every path is tested without a server or a sleep. The engine
 * around it (rollout-engine.ts) stores the state and carries out the actions.
 */

export type Phase = 'progressing' | 'paused' | 'halted' | 'rolling-back' | 'rolled-back' | 'complete' | 'superseded';

/** Where one device stands in this rollout. */
export type SlotStatus =
  | 'queued' // chosen for a wave, waiting for a free slot (maxParallel)
  | 'waiting-window' // chosen, waiting for its site's maintenance window
  | 'released' // told to run the new revision, no verdict yet
  | 'updated' // reports the new revision healthy
  | 'failed' // reported a failure, or stayed silent past the update timeout
  | 'excused' // failed, and an operator resumed the halted rollout anyway: no longer counted against the threshold
  | 'reverted' // sent back to the previous revision by a rollback
  | 'recovered'; // back healthy on the previous revision after a rollback

export type Slot = { wave: number; why: string; status: SlotStatus; releasedAt: number | null; doneAt: number | null; detail: string | null };

export type TimelineEntry = { at: number; message: string };

export type MachineState = {
  phase: Phase;
  /** The wave in progress (or last started). -1 before the first. */
  wave: number;
  waveStartedAt: number | null;
  /** When the current wave's bake ends, once all its devices are updated. */
  bakeUntil: number | null;
  slots: Record<string, Slot>;
  timeline: TimelineEntry[];
  reason: string | null;
  /** When the failure threshold was crossed, if it was. */
  haltedAt: number | null;
  /** Seeds the canary order, so each rollout picks its own representative devices (deterministically). */
  seed?: string;
};

/** What the engine saw of one selected device this tick. */
export type DeviceObservation = Candidate & {
  /** This device's verdict on the new revision: healthy everywhere, failed (with why), or not yet. */
  onNew: { verdict: 'healthy' | 'failed' | 'pending'; detail: string | null };
  /** Whether it runs the previous revision healthily (to know a rollback has recovered it). */
  healthyOnPrevious: boolean;
  /** Whether its site's maintenance window is open now. */
  windowOpen: boolean;
};

export type Observation = { now: number; devices: readonly DeviceObservation[] };

export type Command = { kind: 'pause' } | { kind: 'resume' } | { kind: 'abort'; by: string };

export type Actions = {
  /** Devices to give the new revision. */
  release: string[];
  /** Devices to send back to what they ran before this rollout (a rollback, or a device that left it). */
  revert: string[];
  /** The rollout finished: the new revision is now what every selected device runs. */
  complete: boolean;
  /** The threshold was crossed (or an operator aborted): open an incident. */
  openIncident: boolean;
};

export function initialState(now: number, revision: number, fromRevision: number | null, seed = ''): MachineState {
  return {
    seed,
    phase: 'progressing',
    wave: -1,
    waveStartedAt: null,
    bakeUntil: null,
    slots: {},
    timeline: [{ at: now, message: `rollout of revision ${revision} started${fromRevision ? ` (from revision ${fromRevision})` : ''}` }],
    reason: null,
    haltedAt: null,
  };
}

/** Device failures named one by one in the timeline per tick; more are counted in one line. */
const MAX_FAILURE_NOTES = 10;

const inFlight = (s: Slot) => s.status === 'released';
const reached = (s: Slot) => s.status === 'released' || s.status === 'updated' || s.status === 'failed' || s.status === 'excused';

/** Applies an operator's command. Pausing stops new releases; abort rolls back like a crossed threshold. */
export function command(state: MachineState, cmd: Command, now: number): MachineState {
  const active = state.phase === 'progressing' || state.phase === 'paused';
  switch (cmd.kind) {
    case 'pause':
      if (state.phase !== 'progressing') return state;
      return { ...state, phase: 'paused', reason: 'paused by operator', timeline: [...state.timeline, { at: now, message: 'paused by operator' }] };
    case 'resume': {
      if (state.phase !== 'paused' && state.phase !== 'halted') return state;
      // Resuming a halted rollout accepts the failures that halted it; new ones count afresh.
      const slots = Object.fromEntries(Object.entries(state.slots).map(([name, s]) => [name, s.status === 'failed' ? { ...s, status: 'excused' as const } : s]));
      const excused = Object.values(slots).filter((s) => s.status === 'excused').length - Object.values(state.slots).filter((s) => s.status === 'excused').length;
      const message = state.phase === 'halted' && excused > 0 ? `resumed by operator, accepting ${devicesText(excused)} that failed` : 'resumed by operator';
      return { ...state, slots, phase: 'progressing', reason: null, haltedAt: null, timeline: [...state.timeline, { at: now, message }] };
    }
    case 'abort':
      if (!active && state.phase !== 'halted') return state;
      return { ...state, phase: 'rolling-back', reason: `aborted by ${cmd.by}`, haltedAt: now, timeline: [...state.timeline, { at: now, message: `aborted by ${cmd.by}; rolling back` }] };
  }
}

/**
 * One step of the machine. Called on every tick with what the devices report; advances at most
 * one wave per call, so a restart between ticks repeats nothing and skips nothing.
 */
export function advance(prev: MachineState, observation: Observation, strategy: NormalStrategy): { state: MachineState; actions: Actions } {
  const now = observation.now;
  const state: MachineState = { ...prev, slots: { ...prev.slots }, timeline: [...prev.timeline] };
  const actions: Actions = { release: [], revert: [], complete: false, openIncident: false };
  const note = (message: string) => state.timeline.push({ at: now, message });
  const byName = new Map(observation.devices.map((d) => [d.name, d]));
  const set = (name: string, change: Partial<Slot>) => {
    state.slots[name] = { ...state.slots[name]!, ...change };
  };

  if (state.phase === 'complete' || state.phase === 'superseded' || state.phase === 'rolled-back') return { state, actions };

  // 1. Verdicts of reached devices: healthy, failed, silent past the timeout, or regressed.
  // The timeline names the first few failures of a tick and counts the rest, so it stays readable (and small) when a whole wave fails.
  let failureNotes = 0;
  const noteFailure = (message: string) => {
    if (failureNotes++ < MAX_FAILURE_NOTES) note(message);
  };
  let left = 0;
  /** How many of the current wave left it this tick: as many others take their place, so a wave (a canary above all) never passes on fewer devices than planned. */
  let leftCurrentWave = 0;
  for (const [name, slot] of Object.entries(state.slots)) {
    const seen = byName.get(name);
    if (slot.status === 'released' && !seen && state.phase !== 'rolling-back') {
      // Released, no verdict yet, and no longer selected (relabelled, moved, revoked): it leaves the
      // rollout, neither a success nor a failure, and goes back to what it ran before this rollout
      // (should it match again, it rejoins as a newcomer).
      delete state.slots[name];
      actions.revert.push(name);
      if (slot.wave === state.wave) leftCurrentWave++;
      if (left++ < MAX_FAILURE_NOTES) note(`${name} left the rollout before its verdict: it is no longer selected`);
      continue;
    }
    if (slot.status === 'released' || slot.status === 'updated') {
      const verdict = seen?.onNew.verdict ?? 'pending';
      if (verdict === 'failed') {
        set(name, { status: 'failed', doneAt: now, detail: seen?.onNew.detail ?? 'failed' });
        noteFailure(`${name} failed${slot.status === 'updated' ? ' after it had reported healthy' : ''}: ${seen?.onNew.detail ?? 'failed'}`);
      } else if (slot.status === 'released' && verdict === 'healthy') {
        set(name, { status: 'updated', doneAt: now, detail: null });
      } else if (slot.status === 'released' && slot.releasedAt !== null && now - slot.releasedAt >= strategy.updateTimeoutMs) {
        const detail = `no healthy report within ${Math.round(strategy.updateTimeoutMs / 1000)}s of the release${seen && !seen.online ? ' (offline)' : ''}`;
        set(name, { status: 'failed', doneAt: now, detail });
        noteFailure(`${name} failed: ${detail}`);
      }
    } else if (slot.status === 'reverted' && seen?.healthyOnPrevious) {
      set(name, { status: 'recovered', doneAt: now });
    }
  }
  if (failureNotes > MAX_FAILURE_NOTES) note(`${devicesText(failureNotes - MAX_FAILURE_NOTES)} more failed`);
  if (left > MAX_FAILURE_NOTES) note(`${devicesText(left - MAX_FAILURE_NOTES)} more left the rollout`);

  // 2. The health gate: a crossed threshold halts, and with `rollback` sends everyone reached back.
  if (state.phase === 'progressing' || state.phase === 'paused') {
    const crossed = thresholdCrossed(state, strategy);
    if (crossed) {
      state.haltedAt = now;
      note(`threshold crossed: ${crossed}`);
      actions.openIncident = true;
      if (strategy.onFailure === 'rollback') {
        state.phase = 'rolling-back';
        state.reason = `halted: ${crossed}; rolling back`;
        note('halted; rolling back every device that received the revision');
      } else {
        state.phase = 'halted';
        state.reason = `halted: ${crossed}; paused for an operator (onFailure: pause)`;
        note('halted; waiting for an operator');
      }
    }
  }

  if (state.phase === 'rolling-back') {
    for (const [name, slot] of Object.entries(state.slots)) {
      if (reached(slot)) {
        set(name, { status: 'reverted', doneAt: null });
        actions.revert.push(name);
      } else if (slot.status === 'queued' || slot.status === 'waiting-window') {
        delete state.slots[name]; // never reached: it never sees the revision
      }
    }
    const reverted = Object.entries(state.slots).filter(([, s]) => s.status === 'reverted' || s.status === 'recovered');
    const recovered = reverted.filter(([, s]) => s.status === 'recovered').length;
    const gone = reverted.filter(([name]) => !byName.has(name)).length;
    const waitedOut = state.haltedAt !== null && now - state.haltedAt >= strategy.updateTimeoutMs;
    if (recovered + gone === reverted.length || waitedOut) {
      state.phase = 'rolled-back';
      const missing = reverted.length - recovered - gone;
      note(`rollback done: ${recovered} of ${reverted.length} devices recovered on the previous revision${missing > 0 ? `; ${missing} did not report back in time` : ''}`);
      state.reason = state.reason?.replace(/; rolling back$/, '; rolled back') ?? 'rolled back';
    }
    return { state, actions };
  }

  if (state.phase !== 'progressing') return { state, actions };

  // 3. Release devices waiting for a slot or a window, within maxParallel; others stand in for devices that left the current wave.
  releaseWaiting(state, byName, strategy, now, actions);
  if (leftCurrentWave > 0) {
    const standIns = observation.devices.filter((d) => !(d.name in state.slots));
    if (standIns.length > 0) startWave(state, state.wave, standIns, leftCurrentWave, strategy, now, actions, byName, note, 'took the place of devices that left in');
  }

  // Devices that start matching once the last wave has begun join it at once.
  const fleet = observation.devices.length;
  const targets = cumulativeTargets(strategy.waves, fleet);
  const last = strategy.waves.length - 1;
  if (state.wave === last) {
    const late = observation.devices.filter((d) => !(d.name in state.slots));
    if (late.length > 0) startWave(state, last, late, late.length, strategy, now, actions, byName, note);
  }

  // 4. Wave gate: a wave is done when each of its devices reports healthy or failed (failures
  // under the threshold are tolerated: that is what the threshold is for), then it bakes.
  if (state.wave >= 0) {
    const mine = Object.values(state.slots).filter((s) => s.wave === state.wave);
    const pending = mine.filter((s) => s.status !== 'updated' && s.status !== 'excused' && s.status !== 'failed').length;
    if (pending > 0) {
      state.reason = waitingReason(state, mine, byName, Object.entries(state.slots));
      return { state, actions };
    }
    const bakeMs = strategy.waves[state.wave]?.bakeMs ?? 0;
    if (state.bakeUntil === null && bakeMs > 0) {
      state.bakeUntil = now + bakeMs;
      note(`wave ${state.wave + 1} healthy (${mine.length} devices); baking for ${Math.round(bakeMs / 1000)}s`);
      state.reason = `wave ${state.wave + 1} baking`;
      return { state, actions };
    }
    if (state.bakeUntil !== null && now < state.bakeUntil) {
      state.reason = `wave ${state.wave + 1} baking until ${new Date(state.bakeUntil).toISOString()}`;
      return { state, actions };
    }
    const healthy = mine.filter((s) => s.status === 'updated').length;
    const failedText = healthy < mine.length ? `, ${mine.length - healthy} failed` : '';
    if (bakeMs === 0 || state.bakeUntil !== null) note(`wave ${state.wave + 1} passed its health gate (${healthy} devices healthy${failedText})`);
  }

  // 5. Next wave, or done. Devices that started matching late land in the wave being started.
  const unassigned = observation.devices.filter((d) => !(d.name in state.slots));
  if (state.wave >= last) {
    if (unassigned.length === 0) {
      state.phase = 'complete';
      state.reason = null;
      actions.complete = true;
      note(`complete: ${Object.values(state.slots).filter((s) => s.status === 'updated').length} devices run the revision`);
      return { state, actions };
    }
    startWave(state, last, unassigned, unassigned.length, strategy, now, actions, byName, note);
    return { state, actions };
  }
  const next = state.wave + 1;
  const assigned = Object.keys(state.slots).length;
  startWave(state, next, unassigned, Math.max(0, targets[next]! - assigned), strategy, now, actions, byName, note);
  return { state, actions };
}

function startWave(
  state: MachineState,
  wave: number,
  unassigned: readonly DeviceObservation[],
  count: number,
  strategy: NormalStrategy,
  now: number,
  actions: Actions,
  byName: Map<string, DeviceObservation>,
  note: (message: string) => void,
  /** Why devices join a wave already started (the note says so). */
  joining = 'that started matching joined',
): void {
  const chosen = orderForWave(unassigned, `${state.seed ?? ''}/wave-${wave}`).slice(0, count);
  const isNewWave = state.wave !== wave;
  state.wave = wave;
  state.bakeUntil = null;
  if (isNewWave) state.waveStartedAt = now;
  for (const { device, reason } of chosen) {
    state.slots[device.name] = { wave, why: wave === 0 ? `canary: ${reason}` : reason, status: 'queued', releasedAt: null, doneAt: null, detail: null };
  }
  if (isNewWave) note(`wave ${wave + 1} of ${strategy.waves.length} started: ${devicesText(chosen.length)}`);
  else if (chosen.length > 0) note(`${devicesText(chosen.length)} ${joining} wave ${wave + 1}`);
  releaseWaiting(state, byName, strategy, now, actions);
  state.reason = chosen.length === 0 ? null : `wave ${wave + 1} in progress`;
}

const devicesText = (n: number) => `${n} device${n === 1 ? '' : 's'}`;

function releaseWaiting(state: MachineState, byName: Map<string, DeviceObservation>, strategy: NormalStrategy, now: number, actions: Actions): void {
  let free = strategy.maxParallel - Object.values(state.slots).filter(inFlight).length;
  for (const [name, slot] of Object.entries(state.slots)) {
    if (slot.status !== 'queued' && slot.status !== 'waiting-window') continue;
    const seen = byName.get(name);
    if (!seen) {
      delete state.slots[name]; // stopped matching before it was reached: it leaves the rollout
      continue;
    }
    if (!seen.windowOpen) {
      if (slot.status !== 'waiting-window') state.slots[name] = { ...slot, status: 'waiting-window' };
      continue;
    }
    if (free <= 0) {
      if (slot.status !== 'queued') state.slots[name] = { ...slot, status: 'queued' };
      continue;
    }
    free--;
    state.slots[name] = { ...slot, status: 'released', releasedAt: now };
    actions.release.push(name);
  }
}

/** Why the current wave has not passed yet, in words: what it waits for. */
function waitingReason(state: MachineState, mine: Slot[], byName: Map<string, DeviceObservation>, all: [string, Slot][]): string {
  const count = (status: SlotStatus) => mine.filter((s) => s.status === status).length;
  const offline = all.filter(([name, s]) => s.wave === state.wave && s.status === 'released' && byName.get(name)?.online === false).length;
  const parts = [
    `${count('updated')} of ${mine.length} healthy`,
    count('released') - offline > 0 ? `${count('released') - offline} updating` : null,
    offline > 0 ? `${offline} offline` : null,
    count('waiting-window') > 0 ? `${count('waiting-window')} waiting for their maintenance window` : null,
    count('queued') > 0 ? `${count('queued')} queued (maxParallel)` : null,
    count('failed') > 0 ? `${count('failed')} failed (under the threshold)` : null,
  ].filter(Boolean);
  return `wave ${state.wave + 1}: ${parts.join(', ')}`;
}

/** The failure threshold, per wave and overall: a percentage of the devices reached that failed. */
export function thresholdCrossed(state: MachineState, strategy: NormalStrategy): string | null {
  const slots = Object.values(state.slots);
  const wave = slots.filter((s) => s.wave === state.wave);
  const waveFailed = wave.filter((s) => s.status === 'failed').length;
  const allFailed = slots.filter((s) => s.status === 'failed').length;
  const pct = (failed: number, of: number) => (of === 0 ? 0 : (failed * 100) / of);
  const max = strategy.maxFailurePercent;
  // Measured against the wave's full size, so one early failure in a large wave does not halt it.
  if (pct(waveFailed, wave.length) > max) {
    return `${waveFailed} of ${wave.length} devices in wave ${state.wave + 1} failed (${pct(waveFailed, wave.length).toFixed(1)}% > ${max}%)`;
  }
  if (pct(allFailed, slots.length) > max) {
    return `${allFailed} of ${slots.length} devices failed overall (${pct(allFailed, slots.length).toFixed(1)}% > ${max}%)`;
  }
  return null;
}

/** The rollout's progress per wave, as the API shows it. */
export function waveViews(state: MachineState, strategy: NormalStrategy, fleet: number): { index: number; devices: number; updated: number; failed: number; state: string }[] {
  const targets = cumulativeTargets(strategy.waves, fleet);
  return strategy.waves.map((_, index) => {
    const mine = Object.values(state.slots).filter((s) => s.wave === index);
    const planned = index === 0 ? targets[0]! : targets[index]! - targets[index - 1]!;
    const waveState =
      index < state.wave || (index === state.wave && state.phase === 'complete')
        ? 'complete'
        : index === state.wave
          ? state.phase === 'progressing'
            ? state.bakeUntil !== null
              ? 'baking'
              : 'progressing'
            : state.phase
          : state.phase === 'rolling-back' || state.phase === 'rolled-back'
            ? 'skipped'
            : 'pending';
    return {
      index,
      devices: mine.length > 0 ? mine.length : Math.max(0, planned),
      updated: mine.filter((s) => s.status === 'updated').length,
      // A failed device that was then rolled back still counts as failed: it keeps the failure's detail.
      failed: mine.filter((s) => s.status === 'failed' || s.status === 'excused' || ((s.status === 'reverted' || s.status === 'recovered') && s.detail !== null)).length,
      state: waveState,
    };
  });
}
