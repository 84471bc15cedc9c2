/**
 * bench/reconnect: a reconnect storm. 5,000 simulated agents (real createAgent instances, one
 * process) talk over real HTTP to a server in its own process. Once all run version 1, the server
 * is killed (SIGKILL); during the outage a Deployment change to version 2 is made (through a
 * second server process on the same data directory, which the agents do not know), and the
 * server is started again on the same data directory and port. Every agent returns at once to a
 * changed desired state: a full document to fetch, a reconcile, a status report to write.
 *
 * The storm runs twice in the same run, on a fresh server each time:
 *   - with back-off: the agent's default (DEFAULT_BACKOFF), jittered exponential, honouring Retry-After;
 *   - without: every agent retries after a fixed 1 s, no jitter (the server's 429s still say when).
 * For each it prints
 *   - time to synced: from the restarted server listening until every device is synced, where a
 *     device is synced when the server acknowledged (200, after its group commit) a status report
 *     from it saying every component runs version 2 and is healthy (checked afterwards against
 *     GET /v1/devices);
 *   - the server's peak memory (VmHWM of the restarted server process) and its CPU time;
 *   - requests the agents made from the restart until all were synced (or the timeout), the 429s
 *     the server answered among them, and whether it stayed up.
 * and the ratios with / without back-off.
 *
 *   node bench/reconnect.ts [devices=5000]
 *   env: BENCH_OUTAGE_SECONDS=20 BENCH_POLL_SECONDS=15 BENCH_SYNC_TIMEOUT_SECONDS=240
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_BACKOFF, type Backoff } from '../src/agent/sync/backoff.ts';
import type { StatusReport } from '../src/protocol/messages.ts';
import type { DeviceView } from '../src/protocol/resources.ts';
import { createSimFleet, type SimFleet, type SimStats } from '../src/sim/fleet.ts';
import { goodRelease } from '../src/sim/scenarios.ts';
import { startPrintingUrl, stop } from './support/processes.ts';
import { benchDeployment } from './support/sim-fleet.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const [DEVICES = 5000] = process.argv.slice(2).map(Number);
const OUTAGE_S = Number(process.env.BENCH_OUTAGE_SECONDS ?? 20);
const POLL_S = Number(process.env.BENCH_POLL_SECONDS ?? 15);
const SYNC_TIMEOUT_S = Number(process.env.BENCH_SYNC_TIMEOUT_SECONDS ?? 240);
const ADMIN = 'bench-admin';
const ENROLL = 'bench-enroll';
const say = (text: string) => process.stdout.write(`${text}\n`);

const WITH_BACKOFF: Backoff = DEFAULT_BACKOFF;
const WITHOUT_BACKOFF: Backoff = { baseMs: 1_000, capMs: 1_000, jitter: false };

type ServerProcess = Awaited<ReturnType<typeof startPrintingUrl>>;

function startServerProcess(dataDir: string, listen: string): Promise<ServerProcess> {
  return startPrintingUrl(
    process.execPath,
    [join(root, 'src/cli/main.ts'), 'server', '--data', dataDir, '--listen', listen, '--admin-token', ADMIN, '--enroll-token', ENROLL, '--poll-interval', String(POLL_S)],
    { ...process.env, DRIFTLESS_CONFIG: join(dataDir, 'cli.json') },
  );
}

async function api<T>(url: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

const runsEverywhere = (version: string) => (devices: DeviceView[]) =>
  devices.length === DEVICES && devices.every((d) => d.components.length > 0 && d.components.every((c) => c.version === version && c.state === 'healthy'));

/** Peak resident memory and CPU time of a process so far, from /proc. */
function processCost(pid: number): { peakRssBytes: number; cpuSeconds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const hwm = /^VmHWM:\s+(\d+) kB/m.exec(status);
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
  return { peakRssBytes: Number(hwm?.[1] ?? 0) * 1024, cpuSeconds: ticks / CLOCK_TICKS };
}
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** A device is synced by a report the server acknowledged that has every component on `version` and healthy. */
function syncingReport(init: RequestInit, version: string): boolean {
  if (typeof init.body !== 'string') return false;
  const report = JSON.parse(init.body) as StatusReport;
  return report.components.length > 0 && report.components.every((c) => c.version === version && c.state === 'healthy');
}

type Outcome = {
  label: string;
  timeToSyncedS: number | null;
  syncedAt: number[];
  synced: number;
  peakRssBytes: number;
  cpuSeconds: number;
  busy: number;
  requests: SimStats;
  /** Answers the server gave to devices not yet synced, the sync's included. */
  answeredUnsynced: number;
  stayedUp: boolean;
  checked: boolean;
};

async function storm(label: string, backoff: Backoff): Promise<Outcome> {
  const dataDir = mkdtempSync(join(tmpdir(), 'driftless-bench-reconnect-'));
  let server: ServerProcess | null = await startServerProcess(dataDir, '127.0.0.1:0');
  const port = new URL(server.url).port;
  let measuring: { version: string; since: number; syncedAt: Map<string, number>; answeredUnsynced: number } | null = null;
  let fleet: SimFleet | null = null;
  try {
    fleet = createSimFleet({
      server: { url: server.url, enrollToken: ENROLL },
      devices: DEVICES,
      sites: Math.ceil(DEVICES / 10),
      seed: 4,
      pollSeconds: POLL_S,
      spreadSeconds: 10,
      behaviour: goodRelease().behaviour,
      timeScale: 0.1,
      backoff,
      onAnswer(device, url, init, response) {
        if (!measuring || measuring.syncedAt.has(device)) return;
        measuring.answeredUnsynced++; // the server's work for the storm: answers to devices not yet synced
        if (response.status !== 200 || !url.endsWith('/v1/device/status')) return;
        if (syncingReport(init, measuring.version)) measuring.syncedAt.set(device, performance.now() - measuring.since);
      },
    });
    const began = performance.now();
    await fleet.start();
    const first = server.url;
    await api(first, 'POST', '/v1/apply', { resources: [benchDeployment('1')] });
    await until('version 1 everywhere', 300_000, async () => runsEverywhere('1')(await api<DeviceView[]>(first, 'GET', '/v1/devices')));
    say(`  ${label}: ${DEVICES} agents enrolled and on version 1 in ${((performance.now() - began) / 1000).toFixed(0)} s; killing the server`);

    // The outage: the server dies; meanwhile version 2 is released through a server the agents cannot reach.
    const down = performance.now();
    server.child.kill('SIGKILL');
    await new Promise((resolve) => server!.child.once('exit', resolve));
    server = null;
    const side = await startServerProcess(dataDir, '127.0.0.1:0');
    try {
      await api(side.url, 'POST', '/v1/apply', { resources: [benchDeployment('2')] });
      await until('version 2 desired everywhere', 60_000, async () => {
        const devices = await api<DeviceView[]>(side.url, 'GET', '/v1/devices');
        return devices.length === DEVICES && devices.every((d) => d.components.every((c) => c.desiredVersion === '2'));
      });
    } finally {
      await stop(side.child);
    }
    const rest = OUTAGE_S * 1000 - (performance.now() - down);
    if (rest > 0) await new Promise((resolve) => setTimeout(resolve, rest));

    // The return: the same data directory and port; the clock runs from when it listens.
    const restarted = await startServerProcess(dataDir, `127.0.0.1:${port}`);
    server = restarted;
    const up = performance.now();
    const before = fleet.stats();
    measuring = { version: '2', since: up, syncedAt: new Map(), answeredUnsynced: 0 };
    const syncedAt = measuring.syncedAt;
    say(`  ${label}: server back after ${((up - down) / 1000).toFixed(1)} s down; waiting for every agent to sync`);
    const deadline = up + SYNC_TIMEOUT_S * 1000;
    while (syncedAt.size < DEVICES && performance.now() < deadline && restarted.child.exitCode === null) {
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const times = [...syncedAt.values()].sort((a, b) => a - b);
    const cost = restarted.child.exitCode === null ? processCost(restarted.child.pid!) : { peakRssBytes: NaN, cpuSeconds: NaN };
    const after = fleet.stats();
    const requests = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - before[k as keyof SimStats]])) as SimStats;
    const stayedUp = restarted.child.exitCode === null && (await fetch(`${restarted.url}/healthz`).then((r) => r.ok, () => false));
    // The server's own view must agree: every device on version 2, healthy.
    const checked = stayedUp && runsEverywhere('2')(await api<DeviceView[]>(restarted.url, 'GET', '/v1/devices'));
    return {
      label,
      timeToSyncedS: times.length === DEVICES ? times.at(-1)! / 1000 : null,
      syncedAt: times,
      synced: times.length,
      ...cost,
      busy: requests.busy,
      requests,
      answeredUnsynced: measuring.answeredUnsynced,
      stayedUp,
      checked,
    };
  } finally {
    await fleet?.stop();
    if (server) await stop(server.child);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MB`;
const pct = (times: number[], p: number) => (times.length === 0 ? NaN : times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))]! / 1000);

say(`bench/reconnect: ${DEVICES.toLocaleString('en')} simulated agents over real HTTP, server in its own process; outage ${OUTAGE_S} s with a change to version 2 made during it`);
say(`  (agents poll every ${POLL_S} s and reconcile every 5 s; a device is synced when the server acknowledged its report of version 2, healthy)`);
const withBackoff = await storm(`with back-off (jittered exponential ${WITH_BACKOFF.baseMs / 1000}-${WITH_BACKOFF.capMs / 1000} s, honours Retry-After)`, WITH_BACKOFF);
const without = await storm('without back-off (fixed 1 s, no jitter)', WITHOUT_BACKOFF);
for (const o of [withBackoff, without]) {
  say(`  ${o.label}:`);
  say(`    time to synced:         ${o.timeToSyncedS === null ? `NOT all synced: ${o.synced} of ${DEVICES} within ${SYNC_TIMEOUT_S} s` : `${o.timeToSyncedS.toFixed(1)} s`}   (p50 ${pct(o.syncedAt, 50).toFixed(1)} s, p90 ${pct(o.syncedAt, 90).toFixed(1)} s)`);
  say(`    server peak memory:     ${mb(o.peakRssBytes)} (VmHWM of the restarted process); CPU ${o.cpuSeconds.toFixed(1)} s`);
  say(`    requests until synced:  ${o.requests.desired} desired-state, ${o.requests.status} status, ${o.requests.session} session, ${o.requests.other} other; ${o.busy} answered 429, ${o.requests.failed} unanswered`);
  say(`    answers per device until it synced: ${(o.answeredUnsynced / DEVICES).toFixed(2)}`);
  say(`    server stayed up:       ${o.stayedUp ? 'yes' : 'NO'}; its device list agrees (all on version 2, healthy): ${o.checked ? 'yes' : 'NO'}`);
}
const ratio = (a: number | null, b: number | null) => (a === null || b === null || !Number.isFinite(a) || !Number.isFinite(b) || b === 0 ? 'n/a' : `${(a / b).toFixed(2)}x`);
say(`  with / without back-off: time to synced ${ratio(withBackoff.timeToSyncedS, without.timeToSyncedS)}, peak memory ${ratio(withBackoff.peakRssBytes, without.peakRssBytes)}, server CPU ${ratio(withBackoff.cpuSeconds, without.cpuSeconds)}, 429s ${withBackoff.busy} vs ${without.busy}, requests ${ratio(total(withBackoff.requests), total(without.requests))}`);

function total(s: SimStats): number {
  return s.enroll + s.session + s.desired + s.status + s.other;
}
