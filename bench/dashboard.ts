/**
 * bench/dashboard: what the dashboard's two busiest questions cost the API as the fleet grows.
 * A simulated fleet of 100 devices and one of 10,000 (the real agent code on a scripted runtime,
 * one Deployment settled everywhere) each get, over real HTTP:
 *   - GET /v1/fleet/overview (the overview page, every 2 s per open dashboard)
 *   - GET /v1/fleet/devices filtered by site and labels, searched by name, sorted by last contact,
 *     first page of 50 (the device table)
 * each timed two ways: "fresh", when the call waits for an analysis of the whole fleet (no
 * snapshot young enough to show, as for the first dashboard after a quiet spell), and "shared",
 * when it answers from the snapshot another call built (every dashboard while one is open: a
 * stale snapshot answers while its successor is built behind it). The snapshot's ages are cut
 * to 250 ms fresh / 1.25 s showable so fresh samples come quickly; a call's cost does not depend
 * on them. The figures at
 * 10,000 devices are printed as ratios to the same queries at 100 devices, measured in the same run.
 * The fleet is stopped before timing, so the API is measured alone, not against the fleet's polls.
 *
 *   node bench/dashboard.ts [large=10000] [small=100] [calls=30]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../src/server/server.ts';
import { createSimFleet } from '../src/sim/fleet.ts';
import { goodRelease } from '../src/sim/scenarios.ts';
import { adminApi, benchDeployment, waitForDevices } from './support/sim-fleet.ts';

const [LARGE = 10_000, SMALL = 100, CALLS = 30] = process.argv.slice(2).map(Number);
const ADMIN = 'sim-bench-admin';
const SNAPSHOT_MS = 250;
const say = (text: string) => process.stdout.write(`${text}\n`);

type Timing = { fresh: number[]; shared: number[] };
type Figures = { devices: number; overview: Timing; table: Timing; tableTotal: number };

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const p90 = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.9)]!;

async function timed(url: string): Promise<{ ms: number; body: unknown }> {
  const started = performance.now();
  const answer = await fetch(url, { headers: { authorization: `Bearer ${ADMIN}` } });
  const body: unknown = await answer.json();
  const ms = performance.now() - started;
  if (!answer.ok) throw new Error(`${url}: ${answer.status} ${JSON.stringify(body)}`);
  return { ms, body };
}

async function measure(devices: number): Promise<Figures> {
  const dir = mkdtempSync(join(tmpdir(), 'driftless-bench-dashboard-'));
  const server = await startServer({ dataDir: dir, host: '127.0.0.1', port: 0, pollSeconds: 30, tickMs: 1000, adminToken: ADMIN, enrollToken: 'sim-bench-enroll', dashboardDir: null, fleetSnapshotMs: SNAPSHOT_MS });
  const api = adminApi(server);
  const sites = Math.max(1, Math.round(devices / 20));
  const fleet = createSimFleet({
    server: { app: server.app, url: server.url, enrollToken: 'sim-bench-enroll' },
    devices,
    sites,
    seed: 11,
    pollSeconds: 30,
    reconcileSeconds: 10,
    spreadSeconds: 5,
    behaviour: goodRelease().behaviour,
    timeScale: 0.05,
  });
  try {
    const began = performance.now();
    await fleet.start();
    await api('POST', '/v1/apply', { resources: [benchDeployment('1')] });
    await waitForDevices(api, `version 1 on ${devices} devices`, (ds) => ds.length === devices && ds.every((d) => d.components.some((c) => c.version === '1' && c.state === 'healthy')));
    await fleet.stop();
    say(`${devices} simulated devices enrolled and on version 1 after ${((performance.now() - began) / 1000).toFixed(0)} s; timing the API`);

    const site = fleet.devices[Math.floor(devices / 2)]!.site;
    const overviewUrl = `${server.url}/v1/fleet/overview`;
    const tableUrl = `${server.url}/v1/fleet/devices?site=${site}&selector=tier%3Dstore&q=dev-&sort=lastSeen&order=desc&limit=50`;
    const figures: Figures = { devices, overview: { fresh: [], shared: [] }, table: { fresh: [], shared: [] }, tableTotal: 0 };
    const expected = fleet.devices.filter((d) => d.site === site).length;
    for (let i = 0; i < CALLS; i++) {
      // Past the age a snapshot may be shown at: this call waits for an analysis; the one right after shares it.
      await new Promise((resolve) => setTimeout(resolve, 5 * SNAPSHOT_MS + 100));
      const url = i % 2 === 0 ? overviewUrl : tableUrl;
      const timing = i % 2 === 0 ? figures.overview : figures.table;
      const fresh = await timed(url);
      timing.fresh.push(fresh.ms);
      timing.shared.push((await timed(url)).ms);
      if (url === tableUrl) figures.tableTotal = (fresh.body as { total: number }).total;
    }
    // The numbers must be right, not only fast: every device of the site is in the filtered total.
    if (figures.tableTotal !== expected) throw new Error(`filtered device page: total ${figures.tableTotal}, expected ${expected} devices at ${site}`);
    return figures;
  } finally {
    await fleet.stop().catch(() => undefined);
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const small = await measure(SMALL);
const large = await measure(LARGE);
const fmt = (ms: number) => `${ms.toFixed(1)} ms`;
say(`dashboard API, median (p90) of ${CALLS / 2} calls each, ${SMALL} vs ${LARGE} devices (this machine, same run)`);
for (const [label, pick] of [
  ['fleet overview', (f: Figures) => f.overview],
  ['filtered device page', (f: Figures) => f.table],
] as const) {
  for (const kind of ['fresh', 'shared'] as const) {
    const s = pick(small)[kind];
    const l = pick(large)[kind];
    say(
      `  ${label.padEnd(21)} ${kind.padEnd(6)}  ${SMALL}: ${fmt(median(s))} (${fmt(p90(s))})  ${LARGE}: ${fmt(median(l))} (${fmt(p90(l))})  ratio ${(median(l) / median(s)).toFixed(1)}×`,
    );
  }
}
say(`  (the filtered page matched ${large.tableTotal} of ${LARGE} devices; ${small.tableTotal} of ${SMALL})`);
process.exit(0);
