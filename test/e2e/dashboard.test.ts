import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { DeploymentResource, DriftEntry, RolloutView } from '../../src/protocol/resources.ts';
import type { RunningServer } from '../../src/server/server.ts';
import type { SimFleet } from '../../src/sim/fleet.ts';
import { eventually, launchBrowser, openPage, pageSummary, screenshot, signedInPage, VIEWPORTS, waitForPage, type PageDocument, type PageElement, type PageLocation, type PageStorage, type SignedInPage } from '../support/browser.ts';
import { run } from '../support/child.ts';
import { startDashboardFleet, type ApiOptions, type DashboardFleet } from '../support/dashboard-fleet.ts';
import { DRIFTLESS } from '../support/fleet.ts';
import { waitFor, waitUntil } from '../support/wait.ts';

// The dashboard in a real browser (Debian's Chromium, driven by playwright-core) against a real
// server listening on a port and a simulated fleet of real agents talking to it over HTTP. Each
// check compares what the page shows with what the public API answers at the same time, so a page
// that shows stale, partial or made-up numbers fails. The tests share one server and fleet and
// build on each other in order: version 1 settled → overview and devices → version 2 rolled out
// from the CLI, watched live, paused and resumed → a viewer's view → version 3 crashes, halts and
// is rolled back with an incident → drift → a screenshot of every page.

declare const document: PageDocument;
declare const location: PageLocation;
declare const localStorage: PageStorage;

const DEVICES = 60;
const SITES = 5;
const DEPLOYMENT = 'pos';
/** Fast polls and ticks, and simulated health checks of 3 s that take 0.3 s: the file runs in minutes. */
const POLL_SECONDS = 2;
const TICK_MS = 500;
const TIME_SCALE = 0.1;
/** Version 3 is the bad release: it exits 500 ms (scenario time) after start, inside its 3 s health check. */
const BAD_VERSION = '3';

const STATES = ['up-to-date', 'updating', 'failed', 'reverted', 'offline'] as const;
type FleetState = (typeof STATES)[number];
type Overview = { devices: number; states: Record<FleetState, number>; incidents: { id: string }[] };
type RolloutDetail = RolloutView & { timeline: { at: string; message: string }[]; devices: { device: string; wave: number; status: string }[]; incident: { id: string; state: string; title: string } | null };
type Incident = { id: string; rollout: string; state: string; title: string; timeline: { at: string; message: string }[] };
type DevicePage = { total: number; offset: number; limit: number; devices: { name: string }[] };
type WaveRow = { wave: number; devices: number; updated: number; failed: number; state: string };

function deployment(version: string, strategy: DeploymentResource['spec']['strategy']): DeploymentResource {
  return {
    apiVersion: 'driftless/v1',
    kind: 'Deployment',
    metadata: { name: DEPLOYMENT },
    spec: {
      selector: { matchLabels: { tier: 'store' } },
      strategy,
      template: { version, components: [{ name: 'pos', image: `registry.example/pos:${version}`, health: { running: { seconds: 3 } } }] },
    },
  };
}

/**
 * Version 2, as an operator writes it for the CLI: a canary of two, then half the fleet four at a
 * time (so progress is visible on the page), which then bakes long enough to be paused mid-rollout.
 */
const VERSION_2_YAML = `apiVersion: driftless/v1
kind: Deployment
metadata:
  name: ${DEPLOYMENT}
spec:
  selector:
    matchLabels: { tier: store }
  strategy:
    waves: [{ devices: 2 }, { percent: 50, bake: 10m }, { percent: 100 }]
    maxParallel: 4
    maxFailurePercent: 10
  template:
    version: "2"
    components:
      - name: pos
        image: registry.example/pos:2
        health: { running: { seconds: 3 } }
`;

/** A bare number as the page shows it ("10,000" → 10000); NaN for anything else. */
function count(text: string | null | undefined): number {
  const digits = (text ?? '').replace(/[\s,.\u00a0\u202f]/g, '');
  return /^\d+$/.test(digits) ? Number(digits) : Number.NaN;
}

/** The wave table's body rows: wave, devices, updated, failed, waiting, offline, state. */
async function waveRows(page: Page): Promise<WaveRow[]> {
  const rows = await page.evaluate(() =>
    Array.from(document.querySelectorAll('[data-testid="wave-row"]')).map((row) => Array.from(row.querySelectorAll('td, th')).map((cell) => (cell.textContent ?? '').trim())),
  );
  return rows.map((cells) => ({ wave: count(cells[0]), devices: count(cells[1]), updated: count(cells[2]), failed: count(cells[3]), state: cells[6] ?? '' }));
}

/** Does the page's wave table show what the API says of each wave? */
function wavesMatch(rows: readonly WaveRow[], waves: RolloutView['waves']): boolean {
  return (
    rows.length === waves.length &&
    waves.every((w, i) => {
      const row = rows[i]!;
      return row.wave === w.index + 1 && row.devices === w.devices && row.updated === w.updated && row.failed === w.failed && row.state.includes(w.state);
    })
  );
}

async function testIdText(page: Page, testId: string): Promise<string | null> {
  return page.evaluate((id) => document.querySelector(`[data-testid="${id}"]`)?.textContent?.trim() ?? null, testId);
}

/** `device\u0000component` of every drift row on the page. */
async function driftRows(page: Page): Promise<string[]> {
  const keys = await page.evaluate(() => Array.from(document.querySelectorAll('[data-testid="drift-row"]')).map((r) => `${r.getAttribute('data-device')}\u0000${r.getAttribute('data-component')}`));
  return keys.sort();
}

const driftKeys = (entries: readonly DriftEntry[]) => entries.map((e) => `${e.device}\u0000${e.component}`).sort();

async function deviceRows(page: Page): Promise<string[]> {
  return page.evaluate(() => Array.from(document.querySelectorAll('[data-testid="device-row"]')).map((r) => r.getAttribute('data-device') ?? ''));
}

/** The entries of the page's incident timeline, as text. */
async function incidentTimeline(page: Page): Promise<string[] | null> {
  return page.evaluate(() => {
    const list = document.querySelector('ol[aria-label="Incident timeline"]');
    return list ? Array.from(list.querySelectorAll(':scope > li')).map((li) => (li.textContent ?? '').replace(/\s+/g, ' ').trim()) : null;
  });
}

/** Names of the rollout actions the page offers (buttons only). */
async function actionButtons(page: Page, names: readonly string[]): Promise<string[]> {
  const present: string[] = [];
  for (const name of names) if ((await page.getByRole('button', { name, exact: true }).count()) > 0) present.push(name);
  return present;
}

/** Sets a marker in the document: if the page reloads, it is gone. */
async function markDocument(page: Page): Promise<void> {
  await page.evaluate(() => {
    (globalThis as { __sameDocument?: boolean }).__sameDocument = true;
  });
}
async function sameDocument(page: Page): Promise<boolean> {
  return page.evaluate(() => (globalThis as { __sameDocument?: boolean }).__sameDocument === true);
}

/**
 * Opens `path` and waits until the page knows the signed-in role: the app's GET /v1/whoami has
 * been answered, and live data has been refreshed since (the "updated" indicator changed), so what
 * the role allows has been rendered. Only then can a missing button mean "not allowed".
 */
async function gotoKnowingRole(page: Page, path: string): Promise<void> {
  const whoami = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/whoami', { timeout: 15_000 });
  await page.goto(path);
  const answer = await whoami;
  assert.equal(answer.status(), 200, `GET /v1/whoami from the page answered ${answer.status()}`);
  await answer.finished();
  const at = await testIdText(page, 'updated-at');
  await eventually('the live data to refresh after the role was known (data-testid=updated-at changing)', () => testIdText(page, 'updated-at'), (t) => t !== null && t !== at);
}

/** Clicks an action button, then "Confirm" in the dialog it opens. */
async function confirmAction(page: Page, name: string): Promise<void> {
  await page.getByRole('button', { name, exact: true }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor({ state: 'visible' });
  await dialog.getByRole('button', { name: 'Confirm', exact: true }).click();
  await dialog.waitFor({ state: 'hidden' });
}

/** Picks `value` in a filter control named `label`, whether a <select> or a text field. */
async function setFilter(page: Page, label: string, value: string): Promise<void> {
  // By role and accessible name: getByLabel would read a wrapping <label>'s text with the selected option in it.
  const named = { name: label, exact: true };
  const control = page.getByRole('combobox', named).or(page.getByRole('textbox', named)).or(page.getByRole('searchbox', named));
  const tag = await control.evaluate((el) => (el as PageElement).tagName.toLowerCase());
  if (tag === 'select') await control.selectOption({ value });
  else {
    await control.fill(value);
    await control.press('Enter');
  }
}

describe('the dashboard in Chromium against a real server and a simulated fleet', { timeout: 300_000 }, () => {
  let setup: DashboardFleet | null = null;
  let dir = '';
  let adminToken = '';
  let server: RunningServer | null = null;
  let fleet: SimFleet | null = null;
  let browser: Browser | null = null;
  const sessions: SignedInPage[] = [];
  let operatorToken = '';
  let viewerToken = '';
  let operator: SignedInPage;
  /** Set by the rollout tests, used by the later ones. */
  let version2Rollout = '';
  let badRollout = '';
  let incidentId = '';
  let offlineDevices: string[] = [];

  const api = <T,>(path: string, opts: ApiOptions = {}): Promise<T> => setup!.api<T>(path, opts);

  const rollout = (name: string) => api<RolloutDetail>(`/v1/rollouts/${encodeURIComponent(name)}`);
  const rolloutNames = async () => new Set((await api<RolloutView[]>(`/v1/rollouts?deployment=${DEPLOYMENT}`)).map((r) => r.name));

  async function session(token: string, viewport?: { width: number; height: number }): Promise<SignedInPage> {
    const s = await signedInPage(browser!, server!.url, token, viewport);
    sessions.push(s);
    return s;
  }

  /** Failure context: what the page showed and what went wrong inside it. */
  const pageContext = (s: SignedInPage) => async () => `page at ${s.page.url()}: ${await pageSummary(s.page)}\n${s.problems()}`;

  before(async () => {
    setup = await startDashboardFleet({
      name: 'dashboard',
      devices: DEVICES,
      sites: SITES,
      seed: 6,
      pollSeconds: POLL_SECONDS,
      tickMs: TICK_MS,
      behaviour: (_device, component) => (component.version === BAD_VERSION ? { crashAfterMs: 500 } : {}),
      timeScale: TIME_SCALE,
      // CPU and memory samples for the device page's charts.
      hostMetricsSeconds: 2,
    });
    ({ dir, adminToken, server, fleet, operatorToken, viewerToken } = setup);
    await api('/v1/apply', { method: 'POST', body: { resources: [deployment('1', { waves: [{ percent: 100 }], maxFailurePercent: 100 })] } });
    await waitFor(
      `all ${DEVICES} devices up to date on version 1`,
      () => api<Overview>('/v1/fleet/overview'),
      (o) => o.devices === DEVICES && o.states['up-to-date'] === DEVICES,
      { timeoutMs: 90_000, intervalMs: 500 },
    );

    browser = await launchBrowser();
    operator = await session(operatorToken);
  });

  after(async () => {
    const steps: [string, () => Promise<unknown>][] = [
      ...sessions.map((s, i): [string, () => Promise<unknown>] => [`page ${i}`, () => s.close()]),
      ['browser', async () => browser?.close()],
    ];
    for (const [what, step] of steps) {
      await step().catch((error: unknown) => process.stderr.write(`dashboard test clean-up: ${what}: ${(error as Error).message}\n`));
    }
    await setup?.close();
  });

  it('sign-in shows the server\'s refusal of a bad token and lands on the overview with a good one', async () => {
    const s = await openPage(browser!, server!.url);
    sessions.push(s);
    const { page } = s;
    // What the server itself says to this token: the page must show that message.
    const refused = await fetch(`${server!.url}/v1/whoami`, { headers: { authorization: 'Bearer not-a-real-token' } });
    assert.equal(refused.status, 401);
    const message = ((await refused.json()) as { error: { message: string } }).error.message;
    assert.ok(message.length > 0, 'the server explains a refused token');

    await page.goto('/sign-in');
    await page.getByLabel('API token', { exact: true }).fill('not-a-real-token');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor({ state: 'visible' });
    assert.ok((await alert.innerText()).includes(message), `the alert shows the server's message "${message}"; it says "${await alert.innerText()}"`);
    assert.equal(new URL(page.url()).pathname, '/sign-in', 'a refused token stays on the sign-in page');
    assert.equal(await page.evaluate(() => localStorage.getItem('driftless.token')), null, 'a refused token is not stored');

    await page.getByLabel('API token', { exact: true }).fill(operatorToken);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await waitForPage(page, 'the overview (/) after signing in with the operator token', () => location.pathname === '/' && document.querySelector('[data-testid="device-count"]') !== null);
    assert.equal(await page.evaluate(() => localStorage.getItem('driftless.token')), operatorToken);
    await page.getByRole('navigation', { name: 'Main' }).waitFor();

    // The link `driftless demo` prints: #token=… signs in and is then removed from the address.
    const linked = await openPage(browser!, server!.url);
    sessions.push(linked);
    await linked.page.goto(`/devices#token=${viewerToken}`);
    await waitForPage(linked.page, 'a #token= link to sign in and drop the fragment', () => localStorage.getItem('driftless.token') !== null && location.hash === '' && location.pathname === '/devices');
    assert.equal(await linked.page.evaluate(() => localStorage.getItem('driftless.token')), viewerToken);
  });

  it('the overview shows the same state counts and device count as GET /v1/fleet/overview', async () => {
    const { page } = operator;
    await page.goto('/');
    const readPage = async () => {
      const states = {} as Record<FleetState, number>;
      for (const state of STATES) states[state] = count(await testIdText(page, `state-${state}`));
      return { devices: count(await testIdText(page, 'device-count')), states };
    };
    const seen = await eventually(
      'the overview to show the numbers of GET /v1/fleet/overview',
      async () => ({ page: await readPage(), api: await api<Overview>('/v1/fleet/overview') }),
      ({ page: p, api: a }) => p.devices === a.devices && STATES.every((s) => p.states[s] === a.states[s]),
      { context: pageContext(operator) },
    );
    // And by itself: the fleet this test made, all on version 1.
    assert.equal(seen.page.devices, DEVICES, 'device-count is the size of the simulated fleet');
    assert.equal(seen.page.states['up-to-date'], DEVICES, 'every device is up to date on version 1');
    assert.equal(seen.page.states.offline, 0);
  });

  it('the devices table searches and pages on the server', async () => {
    const { page } = operator;
    await page.goto('/devices');
    const all = await api<DevicePage>('/v1/fleet/devices');
    assert.equal(all.total, DEVICES);
    const first = await eventually(
      'the first page of devices and the total of GET /v1/fleet/devices',
      async () => ({ rows: await deviceRows(page), total: count(await testIdText(page, 'device-total')) }),
      (s) => s.rows.length > 0 && s.total === all.total,
      { context: pageContext(operator) },
    );
    assert.ok(first.rows.length < DEVICES, `the first page shows only part of the ${DEVICES} devices (it shows ${first.rows.length}): nothing to page through otherwise`);

    await page.getByRole('button', { name: 'Next page', exact: true }).click();
    const second = await eventually(
      'the next page to show other devices',
      () => deviceRows(page),
      (rows) => rows.length > 0 && rows.every((name) => !first.rows.includes(name)),
      { context: pageContext(operator) },
    );
    assert.ok(second.length <= DEVICES - first.rows.length);
    await page.getByRole('button', { name: 'Previous page', exact: true }).click();
    await eventually('Previous page to bring the first page back', () => deviceRows(page), (rows) => JSON.stringify(rows) === JSON.stringify(first.rows), { context: pageContext(operator) });

    // dev-00002 and dev-00020 … dev-00029 contain "0002".
    const q = '0002';
    const matching = await api<DevicePage>(`/v1/fleet/devices?q=${q}`);
    assert.ok(matching.total > 1 && matching.total < first.rows.length, `the search finds a few devices (${matching.total})`);
    await page.getByLabel('Search devices', { exact: true }).fill(q);
    const found = await eventually(
      `the search "${q}" to narrow the table to the ${matching.total} devices GET /v1/fleet/devices?q=${q} finds`,
      async () => ({ rows: await deviceRows(page), total: count(await testIdText(page, 'device-total')) }),
      (s) => s.total === matching.total && s.rows.length === matching.total,
      { context: pageContext(operator) },
    );
    for (const name of found.rows) assert.ok(name.includes(q), `${name} contains "${q}"`);
    assert.deepEqual([...found.rows].sort(), matching.devices.map((d) => d.name).sort());
  });

  it('a rollout started from the CLI advances live on its page, wave by wave', async (t) => {
    const { page } = operator;
    await page.goto('/rollouts');
    await page.getByRole('heading', { level: 1 }).waitFor();
    await markDocument(page);
    const before = await rolloutNames();

    const file = join(dir, 'pos-v2.yaml');
    writeFileSync(file, VERSION_2_YAML);
    const env: NodeJS.ProcessEnv = { ...process.env, DRIFTLESS_CONFIG: join(dir, 'cli-config.json') };
    delete env.DRIFTLESS_SERVER;
    delete env.DRIFTLESS_TOKEN;
    const applied = await run(DRIFTLESS, ['apply', '-f', file, '--server', server!.url, '--token', operatorToken], { cwd: dir, env, timeoutMs: 60_000 });
    assert.equal(applied.code, 0, `driftless apply exited ${applied.code}: ${applied.stderr}`);
    version2Rollout = await waitUntil('the API to list the rollout of version 2', async () => [...(await rolloutNames())].find((n) => !before.has(n)));

    // The new rollout appears on the list without a reload; its link leads to its page.
    const link = page.locator(`main a[href="/rollouts/${version2Rollout}"]`).first();
    await link.waitFor({ state: 'visible', timeout: 30_000 });
    await link.click();
    await waitForPage(page, `the page of ${version2Rollout}`, (name) => location.pathname === `/rollouts/${name}` && document.querySelector('[data-testid="wave-row"]') !== null, version2Rollout);

    // Watch the "updated" column, without reloading, until wave 2 is all updated (it then bakes
    // for ten minutes, so the numbers hold still) and the page shows what the API says.
    const observed: number[][] = [];
    const final = await eventually(
      `the wave rows of ${version2Rollout} to reach the API's numbers with wave 2 all updated`,
      async () => {
        const rows = await waveRows(page);
        const updated = rows.map((r) => r.updated);
        if (rows.length > 0 && JSON.stringify(observed.at(-1)) !== JSON.stringify(updated)) observed.push(updated);
        return { rows, api: await rollout(version2Rollout) };
      },
      ({ rows, api: r }) => r.waves[1]!.devices > 0 && r.waves[1]!.updated === r.waves[1]!.devices && wavesMatch(rows, r.waves),
      { timeoutMs: 120_000, intervalMs: 250, context: async () => `observed updated counts: ${JSON.stringify(observed)}\n${await pageContext(operator)()}` },
    );
    t.diagnostic(`updated counts per wave, as the page showed them: ${JSON.stringify(observed)}`);
    assert.ok(await sameDocument(page), 'the page was never reloaded');
    const totals = observed.map((u) => u.reduce((a, b) => a + b, 0));
    const rises = totals.filter((t, i) => i > 0 && t > totals[i - 1]!).length;
    assert.ok(rises >= 2, `the updated counts rose at least twice while watched; seen ${JSON.stringify(observed)}`);
    assert.ok(totals.every((t, i) => i === 0 || t >= totals[i - 1]!), `the updated counts never went down: ${JSON.stringify(observed)}`);
    assert.equal(final.rows[0]!.updated, 2, 'the canary wave updated its two devices');
    assert.equal(final.rows[1]!.updated, DEVICES / 2 - 2, 'wave 2 updated half the fleet less the canaries');
    assert.equal(final.api.state, 'progressing');
  });

  it('Pause stops the rollout (as the API reports) and Resume lets it go on', async () => {
    const { page } = operator;
    assert.ok(version2Rollout, 'the rollout of version 2 exists');
    await page.getByTestId('rollout-state').waitFor();
    await confirmAction(page, 'Pause');
    await waitFor(`the API to report ${version2Rollout} paused`, () => rollout(version2Rollout), (r) => r.state === 'paused', { timeoutMs: 15_000 });
    const paused = await rollout(version2Rollout);
    assert.ok(paused.timeline.some((t) => t.message === 'paused by operator'), `the timeline records the pause: ${JSON.stringify(paused.timeline.map((t) => t.message))}`);
    await eventually('the page to show the rollout paused', () => testIdText(page, 'rollout-state'), (t) => t === 'paused', { context: pageContext(operator) });
    // A paused rollout offers Resume, not Pause.
    await page.getByRole('button', { name: 'Resume', exact: true }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Pause', exact: true }).count(), 0, 'no Pause button on a paused rollout');

    await confirmAction(page, 'Resume');
    const resumed = await waitFor(`the API to report ${version2Rollout} going on`, () => rollout(version2Rollout), (r) => r.state === 'progressing' || r.state === 'complete', { timeoutMs: 15_000 });
    assert.ok(resumed.timeline.some((t) => t.message === 'resumed by operator'), 'the timeline records the resume');
    await eventually('the page to show the rollout going on', () => testIdText(page, 'rollout-state'), (t) => t === 'progressing' || t === 'complete', { context: pageContext(operator) });
  });

  it('a viewer sees no action buttons where an operator does', async () => {
    assert.ok(version2Rollout, 'the rollout of version 2 exists');
    assert.equal((await rollout(version2Rollout)).state, 'progressing', 'the rollout still runs, so its actions apply');
    const device = fleet!.devices[0]!.name;
    const actions = ['Pause', 'Resume', 'Abort', 'Roll back'];
    const viewer = await session(viewerToken);

    for (const [who, s] of [['operator', operator], ['viewer', viewer]] as const) {
      await gotoKnowingRole(s.page, `/rollouts/${version2Rollout}`);
      await eventually(`the rollout page as ${who} to show its state`, () => testIdText(s.page, 'rollout-state'), (t) => t === 'progressing', { context: pageContext(s) });
      await s.page.locator('[data-testid="wave-row"]').first().waitFor();
    }
    // The operator's page offers the actions (so the viewer's check below could fail)…
    await operator.page.getByRole('button', { name: 'Pause', exact: true }).waitFor();
    assert.deepEqual(await actionButtons(viewer.page, actions), [], 'a viewer gets no rollout actions');

    for (const [who, s] of [['operator', operator], ['viewer', viewer]] as const) {
      await gotoKnowingRole(s.page, `/devices/${device}`);
      await waitForPage(s.page, `the page of ${device} as ${who}`, (name) => document.querySelector('main h1')?.textContent?.trim() === name, device);
      await s.page.getByRole('heading', { name: 'Terminal' }).waitFor();
      await s.page.getByRole('heading', { name: 'Components' }).waitFor();
    }
    await operator.page.getByRole('button', { name: 'Open terminal', exact: true }).waitFor();
    assert.equal(await viewer.page.getByRole('button', { name: 'Open terminal', exact: true }).count(), 0, 'a viewer gets no terminal');
    assert.deepEqual(await actionButtons(viewer.page, actions), []);
  });

  it('a bad release halts, is rolled back, and shows its incident timeline', async () => {
    // First, three devices that run version 2 lose their link. Once the server counts them offline
    // (no canary of version 3 is then chosen among them), version 3 supersedes version 2, which sends
    // the devices it reached back to version 1: these three cannot follow, and drift as offline.
    const v2 = await rollout(version2Rollout);
    offlineDevices = v2.devices.filter((d) => d.status === 'updated').slice(0, 3).map((d) => d.device);
    assert.equal(offlineDevices.length, 3, `three devices run version 2: ${JSON.stringify(v2.devices)}`);
    for (const name of offlineDevices) fleet!.setOnline(name, false);
    await waitFor(
      `the API to count ${offlineDevices.join(', ')} offline`,
      () => api<DevicePage>('/v1/fleet/devices?state=offline'),
      (p) => JSON.stringify(p.devices.map((d) => d.name).sort()) === JSON.stringify([...offlineDevices].sort()),
      { timeoutMs: 60_000, intervalMs: 500 },
    );

    const before = await rolloutNames();
    await api('/v1/apply', {
      method: 'POST',
      body: { resources: [deployment(BAD_VERSION, { waves: [{ devices: 2 }, { percent: 100 }], maxFailurePercent: 0, onFailure: 'rollback' })] },
    });
    badRollout = await waitUntil('the API to list the rollout of version 3', async () => [...(await rolloutNames())].find((n) => !before.has(n)));

    const done = await waitFor(`${badRollout} to halt and be rolled back with an incident`, () => rollout(badRollout), (r) => r.state === 'rolled-back' && r.incident !== null, { timeoutMs: 90_000, intervalMs: 500 });
    incidentId = done.incident!.id;
    assert.ok(done.timeline.some((t) => t.message.startsWith('threshold crossed')), 'the health gate halted it');

    for (const path of [`/rollouts/${badRollout}`, `/incidents/${incidentId}`]) {
      await operator.page.goto(path);
      const seen = await eventually(
        `the incident timeline on ${path} to have the entries of GET /v1/incidents/${incidentId}`,
        async () => ({ page: await incidentTimeline(operator.page), api: await api<Incident>(`/v1/incidents/${encodeURIComponent(incidentId)}`) }),
        ({ page: p, api: a }) => p !== null && a.timeline.length > 0 && p.length === a.timeline.length,
        { context: pageContext(operator) },
      );
      assert.ok(seen.page![0]!.includes(seen.api.timeline[0]!.message), `the first entry on ${path} ("${seen.page![0]}") shows "${seen.api.timeline[0]!.message}"`);
    }
    await eventually('the rollout page to show it rolled back', async () => {
      await operator.page.goto(`/rollouts/${badRollout}`);
      return testIdText(operator.page, 'rollout-state');
    }, (t) => t === 'rolled-back', { context: pageContext(operator) });
  });

  it('the drift page lists exactly the devices GET /v1/drift lists, also filtered', async () => {
    assert.equal(offlineDevices.length, 3, 'three devices were taken offline');
    const offline = await waitFor(
      `GET /v1/drift?reason=offline to list the ${offlineDevices.length} devices cut off`,
      () => api<{ entries: DriftEntry[] }>('/v1/drift?reason=offline'),
      (d) => JSON.stringify([...new Set(d.entries.map((e) => e.device))].sort()) === JSON.stringify([...offlineDevices].sort()),
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    const { page } = operator;
    await page.goto('/drift');
    const all = await eventually(
      'the drift rows to be the entries of GET /v1/drift',
      async () => ({ page: await driftRows(page), api: driftKeys((await api<{ entries: DriftEntry[] }>('/v1/drift')).entries) }),
      (s) => s.api.length > 0 && JSON.stringify(s.page) === JSON.stringify(s.api),
      { timeoutMs: 45_000, context: pageContext(operator) },
    );
    assert.ok(all.api.length > offline.entries.length, `more drift than the offline devices (${all.api.length} entries)`);

    await setFilter(page, 'Reason', 'offline');
    await eventually(
      'the drift rows filtered by Reason "offline" to be the entries of GET /v1/drift?reason=offline',
      async () => ({ page: await driftRows(page), api: driftKeys((await api<{ entries: DriftEntry[] }>('/v1/drift?reason=offline')).entries) }),
      (s) => s.api.length === offline.entries.length && JSON.stringify(s.page) === JSON.stringify(s.api),
      { context: pageContext(operator) },
    );
    await page.getByRole('heading', { name: `offline (${offline.entries.length})`, exact: true }).waitFor();

    const site = offline.entries[0]!.site!;
    await setFilter(page, 'Reason', '');
    await setFilter(page, 'Site', site);
    const bySite = await eventually(
      `the drift rows filtered by Site "${site}" to be the entries of GET /v1/drift?site=${site}`,
      async () => ({ page: await driftRows(page), api: driftKeys((await api<{ entries: DriftEntry[] }>(`/v1/drift?site=${encodeURIComponent(site)}`)).entries) }),
      (s) => s.api.length > 0 && JSON.stringify(s.page) === JSON.stringify(s.api),
      { context: pageContext(operator) },
    );
    assert.ok(bySite.api.length < all.api.length, `one site has part of the drift (${bySite.api.length} of ${all.api.length})`);
  });

  it('writes a screenshot of every page at laptop size, and of the overview and a device at tablet size', async () => {
    const written: string[] = [];
    // As an admin: the audit log is theirs to read.
    const s = await session(adminToken);
    const { page } = s;
    const device = [...(await rollout(badRollout)).devices][0]?.device ?? fleet!.devices[0]!.name;
    const shots: [string, string, () => Promise<void>][] = [
      ['overview', '/', () => page.getByTestId('device-count').waitFor()],
      ['rollouts', '/rollouts', () => page.locator(`main a[href="/rollouts/${badRollout}"]`).first().waitFor()],
      ['rollout-halted', `/rollouts/${badRollout}`, () => page.locator('ol[aria-label="Incident timeline"] > li').first().waitFor()],
      ['drift', '/drift', () => page.getByTestId('drift-row').first().waitFor()],
      ['devices', '/devices', () => page.getByTestId('device-row').first().waitFor()],
      ['device', `/devices/${device}`, async () => {
        await page.getByRole('heading', { name: 'Components' }).waitFor();
        // Both charts drawn (uPlot draws on a canvas), so the screenshot shows them with their axes.
        for (const chart of ['CPU', 'Memory']) await page.getByRole('region', { name: chart, exact: true }).locator('canvas, svg').first().waitFor();
      }],
      ['sites', '/sites', () => page.getByText('site-001').first().waitFor()],
      ['incidents', '/incidents', () => page.getByTestId('incident-row').first().waitFor()],
      ['incident', `/incidents/${incidentId}`, () => page.locator('ol[aria-label="Incident timeline"] > li').first().waitFor()],
      ['audit', '/audit', () => page.getByTestId('audit-row').first().waitFor()],
    ];
    for (const [name, path, ready] of shots) {
      await page.goto(path);
      try {
        await page.getByRole('heading', { level: 1 }).waitFor();
        await ready();
      } catch (error) {
        throw new Error(`${path} did not show what its screenshot needs: ${(error as Error).message.split('\n')[0]}\npage: ${await pageSummary(page)}\n${s.problems()}`);
      }
      written.push(await screenshot(page, `${name}-laptop`));
    }
    await page.setViewportSize(VIEWPORTS.tablet);
    for (const [name, path, ready] of shots.filter(([n]) => n === 'overview' || n === 'device')) {
      await page.goto(path);
      await ready();
      written.push(await screenshot(page, `${name}-tablet`));
    }
    const signIn = await openPage(browser!, server!.url);
    sessions.push(signIn);
    await signIn.page.goto('/sign-in');
    await signIn.page.getByRole('button', { name: 'Sign in' }).waitFor();
    written.push(await screenshot(signIn.page, 'sign-in-laptop'));
    for (const file of written) assert.ok(existsSync(file), `${file} written`);
    process.stdout.write(`dashboard screenshots:\n${written.map((f) => `  ${f}`).join('\n')}\n`);
  });
});
