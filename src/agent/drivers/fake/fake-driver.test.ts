import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DesiredComponent } from '../../../protocol/messages.ts';
import type { ProbeTarget } from '../../health/probe.ts';
import { DriverError, type InstanceSpec } from '../driver.ts';
import { createFakeDriver, fakeHealth, type FakeBehaviour, type FakeDriver } from './fake-driver.ts';

const START = Date.parse('2025-06-01T12:00:00.000Z');

function component(version: string, extra: Partial<DesiredComponent> = {}): DesiredComponent {
  return { name: 'pos', deployment: 'pos', revision: 1, version, command: ['/opt/pos/bin/pos'], ...extra };
}
const spec = (version: string, extra: Partial<DesiredComponent> = {}): InstanceSpec => ({ key: 'pos.pos', specHash: `hash-${version}`, component: component(version, extra) });

/** A driver on a clock the test moves. */
function rig(behaviour: FakeBehaviour = () => ({}), timeScale = 1) {
  const clock = { ms: START };
  const driver = createFakeDriver({ behaviour, now: () => clock.ms, timeScale });
  return { clock, driver };
}

/** The probe target the agent's verify step builds: liveness read through `list()`. */
function targetOf(driver: FakeDriver, key: string): ProbeTarget {
  return {
    address: (port) => ({ host: '127.0.0.1', port }),
    async isRunning() {
      const instance = (await driver.list()).find((i) => i.key === key);
      return { running: instance?.running ?? false, exitCode: instance?.exitCode ?? null };
    },
    exec: (command, signal) => driver.exec!(key, command, signal),
  };
}

/** A sleep that moves the test clock instead of waiting, so health checks take no real time. */
const clockSleep = (clock: { ms: number }) => async (ms: number, signal: AbortSignal) => {
  signal.throwIfAborted();
  clock.ms += ms;
};

describe('fake driver', () => {
  test('create runs an instance that list reports, with declared ports mapped to themselves', async () => {
    const { driver } = rig();
    await driver.create(spec('1', { ports: ['8080:80', '9090', '5353/udp'] }));
    const [instance, ...rest] = await driver.list();
    assert.equal(rest.length, 0);
    assert.deepEqual(instance, {
      key: 'pos.pos',
      specHash: 'hash-1',
      deployment: 'pos',
      component: 'pos',
      version: '1',
      running: true,
      exitCode: null,
      startedAt: new Date(START).toISOString(),
      ports: { 80: 80, 9090: 9090, 5353: 5353 },
    });
    assert.equal(driver.kind, 'process');
    assert.equal(createFakeDriver({ kind: 'container', behaviour: () => ({}) }).kind, 'container');
  });

  test('create is idempotent for the same key and spec, and replaces a different spec', async () => {
    const { clock, driver } = rig();
    await driver.create(spec('1'));
    clock.ms += 1000;
    await driver.create(spec('1'));
    assert.equal((await driver.list())[0]?.startedAt, new Date(START).toISOString(), 'a running instance of the same spec is left alone');
    await driver.create(spec('2'));
    const instances = await driver.list();
    assert.deepEqual(instances.map((i) => [i.key, i.version, i.running]), [['pos.pos', '2', true]]);
  });

  test('start is idempotent and restarts a stopped instance; remove of a missing instance is not an error', async () => {
    const { driver } = rig();
    await driver.create(spec('1'));
    await driver.start('pos.pos');
    driver.stopByHand('pos.pos');
    assert.deepEqual((await driver.list()).map((i) => [i.running, i.exitCode]), [[false, 143]]);
    await driver.start('pos.pos');
    assert.deepEqual((await driver.list()).map((i) => [i.running, i.exitCode]), [[true, null]]);
    await driver.remove('pos.pos');
    await driver.remove('pos.pos');
    assert.deepEqual(await driver.list(), []);
    await assert.rejects(driver.start('pos.pos'), (e: unknown) => e instanceof DriverError && e.reason === 'start-failed');
  });

  test('a version scripted to crash runs until its time, then lists as exited with code 1', async () => {
    const { clock, driver } = rig((c) => (c.version === '2' ? { crashAfterMs: 500 } : {}));
    await driver.create(spec('2'));
    assert.equal(driver.nextExitAt(), START + 500);
    clock.ms += 499;
    assert.equal((await driver.list())[0]?.running, true);
    clock.ms += 1;
    assert.deepEqual((await driver.list()).map((i) => [i.running, i.exitCode]), [[false, 1]]);
    assert.equal(driver.nextExitAt(), null, 'an exited instance has no exit ahead');
    await driver.start('pos.pos');
    assert.equal((await driver.list())[0]?.running, true, 'a restart runs it again, until it crashes again');
    assert.equal(driver.nextExitAt(), clock.ms + 500);
  });

  test('crash times are scaled by the time factor', async () => {
    const { clock, driver } = rig(() => ({ crashAfterMs: 1000 }), 0.1);
    await driver.create(spec('1'));
    clock.ms += 100;
    assert.equal((await driver.list())[0]?.running, false);
  });

  test('a failed download throws download-failed from prepare and create and creates nothing', async () => {
    const { driver } = rig((c) => (c.version === '2' ? { download: 'fail' } : {}));
    await assert.rejects(driver.prepare!(spec('2')), (e: unknown) => e instanceof DriverError && e.reason === 'download-failed');
    await assert.rejects(driver.create(spec('2')), (e: unknown) => e instanceof DriverError && e.reason === 'download-failed');
    assert.deepEqual(await driver.list(), []);
    assert.deepEqual(driver.everRan(), new Set());
  });

  test('a slow download waits its scaled time before anything runs, and a fetched artifact is not fetched again', async () => {
    let asked = 0;
    const waits: { ms: number; release: () => void }[] = [];
    const sleep = (ms: number) => new Promise<void>((release) => waits.push({ ms, release }));
    const driver = createFakeDriver({ behaviour: () => (asked++, { downloadMs: 200 }), timeScale: 0.1, sleep });
    const creating = driver.create(spec('1'));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(waits.map((w) => w.ms), [20], 'waits 200 scenario ms, 20 real ones');
    assert.deepEqual(await driver.list(), [], 'nothing runs while the download is under way');
    waits[0]!.release();
    await creating;
    assert.equal((await driver.list())[0]?.running, true);
    const calls = asked;
    await driver.remove('pos.pos');
    await driver.create(spec('1'));
    assert.equal(waits.length, 1, 'the cached artifact is not fetched again');
    assert.equal(asked, calls + 1, 'the behaviour was consulted only to start');
  });

  test('a failed start leaves the instance created and stopped, and reports start-failed', async () => {
    const { driver } = rig((c) => (c.version === '2' ? { start: 'fail' } : {}));
    await assert.rejects(driver.create(spec('2')), (e: unknown) => e instanceof DriverError && e.reason === 'start-failed');
    assert.deepEqual((await driver.list()).map((i) => [i.version, i.running, i.exitCode]), [['2', false, 1]]);
    assert.deepEqual(driver.everRan(), new Set(), 'a version that never started never ran');
  });

  test('everRan remembers every version that ran, after it is gone', async () => {
    const { driver } = rig();
    await driver.create(spec('1'));
    await driver.create(spec('2'));
    driver.removeByHand('pos.pos');
    assert.deepEqual(await driver.list(), []);
    assert.deepEqual(driver.everRan(), new Set(['1', '2']));
    driver.everRan().add('3');
    assert.deepEqual(driver.everRan(), new Set(['1', '2']), 'callers get a copy');
  });

  test('exec answers 0 while running and 1 once exited', async () => {
    const { driver } = rig();
    await driver.create(spec('1'));
    const signal = new AbortController().signal;
    assert.equal((await driver.exec!('pos.pos', ['true'], signal)).exitCode, 0);
    driver.stopByHand('pos.pos');
    assert.equal((await driver.exec!('pos.pos', ['true'], signal)).exitCode, 1);
  });
});

describe('fake health', () => {
  test('passes when the instance still runs after its running seconds, scaled', async () => {
    const { clock, driver } = rig(() => ({}), 0.1);
    await driver.create(spec('1'));
    const health = fakeHealth(driver, { sleep: clockSleep(clock) });
    const result = await health({ running: { seconds: 5 } }, targetOf(driver, 'pos.pos'), new AbortController().signal);
    assert.deepEqual(result, { ok: true, detail: 'running for 5s' });
    assert.equal(clock.ms, START + 500, 'five scenario seconds are half a real second at 0.1');
  });

  test('with no check, the instance must stay up for the default seconds', async () => {
    const { clock, driver } = rig();
    await driver.create(spec('1'));
    const result = await fakeHealth(driver, { sleep: clockSleep(clock) })(undefined, targetOf(driver, 'pos.pos'), new AbortController().signal);
    assert.equal(result.ok, true);
    assert.equal(clock.ms, START + 3000);
  });

  test('fails as soon as a scripted crash is due, naming the exit code and when', async () => {
    const { clock, driver } = rig(() => ({ crashAfterMs: 500 }), 0.05);
    await driver.create(spec('2'));
    const result = await fakeHealth(driver, { sleep: clockSleep(clock) })(undefined, targetOf(driver, 'pos.pos'), new AbortController().signal);
    assert.deepEqual(result, { ok: false, detail: 'exited with code 1 after 0.5s' });
    assert.equal(clock.ms, START + 25, 'woke at the crash, not at the end of the check');
  });

  test('a crash after the check passed is not the check’s business', async () => {
    const { clock, driver } = rig(() => ({ crashAfterMs: 10_000 }));
    await driver.create(spec('2'));
    const result = await fakeHealth(driver, { sleep: clockSleep(clock) })({ running: { seconds: 2 } }, targetOf(driver, 'pos.pos'), new AbortController().signal);
    assert.equal(result.ok, true);
  });

  test('fails at once for an instance that is not running', async () => {
    const { clock, driver } = rig();
    await driver.create(spec('1'));
    driver.stopByHand('pos.pos');
    const result = await fakeHealth(driver, { sleep: clockSleep(clock) })(undefined, targetOf(driver, 'pos.pos'), new AbortController().signal);
    assert.deepEqual(result, { ok: false, detail: 'exited with code 143 after 0s' });
  });

  test('real sleeping works, and an abort rejects with the reason', async () => {
    const driver = createFakeDriver({ behaviour: () => ({}), timeScale: 0.01 });
    await driver.create(spec('1'));
    const health = fakeHealth(driver);
    assert.equal((await health(undefined, targetOf(driver, 'pos.pos'), new AbortController().signal)).ok, true);
    const abort = new AbortController();
    const pending = fakeHealth(driver, { timeScale: 1 })(undefined, targetOf(driver, 'pos.pos'), abort.signal);
    abort.abort(new Error('agent stopping'));
    await assert.rejects(pending, /agent stopping/);
  });
});
