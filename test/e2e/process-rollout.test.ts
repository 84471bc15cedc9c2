import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DeviceView, DriftEntry } from '../../src/protocol/resources.ts';
import { workloadPids } from '../support/child.ts';
import { assertBusybox, assertDeviceShape, assertDriftShape, componentOf, createFleet, everyDevice, type Fleet, uniqueTag } from '../support/fleet.ts';
import { createLan, type Lan } from '../support/netns.ts';
import { waitFor } from '../support/wait.ts';

// The same rollout as the container test, with the process driver: each agent runs on its own
// "host" (a network namespace on a test LAN), so all three workloads listen on the same port 8080.

const tag = uniqueTag();
const site = `pr-site-${tag}`;
const names = [1, 2, 3].map((i) => `pr-${tag}-${i}`);
const DEPLOYMENT = `httpd-${tag}`;
const PORT = 8080;

describe('native-process rollout across three agents on their own hosts', { timeout: 240_000 }, () => {
  let fleet: Fleet;
  let lan: Lan;
  const address = new Map<string, string>();

  /** A directory busybox httpd serves for one version; the bad one has no /healthz. */
  function webRoot(version: string): string {
    const dir = join(fleet.dir, `www-${version}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'version'), version);
    if (version !== 'bad') writeFileSync(join(dir, 'healthz'), 'ok');
    return dir;
  }

  function manifest(version: string): string {
    return `apiVersion: driftless/v1
kind: Deployment
metadata:
  name: ${DEPLOYMENT}
spec:
  selector:
    matchLabels: { tier: pr-${tag} }
  # Every device at once and no fleet-wide halt: this test is about each device's own commit-or-revert.
  strategy: { waves: [{ percent: 100 }], maxFailurePercent: 100 }
  template:
    version: "${version}"
    components:
      - name: httpd
        command: ["/bin/busybox", "httpd", "-f", "-p", "${PORT}", "-h", "${webRoot(version)}"]
        health:
          http: { port: ${PORT}, path: /healthz }
          timeoutSeconds: 8
          intervalSeconds: 0.5
`;
  }

  async function serving(device: string): Promise<string> {
    try {
      const answer = await fetch(`http://${address.get(device)}:${PORT}/version`, { signal: AbortSignal.timeout(3000) });
      return answer.ok ? (await answer.text()).trim() : `HTTP ${answer.status}`;
    } catch (error) {
      return `unreachable: ${(error as Error).message}`;
    }
  }
  const servingAll = async () => Object.fromEntries(await Promise.all(names.map(async (n) => [n, await serving(n)] as const)));

  /** Workload processes per device: busybox httpd runs as one process, so exactly one each. */
  const workloadsOf = (device: string) => workloadPids([device]).length;

  before(async () => {
    assertBusybox();
    lan = await createLan();
    fleet = createFleet('process-rollout');
    fleet.own(...names);
    await fleet.startServer({ listen: `${lan.gateway}:0` });
    for (const name of names) {
      const host = await lan.addHost();
      address.set(name, host.address);
      fleet.startAgent({ name, site, labels: { tier: `pr-${tag}` }, wrap: host.wrap });
    }
    await fleet.waitForDevices('three agents to enrol over the LAN', (ds) => names.every((n) => ds.some((d) => d.name === n && d.online)));
  });

  after(async () => {
    await fleet?.cleanup();
    await lan?.cleanup();
  });

  const allAt = (version: string) => everyDevice(names, 'httpd', (c) => c.state === 'healthy' && c.version === version && c.desiredVersion === version);

  it('rolls out version 1: every device healthy and serving it on its own host', async () => {
    await fleet.apply('httpd-1.yaml', manifest('1'));
    await fleet.waitForDevices('all three devices healthy on version 1', allAt('1'));
    for (const device of (await fleet.cliJson<unknown[]>(['get', 'devices', '-o', 'json'])).filter((d) => names.includes((d as DeviceView).name))) {
      assertDeviceShape(device);
      assert.equal(device.site, site);
      assert.equal(componentOf(device, 'httpd')?.state, 'healthy');
    }
    await waitFor('each host to serve version 1 on :8080', servingAll, (s) => names.every((n) => s[n] === '1'));
    for (const name of names) assert.equal(workloadsOf(name), 1, `${name} runs one httpd`);
  });

  it('updates every device to version 2', async () => {
    await fleet.apply('httpd-2.yaml', manifest('2'));
    await fleet.waitForDevices('all three devices healthy on version 2', allAt('2'));
    await waitFor('each host to serve version 2', servingAll, (s) => names.every((n) => s[n] === '2'));
    for (const name of names) assert.equal(workloadsOf(name), 1, `${name} runs one httpd, the old one is gone`);
  });

  it('a bad release is reverted on each device by itself; version 2 keeps serving', async () => {
    await fleet.apply('httpd-bad.yaml', manifest('bad'));
    await fleet.waitForDevices('all three devices to revert the bad release', everyDevice(names, 'httpd', (c) => c.state === 'reverted' && c.desiredVersion === 'bad' && c.version === '2'));

    const devices = (await fleet.cliJson<DeviceView[]>(['get', 'devices', '-o', 'json'])).filter((d) => names.includes(d.name));
    assert.equal(devices.length, 3);
    for (const device of devices) {
      assertDeviceShape(device);
      const c = componentOf(device, 'httpd')!;
      assert.equal(c.state, 'reverted');
      assert.equal(c.version, '2');
      assert.ok(c.reason, `reverted needs a reason: ${JSON.stringify(c)}`);
    }
    const drift = (await fleet.cliJson<DriftEntry[]>(['drift', '-o', 'json'])).filter((e) => names.includes(e.device));
    assert.deepEqual(drift.map((e) => e.device).sort(), [...names].sort(), JSON.stringify(drift));
    for (const entry of drift) {
      assertDriftShape(entry);
      assert.equal(entry.reason, 'reverted');
      assert.match(entry.detail, /healthz/);
    }

    const state = await waitFor('each host to serve version 2 again', servingAll, (s) => names.every((n) => s[n] === '2'));
    assert.deepEqual(Object.values(state), ['2', '2', '2']);
    for (const name of names) assert.equal(workloadsOf(name), 1, `${name} runs exactly one httpd`);
  });
});
