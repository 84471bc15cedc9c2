import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ROOT } from './fleet.ts';
import { waitFor, type WaitOptions } from './wait.ts';

/**
 * A real browser for the dashboard's end-to-end tests: Debian's Chromium driven by playwright-core.
 * Each role gets its own browser context (its own cookies and localStorage, nothing on disk), so an
 * operator and a viewer can be signed in at once. The profile directory of the browser is a fresh
 * temporary one that playwright-core makes at launch and removes at close.
 */

export const CHROMIUM = '/usr/bin/chromium';

/**
 * The little of the DOM that functions run inside the page use. The project's type check has no DOM
 * library (the server, agent and tests run on Node), so a file with page functions declares these
 * globals for itself: `declare const document: PageDocument;`.
 */
export type PageElement = {
  readonly tagName: string;
  readonly textContent: string | null;
  readonly innerText: string;
  getAttribute(name: string): string | null;
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): ArrayLike<PageElement>;
};
export type PageDocument = { readonly body: PageElement; querySelector(selector: string): PageElement | null; querySelectorAll(selector: string): ArrayLike<PageElement> };
export type PageLocation = { readonly pathname: string; readonly search: string; readonly hash: string };
export type PageStorage = { getItem(key: string): string | null };

declare const document: PageDocument;
declare const location: PageLocation;
declare const localStorage: PageStorage;

/** The flags ENGINEERING.md names, plus what keeps a headless run quiet and offline. */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--no-first-run',
  '--disable-quic',
  '--disable-component-update',
  '--disable-sync',
];

export const VIEWPORTS = {
  laptop: { width: 1366, height: 768 },
  tablet: { width: 820, height: 1180 },
} as const;

/** Screenshots land here (gitignored: /artifacts/). */
export const SCREENSHOT_DIR = join(ROOT, 'artifacts', 'dashboard');

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
}

export type SignedInPage = {
  context: BrowserContext;
  page: Page;
  /** Errors the page threw and console errors it logged, for failure messages. */
  problems(): string;
  close(): Promise<void>;
};

/** A page in a context of its own, with its errors collected; not signed in. */
export async function openPage(browser: Browser, baseUrl: string, viewport: { width: number; height: number } = VIEWPORTS.laptop): Promise<SignedInPage> {
  const context = await browser.newContext({ baseURL: baseUrl, viewport, locale: 'en-GB', timezoneId: 'UTC' });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  const seen: string[] = [];
  page.on('pageerror', (error) => seen.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') seen.push(`console error: ${message.text()}`);
  });
  return {
    context,
    page,
    problems: () => (seen.length === 0 ? '(no page errors)' : seen.slice(-20).join('\n')),
    close: () => context.close(),
  };
}

/**
 * Signs in as a user would: the sign-in page's "API token" field and its "Sign in" button, then
 * waits for the app to land on the overview with the token stored.
 */
export async function signIn(page: Page, token: string): Promise<void> {
  await page.goto('/sign-in');
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await waitForPage(page, 'the sign-in to land on the overview (/) with the token stored', () =>
    location.pathname === '/' && localStorage.getItem('driftless.token') !== null,
  );
}

/** A new page of the dashboard, signed in with `token`. */
export async function signedInPage(browser: Browser, baseUrl: string, token: string, viewport?: { width: number; height: number }): Promise<SignedInPage> {
  const session = await openPage(browser, baseUrl, viewport);
  try {
    await signIn(session.page, token);
  } catch (error) {
    await session.close();
    throw new Error(`${(error as Error).message}\n${session.problems()}`);
  }
  return session;
}

/**
 * Waits until `predicate` holds in the page. Unlike a bare waitForFunction, a timeout names what
 * was awaited and where the page was (its URL and the start of its main text).
 */
export async function waitForPage<A>(page: Page, what: string, predicate: (arg: A) => unknown, arg?: A, timeoutMs = 30_000): Promise<void> {
  try {
    await page.waitForFunction(predicate as (arg: unknown) => unknown, arg, { timeout: timeoutMs, polling: 100 });
  } catch (error) {
    throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}; page at ${page.url()}: ${await pageSummary(page)}\n(${(error as Error).message.split('\n')[0]})`);
  }
}

/**
 * Polls what the page shows (read by `observe`, in Node) until `done` holds; fails naming `what`
 * and the last observation. For assertions comparing the page with the API.
 */
export function eventually<S>(what: string, observe: () => Promise<S>, done: (state: S) => boolean, opts: WaitOptions = {}): Promise<S> {
  return waitFor(what, observe, done, { timeoutMs: 30_000, intervalMs: 200, ...opts });
}

/** The page's URL and the first 600 characters of its main text, for failure messages. */
export async function pageSummary(page: Page): Promise<string> {
  const text = await page
    .evaluate(() => (document.querySelector('main') ?? document.body)?.innerText ?? '')
    .catch((e: unknown) => `(page unreadable: ${(e as Error).message})`);
  return JSON.stringify(text.replace(/\s+/g, ' ').slice(0, 600));
}

/** Writes `<repo>/artifacts/dashboard/<name>.png` of the whole page and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true, animations: 'disabled' });
  return path;
}
