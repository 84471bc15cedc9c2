import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DeviceView, DriftEntry } from '../../src/protocol/resources.ts';
import { assertDeviceShape, assertDriftShape, componentOf, createFleet, everyDevice, type Fleet, uniqueTag } from '../support/fleet.ts';
import { agentContainers, assertPodmanReady, hostPortOf, TEST_IMAGE_PORT, TEST_IMAGES } from '../support/podman.ts';
import { waitFor } from '../support/wait.ts';

// A server and three agent processes on one Podman host roll a container out, update it, and each
// revert a bad release on their own, with the old version still serving.

const tag = uniqueTag();
const site = `cr-site-${tag}`;
const names = [1, 2, 3].map((i) => `cr-${tag}-${i}`);
const DEPLOYMENT = `web-${tag}`;

function manifest(version: string, image: string): string {
  return `apiVersion: driftless/v1
kind: Deployment
metadata:
  name: ${DEPLOYMENT}
spec:
  selector:
    matchLabels: { tier: cr-${tag} }
  # Every device at once and no fleet-wide halt: this test is about each device's own commit-or-revert.
  strategy: { waves: [{ percent: 100 }], maxFailurePercent: 100 }
  template:
    version: "${version}"
    components:
      - name: web
        image: ${image}
        # No host port: three devices share this Podman host, so each gets an ephemeral one.
        ports: ["${TEST_IMAGE_PORT}"]
        health:
          http: { port: ${TEST_IMAGE_PORT}, path: /healthz }
          timeoutSeconds: 8
          intervalSeconds: 0.5
`;
}

/** The one container of a device, and what it serves on /version. */
async function serving(device: string): Promise<{ containers: number; name: string; version: string | null; image: string }> {
  const containers = await agentContainers(device);
  const running = containers.filter((c) => c.State === 'running');
  const only = running.length === 1 ? running[0]! : null;
  if (!only) return { containers: containers.length, name: containers.map((c) => c.Names.join()).join(' '), version: null, image: '' };
  const port = hostPortOf(only);
  let version: string | null = null;
  try {
    const answer = await fetch(`http://127.0.0.1:${port}/version`, { signal: AbortSignal.timeout(3000) });
    version = answer.ok ? (await answer.text()).trim() : `HTTP ${answer.status}`;
  } catch (error) {
    version = `unreachable: ${(error as Error).message}`;
  }
  return { containers: containers.length, name: only.Names[0]!.replace(/^\//, ''), version, image: only.Image };
}

async function servingAll(): Promise<Record<string, Awaited<ReturnType<typeof serving>>>> {
  return Object.fromEntries(await Promise.all(names.map(async (n) => [n, await serving(n)] as const)));
}

describe('container rollout across three agent processes', { timeout: 240_000 }, () => {
  let fleet: Fleet;

  before(async () => {
    await assertPodmanReady();
    fleet = createFleet('container-rollout');
    fleet.own(...names);
    await fleet.startServer();
    for (const name of names) fleet.startAgent({ name, site, labels: { tier: `cr-${tag}` } });
    await fleet.waitForDevices('three agents to enrol and come online', (ds) => names.every((n) => ds.some((d) => d.name === n && d.online)));
  });

  after(async () => {
    await fleet?.cleanup();
  });

  const allAt = (version: string) => everyDevice(names, 'web', (c) => c.state === 'healthy' && c.version === version && c.desiredVersion === version);

  it('rolls out version 1 to every device: reported healthy, really running and serving', async () => {
    const applied = await fleet.apply('web-1.yaml', manifest('1', TEST_IMAGES.v1));
    assert.match(applied.stdout, new RegExp(`deployment/${DEPLOYMENT} created`));

    await fleet.waitForDevices('all three devices healthy on version 1', allAt('1'));

    const devices = await fleet.cliJson<unknown[]>(['get', 'devices', '-o', 'json']);
    const mine = devices.filter((d) => names.includes((d as DeviceView).name));
    assert.equal(mine.length, 3, `get devices -o json lists ${JSON.stringify(devices)}`);
    for (const device of mine) {
      assertDeviceShape(device);
      assert.equal(device.site, site);
      assert.deepEqual(device.labels, { tier: `cr-${tag}` });
      assert.equal(device.online, true);
      const web = componentOf(device, 'web');
      assert.deepEqual(
        { name: web?.name, deployment: web?.deployment, desiredVersion: web?.desiredVersion, version: web?.version, state: web?.state, reason: web?.reason },
        { name: 'web', deployment: DEPLOYMENT, desiredVersion: '1', version: '1', state: 'healthy', reason: null },
      );
    }

    const state = await waitFor('each device to run one container serving version 1', servingAll, (s) => names.every((n) => s[n]!.version === '1'));
    for (const name of names) {
      assert.equal(state[name]!.containers, 1, `${name} has ${state[name]!.containers} containers`);
      assert.equal(state[name]!.name, `driftless-${name}-${DEPLOYMENT}.web`);
      assert.equal(state[name]!.image, TEST_IMAGES.v1);
    }
  });

  it('updates every device to version 2', async () => {
    const applied = await fleet.apply('web-2.yaml', manifest('2', TEST_IMAGES.v2));
    assert.match(applied.stdout, /configured \(revision 2\)/);

    await fleet.waitForDevices('all three devices healthy on version 2', allAt('2'));
    const state = await waitFor('each device to serve version 2', servingAll, (s) => names.every((n) => s[n]!.version === '2'));
    for (const name of names) assert.equal(state[name]!.containers, 1, `${name}: ${JSON.stringify(state[name])}`);
    assert.deepEqual(await fleet.drift().then((es) => es.filter((e) => names.includes(e.device))), [], 'no drift once converged');
  });

  it('a bad release is reverted by each device on its own; version 2 keeps serving', async () => {
    await fleet.apply('web-bad.yaml', manifest('bad', TEST_IMAGES.bad));

    await fleet.waitForDevices('all three devices to revert the bad release', everyDevice(names, 'web', (c) => c.state === 'reverted' && c.desiredVersion === 'bad' && c.version === '2'));

    const devices = (await fleet.cliJson<DeviceView[]>(['get', 'devices', '-o', 'json'])).filter((d) => names.includes(d.name));
    assert.equal(devices.length, 3);
    for (const device of devices) {
      assertDeviceShape(device);
      const web = componentOf(device, 'web')!;
      assert.equal(web.state, 'reverted', JSON.stringify(web));
      assert.equal(web.version, '2', JSON.stringify(web));
      assert.equal(web.desiredVersion, 'bad');
      assert.ok(typeof web.reason === 'string' && web.reason.length > 0, `reverted needs a reason: ${JSON.stringify(web)}`);
    }

    const drift = (await fleet.cliJson<DriftEntry[]>(['drift', '-o', 'json'])).filter((e) => names.includes(e.device));
    assert.deepEqual(drift.map((e) => e.device).sort(), [...names].sort(), `drift lists every device once: ${JSON.stringify(drift)}`);
    for (const entry of drift) {
      assertDriftShape(entry);
      assert.equal(entry.reason, 'reverted', JSON.stringify(entry));
      assert.equal(entry.component, 'web');
      assert.equal(entry.desiredVersion, 'bad');
      assert.equal(entry.version, '2');
      assert.equal(entry.site, site);
      assert.match(entry.detail, /healthz|health/i, `the detail says why: ${entry.detail}`);
    }

    // Still serving the good version, from exactly one container per device: no duplicates left over.
    const state = await waitFor('each device to serve version 2 again from one container', servingAll, (s) =>
      names.every((n) => s[n]!.version === '2' && s[n]!.containers === 1),
    );
    for (const name of names) {
      assert.equal(state[name]!.image, TEST_IMAGES.v2);
      assert.equal(state[name]!.name, `driftless-${name}-${DEPLOYMENT}.web`);
    }
  });
});
