/**
 * A server and a simulated fleet in this process, for benches and drills, plus a measurement
 * of what one simulated agent costs when run directly:
 *
 *   node --expose-gc bench/support/sim-fleet.ts [devices=2000] [pollSeconds=60] [seconds=2*pollSeconds]
 *
 * It enrolls the fleet, rolls out one component, waits until every device runs it healthily,
 * then prints the heap per agent (the fleet's heap, less the server's share, measured by dropping
 * the fleet) and the CPU the process spends per agent and per poll at steady state.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { DeploymentResource, DeviceView } from '../../src/protocol/resources.ts';
import { startServer, type RunningServer } from '../../src/server/server.ts';
import { createSimFleet, type SimFleet, type SimFleetOptions } from '../../src/sim/fleet.ts';
import { goodRelease } from '../../src/sim/scenarios.ts';

const ADMIN = 'sim-bench-admin';
const ENROLL = 'sim-bench-enroll';

export type SimEnvironment = {
  server: RunningServer;
  fleet: SimFleet;
  api: AdminApi;
  /** Polls GET /v1/devices until `done` holds; throws after `timeoutMs` naming `what`. */
  waitForDevices(what: string, done: (devices: DeviceView[]) => boolean, timeoutMs?: number): Promise<DeviceView[]>;
  close(): Promise<void>;
};

export type AdminApi = <T>(method: 'GET' | 'POST', url: string, body?: unknown) => Promise<T>;

/** The public API with the admin token, in-process. */
export function adminApi(server: RunningServer): AdminApi {
  return async <T>(method: 'GET' | 'POST', url: string, body?: unknown): Promise<T> => {
    const answer = await server.app.inject({ method, url, headers: { authorization: `Bearer ${ADMIN}` }, ...(body === undefined ? {} : { payload: body as object }) });
    if (answer.statusCode >= 300) throw new Error(`${method} ${url}: ${answer.statusCode} ${answer.body}`);
    return answer.json() as T;
  };
}

export async function waitForDevices(api: AdminApi, what: string, done: (devices: DeviceView[]) => boolean, timeoutMs = 600_000): Promise<DeviceView[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const devices = await api<DeviceView[]>('GET', '/v1/devices');
    if (done(devices)) return devices;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function startBenchServer(pollSeconds: number): Promise<{ server: RunningServer; dispose(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'driftless-sim-'));
  const server = await startServer({ dataDir: dir, host: '127.0.0.1', port: 0, pollSeconds, adminToken: ADMIN, enrollToken: ENROLL });
  return {
    server,
    async dispose() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A server on a temporary directory and a fleet of simulated devices against it (not yet started). */
export async function createSimEnvironment(fleet: Omit<SimFleetOptions, 'server'>): Promise<SimEnvironment> {
  const { server, dispose } = await startBenchServer(fleet.pollSeconds ?? 30);
  const sim = createSimFleet({ ...fleet, server: { app: server.app, url: server.url, enrollToken: ENROLL } });
  const api = adminApi(server);
  return {
    server,
    fleet: sim,
    api,
    waitForDevices: (what, done, timeoutMs) => waitForDevices(api, what, done, timeoutMs),
    async close() {
      await sim.stop();
      await dispose();
    },
  };
}

/** The one-component Deployment benches roll out; one wave, so every device takes it at once. */
export function benchDeployment(version: string): DeploymentResource {
  return {
    apiVersion: 'driftless/v1',
    kind: 'Deployment',
    metadata: { name: 'pos' },
    spec: {
      selector: { matchLabels: { tier: 'store' } },
      template: { version, components: [{ name: 'pos', image: `registry.example/pos:${version}`, ports: ['8080:8080'], env: { MODE: 'production' }, health: { running: { seconds: 3 } } }] },
      strategy: { waves: [{ percent: 100 }], maxFailurePercent: 100 },
    },
  };
}

async function measure(devices: number, pollSeconds: number, seconds: number): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc to measure the heap');
  const heap = () => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };
  const say = (text: string) => process.stdout.write(`${text}\n`);
  const { server, dispose } = await startBenchServer(pollSeconds);
  const api = adminApi(server);
  const before = heap();
  // Starts are spread over a whole poll interval, so polls arrive evenly, as from a real fleet.
  let fleet: SimFleet | null = createSimFleet({
    server: { app: server.app, url: server.url, enrollToken: ENROLL },
    devices,
    sites: Math.ceil(devices / 3),
    seed: 1,
    pollSeconds,
    behaviour: goodRelease().behaviour,
    timeScale: 0.05,
  });
  say(`sim-fleet: ${devices} simulated devices, polling every ${pollSeconds}s, reconcile every 5s`);
  let began = performance.now();
  await fleet.start();
  say(`  enrolled and started in ${((performance.now() - began) / 1000).toFixed(1)} s (spread over one poll interval)`);
  began = performance.now();
  await api('POST', '/v1/apply', { resources: [benchDeployment('1')] });
  // A device takes the release at its next poll, so this takes up to one poll interval.
  await waitForDevices(api, 'version 1 healthy everywhere', (ds) => ds.length === devices && ds.every((d) => d.components.some((c) => c.version === '1' && c.state === 'healthy')));
  say(`  version 1 healthy on all in ${((performance.now() - began) / 1000).toFixed(1)} s`);

  // Steady state: every agent idles on its loop (reconcile passes, 304 polls, heartbeats).
  const delay = monitorEventLoopDelay({ resolution: 10 });
  const stats0 = fleet.stats();
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  delay.enable();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  delay.disable();
  const cpu = process.cpuUsage(cpu0);
  const wallSeconds = (performance.now() - wall0) / 1000;
  const stats = fleet.stats();
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const withFleet = heap();
  await fleet.stop();
  fleet = null;
  const serverOnly = heap();

  const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
  const rate = (n: number) => (n / wallSeconds).toFixed(1);
  say(`  heap per agent:      ${kb((withFleet - serverOnly) / devices)} (the server's share: ${kb((serverOnly - before) / devices)} per device; heap in all ${(withFleet / 2 ** 20).toFixed(0)} MB)`);
  say(`  steady state:        ${rate(stats.desired - stats0.desired)} polls/s, ${rate(stats.status - stats0.status)} status reports/s, ${stats.failed - stats0.failed} failed requests over ${wallSeconds.toFixed(0)} s`);
  say(`  CPU, whole process:  ${((100 * cpuSeconds) / wallSeconds).toFixed(1)}% of a core = ${((1e6 * cpuSeconds) / wallSeconds / devices).toFixed(1)} µs per agent per second (server included)`);
  say(`  event loop delay:    p50 ${(delay.percentile(50) / 1e6).toFixed(1)} ms, p99 ${(delay.percentile(99) / 1e6).toFixed(1)} ms, max ${(delay.max / 1e6).toFixed(1)} ms`);
  say(`  one core would carry about ${Math.floor((devices * wallSeconds) / cpuSeconds).toLocaleString('en')} such agents (CPU-bound estimate)`);
  await dispose();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [devices = 2000, pollSeconds = 60, seconds] = process.argv.slice(2).map(Number);
  // Two poll intervals, so each agent's polls and heartbeats are all in the window.
  await measure(devices, pollSeconds, seconds ?? 2 * pollSeconds);
}
