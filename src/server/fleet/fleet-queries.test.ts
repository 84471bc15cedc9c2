import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { DeviceComponentView, DeviceView, DriftEntry, DriftReason, Labels } from '../../protocol/resources.ts';
import { parseLabelSelector } from '../../protocol/selectors.ts';
import type { DeploymentRecord, IncidentRecord, RevisionRecord, RolloutRecord, SiteRecord } from '../store/store.ts';
import { fleetStateOf, fleetStates, type FleetRow, type FleetSnapshot, type FleetState } from './fleet-index.ts';
import { devicePage, deviceSorts, driftPage, matchesFilter, overviewOf, sitePage, siteSorts, type DeviceSort, type FleetFilter, type Order, type SiteSort } from './fleet-queries.ts';

// The dashboard's questions asked of hand-built fleet snapshots: no store, no server.

const AT = '2025-06-02T10:00:00.000Z';

function component(deployment: string, version: string | null, state: DeviceComponentView['state'] = 'healthy', desiredVersion: string | null = version): DeviceComponentView {
  return { name: deployment, deployment, desiredVersion, version, state, reason: state === 'healthy' ? null : 'x', detail: null, since: AT };
}

function drift(device: string, reason: DriftReason | string, opts: { deployment?: string; site?: string | null; component?: string } = {}): DriftEntry {
  const deployment = opts.deployment ?? 'web';
  return { device, site: opts.site ?? null, component: opts.component ?? deployment, deployment, desiredVersion: '2', version: '1', reason, detail: reason, since: AT };
}

type RowSpec = {
  site?: string | null;
  labels?: Labels;
  status?: DeviceView['status'];
  online?: boolean;
  lastSeen?: string | null;
  components?: DeviceComponentView[];
  drift?: (DriftReason | string)[];
  state?: FleetState;
  region?: string | null;
};

/** A row as the index builds it; the state is the real fleetStateOf's unless the spec pins it. */
function row(name: string, spec: RowSpec = {}): FleetRow {
  const site = spec.site === undefined ? 'site-a' : spec.site;
  const view: DeviceView = {
    name,
    site,
    labels: spec.labels ?? {},
    status: spec.status ?? 'accepted',
    online: spec.online ?? true,
    lastSeen: spec.lastSeen === undefined ? AT : spec.lastSeen,
    enrolledAt: AT,
    facts: {},
    generation: 1,
    appliedGeneration: 1,
    components: spec.components ?? [component('web', '1')],
  };
  const own = (spec.drift ?? []).map((reason) => drift(name, reason, { site }));
  return {
    view,
    drift: own,
    state: spec.state ?? fleetStateOf(view, own, () => true),
    reasons: [...new Set(own.map((e) => e.reason as DriftReason))],
    region: spec.region === undefined ? null : spec.region,
  };
}

function site(name: string, labels: Labels = {}): SiteRecord {
  return { name, labels, spec: {} as SiteRecord['spec'], createdAt: AT, updatedAt: AT };
}

function deploymentRecord(name: string, revision: number, targetRevision = revision): DeploymentRecord {
  return { name, labels: {}, spec: {} as DeploymentRecord['spec'], revision, targetRevision, createdAt: AT, updatedAt: AT };
}

function revision(deployment: string, n: number, version: string): RevisionRecord {
  return { deployment, revision: n, templateHash: `h${n}`, template: { version, components: [{ name: deployment, image: `img:${version}` }] } as RevisionRecord['template'], createdAt: AT };
}

function rollout(name: string, deployment: string, state: string): RolloutRecord {
  return { name, deployment, revision: 2, fromRevision: 1, machine: null, state, reason: null, waves: [], createdAt: AT, updatedAt: AT };
}

function incident(id: string, state: IncidentRecord['state']): IncidentRecord {
  return { id, rollout: 'web-2', deployment: 'web', state, title: id, timeline: [], openedAt: AT, closedAt: state === 'open' ? null : AT };
}

function snapshot(rows: FleetRow[], more: Partial<FleetSnapshot> = {}): FleetSnapshot {
  return { builtAt: Date.parse(AT), rows, sites: [], deployments: [], rollouts: [], incidents: [], ...more };
}

const names = (devices: { name: string }[]) => devices.map((d) => d.name);
const ALL = { limit: 500, offset: 0 };

describe('fleetStateOf: one word per device, worst first', () => {
  const view = (online: boolean, states: DeviceComponentView['state'][] = ['healthy']) => ({ online, components: states.map((s) => component('web', '1', s)) });
  const always = () => true;

  test('precedence: offline > failed > reverted > updating > up-to-date', () => {
    const cases: [string, ReturnType<typeof view>, (DriftReason | string)[], FleetState][] = [
      ['offline beats a failed component and every drift', view(false, ['failed']), ['health-check-failed', 'reverted', 'applying'], 'offline'],
      ['a failed component', view(true, ['failed']), [], 'failed'],
      ['health-check-failed beats reverted', view(true), ['reverted', 'health-check-failed'], 'failed'],
      ['download-failed', view(true), ['download-failed'], 'failed'],
      ['start-failed beats applying', view(true), ['applying', 'start-failed'], 'failed'],
      ['reverted beats applying', view(true), ['applying', 'reverted'], 'reverted'],
      ['applying', view(true), ['applying'], 'updating'],
      ['local-change is not up to date', view(true), ['local-change'], 'updating'],
      ['no drift, healthy', view(true), [], 'up-to-date'],
      ['offline with nothing else', view(false), [], 'offline'],
    ];
    for (const [what, v, reasons, want] of cases) {
      assert.equal(fleetStateOf(v, reasons.map((r) => drift('d', r)), always), want, what);
    }
  });

  test('held-by-rollout and waiting-for-window count as updating only while their deployment moves', () => {
    const moving = (d: string) => d === 'web';
    for (const reason of ['held-by-rollout', 'waiting-for-window']) {
      assert.equal(fleetStateOf(view(true), [drift('d', reason, { deployment: 'web' })], moving), 'updating', `${reason} of a moving deployment`);
      assert.equal(fleetStateOf(view(true), [drift('d', reason, { deployment: 'db' })], moving), 'up-to-date', `${reason} of a deployment whose rollout ended`);
    }
    // A held deployment that no longer moves does not hide another drift of the device.
    assert.equal(fleetStateOf(view(true), [drift('d', 'held-by-rollout', { deployment: 'db' }), drift('d', 'applying', { deployment: 'db' })], moving), 'updating');
    assert.equal(fleetStateOf(view(true), [drift('d', 'held-by-rollout', { deployment: 'db' }), drift('d', 'reverted', { deployment: 'db' })], moving), 'reverted');
  });
});

describe('overviewOf', () => {
  const rows = [
    row('a-1', { site: 'alpha', region: 'eu' }),
    row('a-2', { site: 'alpha', region: 'eu', drift: ['applying'] }),
    row('a-3', { site: 'alpha', region: 'eu', online: false }),
    row('b-1', { site: 'beta', region: 'us', components: [component('web', '1', 'failed')] }),
    row('b-2', { site: 'beta', region: 'us', drift: ['reverted'] }),
    row('n-1', { site: null, region: null }),
    // Waiting for approval: counted apart, in no state, site or version.
    row('p-1', { site: 'alpha', region: 'eu', status: 'pending', online: false, components: [component('web', '9')] }),
    row('p-2', { site: 'gamma', region: 'ap', status: 'pending', online: false }),
  ];

  test('counts by state, by site and by region; pending devices only in pendingApproval', () => {
    const o = overviewOf(snapshot(rows));
    assert.equal(o.generatedAt, AT);
    assert.equal(o.devices, 6);
    assert.equal(o.pendingApproval, 2);
    assert.deepEqual(o.states, { offline: 1, failed: 1, reverted: 1, updating: 1, 'up-to-date': 2 });
    assert.equal(Object.values(o.states).reduce((a, b) => a + b, 0), o.devices, 'the states sum to the devices');
    const zero = { offline: 0, failed: 0, reverted: 0, updating: 0, 'up-to-date': 0 };
    assert.deepEqual(o.sites, [
      { name: 'alpha', region: 'eu', devices: 3, states: { ...zero, offline: 1, updating: 1, 'up-to-date': 1 } },
      { name: 'beta', region: 'us', devices: 2, states: { ...zero, failed: 1, reverted: 1 } },
      { name: '—', region: null, devices: 1, states: { ...zero, 'up-to-date': 1 } },
    ].sort((a, b) => (a.name < b.name ? -1 : 1)));
    assert.ok(!o.sites.some((s) => s.name === 'gamma'), 'a site with only pending devices is not counted');
    assert.deepEqual(o.regions.map((r) => [r.name, r.devices]), [['eu', 3], ['us', 2], ['—', 1]].sort((a, b) => (a[0]! < b[0]! ? -1 : 1)));
    assert.deepEqual(o.regions.find((r) => r.name === 'us')!.states, { ...zero, failed: 1, reverted: 1 });
    for (const list of [o.sites, o.regions]) {
      assert.deepEqual(list.map((s) => s.name), [...list.map((s) => s.name)].sort(), 'sorted by name');
      assert.equal(list.reduce((n, s) => n + s.devices, 0), o.devices);
    }
  });

  test('version share per deployment: newest revision first, unknown versions last, pending devices left out', () => {
    const fleet = [
      row('d-1', { components: [component('web', '2'), component('db', '5')] }),
      row('d-2', { components: [component('web', '2')] }),
      row('d-3', { components: [component('web', '1')] }),
      row('d-4', { components: [component('web', 'hotfix')] }),
      row('d-5', { components: [component('web', null, 'pending', '2')] }),
      // Two components of one deployment at one version: the device counts once.
      row('d-6', { components: [component('web', '1'), { ...component('web', '1'), name: 'web-sidecar' }] }),
      row('p-1', { status: 'pending', online: false, components: [component('web', '1')] }),
    ];
    const o = overviewOf(
      snapshot(fleet, {
        deployments: [
          { deployment: deploymentRecord('web', 3, 2), revisions: [revision('web', 1, '1'), revision('web', 2, '2'), revision('web', 3, '3')] },
          { deployment: deploymentRecord('db', 1), revisions: [revision('db', 1, '5')] },
          { deployment: deploymentRecord('idle', 1), revisions: [revision('idle', 1, '1')] },
        ],
      }),
    );
    assert.deepEqual(o.deployments, [
      {
        name: 'web',
        revision: 3,
        targetRevision: 2,
        versions: [
          { version: '2', revision: 2, devices: 2 },
          { version: '1', revision: 1, devices: 2 },
          { version: 'hotfix', revision: null, devices: 1 },
        ],
      },
      { name: 'db', revision: 1, targetRevision: 1, versions: [{ version: '5', revision: 1, devices: 1 }] },
      { name: 'idle', revision: 1, targetRevision: 1, versions: [] },
    ]);
  });

  test('a version released again under a newer revision is shown with the newest', () => {
    const o = overviewOf(snapshot([row('d-1', { components: [component('web', '1')] })], { deployments: [{ deployment: deploymentRecord('web', 3), revisions: [revision('web', 1, '1'), revision('web', 2, '2'), revision('web', 3, '1')] }] }));
    assert.deepEqual(o.deployments[0]!.versions, [{ version: '1', revision: 3, devices: 1 }]);
  });

  test('only active rollouts and open incidents', () => {
    const states = ['pending', 'progressing', 'paused', 'halted', 'rolled-back', 'complete', 'superseded'];
    const o = overviewOf(snapshot([], { rollouts: states.map((s) => rollout(`r-${s}`, 'web', s)), incidents: [incident('i-open', 'open'), incident('i-done', 'resolved')] }));
    assert.deepEqual(o.rollouts.map((r) => r.state), ['pending', 'progressing', 'paused', 'halted']);
    assert.deepEqual(o.incidents.map((i) => i.id), ['i-open']);
    assert.equal(o.devices, 0);
    assert.deepEqual(o.sites, []);
  });
});

describe('devicePage', () => {
  const fleet = [
    row('Store-Alpha-1', { site: 'alpha', labels: { tier: 'store', region: 'eu-west' }, lastSeen: '2025-06-02T09:00:00.000Z' }),
    row('store-alpha-2', { site: 'alpha', labels: { tier: 'store', region: 'eu-west', gpu: 'yes' }, drift: ['applying'], lastSeen: '2025-06-02T09:30:00.000Z' }),
    row('store-beta-1', { site: 'beta', labels: { tier: 'store', region: 'us-east' }, drift: ['health-check-failed'], lastSeen: '2025-06-02T09:30:00.000Z' }),
    row('kiosk-beta-2', { site: 'beta', labels: { tier: 'kiosk', region: 'us-east', legacy: 'true' }, drift: ['reverted', 'applying'], lastSeen: null }),
    row('kiosk-gamma-1', { site: 'gamma', labels: { tier: 'kiosk' }, online: false, drift: ['offline'], lastSeen: '2025-06-01T00:00:00.000Z' }),
    row('lonely', { site: null, labels: {}, lastSeen: '2025-06-02T09:00:00.000Z' }),
    row('waiting', { site: 'alpha', labels: { tier: 'store' }, status: 'pending', online: false, lastSeen: null }),
  ];
  const snap = snapshot(fleet);
  const page = (filter: FleetFilter, sort: DeviceSort = 'name', order: Order = 'asc', p = ALL) => devicePage(snap, filter, sort, order, p);

  test('the states the rows get from their drift', () => {
    assert.deepEqual(
      Object.fromEntries(fleet.map((r) => [r.view.name, r.state])),
      { 'Store-Alpha-1': 'up-to-date', 'store-alpha-2': 'updating', 'store-beta-1': 'failed', 'kiosk-beta-2': 'reverted', 'kiosk-gamma-1': 'offline', lonely: 'up-to-date', waiting: 'offline' },
    );
  });

  test('no filter: every row, sorted by name, with the fields of a table row', () => {
    const p = page({});
    assert.equal(p.total, fleet.length);
    assert.deepEqual(names(p.devices), ['Store-Alpha-1', 'kiosk-beta-2', 'kiosk-gamma-1', 'lonely', 'store-alpha-2', 'store-beta-1', 'waiting']);
    const kiosk = p.devices.find((d) => d.name === 'kiosk-beta-2')!;
    assert.deepEqual(Object.keys(kiosk).sort(), ['components', 'labels', 'lastSeen', 'name', 'online', 'reasons', 'region', 'site', 'state', 'status'].sort());
    assert.deepEqual(kiosk.reasons, ['reverted', 'applying']);
    assert.deepEqual(Object.keys(kiosk.components[0]!).sort(), ['deployment', 'desiredVersion', 'name', 'reason', 'state', 'version'].sort(), 'no detail or since in the table');
  });

  test('q: a substring of the name, any case', () => {
    assert.deepEqual(names(page({ q: 'ALPHA' }).devices), ['Store-Alpha-1', 'store-alpha-2']);
    assert.deepEqual(names(page({ q: 'a-1' }).devices), ['Store-Alpha-1', 'kiosk-gamma-1', 'store-beta-1']);
    assert.deepEqual(names(page({ q: 'beta-' }).devices), ['kiosk-beta-2', 'store-beta-1']);
    assert.equal(page({ q: 'nothing-like-it' }).total, 0);
    assert.equal(page({ q: '' }).total, fleet.length, 'an empty q filters nothing');
  });

  test('site: exactly that site', () => {
    assert.deepEqual(names(page({ site: 'beta' }).devices), ['kiosk-beta-2', 'store-beta-1']);
    assert.deepEqual(names(page({ site: 'alpha' }).devices), ['Store-Alpha-1', 'store-alpha-2', 'waiting']);
    assert.equal(page({ site: 'alp' }).total, 0, 'not a substring');
  });

  test('selector: =, !=, key and !key, all of them', () => {
    const sel = (text: string) => names(page({ selector: parseLabelSelector(text) }).devices);
    assert.deepEqual(sel('tier=kiosk'), ['kiosk-beta-2', 'kiosk-gamma-1']);
    assert.deepEqual(sel('tier=store,region!=eu-west'), ['store-beta-1', 'waiting']);
    assert.deepEqual(sel('gpu'), ['store-alpha-2']);
    assert.deepEqual(sel('!region'), ['kiosk-gamma-1', 'lonely', 'waiting']);
    assert.deepEqual(sel('tier=kiosk,!legacy'), ['kiosk-gamma-1']);
    assert.deepEqual(sel('tier'), ['Store-Alpha-1', 'kiosk-beta-2', 'kiosk-gamma-1', 'store-alpha-2', 'store-beta-1', 'waiting']);
  });

  test('state and reason', () => {
    assert.deepEqual(names(page({ state: 'failed' }).devices), ['store-beta-1']);
    assert.deepEqual(names(page({ state: 'offline' }).devices), ['kiosk-gamma-1', 'waiting']);
    assert.deepEqual(names(page({ state: 'up-to-date' }).devices), ['Store-Alpha-1', 'lonely']);
    assert.deepEqual(names(page({ reason: 'applying' }).devices), ['kiosk-beta-2', 'store-alpha-2'], 'any of the device’s reasons');
    assert.deepEqual(names(page({ reason: 'reverted', state: 'reverted', site: 'beta', q: 'KIOSK', selector: parseLabelSelector('legacy') }).devices), ['kiosk-beta-2'], 'filters combine');
    assert.equal(page({ reason: 'reverted', state: 'failed' }).total, 0);
  });

  test('every sort, both orders: by its key, ties broken by name; desc is asc reversed', () => {
    const expected: Record<DeviceSort, string[]> = {
      name: ['Store-Alpha-1', 'kiosk-beta-2', 'kiosk-gamma-1', 'lonely', 'store-alpha-2', 'store-beta-1', 'waiting'],
      // No site sorts first, as the empty text.
      site: ['lonely', 'Store-Alpha-1', 'store-alpha-2', 'waiting', 'kiosk-beta-2', 'store-beta-1', 'kiosk-gamma-1'],
      // Worst first: offline, failed, reverted, updating, up-to-date.
      state: ['kiosk-gamma-1', 'waiting', 'store-beta-1', 'kiosk-beta-2', 'store-alpha-2', 'Store-Alpha-1', 'lonely'],
      // Never seen sorts first; equal times by name.
      lastSeen: ['kiosk-beta-2', 'waiting', 'kiosk-gamma-1', 'Store-Alpha-1', 'lonely', 'store-alpha-2', 'store-beta-1'],
    };
    for (const sort of deviceSorts) {
      assert.deepEqual(names(page({}, sort, 'asc').devices), expected[sort], `${sort} asc`);
      assert.deepEqual(names(page({}, sort, 'desc').devices), [...expected[sort]].reverse(), `${sort} desc`);
    }
  });

  test('paging: offset and limit, total before paging; beyond the end is empty', () => {
    const p1 = page({}, 'name', 'asc', { limit: 3, offset: 0 });
    const p2 = page({}, 'name', 'asc', { limit: 3, offset: 3 });
    const p3 = page({}, 'name', 'asc', { limit: 3, offset: 6 });
    assert.deepEqual([p1.total, p2.total, p3.total], [7, 7, 7]);
    assert.deepEqual([p1.offset, p1.limit, p2.offset], [0, 3, 3]);
    assert.deepEqual([...names(p1.devices), ...names(p2.devices), ...names(p3.devices)], names(page({}).devices));
    assert.equal(p3.devices.length, 1);
    const past = page({}, 'name', 'asc', { limit: 3, offset: 100 });
    assert.deepEqual([past.total, past.devices.length], [7, 0]);
    assert.equal(page({ state: 'offline' }, 'name', 'asc', { limit: 1, offset: 0 }).total, 2, 'total counts the filtered rows');
  });

  test('the snapshot is not reordered or changed by a query', () => {
    const before = fleet.map((r) => r.view.name);
    page({ state: 'offline' }, 'state', 'desc');
    assert.deepEqual(snap.rows.map((r) => r.view.name), before);
  });

  test('property: the pages of any size, concatenated, are the whole filtered list in order, with no overlap or gap', () => {
    const label = fc.constantFrom('tier', 'region', 'gpu');
    const value = fc.constantFrom('a', 'b');
    const arbRow = fc.record({
      site: fc.constantFrom<string | null>(null, 's1', 's2', 's3'),
      labels: fc.dictionary(label, value, { maxKeys: 3 }),
      state: fc.constantFrom(...fleetStates),
      reasons: fc.subarray(['applying', 'reverted', 'offline'] as DriftReason[]),
      lastSeen: fc.constantFrom<string | null>(null, '2025-06-01T00:00:00.000Z', '2025-06-02T00:00:00.000Z', '2025-06-03T00:00:00.000Z'),
    });
    const arbRows = fc.uniqueArray(fc.tuple(fc.stringMatching(/^[a-cA-C]{1,3}$/), arbRow), { selector: ([name]) => name, maxLength: 30 });
    const arbFilter = fc.record(
      {
        q: fc.constantFrom('a', 'B', 'ab'),
        site: fc.constantFrom('s1', 's2'),
        selector: fc.constantFrom('tier=a', 'region!=b', 'gpu', '!tier', 'tier,region=a').map(parseLabelSelector),
        state: fc.constantFrom(...fleetStates),
        reason: fc.constantFrom('applying', 'reverted'),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(arbRows, arbFilter, fc.constantFrom(...deviceSorts), fc.constantFrom<Order>('asc', 'desc'), fc.integer({ min: 1, max: 12 }), (specs, filter, sort, order, size) => {
        const rows = specs.map(([name, s]) => {
          const r = row(name, { site: s.site, labels: s.labels, lastSeen: s.lastSeen, state: s.state });
          return { ...r, reasons: s.reasons };
        });
        const snap = snapshot(rows);
        // The oracle, written apart from the code: which rows match, and their order.
        const matching = rows.filter((r) => matchesFilter(r, filter));
        const wanted = rows.filter((r) => {
          if (filter.q && !r.view.name.toLowerCase().includes(filter.q.toLowerCase())) return false;
          if (filter.site !== undefined && r.view.site !== filter.site) return false;
          if (filter.state && r.state !== filter.state) return false;
          if (filter.reason && !r.reasons.includes(filter.reason as DriftReason)) return false;
          for (const req of filter.selector ?? []) {
            const has = req.key in r.view.labels;
            const ok = req.op === '=' ? r.view.labels[req.key] === req.value : req.op === '!=' ? r.view.labels[req.key] !== req.value : req.op === 'exists' ? has : !has;
            if (!ok) return false;
          }
          return true;
        });
        assert.deepEqual(names(matching.map((r) => r.view)).sort(), names(wanted.map((r) => r.view)).sort());
        const keyOf = (r: FleetRow): string | number =>
          sort === 'name' ? '' : sort === 'site' ? (r.view.site ?? '') : sort === 'state' ? fleetStates.indexOf(r.state) : (r.view.lastSeen ?? '');
        const cmp = (a: FleetRow, b: FleetRow) => {
          const [ka, kb] = [keyOf(a), keyOf(b)];
          const c = ka < kb ? -1 : ka > kb ? 1 : a.view.name < b.view.name ? -1 : a.view.name > b.view.name ? 1 : 0;
          return order === 'asc' ? c : -c;
        };
        const full = names([...wanted].sort(cmp).map((r) => r.view));

        const pages: string[] = [];
        for (let offset = 0; ; offset += size) {
          const p = devicePage(snap, filter, sort, order, { limit: size, offset });
          assert.equal(p.total, wanted.length);
          assert.ok(p.devices.length <= size);
          pages.push(...names(p.devices));
          if (p.devices.length < size) break;
        }
        assert.deepEqual(pages, full);
      }),
      { numRuns: 300 },
    );
  });
});

describe('sitePage', () => {
  const snap = snapshot(
    [
      row('a-1', { site: 'alpha', region: 'eu' }),
      row('a-2', { site: 'alpha', region: 'eu', online: false }),
      row('a-3', { site: 'alpha', region: 'eu', drift: ['applying'] }),
      row('b-1', { site: 'beta', region: 'us', components: [component('web', '1', 'failed')] }),
      row('o-1', { site: 'omega', region: null }),
      row('o-2', { site: 'omega', region: null }),
      row('n-1', { site: null }),
      row('p-1', { site: 'beta', status: 'pending', online: false }),
      row('p-2', { site: 'pending-only', status: 'pending', online: false }),
    ],
    { sites: [site('alpha', { region: 'eu', tier: 'store' }), site('beta', { region: 'us' }), site('empty', { region: 'ap' }), site('Zulu')] },
  );
  const page = (q: string | undefined, sort: SiteSort = 'name', order: Order = 'asc', p = ALL) => sitePage(snap, q, sort, order, p);
  const zero = { offline: 0, failed: 0, reverted: 0, updating: 0, 'up-to-date': 0 };

  test('declared sites appear without devices; sites known only from devices appear too; pending devices are not counted', () => {
    const p = page(undefined);
    assert.equal(p.total, 5);
    assert.deepEqual(p.sites, [
      { name: 'Zulu', region: null, labels: {}, devices: 0, online: 0, states: zero },
      { name: 'alpha', region: 'eu', labels: { region: 'eu', tier: 'store' }, devices: 3, online: 2, states: { ...zero, 'up-to-date': 1, offline: 1, updating: 1 } },
      { name: 'beta', region: 'us', labels: { region: 'us' }, devices: 1, online: 1, states: { ...zero, failed: 1 } },
      { name: 'empty', region: 'ap', labels: { region: 'ap' }, devices: 0, online: 0, states: zero },
      { name: 'omega', region: null, labels: {}, devices: 2, online: 2, states: { ...zero, 'up-to-date': 2 } },
    ]);
    assert.ok(!p.sites.some((s) => s.name === 'pending-only'), 'a site seen only on pending devices is not in the table');
  });

  test('q: a substring of the name, any case', () => {
    assert.deepEqual(names(page('A').sites), ['alpha', 'beta', 'omega']);
    assert.deepEqual(names(page('zu').sites), ['Zulu']);
    assert.equal(page('nope').total, 0);
  });

  test('every sort, both orders, ties broken by name; paging', () => {
    const expected: Record<SiteSort, string[]> = {
      name: ['Zulu', 'alpha', 'beta', 'empty', 'omega'],
      devices: ['Zulu', 'empty', 'beta', 'omega', 'alpha'],
      // No region sorts first, as the empty text.
      region: ['Zulu', 'omega', 'empty', 'alpha', 'beta'],
    };
    for (const sort of siteSorts) {
      assert.deepEqual(names(page(undefined, sort, 'asc').sites), expected[sort], `${sort} asc`);
      assert.deepEqual(names(page(undefined, sort, 'desc').sites), [...expected[sort]].reverse(), `${sort} desc`);
      const paged = [0, 2, 4].flatMap((offset) => names(page(undefined, sort, 'asc', { limit: 2, offset }).sites));
      assert.deepEqual(paged, expected[sort], `${sort} paged by 2`);
    }
    const p = page(undefined, 'name', 'asc', { limit: 2, offset: 4 });
    assert.deepEqual([p.total, p.offset, p.limit, p.sites.length], [5, 4, 2, 1]);
  });
});

describe('driftPage', () => {
  const entries: DriftEntry[] = [
    drift('Store-1', 'applying', { site: 'alpha' }),
    drift('Store-1', 'reverted', { site: 'alpha', deployment: 'db' }),
    drift('store-2', 'applying', { site: 'beta' }),
    drift('kiosk-1', 'health-check-failed', { site: 'beta' }),
    drift('kiosk-2', 'offline', { site: null }),
    drift('ghost', 'applying', { site: 'alpha' }),
  ];
  const labels: Record<string, Labels> = { 'Store-1': { tier: 'store' }, 'store-2': { tier: 'store', gpu: 'yes' }, 'kiosk-1': { tier: 'kiosk' }, 'kiosk-2': {} };
  const labelsOf = (d: string) => labels[d];
  const devicesOf = (list: DriftEntry[]) => list.map((e) => `${e.device}/${e.deployment}/${e.reason}`);

  test('no filter, no page: every entry, in order, with the reasons counted', () => {
    const p = driftPage(entries, labelsOf, {}, ALL);
    assert.deepEqual(p.entries, entries);
    assert.equal(p.total, 6);
    assert.deepEqual(p.reasons, { applying: 3, reverted: 1, 'health-check-failed': 1, offline: 1 });
  });

  test('each filter is exactly the matching subset, in the original order', () => {
    const cases: [FleetFilter, (e: DriftEntry) => boolean][] = [
      [{ reason: 'applying' }, (e) => e.reason === 'applying'],
      [{ site: 'beta' }, (e) => e.site === 'beta'],
      [{ q: 'STORE' }, (e) => e.device.toLowerCase().includes('store')],
      [{ selector: parseLabelSelector('tier=store') }, (e) => labels[e.device]?.tier === 'store'],
      [{ selector: parseLabelSelector('!gpu') }, (e) => e.device in labels && !('gpu' in labels[e.device]!)],
      [{ reason: 'applying', site: 'alpha' }, (e) => e.reason === 'applying' && e.site === 'alpha'],
    ];
    for (const [filter, wanted] of cases) {
      const p = driftPage(entries, labelsOf, filter, ALL);
      assert.deepEqual(devicesOf(p.entries), devicesOf(entries.filter(wanted)), JSON.stringify(filter));
      assert.equal(p.total, p.entries.length);
    }
    assert.ok(!driftPage(entries, labelsOf, { selector: parseLabelSelector('!gpu') }, ALL).entries.some((e) => e.device === 'ghost'), 'a device without labels known matches no selector');
  });

  test('reasons count the filtered entries before paging; pages cover them once', () => {
    const filter = { selector: parseLabelSelector('tier') };
    const whole = driftPage(entries, labelsOf, filter, ALL);
    assert.deepEqual(whole.reasons, { applying: 2, reverted: 1, 'health-check-failed': 1 });
    const p1 = driftPage(entries, labelsOf, filter, { limit: 3, offset: 0 });
    const p2 = driftPage(entries, labelsOf, filter, { limit: 3, offset: 3 });
    for (const p of [p1, p2]) {
      assert.deepEqual(p.reasons, whole.reasons, 'counted before paging');
      assert.equal(p.total, 4);
    }
    assert.deepEqual([...p1.entries, ...p2.entries], whole.entries);
    assert.equal(p2.entries.length, 1);
  });
});
