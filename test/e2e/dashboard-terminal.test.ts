import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { AGENT_VERSION, createAgent, type Agent } from '../../src/agent/create-agent.ts';
import type { RuntimeDriver } from '../../src/agent/drivers/driver.ts';
import { createProcessDriver } from '../../src/agent/drivers/process/process-driver.ts';
import { deviceChannel } from '../../src/agent/terminal/device-channel.ts';
import type { DeviceView } from '../../src/protocol/resources.ts';
import { eventually, launchBrowser, pageSummary, screenshot, signedInPage, waitForPage, type PageDocument, type SignedInPage } from '../support/browser.ts';
import { startDashboardFleet, type ApiOptions, type DashboardFleet } from '../support/dashboard-fleet.ts';
import { uniqueTag } from '../support/fleet.ts';
import { waitFor } from '../support/wait.ts';

// The dashboard's remote terminal in a real browser: Debian's Chromium (playwright-core) on the
// device page, xterm.js over the server's terminal WebSocket, through a real agent's device
// channel to a login shell on a real PTY on this machine. The agent runs in the test's process as
// the demo's do (process driver, device channel allowing remote shells). What is typed must be
// evaluated by the shell (`$((6*7))` comes back as 42), the session must end with the shell's exit
// status, and it must leave its trace: an audit entry naming its recording, and the recording
// holding what the shell printed. A viewer on the same page is offered no terminal.

declare const document: PageDocument;

const tag = uniqueTag(8);
const DEVICE = `dash-term-${tag}`;

type AuditEntry = { seq: number; actor: string; action: string; target: string | null; status: number | null; error: string | null; detail: Record<string, unknown> | null };
type RecordingInfo = { id: string; kind: string; device: string };

/** The terminal's screen as xterm.js's DOM renderer draws it: one string per row, trailing blanks trimmed. */
async function terminalRows(page: Page): Promise<string[]> {
  const rows = await page.evaluate(() => Array.from(document.querySelectorAll('[data-testid="terminal"] .xterm-rows > div')).map((row) => row.textContent ?? ''));
  return rows.map((row) => row.replace(/\u00a0/g, ' ').trimEnd());
}

/** The terminal bar's status line ("Connecting…", "Connected · recorded as …", "Session ended …"), or null. */
async function terminalStatus(page: Page): Promise<string | null> {
  return page.evaluate(() => document.querySelector('.terminal__bar [role="status"]')?.textContent?.trim() ?? null);
}

describe('the dashboard terminal in Chromium reaches a real agent\'s shell', { timeout: 120_000 }, () => {
  let setup: DashboardFleet | null = null;
  let agent: Agent | null = null;
  let driver: RuntimeDriver | null = null;
  let browser: Browser | null = null;
  const sessions: SignedInPage[] = [];
  const agentLog: string[] = [];

  const api = <T>(path: string, opts: ApiOptions = {}) => setup!.api<T>(path, opts);
  /** An answer whatever its status (exec answers 503 until the device's channel is up). */
  async function call(path: string, opts: { method?: 'GET' | 'POST'; body?: unknown } = {}): Promise<{ status: number; text: string }> {
    const response = await fetch(`${setup!.server.url}${path}`, {
      method: opts.method ?? 'GET',
      headers: { authorization: `Bearer ${setup!.operatorToken}`, ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
      signal: AbortSignal.timeout(15_000),
    });
    return { status: response.status, text: await response.text() };
  }

  const agentContext = () => `agent log (last 30 lines):\n${agentLog.slice(-30).join('\n') || '(empty)'}`;
  const pageContext = (s: SignedInPage) => async () => `page at ${s.page.url()}: ${await pageSummary(s.page)}\nterminal rows: ${JSON.stringify(await terminalRows(s.page).catch(() => []))}\n${s.problems()}\n${agentContext()}`;

  async function session(token: string): Promise<SignedInPage> {
    const s = await signedInPage(browser!, setup!.server.url, token);
    sessions.push(s);
    return s;
  }

  /**
   * Opens the device page and waits until it knows the signed-in role: GET /v1/whoami answered and
   * the live data refreshed since, so what the role allows has been rendered.
   */
  async function openDevicePage(s: SignedInPage): Promise<void> {
    const whoami = s.page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/whoami', { timeout: 15_000 });
    await s.page.goto(`/devices/${DEVICE}`);
    const answer = await whoami;
    assert.equal(answer.status(), 200, `GET /v1/whoami from the page answered ${answer.status()}`);
    await answer.finished();
    const updatedAt = () => s.page.evaluate(() => document.querySelector('[data-testid="updated-at"]')?.textContent?.trim() ?? null);
    const at = await updatedAt();
    await eventually('the live data to refresh after the role was known (data-testid=updated-at changing)', updatedAt, (t) => t !== null && t !== at, { context: pageContext(s) });
    await waitForPage(s.page, `the page of ${DEVICE}`, (name) => document.querySelector('main h1')?.textContent?.trim() === name, DEVICE);
    await s.page.getByRole('heading', { name: 'Terminal' }).waitFor();
  }

  before(async () => {
    // The server and its tokens, with no simulated device: the one device here is a real agent.
    setup = await startDashboardFleet({ name: 'dashboard-terminal', devices: 0, sites: 1, seed: 1, pollSeconds: 2, tickMs: 500, timeScale: 1 });

    // A real agent as the demo makes them: its own data directory, the process driver, and the
    // device channel that carries terminals, allowing remote shells.
    const agentDir = join(setup.dir, DEVICE);
    const log = (message: string) => void agentLog.push(`${new Date().toISOString().slice(11, 23)} ${message}`);
    driver = createProcessDriver({ agentId: DEVICE, dataDir: agentDir, log });
    agent = createAgent({
      dataDir: agentDir,
      serverUrl: setup.server.url,
      enrollToken: setup.enrollToken,
      name: DEVICE,
      site: 'store-test',
      labels: { tier: 'store' },
      drivers: { process: driver },
      pollSeconds: 1,
      reconcileSeconds: 1,
      log,
      channel: deviceChannel({ remoteShell: () => true, agentVersion: AGENT_VERSION, log }),
    });
    await agent.start();

    await waitFor(`${DEVICE} online`, () => api<DeviceView[]>('/v1/devices'), (ds) => ds.some((d) => d.name === DEVICE && d.online), { timeoutMs: 30_000, intervalMs: 250, context: agentContext });
    // The API says nothing of the channel itself; a session does: exec answers 503 until the agent's
    // channel is connected (and has said it allows remote shells), then runs the command.
    await waitFor(
      `${DEVICE}'s channel connected (POST /v1/devices/${DEVICE}/exec running \`true\`)`,
      () => call(`/v1/devices/${DEVICE}/exec`, { method: 'POST', body: { command: ['true'] } }),
      (answer) => answer.status === 200 && (JSON.parse(answer.text) as { exitCode: number }).exitCode === 0,
      { timeoutMs: 30_000, intervalMs: 250, context: agentContext },
    );

    browser = await launchBrowser();
  });

  after(async () => {
    const steps: [string, () => Promise<unknown>][] = [
      ...sessions.map((s, i): [string, () => Promise<unknown>] => [`page ${i}`, () => s.close()]),
      ['browser', async () => browser?.close()],
      ['agent', async () => agent?.stop()],
      // Agents leave workloads running when they stop (this one has none, unless a test gave it some).
      [
        'workloads',
        async () => {
          if (!driver) return;
          for (const instance of await driver.list()) await driver.remove(instance.key);
          await driver.close();
        },
      ],
      ['server, temporary directory', async () => setup?.close()],
    ];
    for (const [what, step] of steps) {
      await step().catch((error: unknown) => process.stderr.write(`dashboard-terminal test clean-up: ${what}: ${(error as Error).message}\n`));
    }
  });

  it('an operator opens a terminal, the shell evaluates what is typed, exit ends it, and the session is audited and recorded', async () => {
    const operator = await session(setup!.operatorToken);
    const { page } = operator;
    await openDevicePage(operator);
    await page.getByRole('button', { name: 'Open terminal', exact: true }).click();

    const status = await eventually('the terminal to connect ("Connected · recorded as …")', () => terminalStatus(page), (t) => t !== null && t.startsWith('Connected · recorded as '), {
      context: pageContext(operator),
    });
    const recordingId = status!.slice('Connected · recorded as '.length).trim();
    assert.match(recordingId, /^\S+$/, `the status names the recording: ${JSON.stringify(status)}`);
    // The login shell's prompt: the device has answered, so what is typed now reaches a shell.
    await eventually('a shell prompt on the terminal', () => terminalRows(page), (rows) => rows.some((r) => /[$#]$/.test(r)), { context: pageContext(operator) });

    await page.locator('[data-testid="terminal"]').click();
    await page.keyboard.type('echo hi-$((6*7))');
    await page.keyboard.press('Enter');
    // A row that is exactly "hi-42": the shell's output, not the echo of the typed line (which has no "42").
    await eventually('the shell\'s answer "hi-42" on the terminal', () => terminalRows(page), (rows) => rows.some((r) => r.trim() === 'hi-42'), { context: pageContext(operator) });
    await screenshot(page, 'device-terminal');

    await page.keyboard.type('exit');
    await page.keyboard.press('Enter');
    await eventually('the status "Session ended (exit status 0)."', () => terminalStatus(page), (t) => t === 'Session ended (exit status 0).', { context: pageContext(operator) });
    await eventually('the terminal to say the session ended', () => terminalRows(page), (rows) => rows.some((r) => r.includes('[session ended, exit status 0]')), { context: pageContext(operator) });

    // The audit trail: the session's opening and closing, by the operator, naming the recording.
    const audit = await waitFor(
      `terminal.open and terminal.close audit entries for ${DEVICE} naming recording ${recordingId}`,
      async () => (await api<{ entries: AuditEntry[] }>('/v1/audit?action=terminal.*', { token: setup!.adminToken })).entries.filter((e) => e.target === `device:${DEVICE}`),
      (entries) => ['terminal.open', 'terminal.close'].every((action) => entries.some((e) => e.action === action && e.detail?.recording === recordingId)),
      { timeoutMs: 15_000, intervalMs: 250 },
    );
    const opened = audit.find((e) => e.action === 'terminal.open')!;
    const closed = audit.find((e) => e.action === 'terminal.close')!;
    assert.equal(opened.error, null, `the open succeeded: ${JSON.stringify(opened)}`);
    assert.equal(closed.error, null, `the close is no failure: ${JSON.stringify(closed)}`);
    assert.equal(closed.detail?.exitCode, 0, `the close records the exit status: ${JSON.stringify(closed)}`);
    const whoami = await api<{ actor: string; role: string }>('/v1/whoami');
    assert.equal(whoami.role, 'operator');
    assert.equal(opened.actor, whoami.actor, 'the audit names the operator as the actor');

    // The recording: listed for the device, and its output has what the shell printed.
    const recordings = await api<RecordingInfo[]>('/v1/recordings');
    assert.ok(recordings.some((r) => r.id === recordingId && r.kind === 'terminal' && r.device === DEVICE), `recording ${recordingId} listed: ${JSON.stringify(recordings)}`);
    const cast = await call(`/v1/recordings/${encodeURIComponent(recordingId)}`);
    assert.equal(cast.status, 200, cast.text);
    const [header, ...events] = cast.text.trim().split('\n').map((line) => JSON.parse(line) as unknown);
    assert.equal((header as { version: number }).version, 2, 'an asciicast v2 file');
    const output = (events as [number, string, string][]).filter((e) => e[1] === 'o').map((e) => e[2]).join('');
    assert.match(output, /^hi-42\r?$/m, `the recording's output has the shell's answer: ${JSON.stringify(output.slice(-500))}`);
  });

  it('a viewer on the same device page is offered no terminal', async () => {
    const viewer = await session(setup!.viewerToken);
    await openDevicePage(viewer);
    await viewer.page.getByText('A remote terminal needs the operator or admin role.').waitFor();
    assert.equal(await viewer.page.getByRole('button', { name: 'Open terminal', exact: true }).count(), 0, `a viewer gets no "Open terminal": ${await pageSummary(viewer.page)}`);
  });
});
