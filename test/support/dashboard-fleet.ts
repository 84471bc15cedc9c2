import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type RunningServer } from '../../src/server/server.ts';
import { createSimFleet, type SimBehaviour, type SimFleet } from '../../src/sim/fleet.ts';
import { run } from './child.ts';
import { ROOT, uniqueTag } from './fleet.ts';

/**
 * What the dashboard's browser tests stand on: web/dist built from the current sources, a real
 * server listening on a port (in a temporary directory), an operator and a viewer token made by the
 * admin through the API, and a simulated fleet of real agents talking to the server over HTTP.
 */

export type DashboardFleetOptions = {
  /** Names the temporary directory (`driftless-e2e-<name>-…`) and the tokens' descriptions. */
  name: string;
  devices: number;
  sites: number;
  seed: number;
  pollSeconds: number;
  tickMs: number;
  /** Real milliseconds per scenario millisecond for the simulated crashes and health checks. */
  timeScale: number;
  behaviour?: SimBehaviour;
  /** CPU and memory samples every so many seconds (for the device page's charts); none when absent. */
  hostMetricsSeconds?: number;
};

export type ApiOptions = { token?: string; method?: 'GET' | 'POST'; body?: unknown };

export type DashboardFleet = {
  /** A temporary directory of the test's own (the server's data is in `server/` inside it). */
  dir: string;
  server: RunningServer;
  fleet: SimFleet;
  adminToken: string;
  /** For a real agent the test adds beside the simulated ones. */
  enrollToken: string;
  operatorToken: string;
  viewerToken: string;
  /** The public API over HTTP, as the operator unless `token` says otherwise; throws on a non-2xx answer. */
  api<T>(path: string, opts?: ApiOptions): Promise<T>;
  /** Stops the fleet and the server and removes the directory; reports, never throws, what fails. */
  close(): Promise<void>;
};

/** Why web/dist must be built (missing, or older than a source file), or null when it is current. */
export function dashboardBuildStale(): string | null {
  const index = join(ROOT, 'web/dist/index.html');
  if (!existsSync(index)) return 'is missing';
  const builtAt = statSync(index).mtimeMs;
  const newer = (path: string): string | null => {
    const stat = statSync(path);
    if (stat.isDirectory()) {
      for (const entry of readdirSync(path)) {
        const found = newer(join(path, entry));
        if (found) return found;
      }
      return null;
    }
    return stat.mtimeMs > builtAt ? path : null;
  };
  const source = [join(ROOT, 'web/index.html'), join(ROOT, 'web/vite.config.ts'), join(ROOT, 'web/src')].map((p) => (existsSync(p) ? newer(p) : null)).find(Boolean);
  return source ? `is older than ${source.slice(ROOT.length + 1)}` : null;
}

/**
 * The server serves the dashboard from web/dist, the output of the project's build step (under a
 * second): built here when missing or older than its sources, so a test never runs an old build.
 */
export async function buildDashboardIfStale(): Promise<void> {
  const stale = dashboardBuildStale();
  if (!stale) return;
  const built = await run(join(ROOT, 'node_modules/.bin/vite'), ['build', 'web'], { cwd: ROOT, timeoutMs: 180_000 });
  assert.equal(built.code, 0, `web/dist ${stale}, and building it (\`npx vite build web\`, as \`npm run build\` does) failed (exit ${built.code}):\n${built.stdout.slice(-2000)}\n${built.stderr.slice(-3000)}`);
}

async function callApi<T>(url: string, path: string, token: string, opts: ApiOptions): Promise<T> {
  const response = await fetch(`${url}${path}`, {
    method: opts.method ?? 'GET',
    headers: { authorization: `Bearer ${opts.token ?? token}`, ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${opts.method ?? 'GET'} ${path} answered ${response.status}: ${text}`);
  return JSON.parse(text) as T;
}

/**
 * Builds the dashboard if stale, starts the server and the fleet (started, not yet given anything
 * to run) and makes the tokens. On failure, whatever was started is stopped before it throws.
 */
export async function startDashboardFleet(opts: DashboardFleetOptions): Promise<DashboardFleet> {
  await buildDashboardIfStale();
  const dir = mkdtempSync(join(tmpdir(), `driftless-e2e-${opts.name}-`));
  const adminToken = `dash-admin-${uniqueTag(8)}`;
  const enrollToken = `dash-enroll-${uniqueTag(8)}`;
  let server: RunningServer | null = null;
  let fleet: SimFleet | null = null;

  const close = async () => {
    const steps: [string, () => Promise<unknown>][] = [
      ['fleet', async () => fleet?.stop()],
      ['server', async () => server?.close()],
    ];
    for (const [what, step] of steps) {
      await step().catch((error: unknown) => process.stderr.write(`${opts.name} test clean-up: ${what}: ${(error as Error).message}\n`));
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    server = await startServer({ dataDir: join(dir, 'server'), host: '127.0.0.1', port: 0, pollSeconds: opts.pollSeconds, tickMs: opts.tickMs, adminToken, enrollToken, logger: false });
    const url = server.url;
    const made = async (role: 'viewer' | 'operator') => (await callApi<{ token: string }>(url, '/v1/tokens', adminToken, { method: 'POST', body: { role, description: `${opts.name} e2e ${role}` } })).token;
    const operatorToken = await made('operator');
    const viewerToken = await made('viewer');

    fleet = createSimFleet({
      server: { url, enrollToken },
      devices: opts.devices,
      sites: opts.sites,
      seed: opts.seed,
      pollSeconds: opts.pollSeconds,
      reconcileSeconds: 1,
      behaviour: opts.behaviour ?? (() => ({})),
      timeScale: opts.timeScale,
      ...(opts.hostMetricsSeconds === undefined ? {} : { hostMetricsSeconds: opts.hostMetricsSeconds }),
    });
    await fleet.start();
    return {
      dir,
      server,
      fleet,
      adminToken,
      enrollToken,
      operatorToken,
      viewerToken,
      api: <T>(path: string, apiOpts: ApiOptions = {}) => callApi<T>(url, path, operatorToken, apiOpts),
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
