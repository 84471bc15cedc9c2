import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { DeploymentResource, DeviceView } from '../protocol/resources.ts';
import { startServer, type RunningServer } from '../server/server.ts';
import { createSimFleet, type SimFleet } from './fleet.ts';
import { applyLinkFaults, badOnHardware, flakyLinks, type Scenario } from './scenarios.ts';

/**
 * Scenario rows run end to end on a small simulated fleet: the faults a row injects, and the
 * states every device must settle in.
 */

const ADMIN = 'drill-admin';
const ENROLL = 'drill-enroll';

type Drill = {
  what: string;
  scenario: Scenario;
  /** The version rolled out after version 1 is healthy everywhere, or null to stop at version 1. */
  next: string | null;
  /** The state each device's component must settle in: [desiredVersion, running version, state]. */
  settled: (device: DeviceView) => [string, string, string];
  /** Further checks on the settled fleet. */
  check?: (fleet: SimFleet, devices: DeviceView[], api: <T>(url: string) => Promise<T>) => Promise<void>;
};

type EventView = { seq: number; type: string };

const drills: Drill[] = [
  {
    what: 'a release that crashes on one hardware model is reverted there and kept elsewhere',
    scenario: badOnHardware('arm64/rpi4', '2'),
    next: '2',
    settled: (d) => (d.labels['hardware'] === 'arm64/rpi4' ? ['2', '1', 'reverted'] : ['2', '2', 'healthy']),
    async check(fleet, devices) {
      for (const d of devices) assert.equal(fleet.everRan(d.name).has('2'), true, `${d.name} tried version 2`);
    },
  },
  {
    what: 'over slow links that lose a third of the requests, every device converges and every event arrives once',
    scenario: flakyLinks(1, { delayMs: 20, lossRatio: 0.3 }),
    next: null,
    settled: () => ['1', '1', 'healthy'],
    async check(fleet, devices, api) {
      assert.ok(fleet.stats().failed > 0, 'the links did lose requests');
      for (const d of devices) {
        // Telemetry travels on its own schedule after the states settled: wait for the commit event, then check the whole history.
        const deadline = Date.now() + 30_000;
        let events: EventView[] = [];
        while (events.filter((e) => e.type === 'committed').length === 0 && Date.now() < deadline) {
          events = (await api<{ events: EventView[] }>(`/v1/devices/${d.name}`)).events;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        const { metrics } = await api<{ metrics: { seq: number }[] }>(`/v1/devices/${d.name}/metrics?limit=5000`);
        // Events and metrics share the device's one telemetry sequence, uploaded in order: up to the newest event
        // read (metrics were read after it), they must be exactly 1..n, none lost, none twice.
        const upTo = Math.max(...events.map((e) => e.seq));
        const seqs = [...events, ...metrics].map((e) => e.seq).filter((seq) => seq <= upTo).sort((a, b) => a - b);
        assert.deepEqual(seqs, Array.from({ length: upTo }, (_, i) => i + 1), `${d.name}: telemetry numbered 1..n, none lost`);
        assert.equal(events.filter((e) => e.type === 'committed').length, 1, `${d.name}: version 1 committed once`);
      }
    },
  },
];

function deployment(version: string): DeploymentResource {
  return {
    apiVersion: 'driftless/v1',
    kind: 'Deployment',
    metadata: { name: 'pos' },
    spec: {
      selector: { matchLabels: { tier: 'store' } },
      template: { version, components: [{ name: 'pos', image: `registry.example/pos:${version}`, ports: ['8080:8080'] }] },
      strategy: { waves: [{ percent: 100 }], maxFailurePercent: 100 },
    },
  };
}

async function settle(server: RunningServer, what: string, done: (devices: DeviceView[]) => boolean): Promise<DeviceView[]> {
  const deadline = Date.now() + 60_000;
  let last: DeviceView[] = [];
  for (;;) {
    last = (await server.app.inject({ method: 'GET', url: '/v1/devices', headers: { authorization: `Bearer ${ADMIN}` } })).json() as DeviceView[];
    if (done(last)) return last;
    if (Date.now() > deadline) {
      const states = last.map((d) => `${d.name}:${d.components.map((c) => `${c.desiredVersion}/${c.version}/${c.state}`).join(',')}`);
      throw new Error(`timed out waiting for ${what}; last: ${states.join(' ')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

for (const drill of drills) {
  test(drill.what, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'driftless-drill-'));
    const server = await startServer({ dataDir: dir, host: '127.0.0.1', port: 0, pollSeconds: 1, adminToken: ADMIN, enrollToken: ENROLL });
    const fleet = createSimFleet({
      server: { app: server.app, url: server.url, enrollToken: ENROLL },
      devices: 30,
      sites: 10,
      seed: 11,
      pollSeconds: 1,
      reconcileSeconds: 0.5,
      timeScale: 0.033,
      behaviour: drill.scenario.behaviour,
    });
    const api = async <T>(url: string): Promise<T> => (await server.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${ADMIN}` } })).json() as T;
    const apply = (version: string) => server.app.inject({ method: 'POST', url: '/v1/apply', headers: { authorization: `Bearer ${ADMIN}` }, payload: { resources: [deployment(version)] } });
    try {
      await fleet.start();
      applyLinkFaults(fleet, drill.scenario);
      assert.equal((await apply('1')).statusCode, 200);
      const pos = (d: DeviceView) => d.components.find((c) => c.name === 'pos');
      let devices = await settle(server, 'version 1 healthy', (ds) => ds.length === 30 && ds.every((d) => pos(d)?.version === '1' && pos(d)?.state === 'healthy'));
      if (drill.next) {
        assert.equal((await apply(drill.next)).statusCode, 200);
        devices = await settle(server, `version ${drill.next} settled`, (ds) =>
          ds.every((d) => {
            const [desired, running, state] = drill.settled(d);
            return pos(d)?.desiredVersion === desired && pos(d)?.version === running && pos(d)?.state === state;
          }),
        );
      }
      await drill.check?.(fleet, devices, api);
    } finally {
      await fleet.stop();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
