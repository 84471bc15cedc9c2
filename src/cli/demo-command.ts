import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_VERSION, createAgent, type Agent } from '../agent/create-agent.ts';
import type { RuntimeDriver } from '../agent/drivers/driver.ts';
import { deviceChannel } from '../agent/terminal/device-channel.ts';
import { createProcessDriver } from '../agent/drivers/process/process-driver.ts';
import type { DeploymentResource, DeviceView, DriftEntry, SiteResource } from '../protocol/resources.ts';
import { startServer, type RunningServer } from '../server/server.ts';
import { createSimFleet, type SimFleet } from '../sim/fleet.ts';
import { badRelease } from '../sim/scenarios.ts';
import { createApi, type Api } from './api-client.ts';
import { writeConfig } from './config.ts';
import { renderTable } from './output.ts';
import { parseListen } from './server-command.ts';

const say = (line = '') => process.stdout.write(`${line}\n`);

/** A tiny point-of-sale stand-in: version 3 is the bad release that crashes at start. */
function posComponent(version: string): DeploymentResource['spec']['template']['components'][number] {
  const script =
    version === '3'
      ? "console.error('pos 3: cannot parse /etc/pos/config.toml'); setTimeout(() => process.exit(3), 300)"
      : `setInterval(() => console.log('pos ${version} serving', new Date().toISOString()), 5000); console.log('pos ${version} up')`;
  return { name: 'pos', command: [process.execPath, '-e', script], env: { POS_MODE: 'demo' }, health: { running: { seconds: 2 }, timeoutSeconds: 10 } };
}

function deployment(version: string): DeploymentResource {
  return {
    apiVersion: 'driftless/v1',
    kind: 'Deployment',
    metadata: { name: 'pos' },
    spec: {
      selector: { matchLabels: { tier: 'store', demo: 'pos' } },
      template: { version, components: [posComponent(version)] },
      // A canary first, then everyone; one failure in a wave halts the rollout and rolls it back.
      strategy: { waves: [{ devices: 1 }, { percent: 100 }], maxFailurePercent: 0, onFailure: 'rollback' },
    },
  };
}

async function waitFor(api: Api, what: string, done: (devices: DeviceView[]) => boolean, timeoutMs = 60_000): Promise<DeviceView[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const devices = await api.get<DeviceView[]>('/v1/devices');
    if (done(devices)) return devices;
    if (Date.now() > deadline) throw new Error(`demo: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

const SIM_DEVICES = 500;
const SIM_SITES = 50;

/** A kiosk app on simulated devices: version 2 crashes after start on every device. */
function kiosk(version: string, sites: string[]): DeploymentResource {
  return {
    apiVersion: 'driftless/v1',
    kind: 'Deployment',
    metadata: { name: 'kiosk' },
    spec: {
      selector: { sites },
      template: { version, components: [{ name: 'kiosk', image: `registry.example/kiosk:${version}`, health: { running: { seconds: 3 } } }] },
      strategy: { waves: [{ percent: 2 }, { percent: 20 }, { percent: 100 }], maxFailurePercent: 5 },
    },
  };
}

/**
 * Part 4: the same promise at fleet scale, on the simulator: 500 virtual devices (the real agent
 * code on a scripted runtime) take a good release wave by wave, then a bad one stops itself.
 */
async function fleetDrill(api: Api, server: RunningServer, enrollToken: string): Promise<SimFleet> {
  say(`\n4. The same at fleet scale: ${SIM_DEVICES} simulated devices across ${SIM_SITES} sites (the real agent`);
  say('   code on a scripted runtime). Kiosk version 1 goes out wave by wave:');
  const fleet = createSimFleet({
    server: { app: server.app, url: server.url, enrollToken },
    devices: SIM_DEVICES,
    sites: SIM_SITES,
    seed: 42,
    pollSeconds: 2,
    reconcileSeconds: 1,
    behaviour: badRelease('2').behaviour,
    timeScale: 0.2,
    hostMetricsSeconds: 10,
  });
  await fleet.start();
  const sites = [...new Set(fleet.devices.map((d) => d.site))];
  const first = await api.post<{ results: { revision?: number }[] }>('/v1/apply', { resources: [kiosk('1', sites)] });
  let rollout = await waitForRollout(api, `kiosk-${first.results[0]?.revision}`, 'complete', 120_000);
  for (const w of rollout.waves) say(`   wave ${w.index + 1}: ${w.devices} devices, ${w.updated} updated, ${w.failed} failed`);
  const second = await api.post<{ results: { revision?: number }[] }>('/v1/apply', { resources: [kiosk('2', sites)] });
  const bad = `kiosk-${second.results[0]?.revision}`;
  say(`   Then kiosk version 2, which crashes after start everywhere (rollout ${bad}):`);
  rollout = await waitForRollout(api, bad, 'rolled-back', 120_000);
  for (const t of rollout.timeline.filter((e) => !/ failed: /.test(e.message))) say(`   ${t.at.slice(11, 19)}  ${t.message}`);
  const ran = fleet.devices.filter((d) => fleet.everRan(d.name).has('2')).length;
  say(`   ${ran} of ${SIM_DEVICES} devices ever ran version 2; every one of them is back on version 1.`);
  return fleet;
}

type RolloutDetail = { state: string; timeline: { at: string; message: string }[]; waves: { index: number; devices: number; updated: number; failed: number }[] };

async function waitForRollout(api: Api, name: string, state: string, timeoutMs = 60_000): Promise<RolloutDetail> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rollout = await api.get<RolloutDetail>(`/v1/rollouts/${name}`);
    if (rollout.state === state) return rollout;
    if (Date.now() > deadline) throw new Error(`demo: timed out waiting for rollout ${name} to be ${state} (it is ${rollout.state})`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The dashboard, signing in with `token`: the fragment never leaves the browser, and the page drops it from the address bar. */
export function dashboardLink(serverUrl: string, token: string): string {
  return `${serverUrl}/#token=${encodeURIComponent(token)}`;
}

function deviceTable(devices: DeviceView[]): string {
  return renderTable([
    ['DEVICE', 'SITE', 'DESIRED', 'RUNNING', 'STATE', 'REASON'],
    ...devices.flatMap((d) => d.components.map((c) => [d.name, d.site ?? '-', c.desiredVersion ?? '-', c.version ?? '-', c.state, c.reason ?? '-'])),
  ]);
}

/**
 * `driftless demo`: a server, three local agents running a native-process component, and a
 * guided drill: roll out a good version, then a bad one that every device reverts on its own.
 */
export async function demoCommand(flags: { data?: string; listen: string; once: boolean }): Promise<void> {
  const dataDir = flags.data ?? mkdtempSync(join(tmpdir(), 'driftless-demo-'));
  const { host, port } = parseListen(flags.listen);
  const server = await startServer({ dataDir: join(dataDir, 'server'), host, port, pollSeconds: 2, tickMs: 500 });
  const admin = server.created.adminToken;
  const enroll = server.created.enrollToken;
  if (!admin || !enroll) throw new Error(`demo: ${dataDir} was used before; run the demo without --data for a fresh fleet`);
  const configFile = writeConfig({ server: server.url, token: admin });
  const api = createApi({ server: server.url, token: admin });
  say(`Driftless demo: server on ${server.url}, data in ${dataDir}`);
  say(`Dashboard: ${dashboardLink(server.url, admin)}`);

  const agents: Agent[] = [];
  const drivers: RuntimeDriver[] = [];
  for (const [i, site] of ['store-berlin', 'store-lisbon', 'store-oslo'].entries()) {
    const name = `pos-${i + 1}`;
    const agentDir = join(dataDir, name);
    const driver = createProcessDriver({ agentId: name, dataDir: agentDir });
    drivers.push(driver);
    const agent = createAgent({
      dataDir: agentDir,
      serverUrl: server.url,
      enrollToken: enroll,
      name,
      site,
      labels: { tier: 'store', demo: 'pos' },
      drivers: { process: driver },
      pollSeconds: 1,
      reconcileSeconds: 1,
      // Charts on the dashboard within a minute rather than the agent's usual five.
      metricsEveryMs: 10_000,
      // The remote terminal: a shell on this machine, as the demo's user, from the dashboard or the CLI.
      channel: deviceChannel({ remoteShell: () => true, agentVersion: AGENT_VERSION }),
    });
    await agent.start();
    agents.push(agent);
  }
  say('Three devices enrolled (pos-1..3, one per store), each with its own agent.');

  const sites: SiteResource[] = ['berlin', 'lisbon', 'oslo'].map((city, i) => ({
    apiVersion: 'driftless/v1',
    kind: 'Site',
    metadata: { name: `store-${city}`, labels: { region: i === 2 ? 'nordics' : 'eu-south' } },
    spec: { timeZone: ['Europe/Berlin', 'Europe/Lisbon', 'Europe/Oslo'][i]! },
  }));
  const good = await api.post<{ results: { kind: string; revision?: number }[] }>('/v1/apply', { resources: [...sites, deployment('2')] });
  say('\n1. Applied Deployment "pos" version 2 to every device labelled tier=store.');
  // Complete means version 2 is now the stable revision: what a later rollback returns to.
  await waitForRollout(api, `pos-${good.results.find((r) => r.kind === 'Deployment')?.revision}`, 'complete');
  let devices = await waitFor(api, 'version 2 to be healthy everywhere', (ds) => ds.every((d) => d.components.some((c) => c.version === '2' && c.state === 'healthy')));
  process.stdout.write(deviceTable(devices));

  const applied = await api.post<{ results: { revision?: number }[] }>('/v1/apply', { resources: [deployment('3')] });
  const badRollout = `pos-${applied.results[0]?.revision}`;
  say('\n2. Applied version 3, a bad release that crashes at start. It goes to one canary first;');
  say('   the canary sees its health check fail and returns to version 2 by itself, the rollout');
  say('   halts and rolls back, and the other stores never see version 3:');
  const rollout = await waitForRollout(api, badRollout, 'rolled-back');
  for (const t of rollout.timeline) say(`   ${t.at.slice(11, 19)}  ${t.message}`);
  devices = await api.get<DeviceView[]>('/v1/devices');
  process.stdout.write(deviceTable(devices));
  const drift = await api.get<{ summary: string; entries: DriftEntry[] }>('/v1/drift');
  say(`\n3. driftless drift says: ${drift.summary}`);
  for (const e of drift.entries) say(`   ${e.device} (${e.site}): ${e.reason}: ${e.detail}`);

  const sim = await fleetDrill(api, server, enroll);

  say(`\nThe CLI is set up for this demo (${configFile}). Try, in another terminal:`);
  say('  bin/driftless get devices');
  say('  bin/driftless drift');
  say('  bin/driftless describe device pos-1');
  say('  bin/driftless logs pos-1 pos -f              # its output, uploaded from the agent\'s outbox');
  say('  bin/driftless get rollouts');
  say(`  bin/driftless describe rollout ${badRollout}`);
  say(`  bin/driftless rollout incident ${badRollout}`);
  say(`  curl ${server.url}/v1/openapi.json`);
  say(`\nOr watch it all on the dashboard (signed in as the demo's admin): ${dashboardLink(server.url, admin)}`);
  const stop = async () => {
    await sim.stop();
    for (const agent of agents) await agent.stop();
    // Agents leave workloads running when they stop; the demo's are cleaned up with it.
    for (const driver of drivers) {
      for (const instance of await driver.list()) await driver.remove(instance.key);
      await driver.close();
    }
    await server.close();
  };
  if (flags.once) {
    await stop();
    return;
  }
  say('\nPress Ctrl-C to stop the demo (the demo workloads are stopped with it).');
  await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
  await stop();
}
