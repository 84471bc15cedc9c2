import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DeviceView } from '../../src/protocol/resources.ts';
import { componentOf, createFleet, uniqueTag, type AgentHandle, type Fleet } from '../support/fleet.ts';
import { agentContainers, assertPodmanReady, hostPortOf, inspectContainer, stopContainer, TEST_IMAGE_PORT, TEST_IMAGES } from '../support/podman.ts';
import { waitFor, waitUntil } from '../support/wait.ts';

// Crashes and outages: an agent killed with SIGKILL in the middle of an update finishes it after a
// restart without leaving a second container behind; a management plane that is down changes
// nothing on the device, which keeps repairing itself and reports it all once the server is back.

const tag = uniqueTag();
const device = `crash-${tag}`;
const DEPLOYMENT = `web-${tag}`;
const containerName = `driftless-${device}-${DEPLOYMENT}.web`;

function manifest(version: string, image: string): string {
  return `apiVersion: driftless/v1
kind: Deployment
metadata: { name: ${DEPLOYMENT} }
spec:
  selector: { matchLabels: { tier: crash-${tag} } }
  # Every device at once and no fleet-wide halt: this test is about each device's own commit-or-revert.
  strategy: { waves: [{ percent: 100 }], maxFailurePercent: 100 }
  template:
    version: "${version}"
    components:
      - name: web
        image: ${image}
        ports: ["${TEST_IMAGE_PORT}"]
        health: { http: { port: ${TEST_IMAGE_PORT}, path: /healthz }, timeoutSeconds: 8, intervalSeconds: 0.5 }
`;
}

/** What runs for the device, straight from Podman: every container with its label, and what the running one serves. */
async function observed(): Promise<{ containers: { name: string; state: string; image: string }[]; serves: string | null; startedAt: string | null }> {
  const containers = await agentContainers(device);
  const running = containers.find((c) => c.State === 'running');
  let serves: string | null = null;
  if (running) {
    try {
      const answer = await fetch(`http://127.0.0.1:${hostPortOf(running)}/version`, { signal: AbortSignal.timeout(3000) });
      serves = answer.ok ? (await answer.text()).trim() : `HTTP ${answer.status}`;
    } catch (error) {
      serves = `unreachable: ${(error as Error).message}`;
    }
  }
  const info = running ? await inspectContainer(running.Id) : null;
  return {
    containers: containers.map((c) => ({ name: c.Names[0]!.replace(/^\//, ''), state: c.State, image: c.Image })),
    serves,
    startedAt: info?.State.StartedAt ?? null,
  };
}

describe('crash recovery', { timeout: 240_000 }, () => {
  let fleet: Fleet;
  let agent: AgentHandle;
  const startAgent = () => fleet.startAgent({ name: device, site: `crash-site-${tag}`, labels: { tier: `crash-${tag}` }, dataDir: `${fleet.dir}/agent-data` });
  const healthyAt = (version: string) => (ds: DeviceView[]) => {
    const c = componentOf(ds.find((d) => d.name === device), 'web');
    return c?.state === 'healthy' && c.version === version && c.desiredVersion === version;
  };

  before(async () => {
    await assertPodmanReady();
    fleet = createFleet('crash-recovery');
    fleet.own(device);
    await fleet.startServer();
    agent = startAgent();
    await fleet.waitForDevices('the agent to enrol', (ds) => ds.some((d) => d.name === device && d.online));
    await fleet.apply('web-1.yaml', manifest('1', TEST_IMAGES.v1));
    await fleet.waitForDevices('version 1 healthy', healthyAt('1'));
  });

  after(async () => {
    await fleet?.cleanup();
  });

  it('an agent killed with SIGKILL in the middle of an update finishes it after a restart, with no orphan container', async () => {
    const from = agent.child.stderr().length;
    await fleet.apply('web-2.yaml', manifest('2', TEST_IMAGES.v2));

    // First crash: right as the update begins (the attempt is recorded, the old container is about to go).
    await agent.child.waitForStderr(/applying version 2/, { from });
    await agent.kill();

    // Second crash: the old container is gone and the new one is being created. (If the first agent
    // got past the removal, the restarted one goes straight on to create or check: no second crash.)
    agent = startAgent();
    const second = await agent.child.waitForStderr(/removed \(replaced by version 2\)|started container|event committed/);
    if (second[0].startsWith('removed')) await agent.kill();

    if (!agent.child.running()) agent = startAgent();
    await fleet.waitForDevices('version 2 healthy after the crashes', healthyAt('2'));
    const state = await waitFor('one container, serving version 2', observed, (s) => s.serves === '2' && s.containers.length === 1, {
      context: () => fleet.diagnostics(),
    });
    assert.deepEqual(state.containers, [{ name: containerName, state: 'running', image: TEST_IMAGES.v2 }], 'exactly one container, the agent labelled, no orphans');
    assert.ok(agent.child.running(), `the restarted agent keeps running:\n${agent.child.tail()}`);
  });

  it('with the server down the device keeps running and repairs a local stop; the server catches up when it returns', async () => {
    const server = fleet.server!;
    await server.stop();
    const from = agent.child.stderr().length;
    // The agent has noticed the server is gone…
    await agent.child.waitForStderr(/desired state not fetched|status not reported/, { from });
    // …and the workload does not care.
    const before = await observed();
    assert.equal(before.serves, '2', `still serving with the server down: ${JSON.stringify(before)}`);
    assert.equal(before.containers.length, 1);

    // Someone stops the container by hand on the device; the agent starts it again, server or not.
    await stopContainer(containerName);
    await waitUntil('the container to be stopped', async () => (await inspectContainer(containerName))?.State.Running === false);
    const repaired = await waitFor('the agent to start the container again while the server is down', observed, (s) => s.serves === '2' && s.startedAt !== before.startedAt, {
      context: () => fleet.diagnostics(),
    });
    assert.equal(repaired.containers.length, 1, JSON.stringify(repaired));
    await agent.child.waitForStderr(/event local-change/, { from });
    assert.ok(!fleet.server!.child.running(), 'the repair happened while the server was down');

    // The server comes back on the same data and address; the device's report catches up.
    await fleet.startServer({ listen: `127.0.0.1:${server.port}`, dataDir: server.dataDir });
    assert.equal(fleet.url, server.url);
    await fleet.waitForDevices('the device online and healthy again', (ds) => healthyAt('2')(ds) && ds.some((d) => d.name === device && d.online));
    const detail = await waitFor('the local change to be reported', () => fleet.deviceDetail(device), (d) => d.events.some((e) => e.type === 'local-change'), {
      context: () => fleet.diagnostics(),
    });
    const change = detail.events.find((e) => e.type === 'local-change')!;
    assert.match(change.message, /stopped/, JSON.stringify(change));
    assert.equal(detail.online, true);

    const described = await fleet.cli(['describe', 'device', device]);
    assert.equal(described.code, 0, described.stderr);
    assert.match(described.stdout, /local-change/);
    assert.match(described.stdout, /running 2, healthy/);
  });
});
