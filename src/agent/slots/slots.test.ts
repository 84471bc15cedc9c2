import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isValid } from '../../protocol/validate.ts';
import { beginTrial, bootDecision, commit, initialSlotsState, installTarget, noteExit, revert, SlotsState, type SlotName } from './slots.ts';

const GOOD = { version: '0.2.0', sha256: 'a'.repeat(64) };
const NEXT = { version: '0.3.0', sha256: 'b'.repeat(64) };
const T0 = Date.parse('2025-06-01T00:00:00.000Z');
const TRIAL_MS = 60_000;
const MAX = 2;

/**
 * Scenario table: each row is a sequence of events on the slots state, and the trace of what boots
 * after each. Events: `install X` (begin a trial of release X in the install target), `boot` (a
 * boot decision; the booted slot is traced as a, b or factory, with `!` when it reverted), `exit`
 * (the booted trial exited), `healthy` (the booted slot says healthy), `+Ns` (time passes).
 */
type Event = `install ${'good' | 'next'}` | 'boot' | 'exit' | 'healthy' | `+${number}s`;
type Row = { name: string; events: Event[]; boots: string[]; final: { active: SlotName | null; committed: SlotName | null; trial: boolean; failed: string | null } };

const rows: Row[] = [
  { name: 'factory boots the factory install', events: ['boot', 'boot'], boots: ['factory', 'factory'], final: { active: null, committed: null, trial: false, failed: null } },
  {
    name: 'a good release is tried, says healthy and is committed; it boots from then on',
    events: ['install good', 'boot', 'healthy', 'boot', 'exit', 'boot'],
    boots: ['a', 'a', 'a'],
    final: { active: 'a', committed: 'a', trial: false, failed: null },
  },
  {
    name: 'a release that crashes on start is abandoned after its boot attempts',
    events: ['install good', 'boot', 'exit', 'boot', 'exit', 'boot', 'boot'],
    boots: ['a', 'a', 'factory!', 'factory'],
    final: { active: null, committed: null, trial: false, failed: 'failed to start 2 times: exit code 1' },
  },
  {
    name: 'a release that hangs without saying healthy is abandoned at its deadline',
    events: ['install good', 'boot', '+61s', 'boot'],
    boots: ['a', 'factory!'],
    final: { active: null, committed: null, trial: false, failed: 'did not report healthy within its deadline' },
  },
  {
    name: 'healthy after the deadline is too late',
    events: ['install good', 'boot', '+60s', 'healthy', 'boot'],
    boots: ['a', 'factory!'],
    final: { active: null, committed: null, trial: false, failed: 'did not report healthy within its deadline' },
  },
  {
    name: 'one crash, then healthy on the second attempt: committed',
    events: ['install good', 'boot', 'exit', 'boot', 'healthy', 'boot'],
    boots: ['a', 'a', 'a'],
    final: { active: 'a', committed: 'a', trial: false, failed: null },
  },
  {
    name: 'after a commit the next release goes to the other slot, and a failure returns to the committed one, not the factory',
    events: ['install good', 'boot', 'healthy', 'install next', 'boot', 'exit', 'boot', 'exit', 'boot'],
    boots: ['a', 'b', 'b', 'a!'],
    final: { active: 'a', committed: 'a', trial: false, failed: 'failed to start 2 times: exit code 1' },
  },
  {
    name: 'a second good release alternates the slots',
    events: ['install good', 'boot', 'healthy', 'install next', 'boot', 'healthy', 'boot'],
    boots: ['a', 'b', 'b'],
    final: { active: 'b', committed: 'b', trial: false, failed: null },
  },
  {
    name: 'a retry after a failure overwrites the abandoned slot',
    events: ['install good', 'boot', 'exit', 'boot', 'exit', 'boot', 'install next', 'boot', 'healthy'],
    boots: ['a', 'a', 'factory!', 'a'],
    final: { active: 'a', committed: 'a', trial: false, failed: 'failed to start 2 times: exit code 1' },
  },
  {
    name: 'a power cut during the trial counts as a boot attempt (the counter was persisted before the boot)',
    events: ['install good', 'boot', 'boot', 'boot'],
    boots: ['a', 'a', 'factory!'],
    final: { active: null, committed: null, trial: false, failed: 'failed to start 2 times' },
  },
];

function play(row: Row): { boots: string[]; state: SlotsState } {
  let state = initialSlotsState();
  let now = T0;
  let booted: SlotName | null = null;
  const boots: string[] = [];
  for (const event of row.events) {
    if (event.startsWith('install ')) {
      const slot = installTarget(state);
      assert.ok(slot, `${row.name}: an install target exists`);
      state = beginTrial(state, { slot, ...(event === 'install good' ? GOOD : NEXT) }, now, TRIAL_MS);
    } else if (event === 'boot') {
      const decision = bootDecision(state, now, MAX);
      state = decision.state;
      booted = decision.boot;
      boots.push(`${booted ?? 'factory'}${decision.reverted ? '!' : ''}`);
    } else if (event === 'exit') {
      state = noteExit(state, booted, 'exit code 1');
    } else if (event === 'healthy') {
      state = commit(state, booted, now);
    } else {
      now += Number(event.slice(1, -1)) * 1000;
    }
    assert.ok(isValid(SlotsState, state), `${row.name}: after "${event}" the state is a valid document`);
    // Round trip through JSON, as the state file does.
    state = JSON.parse(JSON.stringify(state)) as SlotsState;
  }
  return { boots, state };
}

describe('slots: commit or revert', () => {
  for (const row of rows) {
    test(row.name, () => {
      const { boots, state } = play(row);
      assert.deepEqual(boots, row.boots);
      assert.deepEqual(
        { active: state.active, committed: state.committed, trial: state.trial !== null, failed: state.lastFailure?.reason ?? null },
        row.final,
      );
    });
  }

  test('the install target is never the committed slot, and there is none during a trial', () => {
    let state = initialSlotsState();
    assert.equal(installTarget(state), 'a');
    state = beginTrial(state, { slot: 'a', ...GOOD }, T0, TRIAL_MS);
    assert.equal(installTarget(state), null);
    assert.throws(() => beginTrial(state, { slot: 'b', ...NEXT }, T0, TRIAL_MS), /slot a is on trial/);
    state = commit(bootDecision(state, T0, MAX).state, 'a', T0);
    assert.equal(installTarget(state), 'b');
    assert.throws(() => beginTrial(state, { slot: 'a', ...NEXT }, T0, TRIAL_MS), /slot a is the committed one/);
  });

  test('a failure records what failed, with an id unique to it', () => {
    let state = beginTrial(initialSlotsState(), { slot: 'a', ...GOOD }, T0, TRIAL_MS);
    state = revert(state, 'because', T0 + 5);
    assert.deepEqual(state.lastFailure, { id: `a-${'a'.repeat(12)}-${T0 + 5}`, slot: 'a', version: '0.2.0', sha256: GOOD.sha256, reason: 'because', at: new Date(T0 + 5).toISOString() });
    assert.equal(revert(state, 'again', T0 + 6), state, 'no trial: nothing to revert');
  });

  test('healthy from a slot that is not on trial commits nothing', () => {
    const state = bootDecision(beginTrial(initialSlotsState(), { slot: 'a', ...GOOD }, T0, TRIAL_MS), T0, MAX).state;
    assert.equal(commit(state, null, T0), state);
    assert.equal(commit(state, 'b', T0), state);
  });
});
