import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { DesiredComponent } from '../../protocol/messages.ts';
import type { HealthCheck } from '../../protocol/resources.ts';
import { applySteps, createExecutors, executeStep } from '../apply/executors.ts';
import { DriverError, instanceKey, type Instance, type InstanceSpec, type RuntimeDriver, type RuntimeKind } from '../drivers/driver.ts';
import type { ProbeResult } from '../health/health.ts';
import type { ProbeTarget } from '../health/probe.ts';
import { createLedgerStore, emptyEntry, type Ledger, type LedgerEntry, type SpecRecord } from '../ledger/ledger.ts';
import { createMemoryStorage } from '../storage/memory-storage.ts';
import { DOWNLOAD_RETRY_MS, plan, specHashOf, specRecord, targetOf, type ObservedInstance, type PlanInput } from './plan.ts';
import type { Step } from './steps.ts';

// ---- builders ----

function component(overrides: Partial<DesiredComponent> = {}): DesiredComponent {
  return { name: 'web', deployment: 'shop', revision: 1, version: '1.0.0', command: ['/opt/web/bin/web'], ...overrides };
}

function observed(spec: SpecRecord, state: Partial<ObservedInstance> = {}): ObservedInstance {
  const c = spec.component;
  return {
    key: instanceKey(c.deployment, c.name),
    specHash: spec.specHash,
    deployment: c.deployment,
    component: c.name,
    version: c.version,
    running: true,
    exitCode: null,
    startedAt: '2025-01-01T00:00:00.000Z',
    ports: {},
    runtime: c.image ? 'container' : 'process',
    ...state,
  };
}

function entry(change: Partial<LedgerEntry>): LedgerEntry {
  return { ...emptyEntry(), ...change };
}

const failure = { reason: 'health-check-failed' as const, detail: 'probe failed', at: '2025-01-01T00:00:00.000Z' };

/** Steps as short lines, so each row of the table reads as the plan it expects. */
function lines(steps: readonly Step[]): string[] {
  const v = (spec: SpecRecord) => `v${spec.component.version}`;
  return steps.map((step) => {
    switch (step.action) {
      case 'begin-attempt':
        return `begin-attempt ${step.key} ${v(step.spec)}`;
      case 'create':
        return `create ${step.key} ${v(step.spec)} ${step.runtime}${step.attempt ? ' attempt' : ''}${step.localChange ? ' local-change' : ''}`;
      case 'start':
        return `start ${step.key} ${step.runtime}`;
      case 'remove':
        return `remove ${step.key} ${step.runtime}`;
      case 'verify':
        return `verify ${step.key} ${v(step.spec)} previous ${step.previous ? v(step.previous) : 'none'}`;
      case 'forget':
        return `forget ${step.key}`;
      case 'prepare':
        return `prepare ${step.key} ${v(step.spec)} ${step.runtime}`;
      case 'clear-failures':
        return `clear-failures ${step.key}`;
    }
  });
}

const v1 = specRecord(component({ version: '1' }));
const v2 = specRecord(component({ version: '2', revision: 2, command: ['/opt/web/bin/web', '--v2'] }));
const image = specRecord(component({ name: 'cam', version: '3', image: 'registry.example/cam:3', command: undefined }));
const KEY = 'shop.web';

type Row = { name: string; input: Partial<PlanInput>; expect: string[] };

const rows: Row[] = [
  {
    name: 'fresh install: begin the attempt, create, verify with nothing to return to',
    input: { desired: [v1.component] },
    expect: [`begin-attempt ${KEY} v1`, `prepare ${KEY} v1 process`, `create ${KEY} v1 process attempt`, `verify ${KEY} v1 previous none`],
  },
  {
    name: 'upgrade: begin-attempt, then remove the old, create the new, verify with the old as previous',
    input: { desired: [v2.component], instances: [observed(v1)], ledger: { [KEY]: entry({ committed: v1 }) } },
    expect: [`begin-attempt ${KEY} v2`, `prepare ${KEY} v2 process`, `remove ${KEY} process`, `create ${KEY} v2 process attempt`, `verify ${KEY} v2 previous v1`],
  },
  {
    name: 'committed and running: nothing to do',
    input: { desired: [v1.component], instances: [observed(v1)], ledger: { [KEY]: entry({ committed: v1 }) } },
    expect: [],
  },
  {
    name: 'committed but stopped: start it again as a local change',
    input: { desired: [v1.component], instances: [observed(v1, { running: false, exitCode: 137 })], ledger: { [KEY]: entry({ committed: v1 }) } },
    expect: [`start ${KEY} process`],
  },
  {
    name: 'committed but missing: create it again (not an attempt) as a local change',
    input: { desired: [v1.component], ledger: { [KEY]: entry({ committed: v1 }) } },
    expect: [`create ${KEY} v1 process local-change`],
  },
  {
    name: 'failed spec still running with a last known good: revert (remove, create the previous)',
    input: { desired: [v2.component], instances: [observed(v2)], ledger: { [KEY]: entry({ committed: v1, failed: { [v2.specHash]: failure } }) } },
    expect: [`remove ${KEY} process`, `create ${KEY} v1 process`],
  },
  {
    name: 'failed spec, last known good missing: create the previous without calling it a local change',
    input: { desired: [v2.component], ledger: { [KEY]: entry({ committed: v1, failed: { [v2.specHash]: failure } }) } },
    expect: [`create ${KEY} v1 process`],
  },
  {
    name: 'failed spec, last known good already running again: nothing to do',
    input: { desired: [v2.component], instances: [observed(v1)], ledger: { [KEY]: entry({ committed: v1, failed: { [v2.specHash]: failure } }) } },
    expect: [],
  },
  {
    name: 'failed spec with no earlier version: remove it and create nothing',
    input: { desired: [v1.component], instances: [observed(v1)], ledger: { [KEY]: entry({ failed: { [v1.specHash]: failure } }) } },
    expect: [`remove ${KEY} process`],
  },
  {
    name: 'failed spec with no earlier version, already removed: nothing to do (and no forget: still desired)',
    input: { desired: [v1.component], ledger: { [KEY]: entry({ failed: { [v1.specHash]: failure } }) } },
    expect: [],
  },
  {
    name: 'crash after begin-attempt: attempt recorded, old instance still running: replace without a second begin-attempt',
    input: {
      desired: [v2.component],
      instances: [observed(v1)],
      ledger: { [KEY]: entry({ committed: v1, attempt: { ...v2, startedAt: '2025-01-01T00:00:00.000Z' } }) },
    },
    expect: [`prepare ${KEY} v2 process`, `remove ${KEY} process`, `create ${KEY} v2 process attempt`, `verify ${KEY} v2 previous v1`],
  },
  {
    name: 'crash after create: attempt recorded and new instance running: only verify',
    input: {
      desired: [v2.component],
      instances: [observed(v2)],
      ledger: { [KEY]: entry({ committed: v1, attempt: { ...v2, startedAt: '2025-01-01T00:00:00.000Z' } }) },
    },
    expect: [`verify ${KEY} v2 previous v1`],
  },
  {
    name: 'crash between create and start: the attempted instance exists but never ran: run it again, do not judge it unseen (regression)',
    input: {
      desired: [v2.component],
      instances: [observed(v2, { running: false, startedAt: null })],
      ledger: { [KEY]: entry({ committed: v1, attempt: { ...v2, startedAt: '2025-01-01T00:00:00.000Z' } }) },
    },
    expect: [`prepare ${KEY} v2 process`, `remove ${KEY} process`, `create ${KEY} v2 process attempt`, `verify ${KEY} v2 previous v1`],
  },
  {
    name: 'crash after remove: attempt recorded, nothing running: create and verify',
    input: { desired: [v2.component], ledger: { [KEY]: entry({ committed: v1, attempt: { ...v2, startedAt: '2025-01-01T00:00:00.000Z' } }) } },
    expect: [`prepare ${KEY} v2 process`, `create ${KEY} v2 process attempt`, `verify ${KEY} v2 previous v1`],
  },
  {
    name: 'unavailable runtime: nothing planned for its components',
    input: { desired: [image.component], unavailable: ['container'] },
    expect: [],
  },
  {
    name: 'unavailable runtime: its instances are not pruned, the other runtime still is',
    input: {
      desired: [image.component],
      instances: [observed(specRecord(component({ deployment: 'old', image: 'x', command: undefined }))), observed(specRecord(component({ deployment: 'gone' })))],
      unavailable: ['container'],
    },
    expect: ['remove gone.web process'],
  },
  {
    name: 'prune: an instance that is no longer desired is removed; its ledger entry stays until it is gone',
    input: { desired: [v1.component], instances: [observed(v1), observed(image)], ledger: { [KEY]: entry({ committed: v1 }), 'shop.cam': entry({ committed: image }) } },
    expect: ['remove shop.cam container'],
  },
  {
    name: 'stale ledger entry of a component no longer desired and no longer running: forget',
    input: { desired: [v1.component], instances: [observed(v1)], ledger: { [KEY]: entry({ committed: v1 }), 'shop.cam': entry({ committed: image }) } },
    expect: ['forget shop.cam'],
  },
  {
    name: 'desired null (nothing trusted yet): touch nothing, not even strangers',
    input: { desired: null, instances: [observed(v1)], ledger: { 'shop.cam': entry({ committed: image }) } },
    expect: [],
  },
  {
    name: 'desired empty (removeAll was trusted): remove everything, then forget',
    input: { desired: [], instances: [observed(v1)], ledger: { [KEY]: entry({ committed: v1 }), 'shop.cam': entry({ committed: image }) } },
    expect: [`remove ${KEY} process`, 'forget shop.cam'],
  },
  {
    name: 'a revision-only change (same component, new revision number) does not restart',
    input: { desired: [{ ...v1.component, revision: 7 }], instances: [observed(v1)], ledger: { [KEY]: entry({ committed: v1 }) } },
    expect: [],
  },
  {
    name: 'a component moving from a process to a container removes from the old runtime and creates on the new',
    input: {
      desired: [component({ version: '2', image: 'registry.example/web:2', command: undefined })],
      instances: [observed(v1)],
      ledger: { [KEY]: entry({ committed: v1 }) },
    },
    expect: [`begin-attempt ${KEY} v2`, `prepare ${KEY} v2 container`, `remove ${KEY} process`, `create ${KEY} v2 container attempt`, `verify ${KEY} v2 previous v1`],
  },
  {
    name: 'reverting to a last known good on another runtime creates it on that runtime (regression)',
    input: {
      desired: [component({ version: '2', image: 'registry.example/web:2', command: undefined })],
      instances: [observed(specRecord(component({ version: '2', image: 'registry.example/web:2', command: undefined })))],
      ledger: { [KEY]: entry({ committed: v1, failed: { [specRecord(component({ version: '2', image: 'registry.example/web:2', command: undefined })).specHash]: failure } }) },
    },
    expect: [`remove ${KEY} container`, `create ${KEY} v1 process`],
  },
  {
    name: 'a stopped last known good is started on its own runtime, not the failed spec\'s (regression)',
    input: {
      desired: [component({ version: '2', image: 'registry.example/web:2', command: undefined })],
      instances: [observed(v1, { running: false })],
      ledger: { [KEY]: entry({ committed: v1, failed: { [specRecord(component({ version: '2', image: 'registry.example/web:2', command: undefined })).specHash]: failure } }) },
    },
    expect: [`start ${KEY} process`],
  },
];

describe('plan', () => {
  for (const row of rows) {
    test(row.name, () => {
      const input: PlanInput = { desired: [], instances: [], ledger: {}, unavailable: [], ...row.input };
      assert.deepEqual(lines(plan(input)), row.expect);
    });
  }

  test('local-change messages say what happened, with the exit code when known', () => {
    const stopped = plan({ desired: [v1.component], instances: [observed(v1, { running: false, exitCode: 3 })], ledger: { [KEY]: entry({ committed: v1 }) }, unavailable: [] });
    assert.equal(stopped[0]?.action, 'start');
    assert.match(stopped[0]?.action === 'start' ? stopped[0].localChange : '', /shop\.web was stopped \(exit code 3\)/);
    const missing = plan({ desired: [v1.component], instances: [], ledger: { [KEY]: entry({ committed: v1 }) }, unavailable: [] });
    assert.match(missing[0]?.action === 'create' ? (missing[0].localChange ?? '') : '', /shop\.web was missing/);
  });

  test('the planned create carries the spec the driver must run, with its hash', () => {
    const create = plan({ desired: [v1.component], instances: [], ledger: {}, unavailable: [] }).find((step) => step.action === 'create');
    assert.equal(create?.action, 'create');
    assert.deepEqual(create?.action === 'create' ? create.spec : null, v1);
  });

  test('the agent component is not planned: it updates through its slots', () => {
    const agent = component({ name: 'agent', command: undefined, agent: { artifact: 'a'.repeat(64) } });
    assert.deepEqual(plan({ desired: [agent], instances: [], ledger: {}, unavailable: [] }), []);
  });

  test('plan is pure: it does not change its input', () => {
    const input: PlanInput = { desired: [v2.component], instances: [observed(v1)], ledger: { [KEY]: entry({ committed: v1 }) }, unavailable: [] };
    const before = structuredClone(input);
    plan(input);
    assert.deepEqual(input, before);
  });
});

describe('specHashOf and targetOf', () => {
  test('the revision number is not part of a spec; everything else is', () => {
    assert.equal(specHashOf(component({ revision: 1 })), specHashOf(component({ revision: 2 })));
    assert.notEqual(specHashOf(component()), specHashOf(component({ env: { A: '1' } })));
    assert.notEqual(specHashOf(component()), specHashOf(component({ version: '1.0.1' })));
    assert.notEqual(specHashOf(component()), specHashOf(component({ deployment: 'other' })));
  });

  test('targetOf: the desired spec unless it failed, then the last known good, else nothing', () => {
    assert.equal(targetOf(v2), v2);
    assert.equal(targetOf(v2, entry({ committed: v1 })), v2);
    assert.equal(targetOf(v2, entry({ committed: v1, failed: { [v2.specHash]: failure } })), v1);
    assert.equal(targetOf(v2, entry({ failed: { [v2.specHash]: failure } })), null);
    // A committed spec that later failed is not its own fallback.
    assert.equal(targetOf(v2, entry({ committed: v2, failed: { [v2.specHash]: failure } })), null);
  });

  test('targetOf: a failed download is tried again after DOWNLOAD_RETRY_MS; a failed health check never is', () => {
    const at = Date.parse(failure.at);
    const download = entry({ committed: v1, failed: { [v2.specHash]: { ...failure, reason: 'download-failed' } } });
    assert.equal(targetOf(v2, download, at + DOWNLOAD_RETRY_MS - 1), v1);
    assert.equal(targetOf(v2, download, at + DOWNLOAD_RETRY_MS), v2);
    assert.equal(targetOf(v2, download), v1, 'without a clock nothing expires');
    const unhealthy = entry({ committed: v1, failed: { [v2.specHash]: failure } });
    assert.equal(targetOf(v2, unhealthy, at + 100 * DOWNLOAD_RETRY_MS), v1);
    const retry = plan({ desired: [v2.component], instances: [observed(v1)], ledger: { [KEY]: download }, unavailable: [], nowMs: at + DOWNLOAD_RETRY_MS });
    assert.deepEqual(lines(retry), [`begin-attempt ${KEY} v2`, `prepare ${KEY} v2 process`, `remove ${KEY} process`, `create ${KEY} v2 process attempt`, `verify ${KEY} v2 previous v1`]);
  });
});

// ---- property: plan + the real executors on a simulated device converge to the right state ----

type Outcome = 'healthy' | 'unhealthy' | 'start-fails';
type Choice = { deployment: string; name: string; version: string; outcome: Outcome; runtime: RuntimeKind };

/**
 * A spec's fate is part of its content (its health command names it), so the outcome is a pure
 * function of the spec hash, as it is on a real device where the same bits behave the same way.
 */
function desiredOf(choice: Choice, revision: number): DesiredComponent {
  const base = { name: choice.name, deployment: choice.deployment, revision, version: choice.version, health: { command: ['probe', choice.outcome] } };
  return choice.runtime === 'container' ? { ...base, image: `registry.example/${choice.name}:${choice.version}` } : { ...base, command: [`/opt/${choice.name}`, choice.version] };
}
const outcomeOf = (c: DesiredComponent): Outcome => (c.health?.command?.[1] as Outcome | undefined) ?? 'healthy';

type SimInstance = { spec: InstanceSpec; running: boolean };

/** A runtime that keeps every instance it is asked to create, duplicates included, so a planner bug shows as two instances of one key. */
function simDriver(kind: RuntimeKind, counters: Map<string, number>): RuntimeDriver & { instances: SimInstance[] } {
  const instances: SimInstance[] = [];
  const touched = (key: string) => counters.set(key, (counters.get(key) ?? 0) + 1);
  return {
    kind,
    instances,
    async list(): Promise<Instance[]> {
      return instances.map(({ spec, running }) => ({
        key: spec.key,
        specHash: spec.specHash,
        deployment: spec.component.deployment,
        component: spec.component.name,
        version: spec.component.version,
        running,
        exitCode: running ? null : 1,
        startedAt: null,
        ports: {},
      }));
    },
    async create(spec) {
      if (outcomeOf(spec.component) === 'start-fails') throw new DriverError('start-failed', 'exec format error');
      touched(spec.key);
      instances.push({ spec, running: true });
    },
    async start(key) {
      for (const i of instances) if (i.spec.key === key) i.running = true;
    },
    async remove(key) {
      touched(key);
      for (let i = instances.length - 1; i >= 0; i--) if (instances[i]!.spec.key === key) instances.splice(i, 1);
    },
    async close() {},
  };
}


async function waitForHealthSim(check: HealthCheck | undefined, target: ProbeTarget): Promise<ProbeResult> {
  const { running } = await target.isRunning();
  if (!running) return { ok: false, detail: 'not running' };
  return check?.command?.[1] === 'healthy' ? { ok: true, detail: 'probe passed' } : { ok: false, detail: 'probe failed' };
}

function simDevice() {
  const counters = new Map<string, number>();
  const drivers = { container: simDriver('container', counters), process: simDriver('process', counters) };
  const ledger = createLedgerStore(createMemoryStorage());
  const executors = createExecutors({
    drivers,
    ledger,
    emit: () => undefined,
    waitForHealth: (check, target) => waitForHealthSim(check, target),
    nowIso: () => '2025-01-01T00:00:00.000Z',
    log: () => undefined,
  });
  const observe = async (): Promise<ObservedInstance[]> => [
    ...(await drivers.container.list()).map((i) => ({ ...i, runtime: 'container' as const })),
    ...(await drivers.process.list()).map((i) => ({ ...i, runtime: 'process' as const })),
  ];
  const planNow = async (desired: DesiredComponent[]) => plan({ desired, instances: await observe(), ledger: ledger.get(), unavailable: [] });
  return { drivers, ledger, executors, counters, observe, planNow };
}

/** Two full rounds at most: one tries the desired spec (and prunes), the next returns to the last known good (and forgets). */
const MAX_ROUNDS = 2;

/** Plans and applies until the plan is empty. The first plans may be cut short (a crash after `k` steps); after those, at most MAX_ROUNDS full rounds are allowed. */
async function converge(device: ReturnType<typeof simDevice>, desired: DesiredComponent[], crashes: readonly number[]): Promise<void> {
  const signal = new AbortController().signal;
  for (const k of crashes) {
    const steps = await device.planNow(desired);
    for (const step of steps.slice(0, k)) await executeStep(device.executors, step, signal);
  }
  for (let round = 0; ; round++) {
    const steps = await device.planNow(desired);
    if (steps.length === 0) return;
    assert.ok(round < MAX_ROUNDS, `not converged after ${MAX_ROUNDS} rounds; still planned: ${lines(steps).join('; ')}`);
    await applySteps(device.executors, steps, signal);
  }
}

const choiceArb = fc.record({
  deployment: fc.constantFrom('a', 'b'),
  name: fc.constantFrom('x', 'y'),
  version: fc.constantFrom('1', '2', '3'),
  outcome: fc.constantFrom<Outcome>('healthy', 'healthy', 'unhealthy', 'start-fails'),
  runtime: fc.constantFrom<RuntimeKind>('container', 'process'),
});
const phaseArb = fc.record({
  choices: fc.uniqueArray(choiceArb, { selector: (c) => `${c.deployment}.${c.name}`, maxLength: 4 }),
  crashes: fc.array(fc.nat({ max: 5 }), { maxLength: 3 }),
  /** After converging, someone stops or deletes instances behind the agent's back. */
  tamper: fc.array(fc.record({ index: fc.nat(), stop: fc.boolean() }), { maxLength: 2 }),
});

describe('plan (property): the loop converges to the desired state, or the last known good', () => {
  test('over any sequence of desired states, crashes between steps and local tampering', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(phaseArb, { minLength: 1, maxLength: 5 }), async (phases) => {
        const device = simDevice();
        let lastKnownGood = new Map<string, string>(); // key -> spec hash expected to be committed
        let previousHashes = new Map<string, string>();

        for (const [index, phase] of phases.entries()) {
          const desired = phase.choices.map((c) => desiredOf(c, index + 1));
          const hashes = new Map(desired.map((c) => [instanceKey(c.deployment, c.name), specHashOf(c)]));
          const failures = new Map(desired.filter((c) => outcomeOf(c) !== 'healthy').map((c) => [instanceKey(c.deployment, c.name), outcomeOf(c) === 'start-fails' ? 'start-failed' : 'health-check-failed']));
          // The model: a healthy spec becomes last known good; a failing one keeps the previous one while the key stays desired.
          const expected = new Map<string, string>();
          for (const c of desired) {
            const key = instanceKey(c.deployment, c.name);
            const good = outcomeOf(c) === 'healthy' ? specHashOf(c) : lastKnownGood.get(key);
            if (good) expected.set(key, good);
          }

          device.counters.clear();
          await converge(device, desired, phase.crashes);
          await checkConverged(device, hashes, expected, failures);
          // A component whose spec did not change (a new revision number alone included) was not touched.
          for (const [key, hash] of hashes) {
            if (previousHashes.get(key) === hash) assert.equal(device.counters.get(key) ?? 0, 0, `${key} was restarted although its spec did not change`);
          }

          const all = [...device.drivers.container.instances, ...device.drivers.process.instances];
          for (const t of phase.tamper) {
            const victim = all[t.index % Math.max(1, all.length)];
            if (!victim) continue;
            const driver = device.drivers[victim.spec.component.image ? 'container' : 'process'];
            if (t.stop) victim.running = false;
            else await driver.remove(victim.spec.key);
          }
          await converge(device, desired, []);
          await checkConverged(device, hashes, expected, failures);

          lastKnownGood = expected;
          previousHashes = hashes;
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('plan: a failed spec is tried again once the desired state has moved away from it and back', () => {
  // The ledger keeps the failures of specs that are no longer desired when the component returns to its
  // committed spec without a new attempt, so a spec desired again later is never retried (a release that
  // failed to download during a link outage stays "reverted" for good). See the report of this change.
  test('desired v2 fails (v1 runs), desired v1 again, then v2 again: v2 is attempted anew', async () => {
    const device = simDevice();
    const good = desiredOf({ deployment: 'a', name: 'x', version: '1', outcome: 'healthy', runtime: 'process' }, 1);
    const bad = desiredOf({ deployment: 'a', name: 'x', version: '2', outcome: 'unhealthy', runtime: 'process' }, 2);
    await converge(device, [good], []);
    await converge(device, [bad], []);
    await converge(device, [{ ...good, revision: 3 }], []);
    const steps = await device.planNow([{ ...bad, revision: 4 }]);
    assert.equal(steps[0]?.action, 'begin-attempt');
  });
});

async function checkConverged(device: ReturnType<typeof simDevice>, desired: Map<string, string>, expected: Map<string, string>, failures: Map<string, string>): Promise<void> {
  const instances = await device.observe();
  const ledger: Ledger = device.ledger.get();
  const perKey = new Map<string, ObservedInstance[]>();
  for (const i of instances) perKey.set(i.key, [...(perKey.get(i.key) ?? []), i]);

  for (const [key, list] of perKey) {
    assert.equal(list.length, 1, `${key} has ${list.length} instances`);
    assert.ok(desired.has(key), `${key} runs but is not desired`);
  }
  for (const key of Object.keys(ledger)) assert.ok(desired.has(key), `ledger still holds ${key}, which is not desired`);

  for (const [key, hash] of desired) {
    const reason = failures.get(key);
    if (reason) assert.equal(ledger[key]?.failed[hash]?.reason, reason, `${key}: the failure is recorded with its reason`);
    const good = expected.get(key);
    const running = perKey.get(key)?.[0];
    if (good === undefined) {
      assert.equal(running, undefined, `${key} failed with nothing to return to, yet something runs`);
      continue;
    }
    assert.ok(running, `${key} should run ${good === hash ? 'its desired spec' : 'its last known good spec'}`);
    assert.equal(running.specHash, good, `${key} runs the wrong spec`);
    assert.equal(running.running, true, `${key} is not running`);
    assert.equal(ledger[key]?.committed?.specHash, good, `${key}: the running spec is not the committed one`);
    assert.equal(ledger[key]?.attempt, null, `${key}: an attempt is left open`);
  }
}
