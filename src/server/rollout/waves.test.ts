import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { cumulativeTargets, DEFAULT_WAVES, durationMs, localTime, normalizeStrategy, orderForWave, windowOpen, type Candidate, type NormalStrategy, type Window } from './waves.ts';

const waves = (...spec: ({ devices: number } | { percent: number })[]): NormalStrategy['waves'] => spec.map((w) => ({ ...w, bakeMs: 0 }));
const at = (iso: string) => Date.parse(iso);

describe('cumulativeTargets: how many devices each wave has reached', () => {
  const rows: { name: string; waves: NormalStrategy['waves']; fleet: number; expect: number[] }[] = [
    { name: 'the README strategy on 1000 devices', waves: waves({ devices: 1 }, { percent: 5 }, { percent: 25 }, { percent: 100 }), fleet: 1000, expect: [1, 50, 250, 1000] },
    { name: 'percent rounds up: 5% of 10 is 1 device, already reached by the canary', waves: waves({ devices: 1 }, { percent: 5 }, { percent: 25 }, { percent: 100 }), fleet: 10, expect: [1, 1, 3, 10] },
    { name: 'the default waves on 10,000 devices', waves: waves(...DEFAULT_WAVES), fleet: 10_000, expect: [100, 1000, 5000, 10_000] },
    { name: 'the default waves on 5 devices: 1% of a tiny fleet is still one device', waves: waves(...DEFAULT_WAVES), fleet: 5, expect: [1, 1, 3, 5] },
    { name: 'the default waves on 1 device', waves: waves(...DEFAULT_WAVES), fleet: 1, expect: [1, 1, 1, 1] },
    { name: 'no devices: every wave reaches none', waves: waves(...DEFAULT_WAVES), fleet: 0, expect: [0, 0, 0, 0] },
    { name: 'devices after a percent add to what was reached', waves: waves({ percent: 10 }, { devices: 5 }, { percent: 100 }), fleet: 100, expect: [10, 15, 100] },
    { name: 'a percent below what is reached reaches no one new', waves: waves({ devices: 20 }, { percent: 10 }, { percent: 100 }), fleet: 100, expect: [20, 20, 100] },
    { name: 'a device count larger than the fleet stops at the fleet', waves: waves({ devices: 50 }, { devices: 50 }, { percent: 100 }), fleet: 30, expect: [30, 30, 30] },
    { name: 'the last wave reaches everyone whatever it says', waves: waves({ devices: 1 }, { devices: 1 }), fleet: 40, expect: [1, 40] },
    { name: 'the last wave reaches everyone even as a small percent', waves: waves({ percent: 1 }, { percent: 2 }), fleet: 300, expect: [3, 300] },
    { name: 'a single wave is all at once', waves: waves({ percent: 100 }), fleet: 7, expect: [7] },
    { name: 'fractional percent rounds up: 0.5% of 1000 is 5', waves: waves({ percent: 0.5 }, { percent: 100 }), fleet: 1000, expect: [5, 1000] },
  ];
  for (const row of rows) test(row.name, () => assert.deepEqual(cumulativeTargets(row.waves, row.fleet), row.expect));

  const anyWave: fc.Arbitrary<NormalStrategy['waves'][number]> = fc.oneof(
    fc.record({ devices: fc.integer({ min: 1, max: 50 }), bakeMs: fc.constant(0) }),
    fc.record({ percent: fc.double({ min: 0.01, max: 100, noNaN: true }), bakeMs: fc.constant(0) }),
  );

  test('property: never decreasing, never past the fleet, the last wave is the whole fleet, one entry per wave', () => {
    fc.assert(
      fc.property(fc.array(anyWave, { minLength: 1, maxLength: 8 }), fc.integer({ min: 0, max: 5000 }), (ws, fleet) => {
        const targets = cumulativeTargets(ws, fleet);
        assert.equal(targets.length, ws.length);
        for (let i = 1; i < targets.length; i++) assert.ok(targets[i]! >= targets[i - 1]!, `wave ${i + 1} reaches fewer than wave ${i}: ${targets}`);
        for (const t of targets) assert.ok(Number.isInteger(t) && t >= 0 && t <= fleet, `${t} of ${fleet}`);
        assert.equal(targets.at(-1), fleet);
      }),
      { numRuns: 500 },
    );
  });

  test('property: a percent wave (not the last) reaches at least that share of the fleet, rounded up', () => {
    fc.assert(
      fc.property(fc.array(anyWave, { minLength: 2, maxLength: 6 }), fc.integer({ min: 0, max: 5000 }), (ws, fleet) => {
        const targets = cumulativeTargets(ws, fleet);
        ws.forEach((w, i) => {
          if (w.percent !== undefined) assert.ok(targets[i]! >= Math.min(fleet, Math.ceil((w.percent * fleet) / 100)), `wave ${i + 1}: ${targets[i]} < ${w.percent}% of ${fleet}`);
        });
        // A fleet with devices always starts with at least one device in the first wave: a canary.
        if (fleet > 0) assert.ok(targets[0]! >= 1);
      }),
      { numRuns: 500 },
    );
  });
});

describe('normalizeStrategy and durationMs', () => {
  test('no strategy: 1%, 10%, 50%, 100% with no bake, 5% failures, roll back, no parallel limit, 10 minute update timeout', () => {
    assert.deepEqual(normalizeStrategy(undefined), {
      waves: [{ percent: 1, bakeMs: 0 }, { percent: 10, bakeMs: 0 }, { percent: 50, bakeMs: 0 }, { percent: 100, bakeMs: 0 }],
      maxFailurePercent: 5,
      onFailure: 'rollback',
      maxParallel: Number.MAX_SAFE_INTEGER,
      updateTimeoutMs: 600_000,
    });
    assert.deepEqual(normalizeStrategy({}), normalizeStrategy(undefined));
  });

  test('what a strategy says wins, field by field; bake times become milliseconds', () => {
    const s = normalizeStrategy({ waves: [{ devices: 1, bake: '10m' }, { percent: 25, bake: '30s' }, { percent: 100 }], maxFailurePercent: 0, onFailure: 'pause', maxParallel: 3, updateTimeout: '2h' });
    assert.deepEqual(s, {
      waves: [{ devices: 1, bakeMs: 600_000 }, { percent: 25, bakeMs: 30_000 }, { percent: 100, bakeMs: 0 }],
      maxFailurePercent: 0,
      onFailure: 'pause',
      maxParallel: 3,
      updateTimeoutMs: 7_200_000,
    });
    assert.equal(normalizeStrategy({ maxFailurePercent: 0 }).maxFailurePercent, 0, '0 is a threshold, not "unset"');
  });

  test('durationMs reads s, m and h; anything else is the fallback', () => {
    assert.equal(durationMs('45s', 1), 45_000);
    assert.equal(durationMs('10m', 1), 600_000);
    assert.equal(durationMs('3h', 1), 10_800_000);
    assert.equal(durationMs('0s', 1), 0);
    assert.equal(durationMs(undefined, 7), 7);
    assert.equal(durationMs('', 7), 7);
    assert.equal(durationMs('10', 7), 7);
    assert.equal(durationMs('1d', 7), 7);
    assert.equal(durationMs('1.5h', 7), 7);
    assert.equal(durationMs(' 5m', 7), 7);
  });
});

describe('orderForWave: representative canaries, deterministically', () => {
  const device = (name: string, site: string | null, region: string | null, hardware: string | null, online = true): Candidate => ({ name, site, region, hardware, online });

  /** A fleet: sites spread over regions (a site is in one region), hardware from a skewed mix. */
  const fleetArb = fc
    .record({
      sites: fc.integer({ min: 1, max: 12 }),
      regions: fc.integer({ min: 1, max: 4 }),
      devices: fc.array(fc.record({ site: fc.nat(), hw: fc.nat({ max: 20 }), online: fc.boolean() }), { minLength: 1, maxLength: 80 }),
    })
    .map(({ sites, regions, devices }) =>
      devices.map((d, i) => {
        const site = d.site % sites;
        // Skewed hardware: mostly x64, some arm64, a rare riscv.
        const hardware = d.hw < 15 ? 'x64' : d.hw < 20 ? 'arm64' : 'riscv64';
        return device(`dev-${i}`, `site-${site}`, `region-${site % regions}`, hardware, d.online);
      }),
    );

  const distinct = (values: (string | null)[]) => new Set(values).size;

  test('the same devices and seed give the same order, whatever order they come in; another seed may differ', () => {
    fc.assert(
      fc.property(fleetArb, fc.string(), fc.nat(), (devices, seed, rot) => {
        const once = orderForWave(devices, seed);
        const shuffled = [...devices.slice(rot % devices.length), ...devices.slice(0, rot % devices.length)].reverse();
        assert.deepEqual(orderForWave(shuffled, seed), once);
        assert.deepEqual(
          once.map((o) => o.device.name).sort(),
          devices.map((d) => d.name).sort(),
          'a permutation: every device once',
        );
      }),
      { numRuns: 300 },
    );
    const many = Array.from({ length: 30 }, (_, i) => device(`d${i}`, `s${i % 5}`, null, null));
    assert.notDeepEqual(
      orderForWave(many, 'wave-0').map((o) => o.device.name),
      orderForWave(many, 'another seed').map((o) => o.device.name),
      'the seed takes part in the order',
    );
  });

  test('property: online devices before offline ones', () => {
    fc.assert(
      fc.property(fleetArb, (devices) => {
        const order = orderForWave(devices, 'wave-0');
        const firstOffline = order.findIndex((o) => !o.device.online);
        if (firstOffline >= 0) assert.ok(order.slice(firstOffline).every((o) => !o.device.online), 'an online device after an offline one');
      }),
      { numRuns: 300 },
    );
  });

  test('property: the first R online devices cover all R regions; the first S+H cover every site and hardware kind', () => {
    fc.assert(
      fc.property(fleetArb, (devices) => {
        const online = devices.filter((d) => d.online);
        const order = orderForWave(devices, 'wave-0').map((o) => o.device);
        const R = distinct(online.map((d) => d.region));
        const S = distinct(online.map((d) => d.site));
        const H = distinct(online.map((d) => d.hardware));
        assert.equal(distinct(order.slice(0, R).map((d) => d.region)), R, `first ${R} devices: ${JSON.stringify(order.slice(0, R))}`);
        // Online devices come first, so within the online ones.
        const head = order.slice(0, Math.min(S + H, online.length));
        assert.equal(distinct(head.map((d) => d.site)), S, 'every site within the first S+H');
        assert.equal(distinct(head.map((d) => d.hardware)), H, 'every hardware kind within the first S+H');
        assert.equal(distinct(head.map((d) => d.region)), R);
      }),
      { numRuns: 500 },
    );
  });

  test('a fleet on one hardware kind (every agent reports arch x64) still spreads over its sites first', () => {
    // 4 sites in 2 regions, 10 devices each, all x64: the first 4 devices are one per site.
    const devices = Array.from({ length: 40 }, (_, i) => device(`pos-${String(i).padStart(2, '0')}`, `store-${i % 4}`, i % 4 < 2 ? 'eu' : 'us', 'x64'));
    const first = orderForWave(devices, 'wave-0').slice(0, 4).map((o) => o.device);
    assert.deepEqual(first.map((d) => d.site).sort(), ['store-0', 'store-1', 'store-2', 'store-3'], JSON.stringify(first));
    assert.deepEqual(new Set(first.slice(0, 2).map((d) => d.region)), new Set(['eu', 'us']), 'the first two are in the two regions');
  });

  test('a rare hardware kind is among the first devices even when it is one device in a hundred', () => {
    const devices = Array.from({ length: 100 }, (_, i) => device(`kiosk-${i}`, `site-${i % 10}`, 'eu', i === 77 ? 'riscv64' : 'x64'));
    const order = orderForWave(devices, 'wave-0');
    const position = order.findIndex((o) => o.device.hardware === 'riscv64');
    assert.ok(position < 2, `riscv64 is at position ${position}`);
    assert.match(order[position]!.reason, /first on hardware riscv64/);
  });

  test('devices without region, site or hardware are ordered too', () => {
    const devices = Array.from({ length: 6 }, (_, i) => device(`bare-${i}`, null, null, null));
    const order = orderForWave(devices, 's');
    assert.equal(order.length, 6);
    assert.deepEqual(orderForWave(devices, 's'), order);
    for (const o of order) assert.equal(typeof o.reason, 'string');
  });

  test('reasons say what made a device first: its region, site or hardware; later ones say they spread', () => {
    const devices = [device('a', 'berlin-1', 'eu', 'pi4'), device('b', 'berlin-1', 'eu', 'pi4'), device('c', 'nyc-1', 'us', 'pi4'), device('d', 'nyc-1', 'us', 'nuc')];
    const order = orderForWave(devices, 'wave-0');
    const why = Object.fromEntries(order.map((o) => [o.device.name, o.reason]));
    const eu = order.find((o) => o.device.region === 'eu')!;
    const us = order.find((o) => o.device.region === 'us')!;
    assert.match(eu.reason, /first in region eu/);
    assert.match(eu.reason, /first at site berlin-1/);
    assert.match(us.reason, /first in region us/);
    assert.match(us.reason, /first at site nyc-1/);
    assert.ok(order.some((o) => /first on hardware nuc/.test(o.reason)), JSON.stringify(why));
    assert.ok(order.some((o) => /first on hardware pi4/.test(o.reason)), JSON.stringify(why));
    const plain = order.filter((o) => !/first/.test(o.reason));
    assert.ok(plain.length >= 1, JSON.stringify(why));
    for (const o of plain) assert.match(o.reason, /^spread: /);
    // The two region-firsts come before anyone else.
    assert.deepEqual(new Set(order.slice(0, 2).map((o) => o.device.region)), new Set(['eu', 'us']), JSON.stringify(why));
  });

  test('an offline device is never first while an online one waits, even when it is the only one of its region', () => {
    const devices = [device('off', 's1', 'apac', 'x64', false), device('on-1', 's2', 'eu', 'x64'), device('on-2', 's3', 'eu', 'x64')];
    assert.deepEqual(orderForWave(devices, 'x').map((o) => o.device.name).at(-1), 'off');
  });

  test('a region whose first device in hash order is offline is still covered by its online devices', () => {
    // Whatever the hash order, every region with an online device appears in the first R positions.
    for (let seed = 0; seed < 20; seed++) {
      const devices = [device('eu-off', 'eu-1', 'eu', 'x64', false), device('eu-on', 'eu-1', 'eu', 'x64'), device('us-on', 'us-1', 'us', 'x64'), device('us-on-2', 'us-1', 'us', 'x64')];
      const first = orderForWave(devices, `seed-${seed}`).slice(0, 2).map((o) => o.device.region);
      assert.deepEqual(new Set(first), new Set(['eu', 'us']), `seed-${seed}: ${first}`);
    }
  });
});

describe('windowOpen: maintenance windows on the local wall clock of the site', () => {
  const nightly: Window[] = [{ start: '02:00', duration: '2h' }];

  test('no windows (or an empty list) means always open', () => {
    assert.equal(windowOpen(undefined, 'Europe/Berlin', at('2025-06-01T12:00:00Z')), true);
    assert.equal(windowOpen([], undefined, at('2025-06-01T12:00:00Z')), true);
  });

  test('without a time zone the window is read in UTC', () => {
    assert.equal(windowOpen(nightly, undefined, at('2025-06-01T01:59:00Z')), false);
    assert.equal(windowOpen(nightly, undefined, at('2025-06-01T02:00:00Z')), true);
    assert.equal(windowOpen(nightly, undefined, at('2025-06-01T03:59:00Z')), true);
    assert.equal(windowOpen(nightly, undefined, at('2025-06-01T04:00:00Z')), false, 'the end is exclusive');
  });

  const rows: { zone: string; windows: Window[]; open: string[]; closed: string[]; name: string }[] = [
    {
      name: 'Europe/Berlin in summer (UTC+2): 02:00-04:00 local is 00:00-02:00 UTC',
      zone: 'Europe/Berlin',
      windows: nightly,
      open: ['2025-06-10T00:00:00Z', '2025-06-10T01:59:00Z'],
      closed: ['2025-06-09T23:59:00Z', '2025-06-10T02:00:00Z', '2025-06-10T12:00:00Z'],
    },
    {
      name: 'Europe/Berlin in winter (UTC+1): the same window is an hour later in UTC',
      zone: 'Europe/Berlin',
      windows: nightly,
      open: ['2025-01-15T01:00:00Z', '2025-01-15T02:59:00Z'],
      closed: ['2025-01-15T00:59:00Z', '2025-01-15T03:00:00Z'],
    },
    {
      name: 'America/New_York in summer (UTC-4)',
      zone: 'America/New_York',
      windows: nightly,
      open: ['2025-07-01T06:00:00Z', '2025-07-01T07:59:00Z'],
      closed: ['2025-07-01T05:59:00Z', '2025-07-01T08:00:00Z', '2025-07-01T02:00:00Z'],
    },
    {
      name: 'Asia/Kolkata (UTC+5:30): a window at 02:00 opens at 20:30 UTC the day before',
      zone: 'Asia/Kolkata',
      windows: [{ start: '02:00', duration: '1h' }],
      open: ['2025-06-01T20:30:00Z', '2025-06-01T21:29:00Z'],
      closed: ['2025-06-01T20:29:00Z', '2025-06-01T21:30:00Z', '2025-06-01T02:00:00Z'],
    },
    {
      name: 'Asia/Kolkata with days: Monday 02:00 IST is Sunday 20:30 UTC',
      zone: 'Asia/Kolkata',
      windows: [{ days: ['mon'], start: '02:00', duration: '1h' }],
      // 2025-06-02 is a Monday.
      open: ['2025-06-01T20:30:00Z'],
      closed: ['2025-06-02T20:30:00Z', '2025-05-31T20:30:00Z'],
    },
    {
      name: 'a window crossing midnight, Friday 23:00 for 3h: open into Saturday 02:00 and not on Saturday night',
      zone: 'Europe/Berlin',
      windows: [{ days: ['fri'], start: '23:00', duration: '3h' }],
      // 2025-06-06 is a Friday; Berlin is UTC+2.
      open: ['2025-06-06T21:00:00Z', '2025-06-06T23:59:00Z', '2025-06-06T22:30:00Z'],
      closed: ['2025-06-06T20:59:00Z', '2025-06-07T00:00:00Z', '2025-06-07T21:30:00Z', '2025-06-05T21:30:00Z', '2025-06-04T23:30:00Z'],
    },
    {
      name: 'a weekend-long window, Friday 18:00 for 62h: open all Saturday and Sunday, closed from Monday 08:00',
      zone: 'UTC',
      windows: [{ days: ['fri'], start: '18:00', duration: '62h' }],
      // 2025-06-06 is a Friday.
      open: ['2025-06-06T18:00:00Z', '2025-06-07T12:00:00Z', '2025-06-08T23:59:00Z', '2025-06-09T07:59:00Z'],
      closed: ['2025-06-06T17:59:00Z', '2025-06-09T08:00:00Z', '2025-06-10T12:00:00Z', '2025-06-05T23:00:00Z'],
    },
    {
      name: 'a window longer than a week never closes',
      zone: 'UTC',
      windows: [{ days: ['wed'], start: '00:00', duration: '200h' }],
      open: ['2025-06-04T00:00:00Z', '2025-06-07T12:00:00Z', '2025-06-10T23:59:00Z', '2025-06-03T12:00:00Z'],
      closed: [],
    },
    {
      name: 'a nightly window crossing midnight without days is open every night',
      zone: 'America/New_York',
      windows: [{ start: '22:00', duration: '4h' }],
      open: ['2025-07-02T02:00:00Z', '2025-07-02T05:59:00Z', '2025-07-06T03:00:00Z'],
      closed: ['2025-07-02T01:59:00Z', '2025-07-02T06:00:00Z'],
    },
    {
      name: 'several windows: open when any is',
      zone: 'UTC',
      windows: [{ start: '01:00', duration: '30m' }, { days: ['sat', 'sun'], start: '12:00', duration: '6h' }],
      // 2025-06-07 is a Saturday, 2025-06-09 a Monday.
      open: ['2025-06-09T01:15:00Z', '2025-06-07T13:00:00Z'],
      closed: ['2025-06-09T13:00:00Z', '2025-06-09T01:30:00Z'],
    },
  ];
  for (const row of rows) {
    test(row.name, () => {
      for (const t of row.open) assert.equal(windowOpen(row.windows, row.zone, at(t)), true, `${t} (${JSON.stringify(localTime(at(t), row.zone))}) should be open`);
      for (const t of row.closed) assert.equal(windowOpen(row.windows, row.zone, at(t)), false, `${t} (${JSON.stringify(localTime(at(t), row.zone))}) should be closed`);
    });
  }

  /**
   * Windows are read on the local wall clock, so a DST change bends them: on the spring-forward day
   * the local hour 02:00-03:00 does not exist and a 02:00-04:00 window is open for one hour (03:00
   * to 04:00 local); on the fall-back day the hour that repeats is inside the window twice, so it is
   * open for three hours. Nothing is skipped and the window is never open outside its local hours.
   */
  const openMinutes = (windows: Window[], zone: string, fromIso: string, hours: number) => {
    const open: number[] = [];
    for (let t = at(fromIso); t < at(fromIso) + hours * 3_600_000; t += 60_000) if (windowOpen(windows, zone, t)) open.push(t);
    return { minutes: open.length, first: open.length ? new Date(open[0]!).toISOString() : null, last: open.length ? new Date(open.at(-1)!).toISOString() : null };
  };

  test('Europe/Berlin spring forward (2025-03-30, 02:00 -> 03:00): the 02:00-04:00 window is open one hour, 01:00-02:00 UTC', () => {
    assert.deepEqual(openMinutes(nightly, 'Europe/Berlin', '2025-03-29T20:00:00Z', 12), { minutes: 60, first: '2025-03-30T01:00:00.000Z', last: '2025-03-30T01:59:00.000Z' });
  });

  test('Europe/Berlin fall back (2025-10-26, 03:00 -> 02:00): the 02:00-04:00 window is open three hours, 00:00-03:00 UTC', () => {
    assert.deepEqual(openMinutes(nightly, 'Europe/Berlin', '2025-10-25T20:00:00Z', 12), { minutes: 180, first: '2025-10-26T00:00:00.000Z', last: '2025-10-26T02:59:00.000Z' });
  });

  test('America/New_York spring forward (2025-03-09, 02:00 -> 03:00): open one hour, 07:00-08:00 UTC', () => {
    assert.deepEqual(openMinutes(nightly, 'America/New_York', '2025-03-09T00:00:00Z', 16), { minutes: 60, first: '2025-03-09T07:00:00.000Z', last: '2025-03-09T07:59:00.000Z' });
  });

  test('America/New_York fall back (2025-11-02, 02:00 -> 01:00): the repeated hour is 01:00-02:00, so 02:00-04:00 stays two hours; a 01:00-02:00 window gets two', () => {
    assert.deepEqual(openMinutes(nightly, 'America/New_York', '2025-11-02T00:00:00Z', 16), { minutes: 120, first: '2025-11-02T07:00:00.000Z', last: '2025-11-02T08:59:00.000Z' });
    assert.deepEqual(openMinutes([{ start: '01:00', duration: '1h' }], 'America/New_York', '2025-11-02T00:00:00Z', 16), { minutes: 120, first: '2025-11-02T05:00:00.000Z', last: '2025-11-02T06:59:00.000Z' });
  });

  test('Australia/Lord_Howe moves its clock by half an hour (2025-10-05, 02:00 -> 02:30): a 02:00-03:00 window is open 30 minutes', () => {
    assert.deepEqual(openMinutes([{ start: '02:00', duration: '1h' }], 'Australia/Lord_Howe', '2025-10-04T10:00:00Z', 12), { minutes: 30, first: '2025-10-04T15:30:00.000Z', last: '2025-10-04T15:59:00.000Z' });
  });

  test('on an ordinary day the same windows are open exactly their duration', () => {
    assert.equal(openMinutes(nightly, 'Europe/Berlin', '2025-06-09T20:00:00Z', 12).minutes, 120);
    assert.equal(openMinutes(nightly, 'America/New_York', '2025-06-09T00:00:00Z', 16).minutes, 120);
    assert.equal(openMinutes([{ start: '02:00', duration: '1h' }], 'Australia/Lord_Howe', '2025-06-09T10:00:00Z', 12).minutes, 60);
  });

  test('property: over any week, a daily window is open its duration on each day without a DST change (UTC)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }), fc.integer({ min: 1, max: 23 }), fc.integer({ min: 0, max: 3000 }), (h, m, hours, dayOffset) => {
        const windows: Window[] = [{ start: `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`, duration: `${hours}h` }];
        const day = at('2020-01-01T00:00:00Z') + dayOffset * 86_400_000;
        let open = 0;
        // Count over a day, starting at the window's start, so a window crossing midnight is counted whole.
        const start = day + (h * 60 + m) * 60_000;
        for (let t = start - 60 * 60_000; t < start + 24 * 3_600_000 - 60 * 60_000; t += 10 * 60_000) if (windowOpen(windows, 'UTC', t)) open += 10;
        assert.equal(open, hours * 60);
      }),
      { numRuns: 40 },
    );
  });

  test('localTime gives the local day and minutes', () => {
    assert.deepEqual(localTime(at('2025-06-01T20:30:00Z'), 'Asia/Kolkata'), { day: 'mon', minutes: 120, date: '2025-06-02' });
    assert.deepEqual(localTime(at('2025-01-01T00:00:00Z'), 'America/New_York'), { day: 'tue', minutes: 19 * 60, date: '2024-12-31' });
  });
});
