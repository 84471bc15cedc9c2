import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { DeploymentResource, RolloutView } from '../../src/protocol/resources.ts';
import { launchBrowser, openPage, pageSummary, signedInPage, VIEWPORTS, waitForPage, type PageDocument, type PageElement, type PageLocation, type SignedInPage } from '../support/browser.ts';
import { startDashboardFleet, type DashboardFleet } from '../support/dashboard-fleet.ts';
import { waitFor, waitUntil } from '../support/wait.ts';

// Accessibility and keyboard use of the dashboard in Chromium, against a real server and a small
// simulated fleet: one Deployment settled, a bad release of it halted with an incident (so the
// incident pages have content), and a second Deployment baking its first wave (so a rollout offers
// "Pause"). Every page, at laptop and tablet size, has one h1, a <main>, the main navigation, names
// for every control, link, button and image (as Chromium's accessibility tree computes them), and
// no sideways scrolling of the page at tablet width. Then the keyboard: the navigation in order, the
// devices table's search and sorting, a confirm dialog that takes focus and is cancelled by Escape,
// and a visible focus ring on a link, a button and a field.

declare const document: PageDocument & { readonly activeElement: A11yElement | null; readonly documentElement: { readonly scrollWidth: number } };
declare const location: PageLocation;
declare const innerWidth: number;
declare const CSS: { escape(value: string): string };
declare function getComputedStyle(element: A11yElement): { outlineStyle: string; outlineWidth: string; boxShadow: string };

/** The DOM a page function here reads, beyond what test/support/browser.ts declares. */
type A11yElement = PageElement & {
  readonly id: string;
  readonly type?: string;
  readonly labels?: ArrayLike<A11yElement> | null;
  readonly parentElement: A11yElement | null;
  closest(selector: string): A11yElement | null;
  contains(other: A11yElement | null): boolean;
  hasAttribute(name: string): boolean;
  getClientRects(): ArrayLike<unknown>;
  cloneNode(deep: true): A11yElement;
  remove(): void;
};

const DEVICES = 20;
const SITES = 4;
const POLL_SECONDS = 2;
const TICK_MS = 500;
const TIME_SCALE = 0.1;
const SETTLED = 'pos';
const BAKING = 'kiosk';
/** The bad release of `pos`: its component exits 500 ms (scenario time) after start, inside its health check. */
const BAD_VERSION = '2';
const NAV = ['Overview', 'Rollouts', 'Drift', 'Devices', 'Sites', 'Incidents', 'Audit'];

type RolloutDetail = RolloutView & { timeline: { at: string; message: string }[]; incident: { id: string } | null };

function deployment(name: string, version: string, strategy: DeploymentResource['spec']['strategy']): DeploymentResource {
  return {
    apiVersion: 'driftless/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      selector: { matchLabels: { tier: 'store' } },
      strategy,
      template: { version, components: [{ name, image: `registry.example/${name}:${version}`, health: { running: { seconds: 3 } } }] },
    },
  };
}

/**
 * What the page itself can tell: its landmarks and headings, a name for every form control (its
 * <label>s, aria-label or aria-labelledby), images and SVGs named or hidden, and its width.
 */
async function structure(page: Page): Promise<{ h1: number; main: number; mainNav: number; unnamedControls: string[]; unnamedGraphics: string[]; scrollWidth: number; innerWidth: number }> {
  return page.evaluate(() => {
    const all = (selector: string) => Array.from(document.querySelectorAll(selector)) as A11yElement[];
    const describe = (el: A11yElement) => `<${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.getAttribute('type') ? ` type=${el.getAttribute('type')}` : ''}${el.getAttribute('class') ? ` class="${el.getAttribute('class')}"` : ''}>`;
    const text = (el: A11yElement | null) => (el?.textContent ?? '').replace(/\s+/g, ' ').trim();
    const hidden = (el: A11yElement) => el.closest('[aria-hidden="true"]') !== null || el.getClientRects().length === 0;
    const byIds = (ids: string | null) => (ids ?? '').split(/\s+/).filter(Boolean).map((id) => text(document.querySelector(`#${CSS.escape(id)}`) as A11yElement | null)).join(' ').trim();
    const nameOf = (el: A11yElement) => byIds(el.getAttribute('aria-labelledby')) || (el.getAttribute('aria-label') ?? '').trim() || Array.from(el.labels ?? []).map(text).join(' ').trim();
    const unnamedControls = all('input, select, textarea')
      .filter((el) => el.getAttribute('type') !== 'hidden' && !hidden(el) && nameOf(el) === '')
      .map(describe);
    const unnamedGraphics = all('img, svg, [role="img"]')
      .filter((el) => !hidden(el) && el.getAttribute('role') !== 'presentation' && el.getAttribute('role') !== 'none')
      .filter((el) => {
        if (el.tagName.toLowerCase() === 'img' && el.hasAttribute('alt')) return false; // alt="" says decorative
        if (nameOf(el) !== '') return false;
        return !(el.tagName.toLowerCase() === 'svg' && text(el.querySelector(':scope > title') as A11yElement | null) !== '');
      })
      .map(describe);
    return {
      h1: all('h1').length,
      main: all('main').length,
      mainNav: all('nav[aria-label="Main"]').length,
      unnamedControls,
      unnamedGraphics,
      scrollWidth: document.documentElement.scrollWidth,
      innerWidth,
    };
  });
}

/** Roles whose element must have an accessible name, as Chromium's accessibility tree gives it to screen readers. */
const NAMED_ROLES = new Set(['button', 'link', 'textbox', 'searchbox', 'combobox', 'listbox', 'checkbox', 'radio', 'spinbutton', 'slider', 'switch', 'tab', 'menuitem', 'image', 'img', 'dialog']);

type AXNode = { ignored: boolean; role?: { value: string }; name?: { value: string }; backendDOMNodeId?: number };

/**
 * Elements in the accessibility tree with a role that needs a name and none, described for a failure
 * message; and how many such elements had a name (so an empty tree cannot pass).
 */
async function unnamedInAccessibilityTree(page: Page): Promise<{ unnamed: string[]; named: number }> {
  const cdp = await page.context().newCDPSession(page);
  try {
    const { nodes } = (await cdp.send('Accessibility.getFullAXTree')) as { nodes: AXNode[] };
    const needing = nodes.filter((n) => !n.ignored && n.role && NAMED_ROLES.has(n.role.value));
    const unnamed = needing.filter((n) => !(n.name?.value ?? '').trim());
    const out: string[] = [];
    for (const n of unnamed) {
      let what = `role ${n.role!.value}`;
      if (n.backendDOMNodeId !== undefined) {
        const { node } = (await cdp.send('DOM.describeNode', { backendNodeId: n.backendDOMNodeId })) as { node: { localName: string; attributes?: string[] } };
        const attrs = node.attributes ?? [];
        what += ` <${node.localName}${Array.from({ length: attrs.length / 2 }, (_, i) => ` ${attrs[2 * i]}="${attrs[2 * i + 1]}"`).join('')}>`;
      }
      out.push(what);
    }
    return { unnamed: out, named: needing.length - unnamed.length };
  } finally {
    await cdp.detach().catch(() => {});
  }
}

/** The focused element, described, and whether it shows a focus ring (an outline or a box-shadow). */
async function focused(page: Page): Promise<{ tag: string; text: string; href: string | null; label: string | null; ring: string | null; inDialog: boolean; inTh: boolean }> {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el) return { tag: '', text: '', href: null, label: null, ring: null, inDialog: false, inTh: false };
    const style = getComputedStyle(el);
    const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0 ? `outline ${style.outlineWidth} ${style.outlineStyle}` : null;
    const shadow = style.boxShadow && style.boxShadow !== 'none' ? `box-shadow ${style.boxShadow}` : null;
    return {
      tag: el.tagName.toLowerCase(),
      // The text a screen reader reads: without what is aria-hidden (a sort arrow, say).
      text: (() => {
        const copy = el.cloneNode(true);
        for (const hidden of Array.from(copy.querySelectorAll('[aria-hidden="true"]')) as A11yElement[]) hidden.remove();
        return (copy.textContent ?? '').replace(/\s+/g, ' ').trim();
      })(),
      href: el.getAttribute('href'),
      label: Array.from(el.labels ?? []).map((l) => (l.textContent ?? '').trim()).join(' ') || el.getAttribute('aria-label'),
      ring: outline ?? shadow,
      inDialog: el.closest('dialog[open]') !== null,
      inTh: el.parentElement?.tagName.toLowerCase() === 'th',
    };
  });
}

type Focused = Awaited<ReturnType<typeof focused>>;
const show = (f: Focused) => `${f.tag}${f.href ? `[href=${f.href}]` : ''} "${f.text || f.label || ''}"`;

/** Presses Tab until `target` holds for the focused element (at most `limit` times); returns every stop on the way. */
async function tabTo(page: Page, what: string, target: (f: Focused) => boolean, limit = 40): Promise<Focused[]> {
  const stops: Focused[] = [];
  for (let i = 0; i < limit; i++) {
    await page.keyboard.press('Tab');
    const f = await focused(page);
    stops.push(f);
    if (target(f)) return stops;
  }
  assert.fail(`Tab did not reach ${what} in ${limit} presses; focus went: ${stops.map(show).join(' → ')}`);
}

function assertRing(f: Focused, what: string): void {
  assert.ok(f.ring, `the focused ${what} (${show(f)}) shows a focus ring: an outline or a box-shadow, not none`);
}

describe('the dashboard\'s accessibility and keyboard use', { timeout: 150_000 }, () => {
  let setup: DashboardFleet | null = null;
  let browser: Browser | null = null;
  const sessions: SignedInPage[] = [];
  let haltedRollout = '';
  let bakingRollout = '';
  let incidentId = '';

  const api = <T,>(path: string, opts?: Parameters<DashboardFleet['api']>[1]): Promise<T> => setup!.api<T>(path, opts);
  const rollout = (name: string) => api<RolloutDetail>(`/v1/rollouts/${encodeURIComponent(name)}`);
  const rolloutsOf = (name: string) => api<RolloutView[]>(`/v1/rollouts?deployment=${name}`);

  async function session(token: string, viewport?: { width: number; height: number }): Promise<SignedInPage> {
    const s = await signedInPage(browser!, setup!.server.url, token, viewport);
    sessions.push(s);
    return s;
  }

  before(async () => {
    setup = await startDashboardFleet({
      name: 'dashboard-a11y',
      devices: DEVICES,
      sites: SITES,
      seed: 11,
      pollSeconds: POLL_SECONDS,
      tickMs: TICK_MS,
      timeScale: TIME_SCALE,
      behaviour: (_device, component) => (component.name === SETTLED && component.version === BAD_VERSION ? { crashAfterMs: 500 } : {}),
      hostMetricsSeconds: 2,
    });
    const browserStarted = launchBrowser();
    browserStarted.catch(() => {}); // awaited below; a failure there is reported there
    try {
      await api('/v1/apply', { method: 'POST', body: { resources: [deployment(SETTLED, '1', { waves: [{ percent: 100 }], maxFailurePercent: 100 })] } });
      await waitFor(
        `all ${DEVICES} devices up to date on ${SETTLED} version 1`,
        () => api<{ devices: number; states: Record<string, number> }>('/v1/fleet/overview'),
        (o) => o.devices === DEVICES && o.states['up-to-date'] === DEVICES,
        { timeoutMs: 60_000, intervalMs: 500 },
      );
      const settled = new Set((await rolloutsOf(SETTLED)).map((r) => r.name));
      await api('/v1/apply', {
        method: 'POST',
        body: {
          resources: [
            // Halts on its first failure and waits for an operator, with an incident.
            deployment(SETTLED, BAD_VERSION, { waves: [{ devices: 2 }, { percent: 100 }], maxFailurePercent: 0, onFailure: 'pause' }),
            // Its canary then bakes for half an hour: a rollout that offers "Pause" all along.
            deployment(BAKING, '1', { waves: [{ devices: 1, bake: '30m' }, { percent: 100 }] }),
          ],
        },
      });
      haltedRollout = await waitUntil(`the API to list the rollout of ${SETTLED} version ${BAD_VERSION}`, async () => (await rolloutsOf(SETTLED)).find((r) => !settled.has(r.name))?.name);
      bakingRollout = await waitUntil(`the API to list the rollout of ${BAKING}`, async () => (await rolloutsOf(BAKING))[0]?.name);
      const halted = await waitFor(`${haltedRollout} to halt with an incident`, () => rollout(haltedRollout), (r) => r.state === 'halted' && r.incident !== null, { timeoutMs: 60_000, intervalMs: 500 });
      incidentId = halted.incident!.id;
      await waitFor(`${bakingRollout} to be progressing with its canary updated`, () => rollout(bakingRollout), (r) => r.state === 'progressing' && r.waves[0]!.updated === 1, { timeoutMs: 60_000, intervalMs: 500 });
    } finally {
      browser = await browserStarted;
    }
  });

  after(async () => {
    const steps: [string, () => Promise<unknown>][] = [
      ...sessions.map((s, i): [string, () => Promise<unknown>] => [`page ${i}`, () => s.close()]),
      ['browser', async () => browser?.close()],
    ];
    for (const [what, step] of steps) {
      await step().catch((error: unknown) => process.stderr.write(`dashboard-a11y test clean-up: ${what}: ${(error as Error).message}\n`));
    }
    await setup?.close();
  });

  it('every page has one h1, a main, the main navigation, names for its controls and images, and fits a tablet', async () => {
    const device = setup!.fleet.devices[0]!.name;
    // As an admin: the audit log is theirs to read, and the operator's buttons show too.
    const admin = await session(setup!.adminToken);
    const { page } = admin;
    const pages: [string, () => Promise<unknown>][] = [
      ['/', () => page.getByTestId('device-count').waitFor()],
      ['/rollouts', () => page.locator(`main a[href="/rollouts/${haltedRollout}"]`).first().waitFor()],
      [`/rollouts/${haltedRollout}`, () => page.locator('ol[aria-label="Incident timeline"] > li').first().waitFor()],
      ['/drift', () => page.locator('main form[role="search"]').waitFor()],
      ['/devices', () => page.getByTestId('device-row').first().waitFor()],
      [`/devices/${device}`, async () => {
        await page.getByRole('heading', { name: 'Components' }).waitFor();
        for (const chart of ['CPU', 'Memory']) await page.getByRole('region', { name: chart, exact: true }).locator('canvas, svg').first().waitFor();
      }],
      ['/sites', () => page.getByText('site-001').first().waitFor()],
      ['/incidents', () => page.getByTestId('incident-row').first().waitFor()],
      [`/incidents/${incidentId}`, () => page.locator('ol[aria-label="Incident timeline"] > li').first().waitFor()],
      ['/audit', () => page.getByTestId('audit-row').first().waitFor()],
    ];
    const problems: string[] = [];
    const check = async (s: SignedInPage, path: string, viewport: keyof typeof VIEWPORTS, signIn: boolean) => {
      const found = await structure(s.page);
      const where = `${path} at ${viewport} size`;
      if (found.h1 !== 1) problems.push(`${where}: ${found.h1} <h1> elements, not one`);
      if (found.main !== 1) problems.push(`${where}: ${found.main} <main> elements, not one`);
      // The sign-in page stands alone: a <main> with its h1 and form, and no navigation to pages it cannot show yet.
      if (!signIn && found.mainNav !== 1) problems.push(`${where}: ${found.mainNav} <nav aria-label="Main">, not one`);
      for (const c of found.unnamedControls) problems.push(`${where}: a form control without a label, aria-label or aria-labelledby: ${c}`);
      for (const g of found.unnamedGraphics) problems.push(`${where}: an image without a name or aria-hidden: ${g}`);
      const tree = await unnamedInAccessibilityTree(s.page);
      for (const n of tree.unnamed) problems.push(`${where}: no accessible name: ${n}`);
      if (tree.named < (signIn ? 1 : NAV.length)) problems.push(`${where}: only ${tree.named} named controls, links and images in the accessibility tree`);
      if (viewport === 'tablet' && found.scrollWidth > found.innerWidth + 1) problems.push(`${where}: the page scrolls sideways (scrollWidth ${found.scrollWidth} > ${found.innerWidth})`);
    };

    for (const viewport of ['laptop', 'tablet'] as const) {
      await page.setViewportSize(VIEWPORTS[viewport]);
      for (const [path, ready] of pages) {
        await page.goto(path);
        try {
          await page.getByRole('heading', { level: 1 }).first().waitFor();
          await ready();
          // Nothing still loading ("Loading …" placeholders have aria-live).
          await waitForPage(page, `${path} to finish loading`, () => document.querySelector('main p.empty[aria-live]') === null, undefined, 15_000);
        } catch (error) {
          throw new Error(`${path} at ${viewport} size did not show its content: ${(error as Error).message.split('\n')[0]}\npage: ${await pageSummary(page)}\n${admin.problems()}`);
        }
        await check(admin, path, viewport, false);
      }
      const anonymous = await openPage(browser!, setup!.server.url, VIEWPORTS[viewport]);
      sessions.push(anonymous);
      await anonymous.page.goto('/sign-in');
      await anonymous.page.getByRole('button', { name: 'Sign in' }).waitFor();
      await check(anonymous, '/sign-in', viewport, true);
      assert.equal(await anonymous.page.getByRole('textbox', { name: 'API token', exact: true }).count(), 1, 'the sign-in page\'s token field is named "API token"');
    }
    assert.deepEqual(problems, [], `accessibility problems:\n${problems.join('\n')}`);
  });

  it('Tab walks the main navigation in order from the top of the overview, with a focus ring, and Enter follows a link', async () => {
    const { page } = await session(setup!.viewerToken);
    await page.goto('/');
    await page.getByTestId('device-count').waitFor();
    const stops = await tabTo(page, 'the "Audit" link of the navigation', (f) => f.tag === 'a' && f.text === 'Audit' && f.href === '/audit');
    const nav = stops.filter((f) => f.tag === 'a' && NAV.includes(f.text));
    assert.deepEqual(nav.map((f) => f.text), NAV, `Tab reaches the navigation links in order; focus went: ${stops.map(show).join(' → ')}`);
    const firstNav = stops.indexOf(nav[0]!);
    assert.deepEqual(stops.slice(firstNav).map((f) => f.text), NAV, 'the navigation links are consecutive tab stops');
    for (const f of nav) assertRing(f, 'link');
    for (let i = 0; i < 3; i++) await page.keyboard.press('Shift+Tab');
    const devices = await focused(page);
    assert.equal(devices.text, 'Devices', `Shift+Tab three times from "Audit" lands on "Devices": ${show(devices)}`);
    await page.keyboard.press('Enter');
    await waitForPage(page, 'Enter on "Devices" to open /devices', () => location.pathname === '/devices' && document.querySelector('main h1')?.textContent?.trim() === 'Devices');
  });

  it('in the devices table, the keyboard reaches the search field and a sort button, and Enter and Space sort', async () => {
    const { page } = await session(setup!.viewerToken);
    await page.goto('/devices');
    await page.getByTestId('device-row').first().waitFor();
    const rowCount = () => page.getByTestId('device-row').count();
    assert.equal(await rowCount(), DEVICES, 'every device is listed before searching');

    await tabTo(page, 'the "Search devices" field', (f) => f.tag === 'input' && f.label === 'Search devices');
    assertRing(await focused(page), 'input');
    const query = 'dev-0001'; // dev-00010 … dev-00019
    await page.keyboard.type(query);
    const expected = (await api<{ devices: { name: string }[] }>(`/v1/fleet/devices?q=${query}&limit=50`)).devices.map((d) => d.name);
    assert.ok(expected.length > 0 && expected.length < DEVICES, `the search matches some devices (${expected.length})`);
    await waitForPage(page, `the rows to narrow to the ${expected.length} devices matching "${query}"`, (names) => {
      const rows = Array.from(document.querySelectorAll('[data-testid="device-row"]')).map((r) => r.getAttribute('data-device'));
      return JSON.stringify(rows) === JSON.stringify(names);
    }, expected);

    const stops = await tabTo(page, 'a sort button in the table header', (f) => f.tag === 'button' && f.inTh);
    const button = stops.at(-1)!;
    assertRing(button, 'button');
    const header = page.locator('th', { has: page.locator('button:focus') });
    const before = await header.getAttribute('aria-sort');
    assert.ok(before !== null, `the th of "${button.text}" has aria-sort`);
    const sorts: string[] = [before];
    for (const key of ['Enter', 'Space']) {
      await page.keyboard.press(key);
      await waitForPage(page, `${key} on the sort button "${button.text}" to change aria-sort from "${sorts.at(-1)}"`, (was) => document.activeElement?.parentElement?.getAttribute('aria-sort') !== was, sorts.at(-1));
      const now = await focused(page);
      assert.ok(now.tag === 'button' && now.inTh && now.text === button.text, `focus stays on the sort button after ${key}: ${show(now)}`);
      sorts.push((await header.getAttribute('aria-sort'))!);
    }
    assert.deepEqual(new Set(sorts.slice(1)), new Set(['ascending', 'descending']), `Enter and Space sort one way and the other: ${JSON.stringify(sorts)}`);
    assert.equal(await rowCount(), expected.length, 'sorting keeps the search');
  });

  it('a confirm dialog opened from the keyboard takes focus, and Escape closes it without pausing', async () => {
    const operator = await session(setup!.operatorToken);
    const { page } = operator;
    await page.goto(`/rollouts/${bakingRollout}`);
    await page.getByRole('button', { name: 'Pause', exact: true }).waitFor();
    const stops = await tabTo(page, 'the "Pause" button', (f) => f.tag === 'button' && f.text === 'Pause', 60);
    assertRing(stops.at(-1)!, 'button');
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog');
    await dialog.waitFor({ state: 'visible' });
    assert.equal(await dialog.getByRole('heading', { name: `Pause ${bakingRollout}?` }).count(), 1, 'the dialog asks about this rollout');
    const inside = await focused(page);
    assert.ok(inside.inDialog, `focus moved into the dialog: ${show(inside)}`);
    await page.keyboard.press('Tab');
    assert.ok((await focused(page)).inDialog, 'Tab keeps focus in the dialog');

    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    const back = await focused(page);
    assert.ok(back.tag === 'button' && back.text === 'Pause', `focus went back to "Pause" when the dialog closed: ${show(back)}`);
    // Give the server a few ticks: had anything been sent, it would show.
    await new Promise((resolve) => setTimeout(resolve, 4 * TICK_MS));
    const after = await rollout(bakingRollout);
    assert.equal(after.state, 'progressing', `Escape paused nothing: ${JSON.stringify(after.timeline.map((t) => t.message))}`);
    assert.ok(!after.timeline.some((t) => t.message.includes('paused')), `no pause in the timeline: ${JSON.stringify(after.timeline.map((t) => t.message))}`);
    const { entries } = await api<{ entries: { action: string }[] }>('/v1/audit?action=rollout.pause', { token: setup!.adminToken });
    assert.equal(entries.length, 0, `no pause was asked for: ${JSON.stringify(entries)}`);
  });
});
