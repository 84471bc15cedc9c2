import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import type { ComponentStatus } from '../../protocol/messages.ts';
import type { DriftEntry, Labels } from '../../protocol/resources.ts';
import { hashToken } from '../auth/tokens.ts';
import type { DeviceRecord, Store } from '../store/store.ts';
import { ok, refused, startInProcessServer, type InProcessServer } from '../../../test/support/in-process-server.ts';

// The dashboard's read API through the assembled app (in process, a clock the test moves): who
// the token is, the fleet overview, the device and site tables, and /v1/drift's filters and pages.

const ADMIN = 'admin-token';
const OPERATOR = 'operator-token';
const VIEWER = 'viewer-token';
const OTHER_VIEWER = 'other-tenant-viewer';
const START = Date.parse('2025-06-02T10:00:00.000Z');
const NOW = new Date(START).toISOString();

type State = 'offline' | 'failed' | 'reverted' | 'updating' | 'up-to-date';
type Spec = { site: string | null; labels: Labels; state: State | 'pending'; report?: 'healthy' | 'failed' | 'reverted' | 'applying'; offline?: boolean };

/** The fleet of the default tenant, and what each device's state comes out as. */
const FLEET: Record<string, Spec> = {
  'a-ok-1': { site: 'alpha', labels: { tier: 'store' }, state: 'up-to-date', report: 'healthy' },
  'a-ok-2': { site: 'alpha', labels: { tier: 'store', gpu: 'yes' }, state: 'up-to-date', report: 'healthy' },
  'a-fail': { site: 'alpha', labels: { tier: 'store' }, state: 'failed', report: 'failed' },
  'a-apply': { site: 'alpha', labels: { tier: 'store', gpu: 'yes' }, state: 'updating', report: 'applying' },
  'b-ok-1': { site: 'beta', labels: { tier: 'store' }, state: 'up-to-date', report: 'healthy' },
  'B-Rev': { site: 'beta', labels: { tier: 'store' }, state: 'reverted', report: 'reverted' },
  'b-off': { site: 'beta', labels: { tier: 'store' }, state: 'offline', report: 'healthy', offline: true },
  'g-kiosk-1': { site: 'gamma', labels: { tier: 'kiosk' }, state: 'up-to-date' },
  'g-kiosk-2': { site: 'gamma', labels: { tier: 'kiosk', legacy: 'true' }, state: 'up-to-date' },
  lonely: { site: null, labels: { tier: 'kiosk', region: 'ap' }, state: 'up-to-date' },
  'p-waiting': { site: 'alpha', labels: { tier: 'store' }, state: 'pending' },
};
const OTHER_FLEET = ['other-1', 'other-2'];
const REGION: Record<string, string> = { alpha: 'eu', beta: 'us' };

function deviceRecord(name: string, spec: Spec): DeviceRecord {
  return {
    name,
    site: spec.site,
    labels: spec.labels,
    facts: { arch: 'x64' },
    publicKey: `key-${name}`,
    status: spec.state === 'pending' ? 'pending' : 'accepted',
    enrolledAt: NOW,
    lastSeen: spec.state === 'pending' ? null : spec.offline ? new Date(START - 3_600_000).toISOString() : NOW,
    appliedGeneration: 0,
  };
}

function deployment(version: string, strategy: unknown = { waves: [{ percent: 100 }] }) {
  return {
    apiVersion: 'driftless/v1',
    kind: 'Deployment',
    metadata: { name: 'web' },
    spec: { selector: { matchLabels: { tier: 'store' } }, template: { version, components: [{ name: 'web', image: `registry.example/web:${version}` }] }, strategy },
  };
}

const sites = Object.entries(REGION).map(([name, region]) => ({ apiVersion: 'driftless/v1', kind: 'Site', metadata: { name, labels: { region } }, spec: {} }));

async function report(store: Store, device: string, revision: number, version: string, state: ComponentStatus['state'] = 'healthy') {
  const reason = state === 'failed' || state === 'reverted' ? 'health-check-failed' : null;
  await store.recordStatus(device, 1, NOW, NOW, [
    { name: 'web', deployment: 'web', desiredVersion: version, desiredRevision: revision, version: state === 'healthy' ? version : state === 'reverted' ? '0' : null, state, reason, detail: null, since: NOW },
  ]);
}

async function call(h: InProcessServer, url: string, token?: string, method: 'GET' | 'POST' = 'GET', body?: unknown): Promise<LightMyRequestResponse> {
  return h.app.inject({ method, url, headers: token ? { authorization: `Bearer ${token}` } : {}, ...(body === undefined ? {} : { payload: body as object }) });
}



type Row = { name: string; site: string | null; region: string | null; labels: Labels; status: string; online: boolean; lastSeen: string | null; state: State; reasons: string[]; components: unknown[] };
type DevicePage = { total: number; offset: number; limit: number; devices: Row[] };
type SitePage = { total: number; offset: number; limit: number; sites: { name: string; region: string | null; devices: number; online: number; states: Record<State, number> }[] };
type Drift = { summary: string; total: number; reasons: Record<string, number>; entries: DriftEntry[] };

const names = (rows: { name: string }[]) => rows.map((r) => r.name);
const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const accepted = Object.entries(FLEET).filter(([, s]) => s.state !== 'pending');

/** The default tenant's fleet on web revision 1, a few devices off it; another tenant with devices of its own. */
async function harness(): Promise<InProcessServer> {
  const h = await startInProcessServer({
    start: START,
    tokens: { [ADMIN]: 'admin', [OPERATOR]: 'operator', [VIEWER]: 'viewer' },
    fleetSnapshotMs: 0,
    dashboardDir: null,
    seed: async (store) => {
      for (const [name, spec] of Object.entries(FLEET)) await store.insertDevice(deviceRecord(name, spec));
      await store.insertTenant({ name: 'other', createdAt: NOW });
      const other = store.forTenant('other');
      await other.insertApiToken({ id: 'other-viewer', tokenHash: hashToken(OTHER_VIEWER), role: 'viewer', description: 'other', createdAt: NOW, expiresAt: null, revokedAt: null });
      for (const name of OTHER_FLEET) await other.insertDevice(deviceRecord(name, { site: 'alpha', labels: { tier: 'store' }, state: 'up-to-date' }));
    },
  });
  ok(await call(h, '/v1/apply', OPERATOR, 'POST', { resources: [...sites, deployment('1')] }));
  for (const [name, spec] of Object.entries(FLEET)) if (spec.report) await report(h.store, name, 1, '1');
  await h.tick();
  assert.equal((await h.store.getDeployment('web'))?.targetRevision, 1, 'revision 1 is out everywhere');
  for (const [name, spec] of Object.entries(FLEET)) if (spec.report && spec.report !== 'healthy') await report(h.store, name, 1, '1', spec.report);
  return h;
}

describe('fleet routes', () => {
  let h: InProcessServer;
  before(async () => {
    h = await harness();
  });
  after(() => h.close());

  test('GET /v1/whoami: the actor, role and tenant of each token; 401 without one', async () => {
    for (const [token, role] of [[VIEWER, 'viewer'], [OPERATOR, 'operator'], [ADMIN, 'admin']] as const) {
      assert.deepEqual(ok(await call(h, '/v1/whoami', token)), { actor: `token:${role}`, name: role, role, tenant: 'default' });
    }
    assert.deepEqual(ok(await call(h, '/v1/whoami', OTHER_VIEWER)), { actor: 'token:other-viewer', name: 'other', role: 'viewer', tenant: 'other' });
    refused(await call(h, '/v1/whoami'), 401, 'unauthorized');
    refused(await call(h, '/v1/whoami', 'not-a-token'), 401, 'unauthorized');
    refused(await call(h, '/v1/whoami?x=1', VIEWER), 400, 'invalid-input', /x/);
  });

  test('viewers read every fleet route; without a token each is 401', async () => {
    for (const url of ['/v1/fleet/overview', '/v1/fleet/devices', '/v1/fleet/sites', '/v1/drift']) {
      assert.equal((await call(h, url, VIEWER)).statusCode, 200, url);
      refused(await call(h, url), 401, 'unauthorized');
      refused(await call(h, url, 'wrong'), 401, 'unauthorized');
    }
  });

  test('GET /v1/fleet/overview: the states seeded, summing to the devices; pending apart; by site, region and version', async () => {
    const o = ok<{
      generatedAt: string;
      devices: number;
      pendingApproval: number;
      states: Record<State, number>;
      sites: { name: string; region: string | null; devices: number; states: Record<State, number> }[];
      regions: { name: string; devices: number }[];
      deployments: { name: string; revision: number; targetRevision: number; versions: { version: string; revision: number | null; devices: number }[] }[];
      rollouts: unknown[];
      incidents: unknown[];
    }>(await call(h, '/v1/fleet/overview', VIEWER));
    assert.equal(o.generatedAt, NOW);
    const want: Record<State, number> = { offline: 0, failed: 0, reverted: 0, updating: 0, 'up-to-date': 0 };
    for (const [, spec] of accepted) want[spec.state as State] += 1;
    assert.deepEqual(o.states, want);
    assert.equal(o.devices, accepted.length);
    assert.equal(Object.values(o.states).reduce((a, b) => a + b, 0), o.devices);
    assert.equal(o.pendingApproval, 1);
    assert.deepEqual(o.sites.map((s) => [s.name, s.region, s.devices]), [['alpha', 'eu', 4], ['beta', 'us', 3], ['gamma', null, 2], ['—', 'ap', 1]]);
    assert.deepEqual(o.sites.find((s) => s.name === 'beta')!.states, { ...want, ...{ 'up-to-date': 1, reverted: 1, offline: 1, failed: 0, updating: 0 } });
    assert.deepEqual(o.regions.map((r) => [r.name, r.devices]), [['ap', 1], ['eu', 4], ['us', 3], ['—', 2]]);
    // Healthy on 1: a-ok-1, a-ok-2, b-ok-1, b-off; reverted to an unknown 0: B-Rev.
    assert.deepEqual(o.deployments, [{ name: 'web', revision: 1, targetRevision: 1, versions: [{ version: '1', revision: 1, devices: 4 }, { version: '0', revision: null, devices: 1 }] }]);
    assert.deepEqual(o.rollouts, [], 'the finished rollout is not active');
    assert.deepEqual(o.incidents, []);
  });

  test('GET /v1/fleet/devices: each device with the state it was seeded to; another tenant’s never', async () => {
    const p = ok<DevicePage>(await call(h, '/v1/fleet/devices?limit=500', VIEWER));
    assert.equal(p.total, Object.keys(FLEET).length);
    assert.deepEqual(names(p.devices), Object.keys(FLEET).sort(byText));
    for (const row of p.devices) {
      const spec = FLEET[row.name]!;
      assert.equal(row.state, spec.state === 'pending' ? 'offline' : spec.state, row.name);
      assert.equal(row.site, spec.site);
      assert.deepEqual(row.labels, spec.labels);
      assert.equal(row.region, spec.labels.region ?? (spec.site ? (REGION[spec.site] ?? null) : null), `${row.name}'s region`);
    }
    assert.deepEqual(p.devices.find((d) => d.name === 'a-fail')!.reasons, ['health-check-failed']);
    assert.deepEqual(p.devices.find((d) => d.name === 'B-Rev')!.reasons, ['reverted']);
    assert.ok(!p.devices.some((d) => OTHER_FLEET.includes(d.name)));

    const other = ok<DevicePage>(await call(h, '/v1/fleet/devices', OTHER_VIEWER));
    assert.deepEqual(names(other.devices), OTHER_FLEET);
    assert.equal(other.total, 2);
    const otherOverview = ok<{ devices: number }>(await call(h, '/v1/fleet/overview', OTHER_VIEWER));
    assert.equal(otherOverview.devices, 2);
    const otherSites = ok<SitePage>(await call(h, '/v1/fleet/sites', OTHER_VIEWER));
    assert.deepEqual(otherSites.sites.map((s) => [s.name, s.region, s.devices]), [['alpha', null, 2]], 'the default tenant’s Site alpha (and its region) is not the other’s');
    const otherDrift = ok<Drift>(await call(h, '/v1/drift', OTHER_VIEWER));
    assert.ok(otherDrift.entries.every((e) => OTHER_FLEET.includes(e.device)));
  });

  test('GET /v1/fleet/devices: defaults, filters, sorts both ways', async () => {
    const get = async (query: string) => ok<DevicePage>(await call(h, `/v1/fleet/devices${query}`, VIEWER));
    const d = await get('');
    assert.deepEqual([d.offset, d.limit], [0, 50]);
    assert.deepEqual(names(d.devices), Object.keys(FLEET).sort(byText), 'by name by default');

    const filtered = async (query: string) => names((await get(query)).devices);
    const sortedNames = (pick: (name: string, s: Spec) => boolean) => Object.entries(FLEET).filter(([n, s]) => pick(n, s)).map(([n]) => n).sort(byText);
    assert.deepEqual(await filtered('?q=OK'), sortedNames((n) => n.includes('ok')));
    assert.deepEqual(await filtered('?q=rev'), ['B-Rev'], 'any case');
    assert.deepEqual(await filtered('?site=beta'), sortedNames((_, s) => s.site === 'beta'));
    assert.deepEqual(await filtered('?state=failed'), ['a-fail']);
    assert.deepEqual(await filtered('?state=up-to-date'), sortedNames((_, s) => s.state === 'up-to-date'));
    assert.deepEqual(await filtered('?reason=reverted'), ['B-Rev']);
    assert.deepEqual(await filtered(`?selector=${encodeURIComponent('tier=store,!gpu')}`), sortedNames((_, s) => s.labels.tier === 'store' && !s.labels.gpu));
    assert.deepEqual(await filtered(`?selector=${encodeURIComponent('tier!=store,legacy')}`), ['g-kiosk-2']);
    assert.deepEqual(await filtered(`?selector=gpu&site=alpha&state=updating`), ['a-apply']);
    const none = await get('?q=nothing-like-it');
    assert.deepEqual([none.total, none.devices], [0, []]);

    const stateRank = ['offline', 'failed', 'reverted', 'updating', 'up-to-date'];
    for (const sort of ['name', 'site', 'state', 'lastSeen']) {
      const asc = (await get(`?sort=${sort}&limit=500`)).devices;
      const desc = (await get(`?sort=${sort}&order=desc&limit=500`)).devices;
      assert.deepEqual(names(desc), names(asc).reverse(), `${sort}: desc is asc reversed`);
      const key = (r: Row) => (sort === 'name' ? '' : sort === 'site' ? (r.site ?? '') : sort === 'state' ? String(stateRank.indexOf(r.state)) : (r.lastSeen ?? ''));
      for (let i = 1; i < asc.length; i++) {
        const [a, b] = [asc[i - 1]!, asc[i]!];
        assert.ok(key(a) < key(b) || (key(a) === key(b) && a.name < b.name), `${sort}: ${a.name} before ${b.name}`);
      }
    }
    assert.deepEqual(names((await get('?sort=state&limit=2')).devices), ['b-off', 'p-waiting'], 'worst first: the offline ones');
  });

  test('GET /v1/fleet/devices: pages of every size cover the list once, in order', async () => {
    for (const sort of ['name', 'state', 'site']) {
      const whole = names(ok<DevicePage>(await call(h, `/v1/fleet/devices?sort=${sort}&order=desc&limit=500`, VIEWER)).devices);
      for (let limit = 1; limit <= whole.length; limit++) {
        const seen: string[] = [];
        for (let offset = 0; offset < whole.length; offset += limit) {
          const p = ok<DevicePage>(await call(h, `/v1/fleet/devices?sort=${sort}&order=desc&limit=${limit}&offset=${offset}`, VIEWER));
          assert.deepEqual([p.total, p.limit, p.offset], [whole.length, limit, offset]);
          seen.push(...names(p.devices));
        }
        assert.deepEqual(seen, whole, `${sort}, pages of ${limit}`);
      }
    }
    const past = ok<DevicePage>(await call(h, '/v1/fleet/devices?offset=1000', VIEWER));
    assert.deepEqual([past.total, past.devices.length], [Object.keys(FLEET).length, 0]);
  });

  test('bad input to the tables is 400 invalid-input naming the field', async () => {
    const field = (name: string) => new RegExp(`^querystring: ${name}: `);
    const cases: [string, RegExp][] = [
      ['limit=0', /^querystring: limit: must be at least 1/],
      ['limit=501', /^querystring: limit: must be at most 500/],
      ['limit=-1', field('limit')],
      ['limit=ten', field('limit')],
      ['limit=1.5', field('limit')],
      ['offset=-1', field('offset')],
      ['offset=x', field('offset')],
      ['sort=bogus', field('sort')],
      ['order=up', field('order')],
      ['state=bogus', field('state')],
      ['reason=bogus', field('reason')],
      ['bogus=1', /^querystring: bogus: unknown field/],
      [`selector=${encodeURIComponent('tier=a=b')}`, /^querystring: selector: cannot read "tier=a=b"/],
      [`selector=${encodeURIComponent('!tier=store')}`, /^querystring: selector: /],
      [`q=${'x'.repeat(254)}`, field('q')],
    ];
    for (const [query, message] of cases) {
      const text = refused(await call(h, `/v1/fleet/devices?${query}`, VIEWER), 400, 'invalid-input', message);
      assert.ok(text.length < 300, text);
    }
    for (const query of ['limit=0', 'limit=501', 'offset=-1', 'sort=state', 'order=up', 'state=failed', 'bogus=1']) {
      refused(await call(h, `/v1/fleet/sites?${query}`, VIEWER), 400, 'invalid-input', field(query.split('=')[0]!));
    }
    for (const query of ['limit=0', 'limit=501', 'offset=-1', 'state=failed', 'reason=bogus', 'sort=name']) {
      refused(await call(h, `/v1/drift?${query}`, VIEWER), 400, 'invalid-input', field(query.split('=')[0]!));
    }
    refused(await call(h, `/v1/drift?selector=${encodeURIComponent('a b')}`, VIEWER), 400, 'invalid-input', /^querystring: selector: /);
    // The edges that are allowed.
    assert.equal(ok<DevicePage>(await call(h, '/v1/fleet/devices?limit=500', VIEWER)).limit, 500);
    assert.equal(ok<DevicePage>(await call(h, '/v1/fleet/devices?limit=1', VIEWER)).devices.length, 1);
  });

  test('GET /v1/fleet/sites: declared and device-only sites, counts, q, sorts and pages', async () => {
    const p = ok<SitePage>(await call(h, '/v1/fleet/sites', VIEWER));
    assert.deepEqual([p.total, p.offset, p.limit], [3, 0, 50]);
    assert.deepEqual(p.sites.map((s) => [s.name, s.region, s.devices, s.online]), [['alpha', 'eu', 4, 4], ['beta', 'us', 3, 2], ['gamma', null, 2, 2]]);
    assert.deepEqual(p.sites.find((s) => s.name === 'alpha')!.states, { offline: 0, failed: 1, reverted: 0, updating: 1, 'up-to-date': 2 });
    assert.deepEqual(names(ok<SitePage>(await call(h, '/v1/fleet/sites?q=ET', VIEWER)).sites), ['beta']);
    assert.deepEqual(names(ok<SitePage>(await call(h, '/v1/fleet/sites?sort=devices', VIEWER)).sites), ['gamma', 'beta', 'alpha']);
    assert.deepEqual(names(ok<SitePage>(await call(h, '/v1/fleet/sites?sort=region&order=desc', VIEWER)).sites), ['beta', 'alpha', 'gamma']);
    const seen: string[] = [];
    for (const offset of [0, 2]) seen.push(...names(ok<SitePage>(await call(h, `/v1/fleet/sites?limit=2&offset=${offset}`, VIEWER)).sites));
    assert.deepEqual(seen, ['alpha', 'beta', 'gamma']);
    // A Site declared before any device enrolls is in the table.
    ok(await call(h, '/v1/apply', OPERATOR, 'POST', { resources: [{ apiVersion: 'driftless/v1', kind: 'Site', metadata: { name: 'delta', labels: { region: 'ap' } }, spec: {} }] }));
    const withDelta = ok<SitePage>(await call(h, '/v1/fleet/sites?q=delta', VIEWER));
    assert.deepEqual(withDelta.sites.map((s) => [s.name, s.region, s.devices, s.online]), [['delta', 'ap', 0, 0]]);
  });

  describe('GET /v1/drift: filters and pages', () => {
    let all: Drift;
    let labels: Map<string, Labels>;
    before(async () => {
      all = ok<Drift>(await call(h, '/v1/drift', VIEWER));
      labels = new Map(Object.entries(FLEET).map(([n, s]) => [n, s.labels]));
    });
    const key = (e: DriftEntry) => `${e.device}/${e.component}/${e.reason}`;

    test('without a query: every entry, the summary, total and reasons (what the CLI reads)', () => {
      assert.deepEqual(Object.keys(all).sort(), ['entries', 'reasons', 'summary', 'total']);
      assert.ok(all.entries.length >= 3, JSON.stringify(all.entries));
      assert.equal(all.total, all.entries.length);
      assert.deepEqual(all.reasons, { applying: 1, 'health-check-failed': 1, reverted: 1 });
      assert.deepEqual(all.entries.map(key).sort(byText), ['B-Rev/web/reverted', 'a-apply/web/applying', 'a-fail/web/health-check-failed']);
      assert.deepEqual(new Set(all.entries.map((e) => e.device)), new Set(['a-apply', 'a-fail', 'B-Rev']));
      assert.match(all.summary, /3 of 11 devices drifted/);
    });

    test('each filter answers exactly the matching subset of the unfiltered entries, with its reasons counted', async () => {
      const cases: [string, (e: DriftEntry) => boolean][] = [
        ['reason=reverted', (e) => e.reason === 'reverted'],
        ['reason=applying', (e) => e.reason === 'applying'],
        ['reason=offline', (e) => e.reason === 'offline'],
        ['site=alpha', (e) => e.site === 'alpha'],
        ['site=beta', (e) => e.site === 'beta'],
        [`selector=${encodeURIComponent('gpu')}`, (e) => 'gpu' in (labels.get(e.device) ?? {})],
        [`selector=${encodeURIComponent('tier=store,!gpu')}`, (e) => labels.get(e.device)?.tier === 'store' && !('gpu' in labels.get(e.device)!)],
        ['q=A-', (e) => e.device.toLowerCase().includes('a-')],
        ['q=REV', (e) => e.device.toLowerCase().includes('rev')],
        ['site=alpha&reason=health-check-failed', (e) => e.site === 'alpha' && e.reason === 'health-check-failed'],
      ];
      for (const [query, wanted] of cases) {
        const got = ok<Drift>(await call(h, `/v1/drift?${query}`, VIEWER));
        const expected = all.entries.filter(wanted);
        assert.deepEqual(got.entries, expected, query);
        assert.equal(got.total, expected.length, query);
        const counts: Record<string, number> = {};
        for (const e of expected) counts[e.reason] = (counts[e.reason] ?? 0) + 1;
        assert.deepEqual(got.reasons, counts, query);
        assert.equal(got.summary, all.summary, 'the summary is of the whole fleet');
      }
    });

    test('limit and offset page the filtered entries; reasons still count them all', async () => {
      for (const limit of [1, 2]) {
        const seen: DriftEntry[] = [];
        for (let offset = 0; offset < all.total; offset += limit) {
          const p = ok<Drift>(await call(h, `/v1/drift?limit=${limit}&offset=${offset}`, VIEWER));
          assert.ok(p.entries.length <= limit);
          assert.equal(p.total, all.total);
          assert.deepEqual(p.reasons, all.reasons);
          seen.push(...p.entries);
        }
        assert.deepEqual(seen, all.entries, `pages of ${limit}`);
      }
      const p = ok<Drift>(await call(h, '/v1/drift?site=alpha&limit=1&offset=1', VIEWER));
      const alpha = all.entries.filter((e) => e.site === 'alpha');
      assert.deepEqual(p.entries, alpha.slice(1, 2));
      assert.equal(p.total, alpha.length);
    });
  });
});

/** Accepted devices at site alpha labelled tier=store, with an operator and a viewer token; answers always fresh. */
function storeFleet(devices: readonly string[]): Promise<InProcessServer> {
  return startInProcessServer({
    start: START,
    tokens: { [OPERATOR]: 'operator', [VIEWER]: 'viewer' },
    fleetSnapshotMs: 0,
    dashboardDir: null,
    seed: async (store) => {
      for (const name of devices) await store.insertDevice(deviceRecord(name, { site: 'alpha', labels: { tier: 'store' }, state: 'up-to-date' }));
    },
  });
}

describe('fleet states follow the rollouts', () => {
  let h: InProcessServer;
  const devices = ['pos-1', 'pos-2', 'pos-3', 'pos-4'];
  before(async () => {
    h = await storeFleet(devices);
    ok(await call(h, '/v1/apply', OPERATOR, 'POST', { resources: [deployment('1')] }));
    for (const d of devices) await report(h.store, d, 1, '1');
    await h.tick();
  });
  after(() => h.close());

  const states = async () => Object.fromEntries(ok<DevicePage>(await call(h, '/v1/fleet/devices', VIEWER)).devices.map((d) => [d.name, [d.state, d.reasons.join(',')]]));

  test('held back by an active rollout: updating; held by one that rolled back: up to date again', async () => {
    assert.deepEqual(await states(), Object.fromEntries(devices.map((d) => [d, ['up-to-date', '']])));
    ok(await call(h, '/v1/apply', OPERATOR, 'POST', { resources: [deployment('2', { waves: [{ devices: 1 }, { percent: 100 }], maxFailurePercent: 0, onFailure: 'rollback' })] }));
    const released = await h.store.listReleases('web');
    assert.equal(released.length, 1);
    const canary = released[0]!.device;
    const held = devices.filter((d) => d !== canary);

    const during = await states();
    for (const d of held) assert.deepEqual(during[d], ['updating', 'held-by-rollout'], `${d} waits for its wave`);
    const overview = ok<{ states: Record<State, number>; rollouts: { name: string; state: string }[] }>(await call(h, '/v1/fleet/overview', VIEWER));
    assert.equal(overview.states.updating, 4);
    assert.deepEqual(overview.rollouts.map((r) => [r.name, r.state]), [['web-2', 'progressing']]);
    assert.deepEqual(names(ok<DevicePage>(await call(h, '/v1/fleet/devices?reason=held-by-rollout', VIEWER)).devices), held);

    ok(await call(h, `/v1/rollouts/web-2/abort`, OPERATOR, 'POST', {}));
    await report(h.store, canary, 1, '1');
    await h.tick();
    assert.equal((await h.store.getRollout('web-2'))?.state, 'rolled-back');
    const afterwards = await states();
    for (const d of held) assert.equal(afterwards[d]![0], 'up-to-date', `${d} runs what it should: ${afterwards[d]}`);
    const final = ok<{ states: Record<State, number>; rollouts: unknown[] }>(await call(h, '/v1/fleet/overview', VIEWER));
    assert.deepEqual(final.rollouts, []);
    assert.equal(final.states['up-to-date'] + final.states.updating, 4);
  });
});

describe('GET /v1/drift on a fleet larger than a page', () => {
  let h: InProcessServer;
  const devices = Array.from({ length: 120 }, (_, i) => `pos-${String(i).padStart(3, '0')}`);
  before(async () => {
    h = await storeFleet(devices);
    // Released to all, reported by none: every device drifts.
    ok(await call(h, '/v1/apply', OPERATOR, 'POST', { resources: [deployment('1')] }));
  });
  after(() => h.close());

  test('without limit every entry comes back (the CLI reads them all); with one, a page', async () => {
    const all = ok<Drift>(await call(h, '/v1/drift', VIEWER));
    assert.equal(all.entries.length, devices.length, 'no default page size cuts the list');
    assert.equal(all.total, devices.length);
    assert.deepEqual(new Set(all.entries.map((e) => e.device)), new Set(devices));
    const filtered = ok<Drift>(await call(h, `/v1/drift?reason=${all.entries[0]!.reason}`, VIEWER));
    assert.equal(filtered.entries.length, all.entries.filter((e) => e.reason === all.entries[0]!.reason).length, 'a filter without limit is not paged either');
    const page = ok<Drift>(await call(h, '/v1/drift?limit=50&offset=100', VIEWER));
    assert.deepEqual(page.entries, all.entries.slice(100, 150));
    assert.equal(page.total, devices.length);
    assert.deepEqual(page.reasons, all.reasons);
    const max = ok<Drift>(await call(h, '/v1/drift?limit=500', VIEWER));
    assert.deepEqual(max.entries, all.entries);
  });
});
