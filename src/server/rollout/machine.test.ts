import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { advance, command, initialState, thresholdCrossed, waveViews, type Actions, type Command, type DeviceObservation, type MachineState, type SlotStatus } from './machine.ts';
import { normalizeStrategy, type NormalStrategy } from './waves.ts';
import type { Strategy } from '../../protocol/resources.ts';

// The rollout state machine, driven step by step with explicit clock values: no server, no sleep.

const T0 = Date.parse('2025-06-01T12:00:00.000Z');
const SECOND = 1000;
const MINUTE = 60 * SECOND;

function device(name: string, change: Partial<DeviceObservation> = {}): DeviceObservation {
  return { name, site: `site-${name}`, region: 'eu', hardware: 'x64', online: true, onNew: { verdict: 'pending', detail: null }, healthyOnPrevious: true, windowOpen: true, ...change };
}

const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i + 1).padStart(3, '0')}`);

type Step = { at: number; release: string[]; revert: string[]; complete: boolean; openIncident: boolean; phase: string };

/**
 * A fleet around the machine: it keeps what each device reports, feeds it to `advance` with the
 * clock the test sets, and records every action. `auto` decides what a device reports after it
 * was released (healthy at once, by default), so multi-wave runs need no hand-feeding.
 */
class Sim {
  state: MachineState;
  now = T0;
  readonly devices = new Map<string, DeviceObservation>();
  readonly steps: Step[] = [];
  readonly strategy: NormalStrategy;
  auto: ((name: string) => Partial<DeviceObservation> | null) | null = () => ({ onNew: { verdict: 'healthy', detail: null } });
  roundTrip = false;

  constructor(strategy: Strategy | NormalStrategy, devices: readonly DeviceObservation[] | readonly string[], opts: { roundTrip?: boolean; auto?: Sim['auto'] } = {}) {
    this.strategy = 'updateTimeoutMs' in strategy ? strategy : normalizeStrategy(strategy);
    for (const d of devices) {
      const obs = typeof d === 'string' ? device(d) : d;
      this.devices.set(obs.name, obs);
    }
    this.state = initialState(T0, 2, 1);
    if (opts.roundTrip) this.roundTrip = true;
    if (opts.auto !== undefined) this.auto = opts.auto;
  }

  /** One tick at `at` (default: a second later), optionally after an operator's command. */
  step(at: number = this.now + SECOND, cmd?: Command): Actions {
    this.now = at;
    let before = this.roundTrip ? (JSON.parse(JSON.stringify(this.state)) as MachineState) : this.state;
    if (cmd) before = command(before, cmd, at);
    const { state, actions } = advance(before, { now: at, devices: [...this.devices.values()] }, this.strategy);
    this.state = state;
    this.steps.push({ at, release: actions.release, revert: actions.revert, complete: actions.complete, openIncident: actions.openIncident, phase: state.phase });
    for (const name of actions.release) {
      this.set(name, { healthyOnPrevious: false });
      const next = this.auto?.(name);
      if (next) this.set(name, next);
    }
    return actions;
  }

  /** Steps until `done` (or fails after `max` steps). */
  until(done: (s: Sim) => boolean, max = 200, dt = SECOND): void {
    for (let i = 0; i < max && !done(this); i++) this.step(this.now + dt);
    assert.ok(done(this), `not done after ${max} steps: ${JSON.stringify({ phase: this.state.phase, reason: this.state.reason, wave: this.state.wave })}`);
  }

  set(name: string, change: Partial<DeviceObservation>): void {
    this.devices.set(name, { ...(this.devices.get(name) ?? device(name)), ...change });
  }
  healthy(...list: string[]): void {
    for (const name of list) this.set(name, { onNew: { verdict: 'healthy', detail: null } });
  }
  fail(name: string, detail = 'health check failed: HTTP 404 from /healthz'): void {
    this.set(name, { onNew: { verdict: 'failed', detail } });
  }
  recover(...list: string[]): void {
    for (const name of list) this.set(name, { healthyOnPrevious: true, onNew: { verdict: 'pending', detail: null } });
  }
  status(name: string): SlotStatus | undefined {
    return this.state.slots[name]?.status;
  }
  withStatus(status: SlotStatus): string[] {
    return Object.entries(this.state.slots)
      .filter(([, s]) => s.status === status)
      .map(([n]) => n)
      .sort();
  }
  released(): string[] {
    return this.steps.flatMap((s) => s.release);
  }
  reverted(): string[] {
    return this.steps.flatMap((s) => s.revert);
  }
  wave(index: number): string[] {
    return Object.entries(this.state.slots)
      .filter(([, s]) => s.wave === index)
      .map(([n]) => n)
      .sort();
  }
  timeline(): string[] {
    return this.state.timeline.map((t) => t.message);
  }
}

describe('wave sizes as released', () => {
  test('1 device, 10%, 50%, 100% of 100 devices: 1, 9, 40 and 50 devices, one wave per tick when all are healthy', () => {
    const sim = new Sim({ waves: [{ devices: 1 }, { percent: 10 }, { percent: 50 }, { percent: 100 }] }, names('d', 100));
    sim.until((s) => s.state.phase === 'complete');
    assert.deepEqual(
      sim.steps.filter((s) => s.release.length > 0).map((s) => s.release.length),
      [1, 9, 40, 50],
    );
    assert.deepEqual([0, 1, 2, 3].map((w) => sim.wave(w).length), [1, 9, 40, 50]);
    assert.equal(new Set(sim.released()).size, 100, 'every device released exactly once');
    assert.equal(sim.released().length, 100);
    assert.equal(sim.steps.filter((s) => s.complete).length, 1, 'complete once');
    assert.equal(sim.steps.at(-1)!.complete, true);
    assert.deepEqual(sim.withStatus('updated').length, 100);
    const t = sim.timeline();
    assert.ok(t.includes('wave 1 of 4 started: 1 device'), t.join('\n'));
    assert.ok(t.includes('wave 2 of 4 started: 9 devices'), t.join('\n'));
    assert.ok(t.includes('wave 4 of 4 started: 50 devices'), t.join('\n'));
    assert.ok(t.includes('complete: 100 devices run the revision'), t.join('\n'));
    assert.equal(sim.state.reason, null);
  });

  test('the default waves on 5 devices: a wave that reaches nobody new is started and passes empty', () => {
    const sim = new Sim({}, names('d', 5));
    sim.until((s) => s.state.phase === 'complete');
    assert.deepEqual(sim.steps.map((s) => s.release.length), [1, 0, 2, 2, 0]);
    assert.ok(sim.timeline().includes('wave 2 of 4 started: 0 devices'), sim.timeline().join('\n'));
  });

  test('an empty fleet completes: every wave starts with no devices and the rollout ends complete', () => {
    const sim = new Sim({}, []);
    sim.until((s) => s.state.phase === 'complete', 10);
    assert.equal(sim.steps.length, 5, 'four empty waves, then complete');
    assert.deepEqual(sim.released(), []);
    assert.equal(sim.steps.at(-1)!.complete, true);
  });

  test('waveViews shows planned sizes for waves not started, counts for started ones', () => {
    const sim = new Sim({ waves: [{ devices: 2 }, { percent: 100 }] }, names('d', 10), { auto: null });
    sim.step();
    const views = waveViews(sim.state, sim.strategy, 10);
    assert.deepEqual(views, [
      { index: 0, devices: 2, updated: 0, failed: 0, state: 'progressing' },
      { index: 1, devices: 8, updated: 0, failed: 0, state: 'pending' },
    ]);
    sim.healthy(...sim.wave(0));
    sim.step();
    assert.deepEqual(waveViews(sim.state, sim.strategy, 10).map((w) => [w.updated, w.state]), [[2, 'complete'], [0, 'progressing']]);
  });
});

describe('bake timing', () => {
  const strategy = { waves: [{ devices: 2, bake: '10m' }, { percent: 100 }], maxFailurePercent: 0 } satisfies Strategy;

  test('a wave bakes for its bake time after its last device is healthy, then the next wave starts', () => {
    const sim = new Sim(strategy, names('d', 6), { auto: null });
    sim.step(T0);
    const [a, b] = sim.wave(0) as [string, string];
    assert.equal(sim.released().length, 2);

    sim.healthy(a);
    sim.step(T0 + 5 * SECOND);
    assert.equal(sim.state.bakeUntil, null, 'no bake while a device of the wave is still updating');
    sim.healthy(b);
    const lastHealthy = T0 + 30 * SECOND;
    sim.step(lastHealthy);
    assert.equal(sim.state.bakeUntil, lastHealthy + 10 * MINUTE, 'the bake counts from the last device healthy');
    assert.match(sim.state.reason ?? '', /wave 1 baking/);
    assert.deepEqual(waveViews(sim.state, sim.strategy, 6)[0]!.state, 'baking');

    sim.step(lastHealthy + 10 * MINUTE - 1);
    assert.equal(sim.released().length, 2, 'one millisecond before the bake ends: nothing new released');
    assert.match(sim.state.reason ?? '', /baking until 2025-06-01T12:10:29\.999Z|baking until 2025-06-01T12:10:30\.000Z/);

    const actions = sim.step(lastHealthy + 10 * MINUTE);
    assert.equal(actions.release.length, 4, 'the bake is over: wave 2 starts');
    assert.ok(sim.timeline().includes('wave 1 healthy (2 devices); baking for 600s'), sim.timeline().join('\n'));
    assert.ok(sim.timeline().includes('wave 1 passed its health gate (2 devices healthy)'), sim.timeline().join('\n'));
  });

  test('a regression during the bake is a failure: it crosses the threshold and halts, nothing more is released', () => {
    const sim = new Sim(strategy, names('d', 6), { auto: null });
    sim.step(T0);
    sim.healthy(...sim.wave(0));
    sim.step(T0 + SECOND);
    assert.ok(sim.state.bakeUntil !== null);
    const [a] = sim.wave(0) as [string];
    sim.fail(a, 'crashed: exit code 139');
    const actions = sim.step(T0 + 5 * MINUTE);
    assert.equal(sim.status(a), 'reverted', 'with onFailure rollback the regressed device goes back');
    assert.deepEqual(actions.revert.sort(), sim.wave(0));
    assert.equal(actions.openIncident, true);
    assert.equal(sim.state.phase, 'rolling-back');
    assert.ok(sim.timeline().some((m) => m === `${a} failed after it had reported healthy: crashed: exit code 139`), sim.timeline().join('\n'));
    sim.step(T0 + 20 * MINUTE);
    assert.equal(sim.released().length, 2, 'wave 2 never started');
  });

  test('a zero bake passes the wave on the tick its last device is healthy', () => {
    const sim = new Sim({ waves: [{ devices: 1 }, { percent: 100 }] }, names('d', 3), { auto: null });
    sim.step(T0);
    sim.healthy(...sim.wave(0));
    assert.equal(sim.step(T0 + SECOND).release.length, 2);
  });
});

describe('failure thresholds, per wave and overall', () => {
  test('per wave, against the wave size: 1 failure in a wave of 10 is 10%, not over 10%; a second is', () => {
    const sim = new Sim({ waves: [{ devices: 10 }, { percent: 100 }], maxFailurePercent: 10 }, names('d', 30), { auto: null });
    sim.step(T0);
    const wave = sim.wave(0);
    sim.fail(wave[0]!);
    sim.step();
    assert.equal(sim.state.phase, 'progressing', 'one early failure is measured against the 10 devices of the wave, not the 1 that answered');
    assert.equal(thresholdCrossed(sim.state, sim.strategy), null);
    assert.match(sim.state.reason ?? '', /1 failed \(under the threshold\)/);
    sim.fail(wave[1]!);
    const actions = sim.step();
    assert.equal(sim.state.phase, 'rolling-back');
    assert.equal(actions.openIncident, true);
    assert.match(sim.state.reason ?? '', /^halted: 2 of 10 devices in wave 1 failed \(20\.0% > 10%\); rolling back$/);
  });

  test('failures under the threshold do not hold the wave: it passes once every other device is healthy', () => {
    const sim = new Sim({ waves: [{ devices: 10 }, { percent: 100 }], maxFailurePercent: 10 }, names('d', 30), { auto: null });
    sim.step(T0);
    const wave = sim.wave(0);
    sim.fail(wave[0]!);
    sim.healthy(...wave.slice(1));
    const actions = sim.step();
    assert.equal(actions.release.length, 20, `wave 2 starts; reason: ${sim.state.reason}`);
    assert.equal(sim.status(wave[0]!), 'failed', 'the failure stays counted');
    assert.deepEqual(waveViews(sim.state, sim.strategy, 30)[0], { index: 0, devices: 10, updated: 9, failed: 1, state: 'complete' });
  });

  test('maxFailurePercent 0: any failure halts', () => {
    const sim = new Sim({ waves: [{ devices: 5 }, { percent: 100 }], maxFailurePercent: 0 }, names('d', 10), { auto: null });
    sim.step(T0);
    sim.fail(sim.wave(0)[2]!);
    sim.step();
    assert.equal(sim.state.phase, 'rolling-back');
  });

  test('overall: devices of a passed wave that regress later count against the whole rollout', () => {
    // 20%: wave 1 (5 devices) passes with 1 failure (20%, not over); during wave 2 two wave-1
    // devices regress: wave 2 itself is fine, but 3 of 10 reached (30%) is over.
    const sim = new Sim({ waves: [{ devices: 5 }, { devices: 5 }, { percent: 100 }], maxFailurePercent: 20 }, names('d', 20), { auto: null });
    sim.step(T0);
    const first = sim.wave(0);
    sim.fail(first[0]!);
    sim.healthy(...first.slice(1));
    sim.step();
    assert.equal(sim.state.wave, 1, `wave 2 started: ${sim.state.reason}`);
    sim.fail(first[1]!);
    sim.fail(first[2]!);
    sim.step();
    assert.equal(sim.state.phase, 'rolling-back');
    assert.match(sim.state.reason ?? '', /3 of 10 devices failed overall \(30\.0% > 20%\)/);
  });

  test('the threshold is judged while paused, too', () => {
    const sim = new Sim({ waves: [{ devices: 2 }, { percent: 100 }], maxFailurePercent: 0 }, names('d', 4), { auto: null });
    sim.step(T0);
    sim.step(T0 + SECOND, { kind: 'pause' });
    sim.fail(sim.wave(0)[0]!);
    sim.step();
    assert.equal(sim.state.phase, 'rolling-back');
  });
});

describe('onFailure: rollback', () => {
  test('every reached device is reverted, queued and window-waiting devices never get the revision, and the rollout ends rolled-back once they recover', () => {
    // Wave 1 is 4 devices with maxParallel 2: two are released, two queued; one more waits for its window.
    const fleet = names('d', 12).map((n) => device(n));
    const sim = new Sim({ waves: [{ devices: 5 }, { percent: 100 }], maxFailurePercent: 0, maxParallel: 2 }, fleet, { auto: null });
    const closed = sim.devices.get('d-012')!;
    sim.set(closed.name, { windowOpen: false, online: true });
    sim.step(T0);
    const wave = sim.wave(0);
    assert.equal(wave.length, 5);
    const released = sim.released();
    assert.equal(released.length, 2);
    const unreleased = wave.filter((n) => !released.includes(n));
    assert.ok(unreleased.every((n) => sim.status(n) === 'queued' || sim.status(n) === 'waiting-window'));

    sim.healthy(released[0]!);
    sim.fail(released[1]!, 'health check failed: HTTP 404 from /healthz');
    const actions = sim.step(T0 + 10 * SECOND);
    assert.deepEqual(actions.release, [], 'the crossing tick releases nobody');
    assert.deepEqual([...actions.revert].sort(), [...released].sort(), 'the healthy one too: everyone who received it goes back');
    assert.equal(actions.openIncident, true);
    for (const n of unreleased) assert.equal(sim.status(n), undefined, `${n} was never reached and leaves the rollout`);
    assert.equal(sim.state.phase, 'rolling-back');

    // No revert is repeated while waiting for the devices to recover.
    assert.deepEqual(sim.step(T0 + 20 * SECOND).revert, []);
    sim.recover(released[0]!);
    sim.step(T0 + 30 * SECOND);
    assert.equal(sim.state.phase, 'rolling-back', 'one device is not back yet');
    assert.equal(sim.status(released[0]!), 'recovered');
    sim.recover(released[1]!);
    sim.step(T0 + 40 * SECOND);
    assert.equal(sim.state.phase, 'rolled-back');
    assert.equal(sim.state.reason, 'halted: 1 of 5 devices in wave 1 failed (20.0% > 0%); rolled back');
    assert.ok(sim.timeline().includes('rollback done: 2 of 2 devices recovered on the previous revision'), sim.timeline().join('\n'));

    // Nothing happens any more, whatever the devices say.
    for (const n of sim.devices.keys()) sim.healthy(n);
    const later = sim.step(T0 + 60 * MINUTE);
    assert.deepEqual([later.release, later.revert, later.complete, later.openIncident], [[], [], false, false]);
    assert.deepEqual([...new Set(sim.released())].sort(), [...released].sort(), 'only the two ever got the revision');
    assert.equal(sim.steps.filter((s) => s.openIncident).length, 1, 'one incident');
  });

  test('a reverted device that never reports back does not hold the rollback past the update timeout', () => {
    const sim = new Sim({ waves: [{ devices: 2 }, { percent: 100 }], maxFailurePercent: 0, updateTimeout: '5m' }, names('d', 4), { auto: null });
    sim.step(T0);
    const [a, b] = sim.released() as [string, string];
    sim.fail(a);
    sim.step(T0 + SECOND);
    const haltedAt = T0 + SECOND;
    sim.recover(a);
    sim.set(b, { online: false });
    sim.step(haltedAt + 5 * MINUTE - 1);
    assert.equal(sim.state.phase, 'rolling-back');
    sim.step(haltedAt + 5 * MINUTE);
    assert.equal(sim.state.phase, 'rolled-back');
    assert.equal(sim.status(b), 'reverted');
    assert.ok(sim.timeline().includes('rollback done: 1 of 2 devices recovered on the previous revision; 1 did not report back in time'), sim.timeline().join('\n'));
  });

  test('a reverted device that left the fleet (revoked, relabelled) does not hold the rollback', () => {
    const sim = new Sim({ waves: [{ devices: 2 }, { percent: 100 }], maxFailurePercent: 0 }, names('d', 4), { auto: null });
    sim.step(T0);
    const [a, b] = sim.released() as [string, string];
    sim.fail(a);
    sim.step();
    sim.recover(a);
    sim.devices.delete(b);
    sim.step();
    assert.equal(sim.state.phase, 'rolled-back');
  });
});

describe('onFailure: pause', () => {
  test('halted: nothing reverted, nothing more released; resume accepts the failures and continues', () => {
    const sim = new Sim({ waves: [{ devices: 2 }, { percent: 100 }], maxFailurePercent: 0, onFailure: 'pause' }, names('d', 6), { auto: null });
    sim.step(T0);
    const [a, b] = sim.released() as [string, string];
    sim.fail(a);
    sim.healthy(b);
    const actions = sim.step(T0 + SECOND);
    assert.equal(sim.state.phase, 'halted');
    assert.deepEqual(actions.revert, []);
    assert.equal(actions.openIncident, true);
    assert.match(sim.state.reason ?? '', /^halted: 1 of 2 devices in wave 1 failed \(50\.0% > 0%\); paused for an operator \(onFailure: pause\)$/);
    for (let i = 2; i < 10; i++) {
      const later = sim.step(T0 + i * MINUTE);
      assert.deepEqual([later.release, later.revert, later.openIncident], [[], [], false], 'halted stays halted, and opens no second incident');
    }
    assert.equal(sim.state.phase, 'halted');

    const resumed = sim.step(T0 + 20 * MINUTE, { kind: 'resume' });
    assert.equal(sim.state.phase, 'progressing');
    assert.equal(resumed.release.length, 4, `the next wave goes out: ${sim.state.reason}`);
    assert.equal(resumed.openIncident, false);
    assert.ok(sim.timeline().some((m) => /^resumed by operator/.test(m)), sim.timeline().join('\n'));
    sim.healthy(...resumed.release);
    sim.step();
    assert.equal(sim.state.phase, 'complete');
    assert.equal(new Set(sim.released()).size, 6);
  });

  test('after a resume, new failures count afresh and halt again', () => {
    const sim = new Sim({ waves: [{ devices: 2 }, { percent: 100 }], maxFailurePercent: 0, onFailure: 'pause' }, names('d', 6), { auto: null });
    sim.step(T0);
    const [a, b] = sim.released() as [string, string];
    sim.fail(a);
    sim.healthy(b);
    sim.step();
    assert.equal(sim.state.phase, 'halted');
    const resumed = sim.step(sim.now + SECOND, { kind: 'resume' });
    assert.equal(resumed.release.length, 4);
    sim.fail(resumed.release[0]!);
    const again = sim.step();
    assert.equal(sim.state.phase, 'halted');
    assert.equal(again.openIncident, true);
  });

  test('abort while halted rolls back what was reached', () => {
    const sim = new Sim({ waves: [{ devices: 2 }, { percent: 100 }], maxFailurePercent: 0, onFailure: 'pause' }, names('d', 6), { auto: null });
    sim.step(T0);
    const reached = [...sim.released()].sort();
    sim.fail(reached[0]!);
    sim.step();
    const aborted = sim.step(sim.now + SECOND, { kind: 'abort', by: 'alice' });
    assert.deepEqual([...aborted.revert].sort(), reached);
    assert.equal(sim.state.reason, 'aborted by alice');
  });
});

describe('offline devices and the update timeout', () => {
  test('an offline device in a wave is shown as offline, never taken for a success, and fails after the update timeout', () => {
    const fleet = [device('on-1'), device('on-2'), device('off-1', { online: false })];
    const sim = new Sim({ waves: [{ percent: 100 }], maxFailurePercent: 50, updateTimeout: '10m' }, fleet, { auto: null });
    sim.step(T0);
    assert.deepEqual(sim.released().sort(), ['off-1', 'on-1', 'on-2'], 'released: it gets the revision when it comes back');
    sim.healthy('on-1', 'on-2');
    sim.step(T0 + MINUTE);
    assert.equal(sim.state.phase, 'progressing');
    assert.equal(sim.state.reason, 'wave 1: 2 of 3 healthy, 1 offline');
    sim.step(T0 + 10 * MINUTE - 1);
    assert.equal(sim.status('off-1'), 'released');
    sim.step(T0 + 10 * MINUTE);
    assert.equal(sim.status('off-1'), 'failed');
    assert.equal(sim.state.slots['off-1']!.detail, 'no healthy report within 600s of the release (offline)');
    // 1 of 3 is 33% — under 50%: it does not halt, and the rollout finishes with the failure counted.
    assert.equal(sim.state.phase, 'complete', `reason: ${sim.state.reason}`);
  });

  test('an online device that never answers fails after the update timeout, too', () => {
    const sim = new Sim({ waves: [{ devices: 1 }, { percent: 100 }], maxFailurePercent: 0, updateTimeout: '30s' }, names('d', 3), { auto: null });
    sim.step(T0);
    sim.step(T0 + 29 * SECOND);
    assert.match(sim.state.reason ?? '', /wave 1: 0 of 1 healthy, 1 updating/);
    sim.step(T0 + 30 * SECOND);
    assert.equal(sim.state.phase, 'rolling-back');
    assert.match(sim.state.reason ?? '', /1 of 1 devices in wave 1 failed/);
    assert.equal(sim.state.slots[sim.released()[0]!]!.detail, 'no healthy report within 30s of the release');
  });

  test('an offline device is chosen last for a wave when online ones are there', () => {
    const fleet = [device('a', { online: false }), device('b'), device('c')];
    const sim = new Sim({ waves: [{ devices: 2 }, { percent: 100 }] }, fleet, { auto: null });
    sim.step(T0);
    assert.deepEqual(sim.wave(0), ['b', 'c']);
  });
});

describe('maxParallel', () => {
  test('never more released-and-unfinished devices than the limit; the rest are queued and follow as slots free up', () => {
    const sim = new Sim({ waves: [{ percent: 100 }], maxParallel: 3 }, names('d', 10), { auto: null });
    let t = T0;
    const pending: string[] = [];
    for (let i = 0; i < 40 && sim.state.phase !== 'complete'; i++) {
      const actions = sim.step((t += SECOND));
      pending.push(...actions.release);
      assert.ok(sim.withStatus('released').length <= 3, `${sim.withStatus('released').length} in flight at step ${i}`);
      if (i > 0 && sim.withStatus('queued').length > 0) assert.match(sim.state.reason ?? '', /queued \(maxParallel\)/);
      // One device finishes per tick.
      const done = pending.shift();
      if (done) sim.healthy(done);
    }
    assert.equal(sim.state.phase, 'complete');
    assert.equal(sim.released().length, 10);
    assert.equal(new Set(sim.released()).size, 10);
  });
});

describe('maintenance windows', () => {
  test('a device waits for its window (the reason says so), then goes out when it opens; its update timeout starts then', () => {
    const fleet = [device('open-1'), device('shut-1', { windowOpen: false })];
    const sim = new Sim({ waves: [{ percent: 100 }], updateTimeout: '5m', maxFailurePercent: 0 }, fleet, { auto: null });
    sim.step(T0);
    assert.deepEqual(sim.released(), ['open-1']);
    assert.equal(sim.status('shut-1'), 'waiting-window');
    sim.healthy('open-1');
    sim.step(T0 + 3 * 3_600_000);
    assert.equal(sim.state.reason, 'wave 1: 1 of 2 healthy, 1 waiting for their maintenance window');
    assert.equal(sim.state.phase, 'progressing', 'hours in a closed window are no failure');
    sim.set('shut-1', { windowOpen: true });
    const opened = T0 + 5 * 3_600_000;
    assert.deepEqual(sim.step(opened).release, ['shut-1']);
    assert.equal(sim.state.slots['shut-1']!.releasedAt, opened);
    sim.step(opened + 5 * MINUTE - 1);
    assert.equal(sim.status('shut-1'), 'released');
    sim.healthy('shut-1');
    sim.step(opened + 5 * MINUTE);
    assert.equal(sim.state.phase, 'complete');
  });

  test('a window that closes again before the device was released sends it back to waiting', () => {
    const fleet = [device('a', { windowOpen: false })];
    const sim = new Sim({ waves: [{ percent: 100 }], maxParallel: 1 }, [...fleet, device('b')], { auto: null });
    sim.step(T0);
    assert.equal(sim.status('a'), 'waiting-window');
    sim.set('a', { windowOpen: true });
    sim.step();
    assert.equal(sim.status('a'), 'queued', 'b holds the only slot');
    sim.set('a', { windowOpen: false });
    sim.healthy('b');
    sim.step();
    assert.equal(sim.status('a'), 'waiting-window');
    assert.deepEqual(sim.released(), ['b']);
  });
});

describe('operator commands', () => {
  test('pause stops new waves but verdicts are still taken; resume continues where it was', () => {
    const sim = new Sim({ waves: [{ devices: 1 }, { percent: 100 }] }, names('d', 5), { auto: null });
    sim.step(T0);
    const [canary] = sim.released() as [string];
    sim.step(T0 + SECOND, { kind: 'pause' });
    assert.equal(sim.state.phase, 'paused');
    assert.equal(sim.state.reason, 'paused by operator');
    sim.healthy(canary);
    for (let i = 0; i < 5; i++) assert.deepEqual(sim.step().release, []);
    assert.equal(sim.status(canary), 'updated', 'the canary verdict is recorded while paused');
    const resumed = sim.step(sim.now + SECOND, { kind: 'resume' });
    assert.equal(resumed.release.length, 4);
    assert.deepEqual(sim.timeline().filter((m) => /operator/.test(m)), ['paused by operator', 'resumed by operator']);
  });

  test('pause holds devices queued by maxParallel, too', () => {
    const sim = new Sim({ waves: [{ percent: 100 }], maxParallel: 1 }, names('d', 3), { auto: null });
    sim.step(T0);
    sim.healthy(sim.released()[0]!);
    sim.step(sim.now + SECOND, { kind: 'pause' });
    assert.equal(sim.released().length, 1);
  });

  test('abort sends every reached device back and opens no new wave', () => {
    const sim = new Sim({ waves: [{ devices: 2 }, { percent: 100 }] }, names('d', 6), { auto: null });
    sim.step(T0);
    const reached = [...sim.released()].sort();
    sim.healthy(reached[0]!);
    const aborted = sim.step(T0 + SECOND, { kind: 'abort', by: 'operator' });
    assert.deepEqual([...aborted.revert].sort(), reached);
    assert.equal(sim.state.reason, 'aborted by operator');
    assert.equal(sim.state.phase, 'rolling-back');
    sim.recover(...reached);
    sim.step();
    assert.equal(sim.state.phase, 'rolled-back');
    assert.equal(sim.state.reason, 'aborted by operator');
    assert.ok(sim.timeline().includes('aborted by operator; rolling back'));
  });

  test('commands that do not apply change nothing', () => {
    const progressing = initialState(T0, 2, 1);
    assert.equal(command(progressing, { kind: 'resume' }, T0), progressing, 'resume while progressing');
    const done = (phase: MachineState['phase']) => ({ ...progressing, phase });
    for (const phase of ['complete', 'rolled-back', 'superseded', 'rolling-back'] as const) {
      for (const cmd of [{ kind: 'pause' }, { kind: 'resume' }, { kind: 'abort', by: 'x' }] as Command[]) {
        const s = done(phase);
        assert.equal(command(s, cmd, T0), s, `${cmd.kind} on ${phase}`);
      }
    }
    const paused = command(progressing, { kind: 'pause' }, T0);
    assert.equal(command(paused, { kind: 'pause' }, T0), paused, 'pause while paused');
  });

  test('a finished rollout ignores every observation', () => {
    const sim = new Sim({ waves: [{ percent: 100 }] }, names('d', 2));
    sim.until((s) => s.state.phase === 'complete');
    const before = JSON.stringify(sim.state);
    sim.fail('d-001');
    const after = sim.step(sim.now + 1);
    assert.equal(JSON.stringify(sim.state), before);
    assert.deepEqual([after.release, after.revert, after.complete], [[], [], false]);
  });
});

describe('devices that start matching while the rollout runs', () => {
  test('a device that joins during wave 1 counts in the next wave sizes and is released once', () => {
    // 10 devices: wave 1 = 1, wave 2 = 50%. An 11th joins during wave 1: wave 2 reaches 6 of 11.
    const sim = new Sim({ waves: [{ devices: 1 }, { percent: 50 }, { percent: 100 }] }, names('d', 10), { auto: null });
    sim.step(T0);
    sim.set('late-1', device('late-1'));
    sim.healthy(...sim.released());
    const second = sim.step();
    assert.equal(second.release.length, 5, 'ceil(50% of 11) - 1 = 5');
    sim.auto = () => ({ onNew: { verdict: 'healthy', detail: null } });
    sim.healthy(...second.release);
    sim.until((s) => s.state.phase === 'complete');
    assert.equal(sim.released().filter((n) => n === 'late-1').length, 1);
    assert.equal(sim.released().length, 11);
  });

  test('a device that joins after the last wave started joins that wave at once', () => {
    const sim = new Sim({ waves: [{ devices: 1 }, { percent: 100 }] }, names('d', 4), { auto: null });
    sim.step(T0);
    sim.healthy(...sim.released());
    sim.step();
    assert.equal(sim.state.wave, 1);
    // The last wave is in progress (not all healthy yet) when a new device starts matching.
    sim.set('late-1', device('late-1'));
    const joined = sim.step();
    assert.deepEqual(joined.release, ['late-1']);
    assert.equal(sim.state.slots['late-1']!.wave, 1);
    assert.ok(sim.timeline().includes('1 device that started matching joined wave 2'), sim.timeline().join('\n'));
    for (const n of sim.devices.keys()) sim.healthy(n);
    sim.step();
    assert.equal(sim.state.phase, 'complete');
  });

  test('a rollout does not complete while a device that joined has not updated', () => {
    const sim = new Sim({ waves: [{ percent: 100 }] }, names('d', 2), { auto: null });
    sim.step(T0);
    sim.healthy('d-001', 'd-002');
    sim.set('late-1', device('late-1'));
    sim.step();
    assert.notEqual(sim.state.phase, 'complete');
    sim.healthy('late-1');
    sim.until((s) => s.state.phase === 'complete', 3);
  });

  test('a queued device that stops matching before it was released does not hold its wave forever', () => {
    const sim = new Sim({ waves: [{ percent: 100 }], maxParallel: 1 }, names('d', 3), { auto: null });
    sim.step(T0);
    const [first] = sim.released() as [string];
    const queued = sim.withStatus('queued');
    assert.equal(queued.length, 2);
    sim.devices.delete(queued[0]!);
    sim.healthy(first);
    sim.auto = () => ({ onNew: { verdict: 'healthy', detail: null } });
    sim.until((s) => s.state.phase === 'complete', 10);
    assert.ok(!sim.released().includes(queued[0]!));
  });
});

describe('devices that stop being selected while the rollout runs', () => {
  test('a released device that stops matching before its verdict leaves the rollout: no failure, no halt, sent back, and the wave passes', () => {
    // maxFailurePercent 0: were it counted as a failure (it would time out), the rollout would halt.
    const sim = new Sim({ waves: [{ percent: 100 }], maxFailurePercent: 0 }, names('d', 3), { auto: null });
    sim.step(T0);
    assert.deepEqual(sim.withStatus('released'), ['d-001', 'd-002', 'd-003']);
    sim.healthy('d-001', 'd-002');
    sim.devices.delete('d-003');
    const actions = sim.step();
    assert.deepEqual(actions.revert, ['d-003'], 'back to what it ran before this rollout');
    assert.equal(sim.status('d-003'), undefined);
    assert.equal(actions.openIncident, false);
    assert.ok(sim.timeline().includes('d-003 left the rollout before its verdict: it is no longer selected'), sim.timeline().join('\n'));
    sim.until((s) => s.state.phase === 'complete', 5);
    assert.equal(sim.state.haltedAt, null);
    // Long after the update timeout, nothing about it has changed.
    sim.step(sim.now + sim.strategy.updateTimeoutMs * 2);
    assert.equal(sim.state.phase, 'complete');
  });

  test('a canary that leaves before its verdict is replaced: the canary wave never passes on no device', () => {
    const sim = new Sim({ waves: [{ devices: 1 }, { percent: 100 }], maxFailurePercent: 0 }, names('d', 5), { auto: null });
    sim.step(T0);
    const [canary] = sim.released() as [string];
    sim.devices.delete(canary);
    const actions = sim.step();
    assert.deepEqual(actions.revert, [canary]);
    assert.equal(actions.release.length, 1, 'a stand-in canary');
    const [standIn] = actions.release as [string];
    assert.equal(sim.state.slots[standIn]?.wave, 0);
    assert.match(sim.state.slots[standIn]!.why, /^canary: /);
    assert.ok(sim.timeline().includes('1 device took the place of devices that left in wave 1'), sim.timeline().join('\n'));
    // The second wave waits for the stand-in's verdict.
    sim.step();
    assert.equal(sim.state.wave, 0);
    sim.healthy(standIn);
    sim.step();
    assert.equal(sim.state.wave, 1);
  });

  test('an updated device that stops matching stays counted as updated, and one that matches again rejoins once', () => {
    const sim = new Sim({ waves: [{ devices: 1 }, { percent: 100 }] }, names('d', 3), { auto: null });
    sim.step(T0);
    const [canary] = sim.released() as [string];
    sim.healthy(canary);
    sim.step();
    const second = sim.withStatus('released');
    assert.equal(second.length, 2);
    const [leaver, stayer] = second as [string, string];
    const kept = sim.devices.get(leaver)!;
    sim.devices.delete(leaver);
    sim.devices.delete(canary);
    sim.step();
    assert.equal(sim.status(canary), 'updated');
    assert.equal(sim.status(leaver), undefined);
    sim.devices.set(leaver, { ...kept, onNew: { verdict: 'pending', detail: null } });
    sim.step();
    assert.equal(sim.status(leaver), 'released', 'rejoined the last wave');
    sim.healthy(leaver, stayer);
    sim.until((s) => s.state.phase === 'complete', 5);
    assert.equal(sim.released().filter((n) => n === leaver).length, 2, 'released again after it came back');
  });

  test('while rolling back, a reached device that left is not released or reverted twice', () => {
    const sim = new Sim({ waves: [{ percent: 100 }], maxFailurePercent: 0, onFailure: 'rollback' }, names('d', 3), { auto: null });
    sim.step(T0);
    sim.fail('d-001');
    sim.step();
    assert.equal(sim.state.phase, 'rolling-back');
    sim.devices.delete('d-002');
    sim.step();
    assert.equal(sim.reverted().filter((n) => n === 'd-002').length, 1);
  });
});

// ---- Whole runs: restart safety, release-once and blast radius, over random fleets and verdicts ----

type Script = { outcome: 'healthy' | 'failed' | 'silent'; delay: number; regressAfter: number | null; recoverDelay: number; online: boolean; window: boolean[]; joinsAt: number; site: number; hw: number };

const scriptArb = (outcomes: Script['outcome'][]): fc.Arbitrary<Script> =>
  fc.record({
    outcome: fc.constantFrom(...outcomes),
    delay: fc.integer({ min: 0, max: 3 }),
    regressAfter: fc.option(fc.integer({ min: 1, max: 8 }), { nil: null }),
    recoverDelay: fc.integer({ min: 0, max: 4 }),
    online: fc.boolean(),
    window: fc.array(fc.boolean(), { minLength: 1, maxLength: 4 }),
    joinsAt: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 1, max: 12 })),
    site: fc.integer({ min: 0, max: 5 }),
    hw: fc.integer({ min: 0, max: 2 }),
  });

const strategyArb: fc.Arbitrary<Strategy> = fc.record({
  waves: fc.array(
    fc.oneof(
      fc.record({ devices: fc.integer({ min: 1, max: 5 }), bake: fc.constantFrom('0s', '2s', '5s') }),
      fc.record({ percent: fc.integer({ min: 1, max: 100 }), bake: fc.constantFrom('0s', '3s') }),
    ),
    { minLength: 1, maxLength: 4 },
  ),
  maxFailurePercent: fc.constantFrom(0, 10, 34, 50, 100),
  onFailure: fc.constantFrom('rollback' as const, 'pause' as const),
  maxParallel: fc.constantFrom(1, 2, 3, 1000),
  updateTimeout: fc.constantFrom('4s', '8s'),
});

type CommandAt = { tick: number; cmd: Command };
const commandsArb = fc.array(
  fc.record({ tick: fc.integer({ min: 0, max: 40 }), cmd: fc.constantFrom<Command>({ kind: 'pause' }, { kind: 'resume' }, { kind: 'abort', by: 'operator' }) }),
  { maxLength: 3 },
);

/**
 * Runs a whole rollout over scripted devices: each device reports its scripted verdict `delay`
 * ticks after its release (or never, when silent), may regress later, reports the previous
 * revision healthy `recoverDelay` ticks after a revert, and has a maintenance window that opens
 * and closes in a repeating pattern.
 */
function runScripted(strategy: Strategy, scripts: readonly Script[], commands: readonly CommandAt[], roundTrip: boolean, ticks = 60) {
  const sim = new Sim(strategy, [], { roundTrip, auto: null });
  const releasedAt = new Map<string, number>();
  const revertedAt = new Map<string, number>();
  const maxParallel = sim.strategy.maxParallel;
  const inFlightMax: number[] = [];
  for (let tick = 0; tick < ticks; tick++) {
    scripts.forEach((s, i) => {
      const name = `dev-${String(i).padStart(2, '0')}`;
      if (tick < s.joinsAt) return;
      const released = releasedAt.get(name);
      const reverted = revertedAt.get(name);
      let verdict: DeviceObservation['onNew'] = { verdict: 'pending', detail: null };
      if (released !== undefined && reverted === undefined && s.online) {
        const age = tick - released;
        if (s.outcome === 'healthy' && age >= s.delay) verdict = s.regressAfter !== null && age >= s.delay + s.regressAfter ? { verdict: 'failed', detail: 'regressed' } : { verdict: 'healthy', detail: null };
        if (s.outcome === 'failed' && age >= s.delay) verdict = { verdict: 'failed', detail: 'health check failed' };
      }
      sim.set(name, {
        site: `site-${s.site}`,
        region: `region-${s.site % 2}`,
        hardware: `hw-${s.hw}`,
        online: s.online,
        windowOpen: s.window[tick % s.window.length]!,
        onNew: verdict,
        healthyOnPrevious: released === undefined || (reverted !== undefined && tick - reverted >= s.recoverDelay && s.online),
      });
    });
    const cmd = commands.find((c) => c.tick === tick)?.cmd;
    const actions = sim.step(T0 + tick * SECOND, cmd);
    for (const n of actions.release) releasedAt.set(n, tick);
    for (const n of actions.revert) revertedAt.set(n, tick);
    inFlightMax.push(Object.values(sim.state.slots).filter((s) => s.status === 'released').length);
    if (inFlightMax.at(-1)! > maxParallel) break;
  }
  return { sim, steps: sim.steps, state: sim.state, inFlightMax };
}

describe('whole runs (property tests)', () => {
  test('a restart between any two ticks changes nothing: with the state through JSON every tick, the same releases, reverts and final state', () => {
    fc.assert(
      fc.property(strategyArb, fc.array(scriptArb(['healthy', 'healthy', 'failed', 'silent']), { maxLength: 14 }), commandsArb, (strategy, scripts, commands) => {
        const plain = runScripted(strategy, scripts, commands, false);
        const restarted = runScripted(strategy, scripts, commands, true);
        assert.deepEqual(restarted.steps, plain.steps);
        assert.deepEqual(JSON.parse(JSON.stringify(restarted.state)), JSON.parse(JSON.stringify(plain.state)));
      }),
      { numRuns: 150 },
    );
  });

  test('every run: released at most once, reverted at most once and only if released, never over maxParallel, incident opened at most once per halt', () => {
    fc.assert(
      fc.property(strategyArb, fc.array(scriptArb(['healthy', 'healthy', 'failed', 'silent']), { maxLength: 14 }), commandsArb, (strategy, scripts, commands) => {
        const { steps, state, inFlightMax, sim } = runScripted(strategy, scripts, commands, false);
        const released = steps.flatMap((s) => s.release);
        const reverted = steps.flatMap((s) => s.revert);
        assert.equal(new Set(released).size, released.length, `released twice: ${released}`);
        assert.equal(new Set(reverted).size, reverted.length, `reverted twice: ${reverted}`);
        for (const n of reverted) assert.ok(released.includes(n), `${n} reverted but never released`);
        assert.ok(Math.max(0, ...inFlightMax) <= sim.strategy.maxParallel, `in flight ${Math.max(...inFlightMax)} > ${sim.strategy.maxParallel}`);
        assert.ok(steps.filter((s) => s.complete).length <= 1);
        // A device released after a rollback began would be a bug: releases stop at the halt.
        const firstRevert = steps.findIndex((s) => s.revert.length > 0);
        if (firstRevert >= 0) assert.deepEqual(steps.slice(firstRevert).flatMap((s) => s.release), []);
        // Complete means every device the rollout holds is updated (or a counted failure), and no slot is left waiting.
        if (state.phase === 'complete') {
          for (const [n, s] of Object.entries(state.slots)) assert.ok(['updated', 'failed', 'excused'].includes(s.status), `${n} is ${s.status} in a complete rollout`);
        }
        if (state.phase === 'rolled-back') {
          for (const [n, s] of Object.entries(state.slots)) assert.ok(['reverted', 'recovered'].includes(s.status), `${n} is ${s.status} after the rollback`);
        }
      }),
      { numRuns: 200 },
    );
  });

  test('blast radius: a release every device fails never reaches past the first wave (maxFailurePercent < 100, no operator)', () => {
    fc.assert(
      fc.property(
        strategyArb.filter((s) => (s.maxFailurePercent ?? 5) < 100),
        fc.array(scriptArb(['failed', 'silent']), { minLength: 1, maxLength: 14 }),
        (strategy, scripts) => {
          const { steps, state } = runScripted(strategy, scripts, [], false, 80);
          const released = steps.flatMap((s) => s.release);
          // The first wave that reached anyone (wave 1, unless the fleet was empty when it started).
          const firstWave = Math.min(...released.map((n) => state.slots[n]?.wave ?? Infinity));
          for (const n of released) assert.equal(state.slots[n]?.wave, firstWave, `${n} got the bad revision in wave ${(state.slots[n]?.wave ?? -2) + 1}`);
          if (scripts.some((s) => s.joinsAt === 0) && released.length > 0) assert.equal(firstWave, 0);
          // A rollout that ran out of devices before anyone joined completes empty (later devices get
          // the stable revision from the engine); with any device there from the start it never completes.
          if (scripts.some((s) => s.joinsAt === 0)) assert.notEqual(state.phase, 'complete');
          // It may still wait (a canary in a closed window), but a bad revision never becomes the stable one.
          if (released.length > 0) assert.notEqual(state.phase, 'complete', `ended ${state.phase}: ${state.reason}`);
        },
      ),
      { numRuns: 200 },
    );
  });

  test('a good release over a fleet that is online with open windows always completes, each device once', () => {
    fc.assert(
      fc.property(strategyArb, fc.array(scriptArb(['healthy']).map((s) => ({ ...s, online: true, window: [true], regressAfter: null })), { maxLength: 20 }), (strategy, scripts) => {
        const { steps, state } = runScripted(strategy, scripts, [], false, 150);
        assert.equal(state.phase, 'complete', `reason: ${state.reason}`);
        const completedAt = steps.findIndex((s) => s.complete);
        const released = steps.flatMap((s) => s.release);
        // Every device that matched before the rollout completed got the revision through it, once;
        // one that only joined afterwards gets it as the stable revision, outside the rollout.
        const expected = scripts.flatMap((s, i) => (s.joinsAt <= completedAt ? [`dev-${String(i).padStart(2, '0')}`] : []));
        assert.deepEqual([...released].sort(), expected.sort());
      }),
      { numRuns: 150 },
    );
  });
});
