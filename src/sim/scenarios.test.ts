import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DesiredComponent } from '../protocol/messages.ts';
import { createSimFleet, layoutFleet, type SimDevice } from './fleet.ts';
import { applyLinkFaults, badOnHardware, badRelease, combine, downloadFails, flakyLinks, goodRelease, offline, slowFailure } from './scenarios.ts';

const devices = layoutFleet({ devices: 1000, sites: 300, seed: 5 });
const rpi = devices.find((d) => d.labels.hardware === 'arm64/rpi4')!;
const nuc = devices.find((d) => d.labels.hardware === 'amd64/nuc')!;
const component = (version: string): DesiredComponent => ({ name: 'pos', deployment: 'pos', revision: 1, version, command: ['/opt/pos'] });

test('release rows script the runtime by version and hardware', () => {
  const table: [string, ReturnType<typeof goodRelease>, SimDevice, string, object][] = [
    ['good release', goodRelease(), rpi, '2', {}],
    ['bad release, the bad version', badRelease('2'), nuc, '2', { crashAfterMs: 500 }],
    ['bad release, another version', badRelease('2'), nuc, '1', {}],
    ['bad on rpi4, on an rpi4', badOnHardware('arm64/rpi4', '2'), rpi, '2', { crashAfterMs: 500 }],
    ['bad on rpi4, on a nuc', badOnHardware('arm64/rpi4', '2'), nuc, '2', {}],
    ['slow failure', slowFailure('2', 60_000), nuc, '2', { crashAfterMs: 60_000 }],
    ['download fails', downloadFails('2'), nuc, '2', { download: 'fail' }],
  ];
  for (const [what, scenario, device, version, outcome] of table) {
    assert.deepEqual(scenario.behaviour(device, component(version)), outcome, what);
    assert.equal(scenario.link(device), null, `${what}: links stay good`);
  }
});

test('link rows pick about their fraction, the same devices every time, and different devices per fault', () => {
  const down = devices.filter((d) => offline(0.1).link(d)?.online === false);
  assert.ok(down.length > 60 && down.length < 140, `${down.length} of 1000 offline`);
  assert.deepEqual(devices.filter((d) => offline(0.1).link(d) !== null), down);
  assert.ok(devices.filter((d) => offline(0.2).link(d) !== null).length > down.length, 'a larger fraction includes more');
  const flaky = devices.filter((d) => flakyLinks(0.1).link(d) !== null);
  assert.notDeepEqual(flaky, down);
  assert.deepEqual(flakyLinks(1, { delayMs: 300, lossRatio: 0.5 }).link(nuc), { delayMs: 300, lossRatio: 0.5 });
});

test('combined rows merge outcomes and link faults', () => {
  const drill = combine(badOnHardware('arm64/rpi4', '2'), offline(1));
  assert.equal(drill.name, 'bad-on-hardware+offline');
  assert.deepEqual(drill.behaviour(rpi, component('2')), { crashAfterMs: 500 });
  assert.deepEqual(drill.link(nuc), { online: false });
  assert.equal(combine(goodRelease()).link(nuc), null);
});

test('link faults are put on a fleet, and taken off again', () => {
  const fleet = createSimFleet({ server: { app: { inject: () => Promise.reject(new Error('not started')) } as never, url: 'http://sim', enrollToken: 't' }, devices: 50, sites: 10, seed: 5, behaviour: goodRelease().behaviour });
  const faulted = applyLinkFaults(fleet, combine(offline(0.3), flakyLinks(0.3, { delayMs: 100, lossRatio: 0.25 })));
  assert.ok(faulted.length > 0);
  for (const device of fleet.devices) {
    const expected = combine(offline(0.3), flakyLinks(0.3, { delayMs: 100, lossRatio: 0.25 })).link(device);
    assert.deepEqual(fleet.link(device.name), { online: expected?.online ?? true, delayMs: expected?.delayMs ?? 0, lossRatio: expected?.lossRatio ?? 0 });
  }
  assert.deepEqual(applyLinkFaults(fleet, goodRelease()), []);
  for (const device of fleet.devices) assert.deepEqual(fleet.link(device.name), { online: true, delayMs: 0, lossRatio: 0 });
});
