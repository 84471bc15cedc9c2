import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DeploymentResource, DeviceView } from '../protocol/resources.ts';
import { startServer, type RunningServer } from '../server/server.ts';
import { createSimFleet, layoutFleet, type SimFleet, type SimFleetOptions } from './fleet.ts';
import { badRelease, goodRelease } from './scenarios.ts';

const ADMIN = 'sim-admin-token';
const ENROLL = 'sim-enroll-token';
/** The fake health check's 3 scenario seconds take about 100 ms; a bad version's 500 ms crash about 17 ms. */
const TIME_SCALE = 0.033;

async function withServer(): Promise<{ server: RunningServer; dispose(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'driftless-sim-'));
  const server = await startServer({ dataDir: dir, host: '127.0.0.1', port: 0, pollSeconds: 1, adminToken: ADMIN, enrollToken: ENROLL });
  return {
    server,
    async dispose() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function api<T>(server: RunningServer, method: 'GET' | 'POST', url: string, body?: unknown): Promise<T> {
  const answer = await server.app.inject({ method, url, headers: { authorization: `Bearer ${ADMIN}` }, ...(body === undefined ? {} : { payload: body as object }) });
  assert.ok(answer.statusCode < 300, `${method} ${url}: ${answer.statusCode} ${answer.body}`);
  return answer.json() as T;
}

/** Polls until `check` returns a value, or fails with what it saw last; never judges elapsed time. */
async function eventually<T>(what: string, check: () => Promise<T | null>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    const value = await check().catch((error: unknown) => ((last = error), null));
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function deployment(version: string): DeploymentResource {
  return {
    apiVersion: 'driftless/v1',
    kind: 'Deployment',
    metadata: { name: 'pos' },
    spec: {
      selector: { matchLabels: { tier: 'store' } },
      template: { version, components: [{ name: 'pos', command: ['/opt/pos/bin/pos', '--version', version] }] },
      // One wave and no threshold: every device gets the bad version, so each must revert it by itself.
      strategy: { waves: [{ percent: 100 }], maxFailurePercent: 100 },
    },
  };
}

function fleetOptions(server: RunningServer, devices: number, over: Partial<SimFleetOptions> = {}): SimFleetOptions {
  return {
    server: { app: server.app, url: server.url, enrollToken: ENROLL },
    devices,
    sites: Math.ceil(devices / 3),
    seed: 42,
    pollSeconds: 1,
    reconcileSeconds: 0.5,
    timeScale: TIME_SCALE,
    behaviour: goodRelease().behaviour,
    ...over,
  };
}

const componentOf = (device: DeviceView) => device.components.find((c) => c.name === 'pos');

describe('layout', () => {
  test('the same seed lays out the same fleet; another seed another one', () => {
    const a = layoutFleet({ devices: 50, sites: 20, seed: 7 });
    assert.deepEqual(layoutFleet({ devices: 50, sites: 20, seed: 7 }), a);
    assert.notDeepEqual(layoutFleet({ devices: 50, sites: 20, seed: 8 }), a);
  });

  test('names, sites, labels and facts', () => {
    const devices = layoutFleet({ devices: 30, sites: 12, seed: 1, hardware: ['arm64/rpi4'], regions: ['eu-west'] });
    assert.equal(devices[0]?.name, 'dev-00001');
    assert.equal(devices[29]?.name, 'dev-00030');
    assert.deepEqual(new Set(devices.map((d) => d.site)).size, 12, 'every site has a device');
    assert.deepEqual(devices[3]?.labels, { region: 'eu-west', hardware: 'arm64/rpi4', tier: 'store' });
    assert.deepEqual(devices[3]?.facts, { hostname: 'dev-00004', hardware: 'arm64/rpi4', arch: 'arm64', model: 'rpi4', simulated: true });
    const regionOfSite = new Map<string, string>();
    for (const d of layoutFleet({ devices: 200, sites: 40, seed: 3 })) {
      assert.equal(regionOfSite.get(d.site) ?? d.labels.region, d.labels.region, 'a site’s devices share its region');
      regionOfSite.set(d.site, d.labels.region);
    }
  });
});

describe('simulated fleet', () => {
  let env: Awaited<ReturnType<typeof withServer>>;
  let fleet: SimFleet;
  before(async () => {
    env = await withServer();
  });
  after(async () => {
    await fleet?.stop();
    await env.dispose();
  });

  test('200 devices take a good version, then each returns from a bad one by itself', async () => {
    const { server } = env;
    const scenario = badRelease('2');
    fleet = createSimFleet(fleetOptions(server, 200, { behaviour: scenario.behaviour }));
    await fleet.start();
    const enrolled = await api<DeviceView[]>(server, 'GET', '/v1/devices');
    assert.equal(enrolled.length, 200);
    assert.equal(enrolled.find((d) => d.name === 'dev-00001')?.facts['hardware'], fleet.devices[0]?.labels.hardware, 'the simulated hardware is what the server sees');

    await api(server, 'POST', '/v1/apply', { resources: [deployment('1')] });
    await eventually('version 1 healthy on all 200', async () => {
      const devices = await api<DeviceView[]>(server, 'GET', '/v1/devices');
      const healthy = devices.filter((d) => componentOf(d)?.version === '1' && componentOf(d)?.state === 'healthy');
      return healthy.length === 200 ? healthy : null;
    });

    await api(server, 'POST', '/v1/apply', { resources: [deployment('2')] });
    // Settled: every device told to run 2 reports it reverted to 1; any still told 1 runs it healthily.
    const settled = await eventually('every device that got version 2 to revert', async () => {
      const devices = await api<DeviceView[]>(server, 'GET', '/v1/devices');
      const told2 = devices.filter((d) => componentOf(d)?.desiredVersion === '2');
      const done = devices.every((d) => {
        const c = componentOf(d);
        return c?.desiredVersion === '2' ? c.state === 'reverted' && c.version === '1' : c?.state === 'healthy' && c.version === '1';
      });
      return done && told2.length > 0 ? devices : null;
    });

    for (const device of settled) {
      const c = componentOf(device)!;
      const running = fleet.driver(device.name, 'process').instances().filter((i) => i.running).map((i) => i.version);
      assert.deepEqual(running, ['1'], `${device.name} runs version 1 only`);
      if (c.desiredVersion === '2') {
        assert.equal(c.reason, 'health-check-failed');
        assert.match(c.detail ?? '', /version 2: exited with code 1 after [0-9.]+s; reverted to version 1/);
        assert.ok(fleet.everRan(device.name).has('2'), `${device.name} tried version 2 before reverting`);
      } else {
        assert.equal(fleet.everRan(device.name).has('2'), false, `${device.name} was never told to run 2, so it never did`);
      }
    }
  });
});

describe('links and independence', () => {
  test('an offline device keeps what it runs and catches up when its link returns; two fleets share nothing', async () => {
    const [one, two] = await Promise.all([withServer(), withServer()]);
    const fleets = [createSimFleet(fleetOptions(one.server, 3)), createSimFleet(fleetOptions(two.server, 3))] as const;
    try {
      await Promise.all(fleets.map((f) => f.start()));
      const [a, b] = fleets;
      a.setOnline('dev-00002', false);
      await api(one.server, 'POST', '/v1/apply', { resources: [deployment('1')] });
      await eventually('version 1 on the online devices', async () => (a.everRan('dev-00001').has('1') && a.everRan('dev-00003').has('1') ? true : null));
      assert.deepEqual(a.everRan('dev-00002'), new Set(), 'the offline device did not hear of version 1');
      assert.deepEqual(b.everRan('dev-00001'), new Set(), 'the other fleet, on its own server, got nothing');

      a.setOnline('dev-00002', true);
      await eventually('the device back online to take version 1', async () => (a.everRan('dev-00002').has('1') ? true : null));
    } finally {
      await Promise.all(fleets.map((f) => f.stop()));
      await Promise.all([one.dispose(), two.dispose()]);
    }
  });
});
